// Look up: a payment, hold or refund by its id or by (sender, key), with a
// way to manage an open hold or refund a payment found.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { UNARY_TIMEOUT_MS } from "../client.js";
import { busy, button, el, input, make, onSubmit } from "../dom.js";
import { HoldState, type PaymentRefSchema } from "../gen/payment/v1/payment_pb.js";
import { lookupView } from "../ledger.js";
import { state } from "../state.js";
import { clearError, clearFieldErrors, showError, type FieldInputs } from "./forms.js";
import { clearCaptureOutcome, showHold } from "./holds.js";
import { openRefund } from "./refund.js";

const LOOKUP_FIELDS: FieldInputs = {
  "payment.transaction_id": "lookup-id",
  "payment.sender_id": "lookup-sender",
  "payment.idempotency_key": "lookup-key",
};

/** Forgets what the lookup found and hides it. */
function hideFound(view: HTMLElement): void {
  state.lookedUp = undefined;
  view.hidden = true;
  delete view.dataset.kind;
  delete view.dataset.state;
}

export function forgetLookup(): void {
  const view = el("lookup-view");
  hideFound(view);
  el("lookup-lines").replaceChildren();
  clearError(el("lookup-error"));
}

/** Looks a payment, hold or refund up by what the form names; shows it, or the error. */
async function lookUp(ref: MessageInitShape<typeof PaymentRefSchema>): Promise<void> {
  const view = el("lookup-view");
  const errorBox = el("lookup-error");
  clearError(errorBox);
  clearFieldErrors(el("lookup-form"));
  try {
    const found = await state.client.getPayment({ payment: ref }, { timeoutMs: UNARY_TIMEOUT_MS });
    state.lookedUp = found;
    const shown = lookupView(found);
    view.dataset.kind = shown.kind;
    view.dataset.state = shown.state;
    view.dataset.transactionId = shown.transactionId;
    el("lookup-lines").replaceChildren(...shown.lines.map((line) => make("li", { text: line })));
    // Only an open hold can still be captured or voided.
    button("lookup-manage").hidden = found.hold?.state !== HoldState.OPEN;
    const refundable = found.transaction && (shown.kind === "payment" || shown.kind === "capture");
    button("lookup-refund").hidden = !refundable;
    view.hidden = false;
  } catch (err) {
    hideFound(view);
    showError(errorBox, err, { fields: LOOKUP_FIELDS });
  }
}

/** Fills the lookup form with a transaction id and looks it up. */
export function lookUpId(transactionId: string): void {
  input("lookup-id").value = transactionId;
  input("lookup-sender").value = "";
  input("lookup-key").value = "";
  void busy(button("lookup-submit"), "Looking up…", () => lookUp({ transactionId }));
  el("lookup-card").scrollIntoView({ block: "nearest" });
}

export function setupLookup(): void {
  onSubmit("lookup-form", () => {
    // Sent as typed: the service says which field is missing or one too many.
    const ref = {
      transactionId: input("lookup-id").value.trim(),
      senderId: input("lookup-sender").value.trim(),
      idempotencyKey: input("lookup-key").value.trim(),
    };
    void busy(button("lookup-submit"), "Looking up…", () => lookUp(ref));
  });
  button("lookup-manage").addEventListener("click", () => {
    if (!state.lookedUp?.hold) return;
    clearCaptureOutcome();
    showHold(state.lookedUp.hold);
    el("hold-card").scrollIntoView({ block: "nearest" });
  });
  button("lookup-refund").addEventListener("click", () => {
    if (state.lookedUp?.transaction) openRefund(state.lookedUp.transaction);
  });
}
