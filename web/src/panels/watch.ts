// The account card's live part: "Watch for payments" follows the shown
// account with WatchAccount (watch.ts), listing each new entry as it
// arrives, updating the balance and the history shown, without a reload.

import { create } from "@bufbuild/protobuf";
import { WATCH_TIMEOUT_MS } from "../client.js";
import { button, el, make, show } from "../dom.js";
import { GetTransactionHistoryResponseSchema, type WatchAccountResponse } from "../gen/payment/v1/payment_pb.js";
import { historyRow } from "../history.js";
import { formatMoney } from "../money.js";
import { state, type WatchState } from "../state.js";
import { watchLoop, type WatchEnd } from "../watch.js";
import { refreshBalance } from "./balance.js";
import { clearError, showError } from "./forms.js";
import { prependEntry } from "./history.js";

/** Rows the live list keeps (the oldest go first): the history has the rest. */
const WATCH_ROWS_MAX = 50;

function asHistoryEntry(message: WatchAccountResponse) {
  return create(GetTransactionHistoryResponseSchema, {
    transaction: message.transaction,
    direction: message.direction,
    balanceAfter: message.balanceAfter,
    sequence: message.sequence,
    shard: message.shard,
  });
}

function showEntry(watch: WatchState, message: WatchAccountResponse): void {
  const entry = asHistoryEntry(message);
  const row = historyRow(entry);
  watch.arrived++;
  const text = `${row.amount} ${row.direction === "debit" ? "to" : "from"} ${row.counterparty} · balance ${row.balanceAfter} · ${row.time}`;
  const item = make("li", {
    text,
    data: { testid: "watch-row", transactionId: row.transactionId, direction: row.direction, sequence: row.sequence },
  });
  const rows = el("watch-rows");
  rows.prepend(item);
  while (rows.children.length > WATCH_ROWS_MAX) rows.lastElementChild?.remove();
  const currency = message.transaction?.currency ?? "";
  // The balance at once from the entry; held and available with a read.
  el("balance").textContent = formatMoney(message.balanceAfter, currency);
  void refreshBalance();
  prependEntry(watch.accountId, entry);
  status(watch, `Watching ${watch.accountId}: ${watch.arrived} new ${watch.arrived === 1 ? "entry" : "entries"} so far.`);
}

/**
 * How long the first call of a watch lasts, in seconds: a short one, whose
 * last message fixes where the watch starts (the moment it reached the
 * service), so the card can say it is live; the calls after it run as
 * long as the service allows (0).
 */
const FIRST_CALL_SECONDS = 1;

function status(watch: WatchState, text: string): void {
  const box = el("watch-status");
  box.dataset.state = watch.resumeToken === "" ? "starting" : "live";
  show(box, text);
}

function ended(watch: WatchState, end: WatchEnd): void {
  if (state.watch !== watch) return; // replaced or forgotten
  state.watch = undefined;
  const btn = button("balance-watch");
  btn.textContent = "Watch for payments";
  btn.disabled = state.shownAccount === undefined;
  const box = el("watch-status");
  box.dataset.state = "stopped";
  if (end.reason === "failed") {
    show(box, `Stopped watching ${watch.accountId}.`);
    showError(el("watch-error"), end.error);
  } else if (end.reason === "idle") {
    show(box, `Stopped watching ${watch.accountId} after a long quiet spell; watch again to go on.`);
  } else {
    show(box, `Stopped watching ${watch.accountId}.`);
  }
}

/** Starts following `accountId` from now (stopping any other watch). */
export function startWatch(accountId: string): void {
  stopWatch();
  el("watch-rows").replaceChildren();
  clearError(el("watch-error"));
  const watch: WatchState = { accountId, resumeToken: "", arrived: 0, abort: new AbortController() };
  state.watch = watch;
  button("balance-watch").textContent = "Stop watching";
  status(watch, `Starting to watch ${accountId}…`);
  const client = state.client;
  const live = `Watching ${accountId}: new entries appear here as they arrive.`;
  void watchLoop(
    (resumeToken, signal) => {
      const maxSeconds = resumeToken === "" ? FIRST_CALL_SECONDS : 0;
      return client.watchAccount({ accountId, resumeToken, maxSeconds }, { signal, timeoutMs: WATCH_TIMEOUT_MS });
    },
    (message) => showEntry(watch, message),
    watch.abort.signal,
    {
      onToken: (token) => {
        const starting = watch.resumeToken === "";
        watch.resumeToken = token;
        if (starting && watch.arrived === 0) status(watch, live);
      },
    },
  ).then((end) => ended(watch, end));
}

/** Stops the watch, if any; its rows stay until another account is shown. */
export function stopWatch(): void {
  state.watch?.abort.abort();
}

/** Stops the watch and empties the live part of the account card. */
export function forgetWatch(): void {
  const watch = state.watch;
  state.watch = undefined;
  watch?.abort.abort();
  el("watch-rows").replaceChildren();
  const box = el("watch-status");
  delete box.dataset.state;
  show(box, "");
  clearError(el("watch-error"));
  const btn = button("balance-watch");
  btn.textContent = "Watch for payments";
  btn.disabled = true;
}

export function setupWatch(): void {
  button("balance-watch").addEventListener("click", () => {
    if (state.watch) {
      stopWatch();
    } else if (state.shownAccount) {
      startWatch(state.shownAccount);
    }
  });
}
