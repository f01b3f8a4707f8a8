// The keyed form: a form whose call carries an idempotency key (pay, hold,
// refund). The key of a call is kept, in the tab's storage, until its
// outcome is known, so that a retry (or a reload and a retry) cannot make
// the call twice; the form shows the key it would send.

import { busy, button, el, form, onSubmit } from "../dom.js";
import { settles } from "../idempotency.js";
import { clearOutcome, showError, type FieldInputs } from "./forms.js";

/** What a keyed form keeps keys with: an IdempotencyKeeper of its kind. */
export interface Keeper<F> {
  keyFor(fields: F): string;
  pendingKey(fields: F): string | undefined;
  settled(fields: F): void;
}

export interface KeyedFormSpec<F, R> {
  /**
   * The form's name; its elements are `<name>-form`, `-submit`, `-result`,
   * `-error` and `-key` (and `-key-note` with `note`).
   */
  name: string;
  keeper: Keeper<F>;
  /** The submit button's label while the call runs. */
  busyLabel: string;
  /** What the key line says when no call of the form's fields is pending. */
  noKey: string;
  /** What the note beside a pending key says. */
  note?: string;
  /** Which input each request field a BadRequest may name comes from. */
  fields: FieldInputs;
  /** Whether the form can be sent at all (besides not being in flight). */
  ready?: () => boolean;
  /** The fields typed, checked; throws an input error. */
  read(): F;
  /** The fields typed, without touching the inputs, or undefined while incomplete. */
  peek(): F | undefined;
  /** The currency of amounts in an error's metadata. */
  currency(fields: F): string;
  /** Makes the call with `idempotencyKey`. */
  send(fields: F, idempotencyKey: string): Promise<R>;
  /** Shows the answer in `result` (may throw, e.g. for a missing part). */
  done(response: R, fields: F, idempotencyKey: string, result: HTMLElement): void;
}

export interface KeyedForm<F> {
  /** Shows the key the form's call would be sent with, when it is pending. */
  renderKey(fields?: F): void;
}

/** Wires a keyed form: its key line, and a submit that sends one call at a time. */
export function keyedForm<F, R>(spec: KeyedFormSpec<F, R>): KeyedForm<F> {
  const { name, keeper } = spec;
  /** The button is disabled while a call is in flight; Enter in a field could still submit, so this is the real guard. */
  let inFlight = false;

  const renderKey = (fields: F | undefined = spec.peek()): void => {
    const pending = fields ? keeper.pendingKey(fields) : undefined;
    el(`${name}-key`).textContent = pending ?? spec.noKey;
    if (spec.note !== undefined) el(`${name}-key-note`).textContent = pending ? spec.note : "";
  };

  const submit = (): void => {
    if (inFlight || (spec.ready && !spec.ready())) return;
    const result = el(`${name}-result`);
    const errorBox = el(`${name}-error`);
    clearOutcome(result, errorBox, form(`${name}-form`));
    let fields: F;
    try {
      fields = spec.read();
    } catch (err) {
      showError(errorBox, err);
      return;
    }
    const idempotencyKey = keeper.keyFor(fields);
    renderKey(fields);
    inFlight = true;
    void busy(button(`${name}-submit`), spec.busyLabel, async () => {
      try {
        const response = await spec.send(fields, idempotencyKey);
        keeper.settled(fields);
        spec.done(response, fields, idempotencyKey, result);
      } catch (err) {
        // A definite refusal settles the call; an unknown outcome keeps its key.
        if (settles(err)) keeper.settled(fields);
        showError(errorBox, err, { fields: spec.fields, currency: spec.currency(fields) });
      } finally {
        inFlight = false;
        if (!spec.ready || spec.ready()) renderKey(fields);
      }
    });
  };

  form(`${name}-form`).addEventListener("input", () => renderKey());
  onSubmit(`${name}-form`, submit);
  return { renderKey };
}
