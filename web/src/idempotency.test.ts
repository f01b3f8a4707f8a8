import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  HOLDS,
  IdempotencyKeeper,
  newIdempotencyKey,
  PENDING_HOLDS_STORAGE_KEY,
  PENDING_REFUNDS_STORAGE_KEY,
  REFUNDS,
  PENDING_MAX,
  PENDING_STORAGE_KEY,
  settles,
  type KeyStorage,
  type PaymentFields,
} from "./idempotency.js";

const payment: PaymentFields = { senderId: "alice", recipientId: "bob", amount: 1234n, currency: "EUR", memo: "lunch" };

function counter(prefix = "key") {
  let n = 0;
  return () => `${prefix}-${++n}`;
}

/** sessionStorage as the page sees it: strings by name, surviving the page (the keeper). */
class FakeStorage implements KeyStorage {
  readonly items = new Map<string, string>();
  getItem(name: string): string | null {
    return this.items.get(name) ?? null;
  }
  setItem(name: string, value: string): void {
    this.items.set(name, value);
  }
  removeItem(name: string): void {
    this.items.delete(name);
  }
}

describe("IdempotencyKeeper", () => {
  it("keeps the key for retries of the same payment", () => {
    const keys = new IdempotencyKeeper(new FakeStorage(), counter());
    expect(keys.keyFor(payment)).toBe("key-1");
    expect(keys.keyFor({ ...payment })).toBe("key-1");
    expect(keys.pendingKey(payment)).toBe("key-1");
  });

  it("takes a new key once the payment is settled", () => {
    const keys = new IdempotencyKeeper(new FakeStorage(), counter());
    keys.keyFor(payment);
    keys.settled(payment);
    expect(keys.pendingKey(payment)).toBeUndefined();
    expect(keys.keyFor(payment)).toBe("key-2");
  });

  it("gives each different payment its own key, and keeps every pending one", () => {
    const keys = new IdempotencyKeeper(new FakeStorage(), counter());
    expect(keys.keyFor(payment)).toBe("key-1");
    expect(keys.keyFor({ ...payment, amount: 1235n })).toBe("key-2");
    expect(keys.keyFor({ ...payment, amount: 1235n, memo: "dinner" })).toBe("key-3");
    expect(keys.keyFor({ ...payment, amount: 1235n, memo: "dinner", recipientId: "carol" })).toBe("key-4");
    expect(keys.keyFor({ ...payment, senderId: "dave" })).toBe("key-5");
    expect(keys.keyFor({ ...payment, currency: "USD" })).toBe("key-6");
    // Going back to an earlier, still pending payment reuses its key.
    expect(keys.keyFor(payment)).toBe("key-1");
    expect(keys.pendingCount()).toBe(6);
    keys.settled({ ...payment, amount: 1235n });
    expect(keys.pendingCount()).toBe(5);
    expect(keys.keyFor(payment)).toBe("key-1");
  });

  it("survives a reload: a new keeper over the same storage reuses the pending key", () => {
    const storage = new FakeStorage();
    const before = new IdempotencyKeeper(storage, counter("first-page"));
    expect(before.keyFor(payment)).toBe("first-page-1");
    expect(storage.getItem(PENDING_STORAGE_KEY)).toContain("first-page-1");

    const after = new IdempotencyKeeper(storage, counter("second-page"));
    expect(after.pendingKey(payment)).toBe("first-page-1");
    expect(after.keyFor(payment)).toBe("first-page-1");
    after.settled(payment);
    expect(storage.getItem(PENDING_STORAGE_KEY)).toBeNull();
    expect(new IdempotencyKeeper(storage, counter("third-page")).keyFor(payment)).toBe("third-page-1");
  });

  it("keeps at most PENDING_MAX pending keys, forgetting the oldest", () => {
    const storage = new FakeStorage();
    const keys = new IdempotencyKeeper(storage, counter());
    for (let i = 0; i < PENDING_MAX + 3; i++) keys.keyFor({ ...payment, amount: BigInt(i + 1) });
    expect(keys.pendingCount()).toBe(PENDING_MAX);
    expect(keys.pendingKey({ ...payment, amount: 1n })).toBeUndefined();
    expect(keys.pendingKey({ ...payment, amount: BigInt(PENDING_MAX + 3) })).toBe(`key-${PENDING_MAX + 3}`);
    expect((JSON.parse(storage.getItem(PENDING_STORAGE_KEY)!) as unknown[]).length).toBe(PENDING_MAX);
  });

  it("ignores a malformed stored list, and works on in memory when storage throws", () => {
    const storage = new FakeStorage();
    storage.setItem(PENDING_STORAGE_KEY, "{not json");
    expect(new IdempotencyKeeper(storage, counter()).keyFor(payment)).toBe("key-1");
    storage.setItem(PENDING_STORAGE_KEY, JSON.stringify([{ fingerprint: 1, key: "x" }, "junk"]));
    expect(new IdempotencyKeeper(storage, counter("b")).keyFor(payment)).toBe("b-1");

    const broken: KeyStorage = {
      getItem: () => {
        throw new Error("disabled");
      },
      setItem: () => {
        throw new Error("quota");
      },
      removeItem: () => {
        throw new Error("disabled");
      },
    };
    const keys = new IdempotencyKeeper(broken, counter());
    expect(keys.keyFor(payment)).toBe("key-1");
    expect(keys.keyFor(payment)).toBe("key-1");
    keys.settled(payment);
    expect(keys.keyFor(payment)).toBe("key-2");
  });
});

describe("settles", () => {
  it("settles on a reply and on refusals that a retry would get again", () => {
    expect(settles("ok")).toBe(true);
    for (const code of [
      Code.InvalidArgument,
      Code.NotFound,
      Code.AlreadyExists,
      Code.PermissionDenied,
      Code.FailedPrecondition,
      Code.OutOfRange,
      Code.Unauthenticated,
    ]) {
      expect(settles(new ConnectError("refused", code)), Code[code]).toBe(true);
    }
  });

  it("keeps the key when the outcome is unknown or retryable", () => {
    for (const code of [
      Code.Canceled,
      Code.Unknown,
      Code.DeadlineExceeded,
      Code.ResourceExhausted,
      Code.Aborted,
      Code.Unimplemented,
      Code.Internal,
      Code.Unavailable,
      Code.DataLoss,
    ]) {
      expect(settles(new ConnectError("unknown outcome", code)), Code[code]).toBe(false);
    }
    expect(settles(new TypeError("Failed to fetch"))).toBe(false);
    expect(settles(undefined)).toBe(false);
  });
});

describe("newIdempotencyKey", () => {
  it("is a fresh v4 UUID every time", () => {
    const a = newIdempotencyKey();
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(newIdempotencyKey()).not.toBe(a);
  });

  it("falls back to getRandomValues where randomUUID is missing", () => {
    const original = crypto.randomUUID;
    try {
      Object.defineProperty(crypto, "randomUUID", { value: undefined, configurable: true });
      expect(newIdempotencyKey()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    } finally {
      Object.defineProperty(crypto, "randomUUID", { value: original, configurable: true });
    }
  });
});

describe("keepers of holds and refunds", () => {
  it("keep the keys of holds apart from those of payments, also for the same fields", () => {
    const storage = new FakeStorage();
    const payments = new IdempotencyKeeper(storage, counter("pay"));
    const holds = new IdempotencyKeeper(storage, counter("hold"), HOLDS);
    const hold = { ...payment, expiresInSeconds: 3600n };
    expect(payments.keyFor(payment)).toBe("pay-1");
    expect(holds.keyFor(hold)).toBe("hold-1");
    expect(holds.keyFor(hold)).toBe("hold-1");
    expect(holds.keyFor({ ...hold, expiresInSeconds: 60n })).toBe("hold-2");
    expect(storage.items.get(PENDING_STORAGE_KEY)).toContain("pay-1");
    expect(storage.items.get(PENDING_HOLDS_STORAGE_KEY)).toContain("hold-1");
    holds.settled(hold);
    expect(holds.pendingKey(hold)).toBeUndefined();
    expect(payments.pendingKey(payment)).toBe("pay-1");
    // Another page of the same tab finds the hold's key.
    expect(new IdempotencyKeeper(storage, counter("x"), HOLDS).pendingKey({ ...hold, expiresInSeconds: 60n })).toBe("hold-2");
  });

  it("keep one key per refund: the payment, the amount (0 for all) and the memo", () => {
    const storage = new FakeStorage();
    const refunds = new IdempotencyKeeper(storage, counter("refund"), REFUNDS);
    const all = { transactionId: "tx-1", amount: 0n, memo: "" };
    expect(refunds.keyFor(all)).toBe("refund-1");
    expect(refunds.keyFor({ ...all, amount: 500n })).toBe("refund-2");
    expect(refunds.keyFor(all)).toBe("refund-1");
    expect(storage.items.get(PENDING_REFUNDS_STORAGE_KEY)).toContain("refund-2");
  });
});
