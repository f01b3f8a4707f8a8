// Holds: authorize one (a keyed form), then capture all or part of it, or
// void it, while it is open.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, Code } from "@connectrpc/connect";
import { UNARY_TIMEOUT_MS } from "../client.js";
import { busy, button, el, form, input, show } from "../dom.js";
import { HoldState, type Hold, type PaymentRefSchema } from "../gen/payment/v1/payment_pb.js";
import { formatTime } from "../history.js";
import { HOLDS, IdempotencyKeeper, type HoldFields } from "../idempotency.js";
import { holdStateName, holdText, parseExpiry } from "../ledger.js";
import { formatMoney, isCurrencyCode, parseAmount } from "../money.js";
import { state } from "../state.js";
import {
  amountOrAll,
  clearError,
  clearOutcome,
  fromInput,
  requireAmount,
  requireCurrency,
  requireText,
  showError,
  type FieldInputs,
} from "./forms.js";
import { keyedForm, type KeyedForm } from "./keyed.js";
import { refreshAfterMove, sessionStorageOrNone } from "./moves.js";

const HOLD_FIELDS: FieldInputs = {
  sender_id: "hold-sender",
  recipient_id: "hold-recipient",
  amount: "hold-amount",
  currency: "hold-currency",
  memo: "hold-memo",
  expires_in_seconds: "hold-expiry",
};
const CAPTURE_FIELDS: FieldInputs = { amount: "capture-amount" };

function readHoldForm(): HoldFields {
  const senderId = requireText("hold-sender", "the account to hold money of");
  const recipientId = requireText("hold-recipient", "the account the hold is for");
  const currency = requireCurrency("hold-currency");
  const amount = requireAmount("hold-amount", currency);
  const expiresInSeconds = fromInput("hold-expiry", () => parseExpiry(input("hold-expiry").value));
  return { senderId, recipientId, amount, currency, memo: input("hold-memo").value, expiresInSeconds };
}

function peekHoldForm(): HoldFields | undefined {
  try {
    const currency = input("hold-currency").value.trim().toUpperCase();
    const senderId = input("hold-sender").value.trim();
    const recipientId = input("hold-recipient").value.trim();
    if (!senderId || !recipientId || !isCurrencyCode(currency)) return undefined;
    const amount = parseAmount(input("hold-amount").value, currency);
    const expiresInSeconds = parseExpiry(input("hold-expiry").value);
    return { senderId, recipientId, amount, currency, memo: input("hold-memo").value, expiresInSeconds };
  } catch {
    return undefined;
  }
}

/** Shows `hold` with its Capture and Void buttons (enabled while it is open). */
export function showHold(hold: Hold): void {
  state.currentHold = hold;
  const view = el("hold-view");
  view.dataset.holdId = hold.holdId;
  view.dataset.state = holdStateName(hold.state);
  el("hold-text").textContent = holdText(hold);
  input("capture-amount").placeholder = `all of it: ${formatMoney(hold.amount, hold.currency)}`;
  syncHoldButtons();
  view.hidden = false;
}

/** Capture and Void only while the shown hold is open (again after busy() re-enabled them). */
function syncHoldButtons(): void {
  const open = state.currentHold?.state === HoldState.OPEN;
  button("capture-submit").disabled = !open;
  button("void-submit").disabled = !open;
  input("capture-amount").disabled = !open;
}

/** Empties what the capture and void buttons said. */
export function clearCaptureOutcome(): void {
  show(el("capture-result"), "");
  clearError(el("capture-error"));
}

export function forgetHold(): void {
  state.currentHold = undefined;
  const view = el("hold-view");
  view.hidden = true;
  delete view.dataset.holdId;
  delete view.dataset.state;
  clearCaptureOutcome();
  show(el("hold-result"), "");
  clearError(el("hold-error"));
}

/** A reference to the hold by its id. */
function holdRef(hold: Hold): MessageInitShape<typeof PaymentRefSchema> {
  return { transactionId: hold.holdId };
}

function showPlaced(placed: Hold | undefined, replayed: boolean, idempotencyKey: string, result: HTMLElement): void {
  if (!placed) throw new ConnectError("the service returned no hold", Code.Internal);
  result.dataset.replayed = String(replayed);
  result.dataset.holdId = placed.holdId;
  result.dataset.senderId = placed.senderId;
  result.dataset.idempotencyKey = idempotencyKey;
  const amount = formatMoney(placed.amount, placed.currency);
  show(
    result,
    replayed
      ? `Replayed: this hold had already been placed (${amount} of ${placed.senderId} for ${placed.recipientId}, hold ${placed.holdId}, now ${holdStateName(placed.state)}); nothing more is held.`
      : `Held ${amount} of ${placed.senderId} for ${placed.recipientId} (hold ${placed.holdId}, key ${idempotencyKey}) until ${formatTime(placed.expiresAt).text}.`,
  );
  input("hold-amount").value = "";
  input("hold-memo").value = "";
  clearCaptureOutcome();
  showHold(placed);
  refreshAfterMove(placed.senderId, placed.recipientId);
}

/** Captures the shown hold: the amount entered, or all of it. */
function capture(hold: Hold): void {
  const result = el("capture-result");
  const errorBox = el("capture-error");
  clearOutcome(result, errorBox, form("capture-form"));
  void busy(button("capture-submit"), "Capturing…", async () => {
    try {
      // Empty means all of it (amount 0).
      const amount = amountOrAll("capture-amount", hold.currency);
      const response = await state.client.captureHold({ hold: holdRef(hold), amount }, { timeoutMs: UNARY_TIMEOUT_MS });
      const captured = response.hold;
      if (!captured) throw new ConnectError("the service returned no hold", Code.Internal);
      showHold(captured);
      const tx = response.transaction;
      result.dataset.replayed = String(response.replayed);
      result.dataset.transactionId = tx?.transactionId ?? "";
      const moved = formatMoney(captured.capturedAmount, captured.currency);
      const released = captured.amount - captured.capturedAmount;
      const rest = released > 0n ? `; ${formatMoney(released, captured.currency)} released to ${captured.senderId}` : "";
      show(
        result,
        response.replayed
          ? `Replayed: this hold had already been captured (${moved} to ${captured.recipientId}); no money moved again.`
          : `Captured ${moved} from ${captured.senderId} to ${captured.recipientId} (transaction ${tx?.transactionId ?? captured.holdId})${rest}.`,
      );
      input("capture-amount").value = "";
      refreshAfterMove(captured.senderId, captured.recipientId);
    } catch (err) {
      showError(errorBox, err, { fields: CAPTURE_FIELDS, currency: hold.currency });
    }
  }).then(syncHoldButtons);
}

/** Voids the shown hold. */
function voidHold(hold: Hold): void {
  const result = el("capture-result");
  const errorBox = el("capture-error");
  clearOutcome(result, errorBox, form("capture-form"));
  void busy(button("void-submit"), "Voiding…", async () => {
    try {
      const response = await state.client.voidHold({ hold: holdRef(hold) }, { timeoutMs: UNARY_TIMEOUT_MS });
      const voided = response.hold;
      if (!voided) throw new ConnectError("the service returned no hold", Code.Internal);
      showHold(voided);
      result.dataset.replayed = String(response.replayed);
      const amount = formatMoney(voided.amount, voided.currency);
      show(
        result,
        response.replayed
          ? `Replayed: this hold had already been voided; ${amount} is available to ${voided.senderId} again.`
          : `Voided: ${amount} is available to ${voided.senderId} again; no money moved.`,
      );
      refreshAfterMove(voided.senderId, voided.recipientId);
    } catch (err) {
      showError(errorBox, err, { currency: hold.currency });
    }
  }).then(syncHoldButtons);
}

export function setupHolds(): KeyedForm<HoldFields> {
  const holdForm = keyedForm({
    name: "hold",
    keeper: new IdempotencyKeeper<HoldFields>(sessionStorageOrNone(), undefined, HOLDS),
    busyLabel: "Authorizing…",
    noKey: "(a new one for the next hold)",
    note: "— kept for retries of this hold (also after a reload) until it is settled, so it cannot be placed twice",
    fields: HOLD_FIELDS,
    read: readHoldForm,
    peek: peekHoldForm,
    currency: (hold) => hold.currency,
    send: (hold, idempotencyKey) => {
      const { expiresInSeconds, ...fields } = hold;
      return state.client.authorizePayment({ idempotencyKey, expiresInSeconds, ...fields }, { timeoutMs: UNARY_TIMEOUT_MS });
    },
    done: (response, _hold, idempotencyKey, result) => showPlaced(response.hold, response.replayed, idempotencyKey, result),
  });
  form("capture-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const hold = state.currentHold;
    if (!hold || button("capture-submit").disabled) return;
    capture(hold);
  });
  button("void-submit").addEventListener("click", () => {
    const hold = state.currentHold;
    if (hold) voidHold(hold);
  });
  return holdForm;
}
