// One idempotency key per payment a person means to make.
//
// The key is kept while the form still describes the same payment, so a
// retry after a failure (a lost response, a timeout, ABORTED) sends the same
// key and the service replays the payment instead of paying twice. It is
// dropped once the payment succeeded, or when the form changes: that is a
// different payment and gets a fresh key.

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

function fingerprint(p: PaymentFields): string {
  return JSON.stringify([p.senderId, p.recipientId, p.amount.toString(), p.currency, p.memo]);
}

export class IdempotencyKeeper {
  private current?: { fingerprint: string; key: string };

  constructor(private readonly generate: () => string = newIdempotencyKey) {}

  /** The key to send for this payment: the kept one if it is the same payment, else a new one. */
  keyFor(payment: PaymentFields): string {
    const fp = fingerprint(payment);
    if (this.current?.fingerprint !== fp) {
      this.current = { fingerprint: fp, key: this.generate() };
    }
    return this.current.key;
  }

  /** The key that the next submission of the same payment would reuse, if any. */
  pendingKey(): string | undefined {
    return this.current?.key;
  }

  /** The payment went through: the next one is a new payment. */
  succeeded(): void {
    this.current = undefined;
  }
}
