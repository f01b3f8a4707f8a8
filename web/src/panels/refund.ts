// Refund: returns all or part of a payment (or capture) to its sender, a
// keyed form opened from the history or a lookup.

import { ConnectError, Code } from "@connectrpc/connect";
import { UNARY_TIMEOUT_MS } from "../client.js";
import { button, el, form, input, inputsChanged, show } from "../dom.js";
import type { RefundPaymentResponse, Transaction } from "../gen/payment/v1/payment_pb.js";
import { IdempotencyKeeper, REFUNDS, type RefundFields } from "../idempotency.js";
import { formatMoney, parseAmount } from "../money.js";
import { state } from "../state.js";
import { amountOrAll, clearError, clearFieldErrors, type FieldInputs } from "./forms.js";
import { keyedForm } from "./keyed.js";
import { refreshAfterMove, sessionStorageOrNone } from "./moves.js";

const REFUND_FIELDS: FieldInputs = { amount: "refund-amount", memo: "refund-memo" };

/** A refund's fields, and the payment (or capture) it returns money of. */
type RefundOf = RefundFields & { of: Transaction };

function peekRefund(): RefundOf | undefined {
  const of = state.refunding;
  if (!of) return undefined;
  try {
    const text = input("refund-amount").value.trim();
    const amount = text === "" ? 0n : parseAmount(text, of.currency);
    return { transactionId: of.transactionId, amount, memo: input("refund-memo").value, of };
  } catch {
    return undefined;
  }
}

function readRefund(): RefundOf {
  const of = state.refunding;
  if (!of) throw new Error("no payment to refund"); // the form is only sent while one is open
  const amount = amountOrAll("refund-amount", of.currency);
  return { transactionId: of.transactionId, amount, memo: input("refund-memo").value, of };
}

/** Opens the refund form for `tx`: all of what is left, unless an amount is entered. */
export function openRefund(tx: Transaction): void {
  state.refunding = tx;
  const refund = form("refund-form");
  refund.dataset.transactionId = tx.transactionId;
  const from = tx.senderId ? ` from ${tx.senderId}` : "";
  el("refund-of-text").textContent =
    `Returns money of ${tx.transactionId} (${formatMoney(tx.amount, tx.currency)}${from} to ${tx.recipientId}) to ${tx.senderId}. ` +
    "Leave the amount empty to refund all of what is left of it.";
  input("refund-amount").value = "";
  input("refund-memo").value = "";
  clearFieldErrors(refund);
  show(el("refund-result"), "");
  clearError(el("refund-error"));
  refund.hidden = false;
  inputsChanged("refund-form"); // shows the key of this refund, if one is pending
  refund.scrollIntoView({ block: "nearest" });
  input("refund-amount").focus();
}

export function closeRefund(): void {
  state.refunding = undefined;
  const refund = form("refund-form");
  refund.hidden = true;
  delete refund.dataset.transactionId;
}

/** Closes the refund form and empties what it said. */
export function forgetRefund(): void {
  closeRefund();
  show(el("refund-result"), "");
  clearError(el("refund-error"));
}

function showRefunded(r: Transaction | undefined, replayed: boolean, refundedTotal: bigint, of: Transaction, result: HTMLElement): void {
  if (!r) throw new ConnectError("the service returned no refund", Code.Internal);
  result.dataset.replayed = String(replayed);
  result.dataset.transactionId = r.transactionId;
  result.dataset.refundOf = r.refundOf;
  const amount = formatMoney(r.amount, r.currency);
  const total = `${formatMoney(refundedTotal, r.currency)} of ${formatMoney(of.amount, of.currency)} refunded in all`;
  show(
    result,
    replayed
      ? `Replayed: this refund had already been made (${amount} to ${r.recipientId}, refund ${r.transactionId} of ${r.refundOf}); no money moved again. ${total}.`
      : `Refunded ${amount} from ${r.senderId} to ${r.recipientId} (refund ${r.transactionId} of ${r.refundOf}); ${total}.`,
  );
  closeRefund();
  refreshAfterMove(r.senderId, r.recipientId);
}

export function setupRefund(): void {
  keyedForm<RefundOf, RefundPaymentResponse>({
    name: "refund",
    keeper: new IdempotencyKeeper<RefundFields>(sessionStorageOrNone(), undefined, REFUNDS),
    busyLabel: "Refunding…",
    noKey: "(a new one for the next refund)",
    fields: REFUND_FIELDS,
    ready: () => state.refunding !== undefined,
    read: readRefund,
    peek: peekRefund,
    currency: (refund) => refund.of.currency,
    send: (refund, idempotencyKey) =>
      state.client.refundPayment(
        { idempotencyKey, payment: { transactionId: refund.transactionId }, amount: refund.amount, memo: refund.memo },
        { timeoutMs: UNARY_TIMEOUT_MS },
      ),
    done: (response, refund, _key, result) =>
      showRefunded(response.transaction, response.replayed, response.refundedTotal, refund.of, result),
  });
  button("refund-cancel").addEventListener("click", closeRefund);
}
