// What every form shares: reading its inputs (an input error is shown next
// to its input), and showing a failure: the sentence, the reason and its
// facts, and each field violation next to the input it names.

import { input, make, show } from "../dom.js";
import { describeError, formatProblem, inputForField, InputError, type ErrorContext } from "../errors.js";
import { isCurrencyCode, parseAmount } from "../money.js";

/** Request field names to the ids of the inputs they come from, per form. */
export type FieldInputs = Readonly<Record<string, string>>;

export interface ShowErrorOptions extends ErrorContext {
  /** Where a field violation of this call is shown: next to the input its field names. */
  fields?: FieldInputs;
}

/** The input a form error (found before any call) is about, to show it next to that input. */
const inputOfError = new WeakMap<object, string>();

/**
 * Shows a failure in an error element: the sentence, code and message (in
 * a .problem span), then the ErrorInfo reason with what its metadata says
 * (.facts), and each field violation next to the input it names (or in the
 * box, if the form has no such input). data-code and data-reason are for
 * tests and scripts.
 */
export function showError(target: HTMLElement, err: unknown, options: ShowErrorOptions = {}): void {
  const problem = describeError(err, options);
  // A form error found before any call: next to its input, too.
  const own = typeof err === "object" && err !== null ? inputOfError.get(err) : undefined;
  const ownField = own ? document.getElementById(own) : null;
  if (ownField) markField(ownField, "", problem.detail);
  target.dataset.code = problem.code;
  if (problem.reason) target.dataset.reason = problem.reason;
  else delete target.dataset.reason;
  const parts: HTMLElement[] = [make("span", { className: "problem", text: formatProblem(problem) })];
  if (problem.reason) {
    const facts = problem.facts ? `${problem.reason}: ${problem.facts}` : problem.reason;
    parts.push(make("span", { className: "facts", text: facts, data: { testid: "error-facts" } }));
  }
  const unplaced: string[] = [];
  for (const v of problem.violations ?? []) {
    const inputId = options.fields ? inputForField(v.field, options.fields) : undefined;
    const field = inputId ? document.getElementById(inputId) : null;
    if (field) markField(field, v.field, v.description);
    else unplaced.push(`${v.field}: ${v.description}`);
  }
  if (unplaced.length > 0) parts.push(make("span", { className: "violations", text: unplaced.join("; ") }));
  target.replaceChildren(...parts);
  target.hidden = false;
}

/** Shows a field violation right below its input, and marks the input invalid. */
function markField(field: HTMLElement, name: string, description: string): void {
  const note = make("span", {
    className: "field-error",
    data: { testid: "field-error", field: name, for: field.id },
    text: name ? `${name} ${description}` : description,
  });
  note.id = `${field.id}-violation`;
  document.getElementById(note.id)?.remove();
  field.after(note);
  field.setAttribute("aria-invalid", "true");
  field.setAttribute("aria-describedby", note.id);
}

/** Takes away the field violations shown in `container` (a form). */
export function clearFieldErrors(container: HTMLElement): void {
  for (const note of container.querySelectorAll(".field-error")) note.remove();
  for (const field of container.querySelectorAll("[aria-invalid]")) {
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-describedby");
  }
}

export function clearError(target: HTMLElement): void {
  delete target.dataset.code;
  delete target.dataset.reason;
  show(target, "");
}

/** Empties a form's result and error boxes and its field violations, before a new call. */
export function clearOutcome(result: HTMLElement, errorBox: HTMLElement, form: HTMLElement): void {
  show(result, "");
  clearError(errorBox);
  clearFieldErrors(form);
}

/** Runs `read` (which checks input `id`); an error it throws is shown next to that input. */
export function fromInput<T>(id: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof Error) inputOfError.set(err, id);
    throw err;
  }
}

export function requireText(id: string, what: string): string {
  const value = input(id).value.trim();
  if (!value) {
    const err = new InputError(`Enter ${what}`, `${what} is required`);
    inputOfError.set(err, id);
    throw err;
  }
  return value;
}

export function requireCurrency(id: string): string {
  return fromInput(id, () => {
    const field = input(id);
    const code = field.value.trim().toUpperCase();
    field.value = code;
    if (!isCurrencyCode(code)) {
      throw new InputError("Invalid currency", `"${code}" is not an ISO 4217 code such as EUR`);
    }
    return code;
  });
}

/** The amount typed in input `id`, more than zero. */
export function requireAmount(id: string, currency: string): bigint {
  return fromInput(id, () => {
    const amount = parseAmount(input(id).value, currency);
    if (amount === 0n) throw new InputError("Invalid amount", "the amount must be more than zero");
    return amount;
  });
}

/** The amount typed in input `id`, or 0 (all of it) when it is empty. */
export function amountOrAll(id: string, currency: string): bigint {
  const text = input(id).value.trim();
  return text === "" ? 0n : fromInput(id, () => parseAmount(text, currency));
}

/** The currency typed in a form, for amounts in error metadata that come without one. */
export function typedCurrency(id: string): string | undefined {
  const code = input(id).value.trim().toUpperCase();
  return isCurrencyCode(code) ? code : undefined;
}
