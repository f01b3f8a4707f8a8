// The account card's history: streamed a page at a time, newest first,
// each row linked to what it is of (a lookup) and, for a payment or
// capture, with a Refund button.

import { STREAM_TIMEOUT_MS } from "../client.js";
import { actionButton, busy, button, el, input, make, onSubmit, show } from "../dom.js";
import type { GetTransactionHistoryResponse } from "../gen/payment/v1/payment_pb.js";
import { historyRow } from "../history.js";
import { state, type HistoryState } from "../state.js";
import { ACCOUNT_FIELDS } from "./balance.js";
import { clearError, clearFieldErrors, requireText, showError } from "./forms.js";
import { lookUpId } from "./lookup.js";
import { openRefund } from "./refund.js";

function appendRow(entry: GetTransactionHistoryResponse, where: "append" | "prepend" = "append"): void {
  const row = historyRow(entry);
  const tr = make("tr", {
    data: { testid: "history-row", sequence: row.sequence, direction: row.direction, transactionId: row.transactionId, kind: row.kind },
  });
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
  for (const [className, text, title] of cells) {
    tr.append(make("td", title ? { className, text, title } : { className, text }));
  }
  // What the entry is linked to: a refund to its payment, a capture to its hold.
  const link = make("td", { className: "link" });
  if (row.link) {
    const target = row.refundOf || row.transactionId;
    const props = { className: "link", data: { action: "look-up", target }, text: row.link, title: `Look ${target} up` };
    link.append(actionButton(props, () => lookUpId(target)));
  }
  tr.append(link);
  const actions = make("td", { className: "actions" });
  const tx = entry.transaction;
  if (row.refundable && tx) {
    const props = { data: { action: "refund" }, text: "Refund…", title: "Return all or part of this payment to its sender" };
    actions.append(actionButton(props, () => openRefund(tx)));
  }
  tr.append(actions);
  if (where === "prepend") el("history-rows").prepend(tr);
  else el("history-rows").append(tr);
}

/**
 * A new entry of `accountId` (from a watch) on top of its history, when
 * that history is shown: it is newer than every row there.
 */
export function prependEntry(accountId: string, entry: GetTransactionHistoryResponse): void {
  const history = state.history;
  if (!history || history.accountId !== accountId || history.abort) return;
  appendRow(entry, "prepend");
  history.rows++;
}

function pageSize(): number {
  const n = Number.parseInt(input("history-page-size").value, 10);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 1000) : 20;
}

/** Streams one page of history, appending rows as they arrive. */
async function loadHistory(accountId: string, pageToken: string): Promise<void> {
  state.history?.abort?.abort();
  const previous = state.history;
  const append = pageToken !== "" && previous?.accountId === accountId;
  const page: HistoryState = append && previous ? previous : { accountId, nextPageToken: "", rows: 0 };
  if (!append) el("history-rows").replaceChildren();
  const abort = new AbortController();
  page.abort = abort;
  state.history = page;
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
    const stream = state.client.getTransactionHistory(
      { accountId, pageSize: pageSize(), pageToken },
      { signal: abort.signal, timeoutMs: STREAM_TIMEOUT_MS },
    );
    for await (const entry of stream) {
      appendRow(entry);
      received++;
      page.rows++;
      page.nextPageToken = entry.nextPageToken;
    }
    status.dataset.state = "done";
    if (page.rows === 0) {
      show(status, `${accountId} has no history yet.`);
    } else {
      const end = page.nextPageToken ? "" : " That is the whole history.";
      show(status, `${page.rows} ${page.rows === 1 ? "entry" : "entries"} of ${accountId}, newest first.${end}`);
    }
  } catch (err) {
    if (abort.signal.aborted) return; // replaced by a newer load
    status.dataset.state = "error";
    show(status, received > 0 ? `Stopped after ${received} more entries; "Load more" continues from there.` : "");
    showError(errorBox, err, { fields: ACCOUNT_FIELDS });
  } finally {
    if (state.history === page && !abort.signal.aborted) {
      more.hidden = page.nextPageToken === "";
      delete page.abort;
    }
  }
}

/** Stops the stream being read and empties the history part of the account card. */
export function forgetHistory(): void {
  state.history?.abort?.abort();
  state.history = undefined;
  el("history-rows").replaceChildren();
  const status = el("history-status");
  delete status.dataset.state;
  show(status, "");
  clearError(el("history-error"));
  button("history-more").hidden = true;
}

export function setupHistory(): void {
  onSubmit("history-form", () => {
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
    const history = state.history;
    if (!history || !history.nextPageToken) return;
    const { accountId, nextPageToken } = history;
    void busy(button("history-more"), "Loading…", () => loadHistory(accountId, nextPageToken));
  });
}
