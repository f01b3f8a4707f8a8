// Pay: a payment from one account to another, with its idempotency key
// kept until its outcome is known.

import { UNARY_TIMEOUT_MS } from "../client.js";
import { input, show } from "../dom.js";
import { IdempotencyKeeper, type PaymentFields } from "../idempotency.js";
import { formatMoney, isCurrencyCode, parseAmount } from "../money.js";
import { state } from "../state.js";
import { requireAmount, requireCurrency, requireText, type FieldInputs } from "./forms.js";
import { keyedForm, type KeyedForm } from "./keyed.js";
import { refreshAfterMove, sessionStorageOrNone } from "./moves.js";

const PAY_FIELDS: FieldInputs = {
  sender_id: "pay-sender",
  recipient_id: "pay-recipient",
  amount: "pay-amount",
  currency: "pay-currency",
  memo: "pay-memo",
};

function readPayForm(): PaymentFields {
  const senderId = requireText("pay-sender", "the account to pay from");
  const recipientId = requireText("pay-recipient", "the account to pay to");
  const currency = requireCurrency("pay-currency");
  const amount = requireAmount("pay-amount", currency);
  return { senderId, recipientId, amount, currency, memo: input("pay-memo").value };
}

/** The form's payment, read without touching the fields, or undefined while it is incomplete. */
function peekPayForm(): PaymentFields | undefined {
  try {
    const currency = input("pay-currency").value.trim().toUpperCase();
    const senderId = input("pay-sender").value.trim();
    const recipientId = input("pay-recipient").value.trim();
    if (!senderId || !recipientId || !isCurrencyCode(currency)) return undefined;
    const amount = parseAmount(input("pay-amount").value, currency);
    return { senderId, recipientId, amount, currency, memo: input("pay-memo").value };
  } catch {
    return undefined;
  }
}

export function setupPay(): KeyedForm<PaymentFields> {
  return keyedForm({
    name: "pay",
    // Each pending payment's key, kept in the tab's storage so that a reload cannot pay twice.
    keeper: new IdempotencyKeeper(sessionStorageOrNone()),
    busyLabel: "Paying…",
    noKey: "(a new one for the next payment)",
    note: "— kept for retries of this payment (also after a reload) until it is settled, so it cannot be paid twice",
    fields: PAY_FIELDS,
    read: readPayForm,
    peek: peekPayForm,
    currency: (payment) => payment.currency,
    send: (payment, idempotencyKey) =>
      state.client.makePayment({ idempotencyKey, ...payment }, { timeoutMs: UNARY_TIMEOUT_MS }),
    done(response, payment, idempotencyKey, result) {
      const tx = response.transaction;
      const paid = tx ? formatMoney(tx.amount, tx.currency) : "";
      result.dataset.replayed = String(response.replayed);
      result.dataset.transactionId = tx?.transactionId ?? "";
      result.dataset.senderId = payment.senderId;
      result.dataset.idempotencyKey = idempotencyKey;
      show(
        result,
        response.replayed
          ? `Replayed: this payment had already been made (${paid} from ${tx?.senderId} to ${tx?.recipientId}, transaction ${tx?.transactionId}); no money moved again.`
          : `Paid ${paid} from ${tx?.senderId} to ${tx?.recipientId} (transaction ${tx?.transactionId}).`,
      );
      input("pay-amount").value = "";
      input("pay-memo").value = "";
      refreshAfterMove(payment.senderId, payment.recipientId);
    },
  });
}
