// The page: wires the forms to the PaymentService client.

import "./style.css";
import { ConnectError, Code } from "@connectrpc/connect";
import { readToken, type TokenInfo } from "./auth.js";
import { paymentClient, STREAM_TIMEOUT_MS, UNARY_TIMEOUT_MS, type PaymentClient } from "./client.js";
import { loadEndpoint, normalizeEndpoint, saveEndpoint } from "./endpoint.js";
import { describeError, formatProblem, InputError } from "./errors.js";
import type { GetTransactionHistoryResponse } from "./gen/payment/v1/payment_pb.js";
import { formatDate, formatTime, historyRow } from "./history.js";
import { IdempotencyKeeper, settles, type PaymentFields } from "./idempotency.js";
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

/** Shows a failure in an error element, with the code as data-code for tests. */
function showError(target: HTMLElement, err: unknown): void {
  const problem = describeError(err);
  target.dataset.code = problem.code;
  show(target, formatProblem(problem));
}

function clearError(target: HTMLElement): void {
  delete target.dataset.code;
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

function requireText(id: string, what: string): string {
  const value = input(id).value.trim();
  if (!value) throw new InputError(`Enter ${what}`, `${what} is required`);
  return value;
}

function requireCurrency(id: string): string {
  const field = input(id);
  const code = field.value.trim().toUpperCase();
  field.value = code;
  if (!isCurrencyCode(code)) {
    throw new InputError("Invalid currency", `"${code}" is not an ISO 4217 code such as EUR`);
  }
  return code;
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
  void busy(button("open-submit"), "Opening…", async () => {
    try {
      const accountId = requireText("open-account-id", "an account id");
      const currency = requireCurrency("open-currency");
      const balanceText = input("open-initial-balance").value.trim() || "0";
      const initialBalance = parseAmount(balanceText, currency);
      const { account } = await client.addAccount(
        { accountId, displayName: input("open-display-name").value.trim(), currency, initialBalance },
        { timeoutMs: UNARY_TIMEOUT_MS },
      );
      if (!account) throw new ConnectError("the service returned no account", Code.Internal);
      const name = account.displayName ? ` (${account.displayName})` : "";
      show(result, `Opened account ${account.accountId}${name} with ${formatMoney(account.balance, account.currency)}.`);
    } catch (err) {
      showError(errorBox, err);
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
  const amount = parseAmount(input("pay-amount").value, currency);
  if (amount === 0n) throw new InputError("Invalid amount", "the amount must be more than zero");
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
      show(
        result,
        response.replayed
          ? `Replayed: this payment had already been made (${paid} from ${tx?.senderId} to ${tx?.recipientId}, transaction ${tx?.transactionId}); no money moved again.`
          : `Paid ${paid} from ${tx?.senderId} to ${tx?.recipientId} (transaction ${tx?.transactionId}).`,
      );
      input("pay-amount").value = "";
      input("pay-memo").value = "";
      if (shownAccount === payment.senderId || shownAccount === payment.recipientId) {
        void refreshBalance();
      }
    } catch (err) {
      // A definite refusal settles the payment; an unknown outcome keeps its key.
      if (settles(err)) payKeys.settled(payment);
      showError(errorBox, err);
    } finally {
      payInFlight = false;
      renderPayKey(payment);
    }
  });
});

// ---------------------------------------------------------------- balance

let shownAccount: string | undefined;

async function showBalance(accountId: string): Promise<void> {
  const view = el("balance-view");
  const errorBox = el("balance-error");
  clearError(errorBox);
  try {
    const { account } = await client.getAccountBalance({ accountId }, { timeoutMs: UNARY_TIMEOUT_MS });
    if (!account) throw new ConnectError("the service returned no account", Code.Internal);
    shownAccount = account.accountId;
    view.dataset.account = account.accountId;
    el("balance").textContent = formatMoney(account.balance, account.currency);
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
    showError(errorBox, err);
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
  const cells: Array<[string, string, string?]> = [
    ["seq", `#${row.sequence}`],
    ["time", row.time, row.timeIso],
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
    showError(errorBox, err);
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
  el("balance-details").textContent = "";
  button("balance-refresh").disabled = true;
  clearError(el("balance-error"));
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
