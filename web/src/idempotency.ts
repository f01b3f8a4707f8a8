// One idempotency key per payment a person means to make, kept until that
// payment is settled.
//
// Each pending payment's key is kept in sessionStorage (the tab's storage,
// which survives a reload), under the payment's fields. So a retry after a
// failure whose outcome is unknown (a lost response, a timeout, UNAVAILABLE,
// ABORTED), also after reloading the page, sends the same key and the service
// replays the payment instead of paying twice. A key is dropped only once its
// payment is settled: paid, or refused for good (see settles). A form with
// other contents is another payment and gets a key of its own; the earlier
// one's key stays kept until it is settled too (at most PENDING_MAX of them).

import { Code, ConnectError } from "@connectrpc/connect";

/** A random UUID (v4), also where crypto.randomUUID is missing (non-secure contexts). */
export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The fields of a payment that make it "the same payment". */
export interface PaymentFields {
  senderId: string;
  recipientId: string;
  amount: bigint;
  currency: string;
  memo: string;
}

/** Where the pending keys live in sessionStorage. */
export const PENDING_STORAGE_KEY = "payment.pending-keys";

/**
 * How many unsettled payments keep their key. Past it the oldest is
 * forgotten: a person rarely leaves more than a handful unresolved, and the
 * stored list must not grow without bound.
 */
export const PENDING_MAX = 32;

/** The part of Storage the keeper uses (sessionStorage in the page). */
export type KeyStorage = Pick<Storage, "getItem" | "setItem" | "removeItem">;

interface Pending {
  fingerprint: string;
  key: string;
}

function fingerprint(p: PaymentFields): string {
  return JSON.stringify([p.senderId, p.recipientId, p.amount.toString(), p.currency, p.memo]);
}

/** The fields of a hold that make it "the same hold": a payment's, and how long it lasts. */
export interface HoldFields extends PaymentFields {
  expiresInSeconds: bigint;
}

/** Where the pending keys of holds live: a hold never shares a key with a payment. */
export const PENDING_HOLDS_STORAGE_KEY = "payment.pending-hold-keys";

export function holdFingerprint(h: HoldFields): string {
  return JSON.stringify(["hold", h.senderId, h.recipientId, h.amount.toString(), h.currency, h.memo, h.expiresInSeconds.toString()]);
}

/** The fields of a refund that make it "the same refund"; amount 0 means all that is left. */
export interface RefundFields {
  transactionId: string;
  amount: bigint;
  memo: string;
}

/** Where the pending keys of refunds live. */
export const PENDING_REFUNDS_STORAGE_KEY = "payment.pending-refund-keys";

export function refundFingerprint(r: RefundFields): string {
  return JSON.stringify(["refund", r.transactionId, r.amount.toString(), r.memo]);
}

/** Which kind of call a keeper keeps keys for: where, and what makes two calls the same. */
export interface KeeperKind<F> {
  storageKey: string;
  fingerprint: (fields: F) => string;
}

export const PAYMENTS: KeeperKind<PaymentFields> = { storageKey: PENDING_STORAGE_KEY, fingerprint };
export const HOLDS: KeeperKind<HoldFields> = { storageKey: PENDING_HOLDS_STORAGE_KEY, fingerprint: holdFingerprint };
export const REFUNDS: KeeperKind<RefundFields> = { storageKey: PENDING_REFUNDS_STORAGE_KEY, fingerprint: refundFingerprint };

function isPending(value: unknown): value is Pending {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.fingerprint === "string" && typeof v.key === "string" && v.key !== "";
}

/**
 * Whether a call's outcome settles the payment, so that its key may go: a
 * reply (OK), or a refusal that says the payment was not made and will not
 * be by a retry with the same key. Anything else (no reply, a timeout,
 * UNAVAILABLE, ABORTED, INTERNAL, ...) leaves the outcome unknown or
 * retryable: the key must stay, so that a retry cannot pay twice.
 */
export function settles(outcome: "ok" | unknown): boolean {
  if (outcome === "ok") return true;
  if (!(outcome instanceof ConnectError)) return false;
  return DEFINITE_REFUSALS.has(outcome.code);
}

/** Codes the service answers before moving any money, and that a retry would get again. */
const DEFINITE_REFUSALS: ReadonlySet<Code> = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unauthenticated,
]);

/**
 * Keeps the keys of pending calls of one kind: payments by default, or
 * holds or refunds (HOLDS, REFUNDS), each under a storage key of its own.
 */
export class IdempotencyKeeper<F = PaymentFields> {
  /** Used when no storage is given, or the storage refuses (disabled, full). */
  private memory: Pending[] = [];
  private readonly storageKey: string;
  private readonly fingerprint: (fields: F) => string;

  constructor(
    private readonly storage: KeyStorage | undefined,
    private readonly generate: () => string = newIdempotencyKey,
    kind: KeeperKind<F> = PAYMENTS as unknown as KeeperKind<F>,
  ) {
    this.storageKey = kind.storageKey;
    this.fingerprint = kind.fingerprint;
  }

  /** The key to send for this payment: the kept one while it is pending, else a new one (then kept). */
  keyFor(payment: F): string {
    const fp = this.fingerprint(payment);
    const pending = this.load();
    const kept = pending.find((p) => p.fingerprint === fp);
    if (kept) return kept.key;
    const key = this.generate();
    pending.push({ fingerprint: fp, key });
    this.save(pending.slice(-PENDING_MAX));
    return key;
  }

  /** The key a submission of this payment would reuse, if it is pending. */
  pendingKey(payment: F): string | undefined {
    const fp = this.fingerprint(payment);
    return this.load().find((p) => p.fingerprint === fp)?.key;
  }

  /** How many payments are pending. */
  pendingCount(): number {
    return this.load().length;
  }

  /** The payment is settled (paid or refused for good): the next one like it is a new payment. */
  settled(payment: F): void {
    const fp = this.fingerprint(payment);
    this.save(this.load().filter((p) => p.fingerprint !== fp));
  }

  private load(): Pending[] {
    if (!this.storage) return [...this.memory];
    try {
      const text = this.storage.getItem(this.storageKey);
      if (text === null) return [...this.memory];
      const parsed: unknown = JSON.parse(text);
      return Array.isArray(parsed) ? parsed.filter(isPending).slice(-PENDING_MAX) : [...this.memory];
    } catch {
      return [...this.memory];
    }
  }

  private save(pending: Pending[]): void {
    this.memory = pending;
    if (!this.storage) return;
    try {
      if (pending.length === 0) this.storage.removeItem(this.storageKey);
      else this.storage.setItem(this.storageKey, JSON.stringify(pending));
    } catch {
      // Storage disabled or full: the keys live in memory for this page.
    }
  }
}
