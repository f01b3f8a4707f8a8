// Open an account: its id, name, currency and (admins) opening balance.

import { ConnectError, Code } from "@connectrpc/connect";
import { UNARY_TIMEOUT_MS } from "../client.js";
import { busy, button, el, form, input, onSubmit, show } from "../dom.js";
import { formatMoney, parseAmount } from "../money.js";
import { state } from "../state.js";
import { refreshAccounts } from "./accounts.js";
import { clearOutcome, fromInput, requireCurrency, requireText, showError, typedCurrency, type FieldInputs } from "./forms.js";

const OPEN_FIELDS: FieldInputs = {
  account_id: "open-account-id",
  display_name: "open-display-name",
  currency: "open-currency",
  initial_balance: "open-initial-balance",
};

async function openAccount(result: HTMLElement, errorBox: HTMLElement): Promise<void> {
  try {
    const accountId = requireText("open-account-id", "an account id");
    const currency = requireCurrency("open-currency");
    const balanceText = input("open-initial-balance").value.trim() || "0";
    const initialBalance = fromInput("open-initial-balance", () => parseAmount(balanceText, currency));
    const { account } = await state.client.addAccount(
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
}

export function setupOpen(): void {
  onSubmit("open-form", () => {
    const result = el("open-result");
    const errorBox = el("open-error");
    clearOutcome(result, errorBox, form("open-form"));
    void busy(button("open-submit"), "Opening…", () => openAccount(result, errorBox));
  });
}
