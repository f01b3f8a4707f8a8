// The account card's balance: an account, its balance, available and held
// money, read again after money moved.

import { UNARY_TIMEOUT_MS } from "../client.js";
import { busy, button, el, onSubmit } from "../dom.js";
import { ConnectError, Code } from "@connectrpc/connect";
import { formatTime } from "../history.js";
import { formatMoney } from "../money.js";
import { state } from "../state.js";
import { clearError, clearFieldErrors, requireText, showError, type FieldInputs } from "./forms.js";
import { forgetWatch } from "./watch.js";

/** The account card's forms (balance and history) and the inputs a BadRequest may name. */
export const ACCOUNT_FIELDS: FieldInputs = { account_id: "account-id", page_size: "history-page-size" };

export async function showBalance(accountId: string): Promise<void> {
  const view = el("balance-view");
  const errorBox = el("balance-error");
  clearError(errorBox);
  clearFieldErrors(el("account-form"));
  clearFieldErrors(el("history-form"));
  try {
    const { account } = await state.client.getAccountBalance({ accountId }, { timeoutMs: UNARY_TIMEOUT_MS });
    if (!account) throw new ConnectError("the service returned no account", Code.Internal);
    // Another account: its watch (if any) was of the previous one.
    if (state.watch && state.watch.accountId !== account.accountId) forgetWatch();
    state.shownAccount = account.accountId;
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
    button("balance-watch").disabled = false;
  } catch (err) {
    view.hidden = true;
    state.shownAccount = undefined;
    button("balance-refresh").disabled = true;
    forgetWatch();
    showError(errorBox, err, { fields: ACCOUNT_FIELDS });
  }
}

export function refreshBalance(): Promise<void> {
  return state.shownAccount ? showBalance(state.shownAccount) : Promise.resolve();
}

/** Empties the balance part of the account card. */
export function forgetBalance(): void {
  forgetWatch();
  state.shownAccount = undefined;
  const view = el("balance-view");
  view.hidden = true;
  delete view.dataset.account;
  el("balance").textContent = "";
  el("balance-holds").textContent = "";
  el("balance-details").textContent = "";
  button("balance-refresh").disabled = true;
  clearError(el("balance-error"));
}

export function setupBalance(): void {
  onSubmit("account-form", () => {
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
}
