import { describe, expect, it } from "vitest";
import { IdempotencyKeeper, newIdempotencyKey, type PaymentFields } from "./idempotency.js";

const payment: PaymentFields = { senderId: "alice", recipientId: "bob", amount: 1234n, currency: "EUR", memo: "lunch" };

function counter() {
  let n = 0;
  return () => `key-${++n}`;
}

describe("IdempotencyKeeper", () => {
  it("keeps the key for retries of the same payment", () => {
    const keys = new IdempotencyKeeper(counter());
    expect(keys.keyFor(payment)).toBe("key-1");
    expect(keys.keyFor({ ...payment })).toBe("key-1");
    expect(keys.pendingKey()).toBe("key-1");
  });

  it("takes a new key once the payment succeeded", () => {
    const keys = new IdempotencyKeeper(counter());
    keys.keyFor(payment);
    keys.succeeded();
    expect(keys.pendingKey()).toBeUndefined();
    expect(keys.keyFor(payment)).toBe("key-2");
  });

  it("takes a new key when any field changes", () => {
    const keys = new IdempotencyKeeper(counter());
    expect(keys.keyFor(payment)).toBe("key-1");
    expect(keys.keyFor({ ...payment, amount: 1235n })).toBe("key-2");
    expect(keys.keyFor({ ...payment, amount: 1235n, memo: "dinner" })).toBe("key-3");
    expect(keys.keyFor({ ...payment, amount: 1235n, memo: "dinner", recipientId: "carol" })).toBe("key-4");
    // Going back to an earlier payment is a new payment too.
    expect(keys.keyFor(payment)).toBe("key-5");
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
