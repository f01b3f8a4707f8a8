// Your accounts: the signed-in person's accounts (an admin's: everyone's),
// a page at a time, with buttons that fill the Pay and Hold forms or show
// an account in the account card.

import { UNARY_TIMEOUT_MS } from "../client.js";
import { actionButton, busy, button, el, input, inputsChanged, make, onSubmit, show } from "../dom.js";
import type { Account } from "../gen/payment/v1/payment_pb.js";
import { accountLine, accountOption } from "../ledger.js";
import { state } from "../state.js";
import { showBalance } from "./balance.js";
import { clearError, clearFieldErrors, showError, type FieldInputs } from "./forms.js";

const ACCOUNTS_FIELDS: FieldInputs = { page_size: "accounts-page-size" };

function accountsPageSize(): number {
  const n = Number.parseInt(input("accounts-page-size").value, 10);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 100) : 10;
}

/**
 * Fills the pay and hold forms' From (or To) with `account`, and their
 * currency with its currency; each form's own input listener then shows
 * the key its call would be sent with.
 */
function pick(account: Account, role: "from" | "to"): void {
  for (const name of ["pay", "hold"]) {
    input(`${name}-${role === "from" ? "sender" : "recipient"}`).value = account.accountId;
    if (role === "from") input(`${name}-currency`).value = account.currency;
  }
  inputsChanged("pay-form");
  inputsChanged("hold-form");
}

function accountRow(account: Account): HTMLTableRowElement {
  const line = accountLine(account);
  const tr = make("tr", { data: { testid: "account-row", accountId: line.accountId } });
  for (const [className, text] of [
    ["id", line.accountId],
    ["name", line.name],
    ["balance num", line.balance],
    ["available num", line.available],
    ["held num", line.held],
  ] as const) {
    tr.append(make("td", { className, text }));
  }
  const use = make("td", { className: "use" });
  const actions: Array<[string, string, () => void]> = [
    ["from", "From", () => pick(account, "from")],
    ["to", "To", () => pick(account, "to")],
    ["show", "Show", () => {
      input("account-id").value = account.accountId;
      void busy(button("balance-show"), "Reading…", () => showBalance(account.accountId));
    }],
  ];
  for (const [action, label, run] of actions) {
    const title = action === "show" ? "Show its balance in the Account card" : `Use as ${label} in the Pay and Hold forms`;
    use.append(actionButton({ data: { action }, text: label, title }, run));
  }
  tr.append(use);
  return tr;
}

function renderAccounts(): void {
  const rows = el("accounts-rows");
  const options = el("my-accounts");
  rows.replaceChildren();
  options.replaceChildren();
  for (const account of state.accounts?.accounts ?? []) {
    rows.append(accountRow(account));
    const option = make("option");
    option.value = account.accountId;
    option.label = accountOption(account);
    options.append(option);
  }
}

/** Lists the signed-in person's accounts: the first page (token ""), or the next one. */
export async function loadAccounts(pageToken: string, pageSize = accountsPageSize()): Promise<void> {
  const generation = ++state.accountsGeneration;
  const status = el("accounts-status");
  const errorBox = el("accounts-error");
  const more = button("accounts-more");
  clearError(errorBox);
  clearFieldErrors(el("accounts-form"));
  const signedIn = state.signedIn;
  const owner = signedIn?.admin && input("accounts-all").checked ? "" : (signedIn?.subject ?? "");
  // Only an admin may name an owner; anyone else always gets their own.
  const request = { pageSize, pageToken, owner: signedIn?.admin ? owner : "" };
  status.dataset.state = "loading";
  try {
    const response = await state.client.listAccounts(request, { timeoutMs: UNARY_TIMEOUT_MS });
    if (generation !== state.accountsGeneration) return;
    const earlier = pageToken && state.accounts?.owner === owner ? state.accounts.accounts : [];
    const accounts = { owner, nextPageToken: response.nextPageToken, accounts: [...earlier, ...response.accounts] };
    state.accounts = accounts;
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
    if (generation !== state.accountsGeneration) return;
    status.dataset.state = "error";
    show(status, "");
    showError(errorBox, err, { fields: ACCOUNTS_FIELDS });
  }
}

/** Lists the accounts again from the first one, as many as are shown (after money moved). */
export function refreshAccounts(): Promise<void> {
  if (!state.signedIn || !state.accounts) return Promise.resolve();
  const shown = Math.max(accountsPageSize(), state.accounts.accounts.length);
  return loadAccounts("", Math.min(shown, 100));
}

export function forgetAccounts(): void {
  state.accountsGeneration++;
  state.accounts = undefined;
  renderAccounts();
  const status = el("accounts-status");
  delete status.dataset.state;
  show(status, "");
  clearError(el("accounts-error"));
  button("accounts-more").hidden = true;
}

/** Lists the first page again, with "Listing…" on the button. */
export function listAccounts(): void {
  void busy(button("accounts-load"), "Listing…", () => loadAccounts(""));
}

export function setupAccounts(): void {
  onSubmit("accounts-form", listAccounts);
  input("accounts-all").addEventListener("change", () => {
    if (state.signedIn) listAccounts();
  });
  button("accounts-more").addEventListener("click", () => {
    const token = state.accounts?.nextPageToken;
    if (!token) return;
    void busy(button("accounts-more"), "Loading…", () => loadAccounts(token));
  });
}
