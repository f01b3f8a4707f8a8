// How accounts, holds and looked-up payments are shown, and the few
// inputs of the hold, capture and refund forms that are not money.

import { HoldState, type Account, type GetPaymentResponse, type Hold } from "./gen/payment/v1/payment_pb.js";
import { InputError } from "./errors.js";
import { formatTime, kindName, transactionLink } from "./history.js";
import { formatMoney } from "./money.js";

/** One account of ListAccounts as a line of the account list. */
export interface AccountLine {
  accountId: string;
  name: string;
  currency: string;
  balance: string;
  available: string;
  held: string;
}

export function accountLine(a: Account): AccountLine {
  return {
    accountId: a.accountId,
    name: a.displayName,
    currency: a.currency,
    balance: formatMoney(a.balance, a.currency),
    available: formatMoney(a.available, a.currency),
    held: formatMoney(a.held, a.currency),
  };
}

/** The label of an account in a picker: "alice (Alice) · 87.50 EUR available". */
export function accountOption(a: Account): string {
  const name = a.displayName ? ` (${a.displayName})` : "";
  return `${a.accountId}${name} · ${formatMoney(a.available, a.currency)} available`;
}

/**
 * How long a hold lasts, in seconds, from "90s", "30m", "2h", "7d" or a
 * bare number of minutes ("15"). The service checks the range (one minute
 * to 30 days) and names `expires_in_seconds` if it is outside.
 */
export function parseExpiry(text: string): bigint {
  const trimmed = text.trim().toLowerCase();
  const match = /^(\d{1,9})\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)?$/.exec(trimmed);
  if (!match) {
    throw new InputError("Invalid expiry", `"${text.trim()}" is not a duration; write e.g. 90s, 30m, 2h or 7d`);
  }
  const n = BigInt(match[1]!);
  const unit = (match[2] ?? "m")[0];
  const seconds = unit === "s" ? 1n : unit === "m" ? 60n : unit === "h" ? 3600n : 86400n;
  return n * seconds;
}

/** A hold's state in one word: "OPEN", "CAPTURED", "VOIDED", "EXPIRED". */
export function holdStateName(state: HoldState): string {
  switch (state) {
    case HoldState.OPEN:
      return "OPEN";
    case HoldState.CAPTURED:
      return "CAPTURED";
    case HoldState.VOIDED:
      return "VOIDED";
    case HoldState.EXPIRED:
      return "EXPIRED";
    default:
      return "UNKNOWN";
  }
}

/**
 * "Hold H: OPEN 25.00 EUR from alice to bob, expires 2025-01-31 14:05:09",
 * then what became of it once settled, as payment-client says it.
 */
export function holdText(hold: Hold): string {
  const state = holdStateName(hold.state);
  const amount = formatMoney(hold.amount, hold.currency);
  let text = `Hold ${hold.holdId}: ${state} ${amount} from ${hold.senderId} to ${hold.recipientId}`;
  if (hold.state === HoldState.CAPTURED) {
    text += `, captured ${formatMoney(hold.capturedAmount, hold.currency)} at ${formatTime(hold.settledAt).text}`;
  } else if (hold.state === HoldState.VOIDED) {
    text += `, voided at ${formatTime(hold.settledAt).text}`;
  } else if (hold.state === HoldState.EXPIRED) {
    text += `, expired at ${formatTime(hold.expiresAt).text}`;
  } else {
    text += `, expires ${formatTime(hold.expiresAt).text}`;
  }
  return hold.memo ? `${text} ("${hold.memo}")` : text;
}

/** What a GetPayment lookup found, as lines for a person, and its kind and state for tests. */
export interface LookupView {
  /** "payment", "capture", "refund", "opening" or "hold". */
  kind: string;
  /** A hold's state ("OPEN", ...); for a transaction "COMMITTED". */
  state: string;
  lines: string[];
  transactionId: string;
}

export function lookupView(found: GetPaymentResponse): LookupView {
  const lines: string[] = [];
  const tx = found.transaction;
  const hold = found.hold;
  if (hold) lines.push(holdText(hold));
  if (tx) {
    const kind = kindName(tx.kind);
    const what = kind === "capture" ? "Capture" : kind === "refund" ? "Refund" : kind === "opening" ? "Opening credit" : "Payment";
    const from = tx.senderId ? ` from ${tx.senderId}` : "";
    let line = `${what} ${tx.transactionId}: COMMITTED ${formatMoney(tx.amount, tx.currency)}${from} to ${tx.recipientId} at ${formatTime(tx.createdAt).text}`;
    const link = transactionLink(tx);
    if (link && kind === "refund") line += `, ${link}`;
    if (tx.memo) line += ` ("${tx.memo}")`;
    lines.push(line);
    if (kind === "payment" || kind === "capture") {
      lines.push(
        found.refundedTotal > 0n
          ? `Refunded so far: ${formatMoney(found.refundedTotal, tx.currency)} of ${formatMoney(tx.amount, tx.currency)}`
          : "Nothing of it has been refunded",
      );
    }
  }
  if (found.idempotencyKey) lines.push(`Idempotency key: ${found.idempotencyKey}`);
  return {
    kind: hold ? "hold" : tx ? kindName(tx.kind) : "unknown",
    state: hold ? holdStateName(hold.state) : tx ? "COMMITTED" : "UNKNOWN",
    lines,
    transactionId: hold ? hold.holdId : (tx?.transactionId ?? ""),
  };
}
