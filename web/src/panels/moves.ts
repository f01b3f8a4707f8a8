// After money moved (or was held) between accounts: what else shows it.

import { state } from "../state.js";
import { refreshAccounts } from "./accounts.js";
import { refreshBalance } from "./balance.js";

/**
 * After money moved (or was held) between `accountIds`: the account list
 * (balances, available and held change), and the balance of the account
 * card if it shows one of them. The history stays as loaded ("Load
 * history" reads it again), so that the pages read so far are not lost.
 */
export function refreshAfterMove(...accountIds: string[]): void {
  void refreshAccounts();
  if (state.shownAccount && accountIds.includes(state.shownAccount)) void refreshBalance();
}

/** The tab's storage for pending idempotency keys, or none (then they live in memory). */
export function sessionStorageOrNone(): Storage | undefined {
  try {
    return window.sessionStorage;
  } catch {
    return undefined; // storage disabled: the keys live in memory for this page
  }
}
