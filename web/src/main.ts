// The page: wires the forms to the PaymentService client.

import "./style.css";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, Code } from "@connectrpc/connect";
import { readToken, type TokenInfo } from "./auth.js";
import { paymentClient, STREAM_TIMEOUT_MS, UNARY_TIMEOUT_MS, type PaymentClient } from "./client.js";
import { loadEndpoint, normalizeEndpoint, saveEndpoint } from "./endpoint.js";
import { describeError, formatProblem, inputForField, InputError, type ErrorContext } from "./errors.js";
import {
  HoldState,
  type Account,
  type GetPaymentResponse,
  type GetTransactionHistoryResponse,
  type Hold,
  type PaymentRefSchema,
  type Transaction,
} from "./gen/payment/v1/payment_pb.js";
import { formatDate, formatTime, historyRow } from "./history.js";
import {
  HOLDS,
  IdempotencyKeeper,
  REFUNDS,
  settles,
  type HoldFields,
  type PaymentFields,
  type RefundFields,
} from "./idempotency.js";
import { accountLine, accountOption, holdStateName, holdText, lookupView, parseExpiry } from "./ledger.js";
import { formatMoney, isCurrencyCode, parseAmount } from "./money.js";

const TOKEN_STORAGE_KEY = "payment.token";

// ---------------------------------------------------------------- DOM helpers

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`missing element #${id}`);
  return found as T;
}
const input = (id: string) => el<HTMLInputElement>(id);
const button = (id: string) => el<HTMLButtonElement>(id);

/** Shows `text` in a message element (or hides it when text is empty). */
function show(target: HTMLElement, text: string): void {
  target.textContent = text;
  target.hidden = text === "";
}

/** Request field names to the ids of the inputs they come from, per form. */
type FieldInputs = Readonly<Record<string, string>>;

interface ShowErrorOptions extends ErrorContext {
  /** Where a field violation of this call is shown: next to the input its field names. */
  fields?: FieldInputs;
}

/**
 * Shows a failure in an error element: the sentence, code and message (in
 * a .problem span), then the ErrorInfo reason with what its metadata says
 * (.facts), and each field violation next to the input it names (or in the
 * box, if the form has no such input). data-code and data-reason are for
 * tests and scripts.
 */
function showError(target: HTMLElement, err: unknown, options: ShowErrorOptions = {}): void {
  const problem = describeError(err, options);
  // A form error found before any call: next to its input, too.
  const own = typeof err === "object" && err !== null ? inputOfError.get(err) : undefined;
  const ownField = own ? document.getElementById(own) : null;
  if (ownField) markField(ownField, "", problem.detail);
  target.dataset.code = problem.code;
  if (problem.reason) target.dataset.reason = problem.reason;
  else delete target.dataset.reason;
  const line = document.createElement("span");
  line.className = "problem";
  line.textContent = formatProblem(problem);
  const parts: HTMLElement[] = [line];
  if (problem.reason) {
    const facts = document.createElement("span");
    facts.className = "facts";
    facts.dataset.testid = "error-facts";
    facts.textContent = problem.facts ? `${problem.reason}: ${problem.facts}` : problem.reason;
    parts.push(facts);
  }
  const unplaced: string[] = [];
  for (const v of problem.violations ?? []) {
    const inputId = options.fields ? inputForField(v.field, options.fields) : undefined;
    const field = inputId ? document.getElementById(inputId) : null;
    if (field) markField(field, v.field, v.description);
    else unplaced.push(`${v.field}: ${v.description}`);
  }
  if (unplaced.length > 0) {
    const list = document.createElement("span");
    list.className = "violations";
    list.textContent = unplaced.join("; ");
    parts.push(list);
  }
  target.replaceChildren(...parts);
  target.hidden = false;
}

/** Shows a field violation right below its input, and marks the input invalid. */
function markField(field: HTMLElement, name: string, description: string): void {
  const note = document.createElement("span");
  note.className = "field-error";
  note.id = `${field.id}-violation`;
  note.dataset.testid = "field-error";
  note.dataset.field = name;
  note.dataset.for = field.id;
  note.textContent = name ? `${name} ${description}` : description;
  document.getElementById(note.id)?.remove();
  field.after(note);
  field.setAttribute("aria-invalid", "true");
  field.setAttribute("aria-describedby", note.id);
}

/** Takes away the field violations shown in `container` (a form). */
function clearFieldErrors(container: HTMLElement): void {
  for (const note of container.querySelectorAll(".field-error")) note.remove();
  for (const field of container.querySelectorAll("[aria-invalid]")) {
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-describedby");
  }
}

function clearError(target: HTMLElement): void {
  delete target.dataset.code;
  delete target.dataset.reason;
  show(target, "");
}

/** Disables `btn` (with a busy label) while `work` runs. */
async function busy<T>(btn: HTMLButtonElement, label: string, work: () => Promise<T>): Promise<T> {
  const idle = btn.textContent;
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  btn.textContent = label;
  try {
    return await work();
  } finally {
    btn.disabled = false;
    btn.removeAttribute("aria-busy");
    btn.textContent = idle;
  }
}

/** The input a form error (found before any call) is about, to show it next to that input. */
const inputOfError = new WeakMap<object, string>();

/** Runs `read` (which checks input `id`); an error it throws is shown next to that input. */
function fromInput<T>(id: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof Error) inputOfError.set(err, id);
    throw err;
  }
}

function requireText(id: string, what: string): string {
  const value = input(id).value.trim();
  if (!value) {
    const err = new InputError(`Enter ${what}`, `${what} is required`);
    inputOfError.set(err, id);
    throw err;
  }
  return value;
}

function requireCurrency(id: string): string {
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
function requireAmount(id: string, currency: string): bigint {
  return fromInput(id, () => {
    const amount = parseAmount(input(id).value, currency);
    if (amount === 0n) throw new InputError("Invalid amount", "the amount must be more than zero");
    return amount;
  });
}

/** The amount typed in input `id`, or 0 (all of it) when it is empty. */
function amountOrAll(id: string, currency: string): bigint {
  const text = input(id).value.trim();
  return text === "" ? 0n : fromInput(id, () => parseAmount(text, currency));
}

/** Which input each request field a BadRequest may name comes from, per form. */
const OPEN_FIELDS: FieldInputs = {
  account_id: "open-account-id",
  display_name: "open-display-name",
  currency: "open-currency",
  initial_balance: "open-initial-balance",
};
const PAY_FIELDS: FieldInputs = {
  sender_id: "pay-sender",
  recipient_id: "pay-recipient",
  amount: "pay-amount",
  currency: "pay-currency",
  memo: "pay-memo",
};
const HOLD_FIELDS: FieldInputs = {
  sender_id: "hold-sender",
  recipient_id: "hold-recipient",
  amount: "hold-amount",
  currency: "hold-currency",
  memo: "hold-memo",
  expires_in_seconds: "hold-expiry",
};
const CAPTURE_FIELDS: FieldInputs = { amount: "capture-amount" };
const REFUND_FIELDS: FieldInputs = { amount: "refund-amount", memo: "refund-memo" };
const LOOKUP_FIELDS: FieldInputs = {
  "payment.transaction_id": "lookup-id",
  "payment.sender_id": "lookup-sender",
  "payment.idempotency_key": "lookup-key",
};
const ACCOUNT_FIELDS: FieldInputs = { account_id: "account-id", page_size: "history-page-size" };
const ACCOUNTS_FIELDS: FieldInputs = { page_size: "accounts-page-size" };

/** The currency typed in a form, for amounts in error metadata that come without one. */
function typedCurrency(id: string): string | undefined {
  const code = input(id).value.trim().toUpperCase();
  return isCurrencyCode(code) ? code : undefined;
}

// ---------------------------------------------------------------- state

let endpoint = loadEndpoint();
let signedIn: TokenInfo | undefined;
let client: PaymentClient = paymentClient(endpoint, () => signedIn?.token);

function useEndpoint(next: string): void {
  endpoint = next;
  client = paymentClient(endpoint, () => signedIn?.token);
  input("endpoint").value = endpoint;
  show(el("endpoint-status"), `Calls go to ${endpoint}`);
}

// ---------------------------------------------------------------- endpoint

el<HTMLFormElement>("endpoint-form").addEventListener("submit", (event) => {
  event.preventDefault();
  try {
    const next = normalizeEndpoint(input("endpoint").value);
    saveEndpoint(next);
    useEndpoint(next);
  } catch (err) {
    show(el("endpoint-status"), `Not changed: ${(err as Error).message}`);
  }
});

// ---------------------------------------------------------------- sign in

function renderSignedIn(): void {
  const who = el("signed-in-as");
  if (!signedIn) {
    who.dataset.subject = "";
    show(who, "Not signed in: calls are sent without a token.");
    if (!accounts) show(el("accounts-status"), "Sign in to list your accounts.");
    return;
  }
  who.dataset.subject = signedIn.subject;
  let text = `Signed in as ${signedIn.subject}${signedIn.admin ? " (admin)" : ""}`;
  if (signedIn.expiresAt) {
    const when = formatDate(signedIn.expiresAt);
    text += signedIn.expiresAt.getTime() < Date.now() ? `; the token expired at ${when}` : `; the token expires at ${when}`;
  }
  show(who, text);
}

function signIn(pasted: string): void {
  const info = readToken(pasted);
  if (info.subject !== signedIn?.subject) forgetAccountView();
  signedIn = info;
  sessionStorage.setItem(TOKEN_STORAGE_KEY, info.token);
  renderSignedIn();
  el("accounts-all-box").hidden = !info.admin;
  if (!info.admin) input("accounts-all").checked = false;
  void busy(button("accounts-load"), "Listing…", () => loadAccounts(""));
}

el<HTMLFormElement>("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const errorBox = el("sign-in-error");
  try {
    signIn(el<HTMLTextAreaElement>("token").value);
    clearError(errorBox);
  } catch (err) {
    errorBox.dataset.code = "INPUT";
    show(errorBox, `Not signed in: ${(err as Error).message}`);
  }
});

button("sign-out").addEventListener("click", () => {
  if (signedIn) forgetAccountView();
  el("accounts-all-box").hidden = true;
  input("accounts-all").checked = false;
  signedIn = undefined;
  sessionStorage.removeItem(TOKEN_STORAGE_KEY);
  el<HTMLTextAreaElement>("token").value = "";
  clearError(el("sign-in-error"));
  renderSignedIn();
});

// ---------------------------------------------------------------- open an account

el<HTMLFormElement>("open-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const result = el("open-result");
  const errorBox = el("open-error");
  show(result, "");
  clearError(errorBox);
  clearFieldErrors(el("open-form"));
  void busy(button("open-submit"), "Opening…", async () => {
    try {
      const accountId = requireText("open-account-id", "an account id");
      const currency = requireCurrency("open-currency");
      const balanceText = input("open-initial-balance").value.trim() || "0";
      const initialBalance = fromInput("open-initial-balance", () => parseAmount(balanceText, currency));
      const { account } = await client.addAccount(
        { accountId, displayName: input("open-display-name").value.trim(), currency, initialBalance },
        { timeoutMs: UNARY_TIMEOUT_MS },
      );
      if (!account) throw new ConnectError("the service returned no account", Code.Internal);
      const name = account.displayName ? ` (${account.displayName})` : "";
      show(result, `Opened account ${account.accountId}${name} with ${formatMoney(account.balance, account.currency)}.`);
      void refreshAccounts();
    } catch (err) {
      showError(errorBox, err, { fields: OPEN_FIELDS, currency: typedCurrency("open-currency") });
    }
  });
});

// ---------------------------------------------------------------- pay

/** Each pending payment's key, kept in the tab's storage so that a reload cannot pay twice. */
const payKeys = new IdempotencyKeeper(sessionStorageOrNone());
let payInFlight = false;

function sessionStorageOrNone(): Storage | undefined {
  try {
    return window.sessionStorage;
  } catch {
    return undefined; // storage disabled: the keys live in memory for this page
  }
}

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

/** Shows the key the form's payment would be sent with, when it is pending. */
function renderPayKey(payment: PaymentFields | undefined = peekPayForm()): void {
  const pending = payment ? payKeys.pendingKey(payment) : undefined;
  el("pay-key").textContent = pending ?? "(a new one for the next payment)";
  el("pay-key-note").textContent = pending
    ? "— kept for retries of this payment (also after a reload) until it is settled, so it cannot be paid twice"
    : "";
}

el<HTMLFormElement>("pay-form").addEventListener("input", () => renderPayKey());

el<HTMLFormElement>("pay-form").addEventListener("submit", (event) => {
  event.preventDefault();
  // The button is disabled while a payment is in flight; Enter in a field
  // could still submit, so the flag is the real guard.
  if (payInFlight) return;
  const result = el("pay-result");
  const errorBox = el("pay-error");
  show(result, "");
  clearError(errorBox);
  clearFieldErrors(el("pay-form"));
  let payment: PaymentFields;
  try {
    payment = readPayForm();
  } catch (err) {
    showError(errorBox, err);
    return;
  }
  const idempotencyKey = payKeys.keyFor(payment);
  renderPayKey(payment);
  payInFlight = true;
  void busy(button("pay-submit"), "Paying…", async () => {
    try {
      const response = await client.makePayment({ idempotencyKey, ...payment }, { timeoutMs: UNARY_TIMEOUT_MS });
      payKeys.settled(payment);
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
    } catch (err) {
      // A definite refusal settles the payment; an unknown outcome keeps its key.
      if (settles(err)) payKeys.settled(payment);
      showError(errorBox, err, { fields: PAY_FIELDS, currency: payment.currency });
    } finally {
      payInFlight = false;
      renderPayKey(payment);
    }
  });
});

/**
 * After money moved (or was held) between `accountIds`: the account list
 * (balances, available and held change), and the balance of the account
 * card if it shows one of them. The history stays as loaded ("Load
 * history" reads it again), so that the pages read so far are not lost.
 */
function refreshAfterMove(...accountIds: string[]): void {
  void refreshAccounts();
  if (shownAccount && accountIds.includes(shownAccount)) void refreshBalance();
}

// ---------------------------------------------------------------- your accounts

interface AccountsState {
  /** The owner asked for ("" for every owner, admins only). */
  owner: string;
  nextPageToken: string;
  accounts: Account[];
}
let accounts: AccountsState | undefined;
/** Increases with each listing, so that an older answer arriving late is dropped. */
let accountsGeneration = 0;

function accountsPageSize(): number {
  const n = Number.parseInt(input("accounts-page-size").value, 10);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 100) : 10;
}

/** Fills the pay and hold forms' From (or To) with `account`, and their currency with its currency. */
function pick(account: Account, role: "from" | "to"): void {
  for (const form of ["pay", "hold"]) {
    input(`${form}-${role === "from" ? "sender" : "recipient"}`).value = account.accountId;
    if (role === "from") input(`${form}-currency`).value = account.currency;
  }
  renderPayKey();
  renderHoldKey();
}

function renderAccounts(): void {
  const rows = el("accounts-rows");
  const options = el("my-accounts");
  rows.replaceChildren();
  options.replaceChildren();
  for (const account of accounts?.accounts ?? []) {
    const line = accountLine(account);
    const tr = document.createElement("tr");
    tr.dataset.testid = "account-row";
    tr.dataset.accountId = line.accountId;
    for (const [cls, text] of [
      ["id", line.accountId],
      ["name", line.name],
      ["balance num", line.balance],
      ["available num", line.available],
      ["held num", line.held],
    ] as const) {
      const td = document.createElement("td");
      td.className = cls;
      td.textContent = text;
      tr.append(td);
    }
    const use = document.createElement("td");
    use.className = "use";
    const actions: Array<[string, string, () => void]> = [
      ["from", "From", () => pick(account, "from")],
      ["to", "To", () => pick(account, "to")],
      ["show", "Show", () => {
        input("account-id").value = account.accountId;
        void busy(button("balance-show"), "Reading…", () => showBalance(account.accountId));
      }],
    ];
    for (const [action, label, run] of actions) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.action = action;
      b.textContent = label;
      b.title = action === "show" ? "Show its balance in the Account card" : `Use as ${label} in the Pay and Hold forms`;
      b.addEventListener("click", run);
      use.append(b);
    }
    tr.append(use);
    rows.append(tr);
    const option = document.createElement("option");
    option.value = account.accountId;
    option.label = accountOption(account);
    options.append(option);
  }
}

/** Lists the signed-in person's accounts: the first page (token ""), or the next one. */
async function loadAccounts(pageToken: string, pageSize = accountsPageSize()): Promise<void> {
  const generation = ++accountsGeneration;
  const status = el("accounts-status");
  const errorBox = el("accounts-error");
  const more = button("accounts-more");
  clearError(errorBox);
  clearFieldErrors(el("accounts-form"));
  const owner = signedIn?.admin && input("accounts-all").checked ? "" : (signedIn?.subject ?? "");
  // Only an admin may name an owner; anyone else always gets their own.
  const request = { pageSize, pageToken, owner: signedIn?.admin ? owner : "" };
  status.dataset.state = "loading";
  try {
    const response = await client.listAccounts(request, { timeoutMs: UNARY_TIMEOUT_MS });
    if (generation !== accountsGeneration) return;
    const earlier = pageToken && accounts?.owner === owner ? accounts.accounts : [];
    accounts = { owner, nextPageToken: response.nextPageToken, accounts: [...earlier, ...response.accounts] };
    renderAccounts();
    more.hidden = response.nextPageToken === "";
    status.dataset.state = "done";
    const n = accounts.accounts.length;
    const whose = owner ? "" : " (every owner's)";
    show(
      status,
      n === 0
        ? `No accounts yet${whose}: open one.`
        : `${n} ${n === 1 ? "account" : "accounts"}${whose}, by id.${response.nextPageToken ? "" : " That is all of them."}`,
    );
  } catch (err) {
    if (generation !== accountsGeneration) return;
    status.dataset.state = "error";
    show(status, "");
    showError(errorBox, err, { fields: ACCOUNTS_FIELDS });
  }
}

/** Lists the accounts again from the first one, as many as are shown (after money moved). */
function refreshAccounts(): Promise<void> {
  if (!signedIn || !accounts) return Promise.resolve();
  const shown = Math.max(accountsPageSize(), accounts.accounts.length);
  return loadAccounts("", Math.min(shown, 100));
}

function forgetAccounts(): void {
  accountsGeneration++;
  accounts = undefined;
  renderAccounts();
  const status = el("accounts-status");
  delete status.dataset.state;
  show(status, "");
  clearError(el("accounts-error"));
  button("accounts-more").hidden = true;
}

el<HTMLFormElement>("accounts-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void busy(button("accounts-load"), "Listing…", () => loadAccounts(""));
});

input("accounts-all").addEventListener("change", () => {
  if (signedIn) void busy(button("accounts-load"), "Listing…", () => loadAccounts(""));
});

button("accounts-more").addEventListener("click", () => {
  if (!accounts?.nextPageToken) return;
  const token = accounts.nextPageToken;
  void busy(button("accounts-more"), "Loading…", () => loadAccounts(token));
});

// ---------------------------------------------------------------- holds

const holdKeys = new IdempotencyKeeper<HoldFields>(sessionStorageOrNone(), undefined, HOLDS);
let holdInFlight = false;
/** The hold shown with its Capture and Void buttons. */
let currentHold: Hold | undefined;

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

function renderHoldKey(hold: HoldFields | undefined = peekHoldForm()): void {
  const pending = hold ? holdKeys.pendingKey(hold) : undefined;
  el("hold-key").textContent = pending ?? "(a new one for the next hold)";
  el("hold-key-note").textContent = pending
    ? "— kept for retries of this hold (also after a reload) until it is settled, so it cannot be placed twice"
    : "";
}

/** Shows `hold` with its Capture and Void buttons (enabled while it is open). */
function showHold(hold: Hold): void {
  currentHold = hold;
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
  const open = currentHold?.state === HoldState.OPEN;
  button("capture-submit").disabled = !open;
  button("void-submit").disabled = !open;
  input("capture-amount").disabled = !open;
}

function forgetHold(): void {
  currentHold = undefined;
  const view = el("hold-view");
  view.hidden = true;
  delete view.dataset.holdId;
  delete view.dataset.state;
  show(el("capture-result"), "");
  clearError(el("capture-error"));
  show(el("hold-result"), "");
  clearError(el("hold-error"));
}

/** A reference to the hold by its id. */
function holdRef(hold: Hold): MessageInitShape<typeof PaymentRefSchema> {
  return { transactionId: hold.holdId };
}

el<HTMLFormElement>("hold-form").addEventListener("input", () => renderHoldKey());

el<HTMLFormElement>("hold-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (holdInFlight) return;
  const result = el("hold-result");
  const errorBox = el("hold-error");
  show(result, "");
  clearError(errorBox);
  clearFieldErrors(el("hold-form"));
  let hold: HoldFields;
  try {
    hold = readHoldForm();
  } catch (err) {
    showError(errorBox, err);
    return;
  }
  const idempotencyKey = holdKeys.keyFor(hold);
  renderHoldKey(hold);
  holdInFlight = true;
  void busy(button("hold-submit"), "Authorizing…", async () => {
    try {
      const { expiresInSeconds, ...fields } = hold;
      const response = await client.authorizePayment(
        { idempotencyKey, expiresInSeconds, ...fields },
        { timeoutMs: UNARY_TIMEOUT_MS },
      );
      holdKeys.settled(hold);
      const placed = response.hold;
      if (!placed) throw new ConnectError("the service returned no hold", Code.Internal);
      result.dataset.replayed = String(response.replayed);
      result.dataset.holdId = placed.holdId;
      result.dataset.senderId = placed.senderId;
      result.dataset.idempotencyKey = idempotencyKey;
      const amount = formatMoney(placed.amount, placed.currency);
      show(
        result,
        response.replayed
          ? `Replayed: this hold had already been placed (${amount} of ${placed.senderId} for ${placed.recipientId}, hold ${placed.holdId}, now ${holdStateName(placed.state)}); nothing more is held.`
          : `Held ${amount} of ${placed.senderId} for ${placed.recipientId} (hold ${placed.holdId}, key ${idempotencyKey}) until ${formatTime(placed.expiresAt).text}.`,
      );
      input("hold-amount").value = "";
      input("hold-memo").value = "";
      show(el("capture-result"), "");
      clearError(el("capture-error"));
      showHold(placed);
      refreshAfterMove(placed.senderId, placed.recipientId);
    } catch (err) {
      if (settles(err)) holdKeys.settled(hold);
      showError(errorBox, err, { fields: HOLD_FIELDS, currency: hold.currency });
    } finally {
      holdInFlight = false;
      renderHoldKey(hold);
    }
  });
});

el<HTMLFormElement>("capture-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const hold = currentHold;
  if (!hold || button("capture-submit").disabled) return;
  const result = el("capture-result");
  const errorBox = el("capture-error");
  show(result, "");
  clearError(errorBox);
  clearFieldErrors(el("capture-form"));
  void busy(button("capture-submit"), "Capturing…", async () => {
    try {
      // Empty means all of it (amount 0).
      const amount = amountOrAll("capture-amount", hold.currency);
      const response = await client.captureHold({ hold: holdRef(hold), amount }, { timeoutMs: UNARY_TIMEOUT_MS });
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
});

button("void-submit").addEventListener("click", () => {
  const hold = currentHold;
  if (!hold) return;
  const result = el("capture-result");
  const errorBox = el("capture-error");
  show(result, "");
  clearError(errorBox);
  clearFieldErrors(el("capture-form"));
  void busy(button("void-submit"), "Voiding…", async () => {
    try {
      const response = await client.voidHold({ hold: holdRef(hold) }, { timeoutMs: UNARY_TIMEOUT_MS });
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
});

// ---------------------------------------------------------------- look up

/** What the last lookup found. */
let lookedUp: GetPaymentResponse | undefined;

function forgetLookup(): void {
  lookedUp = undefined;
  const view = el("lookup-view");
  view.hidden = true;
  delete view.dataset.kind;
  delete view.dataset.state;
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
    const found = await client.getPayment({ payment: ref }, { timeoutMs: UNARY_TIMEOUT_MS });
    lookedUp = found;
    const shown = lookupView(found);
    view.dataset.kind = shown.kind;
    view.dataset.state = shown.state;
    view.dataset.transactionId = shown.transactionId;
    el("lookup-lines").replaceChildren(
      ...shown.lines.map((line) => {
        const li = document.createElement("li");
        li.textContent = line;
        return li;
      }),
    );
    // Only an open hold can still be captured or voided.
    button("lookup-manage").hidden = found.hold?.state !== HoldState.OPEN;
    const refundable = found.transaction && (shown.kind === "payment" || shown.kind === "capture");
    button("lookup-refund").hidden = !refundable;
    view.hidden = false;
  } catch (err) {
    lookedUp = undefined;
    view.hidden = true;
    delete view.dataset.kind;
    delete view.dataset.state;
    showError(errorBox, err, { fields: LOOKUP_FIELDS });
  }
}

/** Fills the lookup form with a transaction id and looks it up. */
function lookUpId(transactionId: string): void {
  input("lookup-id").value = transactionId;
  input("lookup-sender").value = "";
  input("lookup-key").value = "";
  void busy(button("lookup-submit"), "Looking up…", () => lookUp({ transactionId }));
  el("lookup-card").scrollIntoView({ block: "nearest" });
}

el<HTMLFormElement>("lookup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  // Sent as typed: the service says which field is missing or one too many.
  const ref = {
    transactionId: input("lookup-id").value.trim(),
    senderId: input("lookup-sender").value.trim(),
    idempotencyKey: input("lookup-key").value.trim(),
  };
  void busy(button("lookup-submit"), "Looking up…", () => lookUp(ref));
});

button("lookup-manage").addEventListener("click", () => {
  if (!lookedUp?.hold) return;
  show(el("capture-result"), "");
  clearError(el("capture-error"));
  showHold(lookedUp.hold);
  el("hold-card").scrollIntoView({ block: "nearest" });
});

button("lookup-refund").addEventListener("click", () => {
  if (lookedUp?.transaction) openRefund(lookedUp.transaction);
});

// ---------------------------------------------------------------- balance

let shownAccount: string | undefined;

async function showBalance(accountId: string): Promise<void> {
  const view = el("balance-view");
  const errorBox = el("balance-error");
  clearError(errorBox);
  clearFieldErrors(el("account-form"));
  clearFieldErrors(el("history-form"));
  try {
    const { account } = await client.getAccountBalance({ accountId }, { timeoutMs: UNARY_TIMEOUT_MS });
    if (!account) throw new ConnectError("the service returned no account", Code.Internal);
    shownAccount = account.accountId;
    view.dataset.account = account.accountId;
    el("balance").textContent = formatMoney(account.balance, account.currency);
    el("balance-holds").textContent = `${formatMoney(account.available, account.currency)} available · ${formatMoney(account.held, account.currency)} held`;
    const details = [
      account.displayName || "(no display name)",
      `account ${account.accountId}`,
      account.owner ? `owned by ${account.owner}` : "",
      account.createdAt ? `opened ${formatTime(account.createdAt).text}` : "",
      account.balanceShards > 1 ? `${account.balanceShards} balance shards` : "",
    ].filter(Boolean);
    el("balance-details").textContent = details.join(" · ");
    view.hidden = false;
    button("balance-refresh").disabled = false;
  } catch (err) {
    view.hidden = true;
    shownAccount = undefined;
    button("balance-refresh").disabled = true;
    showError(errorBox, err, { fields: ACCOUNT_FIELDS });
  }
}

function refreshBalance(): Promise<void> {
  return shownAccount ? showBalance(shownAccount) : Promise.resolve();
}

el<HTMLFormElement>("account-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const errorBox = el("balance-error");
  let accountId: string;
  try {
    accountId = requireText("account-id", "an account id");
  } catch (err) {
    showError(errorBox, err);
    return;
  }
  void busy(button("balance-show"), "Reading…", () => showBalance(accountId));
});

button("balance-refresh").addEventListener("click", () => {
  void busy(button("balance-refresh"), "Refreshing…", refreshBalance);
});

// ---------------------------------------------------------------- history

interface HistoryState {
  accountId: string;
  /** The token continuing after the last row shown; empty at the oldest entry. */
  nextPageToken: string;
  /** Rows shown so far. */
  rows: number;
  /** Cancels the stream being read. */
  abort?: AbortController;
}
let history: HistoryState | undefined;

function appendRow(entry: GetTransactionHistoryResponse): void {
  const row = historyRow(entry);
  const tr = document.createElement("tr");
  tr.dataset.testid = "history-row";
  tr.dataset.sequence = row.sequence;
  tr.dataset.direction = row.direction;
  tr.dataset.transactionId = row.transactionId;
  tr.dataset.kind = row.kind;
  if (row.refundOf) tr.dataset.refundOf = row.refundOf;
  const cells: Array<[string, string, string?]> = [
    ["seq", `#${row.sequence}`],
    ["time", row.time, row.timeIso],
    ["kind", row.kind],
    ["direction", row.direction],
    ["counterparty", row.counterparty],
    ["amount num", row.amount],
    ["balance-after num", row.balanceAfter],
    ["memo", row.memo],
  ];
  for (const [cls, text, title] of cells) {
    const td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    if (title) td.title = title;
    tr.append(td);
  }
  // What the entry is linked to: a refund to its payment, a capture to its hold.
  const link = document.createElement("td");
  link.className = "link";
  if (row.link) {
    const target = row.refundOf || row.transactionId;
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.dataset.action = "look-up";
    b.dataset.target = target;
    b.textContent = row.link;
    b.title = `Look ${target} up`;
    b.addEventListener("click", () => lookUpId(target));
    link.append(b);
  }
  tr.append(link);
  const actions = document.createElement("td");
  actions.className = "actions";
  const tx = entry.transaction;
  if (row.refundable && tx) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.action = "refund";
    b.textContent = "Refund…";
    b.title = "Return all or part of this payment to its sender";
    b.addEventListener("click", () => openRefund(tx));
    actions.append(b);
  }
  tr.append(actions);
  el("history-rows").append(tr);
}

function pageSize(): number {
  const n = Number.parseInt(input("history-page-size").value, 10);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 1000) : 20;
}

/** Streams one page of history, appending rows as they arrive. */
async function loadHistory(accountId: string, pageToken: string): Promise<void> {
  history?.abort?.abort();
  const append = pageToken !== "" && history?.accountId === accountId;
  const state: HistoryState = append && history ? history : { accountId, nextPageToken: "", rows: 0 };
  if (!append) el("history-rows").replaceChildren();
  const abort = new AbortController();
  state.abort = abort;
  history = state;
  const status = el("history-status");
  const errorBox = el("history-error");
  const more = button("history-more");
  clearError(errorBox);
  clearFieldErrors(el("account-form"));
  clearFieldErrors(el("history-form"));
  more.hidden = true;
  status.dataset.state = "loading";
  show(status, `Loading the history of ${accountId}…`);
  let received = 0;
  try {
    const stream = client.getTransactionHistory(
      { accountId, pageSize: pageSize(), pageToken },
      { signal: abort.signal, timeoutMs: STREAM_TIMEOUT_MS },
    );
    for await (const entry of stream) {
      appendRow(entry);
      received++;
      state.rows++;
      state.nextPageToken = entry.nextPageToken;
    }
    status.dataset.state = "done";
    if (state.rows === 0) {
      show(status, `${accountId} has no history yet.`);
    } else {
      const end = state.nextPageToken ? "" : " That is the whole history.";
      show(status, `${state.rows} ${state.rows === 1 ? "entry" : "entries"} of ${accountId}, newest first.${end}`);
    }
  } catch (err) {
    if (abort.signal.aborted) return; // replaced by a newer load
    status.dataset.state = "error";
    show(status, received > 0 ? `Stopped after ${received} more entries; "Load more" continues from there.` : "");
    showError(errorBox, err, { fields: ACCOUNT_FIELDS });
  } finally {
    if (history === state && !abort.signal.aborted) {
      more.hidden = state.nextPageToken === "";
      delete state.abort;
    }
  }
}

/**
 * Clears the account card (balance and history) when the person signed in
 * changes, so that nobody sees what the previous one was allowed to read.
 */
function forgetAccountView(): void {
  history?.abort?.abort();
  history = undefined;
  el("history-rows").replaceChildren();
  const status = el("history-status");
  delete status.dataset.state;
  show(status, "");
  clearError(el("history-error"));
  button("history-more").hidden = true;
  shownAccount = undefined;
  const view = el("balance-view");
  view.hidden = true;
  delete view.dataset.account;
  el("balance").textContent = "";
  el("balance-holds").textContent = "";
  el("balance-details").textContent = "";
  button("balance-refresh").disabled = true;
  clearError(el("balance-error"));
  closeRefund();
  show(el("refund-result"), "");
  clearError(el("refund-error"));
  forgetAccounts();
  forgetHold();
  forgetLookup();
  clearFieldErrors(document.body);
}

el<HTMLFormElement>("history-form").addEventListener("submit", (event) => {
  event.preventDefault();
  let accountId: string;
  try {
    accountId = requireText("account-id", "an account id");
  } catch (err) {
    showError(el("history-error"), err);
    return;
  }
  void busy(button("history-load"), "Loading…", () => loadHistory(accountId, ""));
});

button("history-more").addEventListener("click", () => {
  if (!history || !history.nextPageToken) return;
  const { accountId, nextPageToken } = history;
  void busy(button("history-more"), "Loading…", () => loadHistory(accountId, nextPageToken));
});

// ---------------------------------------------------------------- refund

const refundKeys = new IdempotencyKeeper<RefundFields>(sessionStorageOrNone(), undefined, REFUNDS);
let refundInFlight = false;
/** The payment (or capture) the refund form returns money of. */
let refunding: Transaction | undefined;

function peekRefund(): RefundFields | undefined {
  if (!refunding) return undefined;
  try {
    const text = input("refund-amount").value.trim();
    const amount = text === "" ? 0n : parseAmount(text, refunding.currency);
    return { transactionId: refunding.transactionId, amount, memo: input("refund-memo").value };
  } catch {
    return undefined;
  }
}

function renderRefundKey(refund: RefundFields | undefined = peekRefund()): void {
  const pending = refund ? refundKeys.pendingKey(refund) : undefined;
  el("refund-key").textContent = pending ?? "(a new one for the next refund)";
}

/** Opens the refund form for `tx`: all of what is left, unless an amount is entered. */
function openRefund(tx: Transaction): void {
  refunding = tx;
  const form = el<HTMLFormElement>("refund-form");
  form.dataset.transactionId = tx.transactionId;
  const from = tx.senderId ? ` from ${tx.senderId}` : "";
  el("refund-of-text").textContent =
    `Returns money of ${tx.transactionId} (${formatMoney(tx.amount, tx.currency)}${from} to ${tx.recipientId}) to ${tx.senderId}. ` +
    "Leave the amount empty to refund all of what is left of it.";
  input("refund-amount").value = "";
  input("refund-memo").value = "";
  clearFieldErrors(form);
  show(el("refund-result"), "");
  clearError(el("refund-error"));
  form.hidden = false;
  renderRefundKey();
  form.scrollIntoView({ block: "nearest" });
  input("refund-amount").focus();
}

function closeRefund(): void {
  refunding = undefined;
  const form = el<HTMLFormElement>("refund-form");
  form.hidden = true;
  delete form.dataset.transactionId;
}

el<HTMLFormElement>("refund-form").addEventListener("input", () => renderRefundKey());
button("refund-cancel").addEventListener("click", closeRefund);

el<HTMLFormElement>("refund-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const tx = refunding;
  if (refundInFlight || !tx) return;
  const result = el("refund-result");
  const errorBox = el("refund-error");
  show(result, "");
  clearError(errorBox);
  clearFieldErrors(el("refund-form"));
  let refund: RefundFields;
  try {
    const amount = amountOrAll("refund-amount", tx.currency);
    refund = { transactionId: tx.transactionId, amount, memo: input("refund-memo").value };
  } catch (err) {
    showError(errorBox, err);
    return;
  }
  const idempotencyKey = refundKeys.keyFor(refund);
  renderRefundKey(refund);
  refundInFlight = true;
  void busy(button("refund-submit"), "Refunding…", async () => {
    try {
      const response = await client.refundPayment(
        { idempotencyKey, payment: { transactionId: refund.transactionId }, amount: refund.amount, memo: refund.memo },
        { timeoutMs: UNARY_TIMEOUT_MS },
      );
      refundKeys.settled(refund);
      const r = response.transaction;
      if (!r) throw new ConnectError("the service returned no refund", Code.Internal);
      result.dataset.replayed = String(response.replayed);
      result.dataset.transactionId = r.transactionId;
      result.dataset.refundOf = r.refundOf;
      const amount = formatMoney(r.amount, r.currency);
      const total = `${formatMoney(response.refundedTotal, r.currency)} of ${formatMoney(tx.amount, tx.currency)} refunded in all`;
      show(
        result,
        response.replayed
          ? `Replayed: this refund had already been made (${amount} to ${r.recipientId}, refund ${r.transactionId} of ${r.refundOf}); no money moved again. ${total}.`
          : `Refunded ${amount} from ${r.senderId} to ${r.recipientId} (refund ${r.transactionId} of ${r.refundOf}); ${total}.`,
      );
      closeRefund();
      refreshAfterMove(r.senderId, r.recipientId);
    } catch (err) {
      if (settles(err)) refundKeys.settled(refund);
      showError(errorBox, err, { fields: REFUND_FIELDS, currency: tx.currency });
    } finally {
      refundInFlight = false;
      if (refunding) renderRefundKey(refund);
    }
  });
});

// ---------------------------------------------------------------- start

useEndpoint(endpoint);
const savedToken = sessionStorage.getItem(TOKEN_STORAGE_KEY);
if (savedToken) {
  try {
    signIn(savedToken);
    el<HTMLTextAreaElement>("token").value = savedToken;
  } catch {
    sessionStorage.removeItem(TOKEN_STORAGE_KEY);
  }
}
renderSignedIn();
renderPayKey();
renderHoldKey();
