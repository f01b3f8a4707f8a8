// How one history entry is shown as a table row.

import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  Direction,
  TransactionKind,
  type GetTransactionHistoryResponse,
  type Transaction,
} from "./gen/payment/v1/payment_pb.js";
import { formatAmount } from "./money.js";

export interface HistoryRow {
  /** The entry's position: "7" in an ordinary account, "3:7" (shard 3, its 7th entry) in a sharded one. */
  sequence: string;
  time: string;
  timeIso: string;
  direction: "debit" | "credit" | "unknown";
  counterparty: string;
  amount: string;
  balanceAfter: string;
  memo: string;
  transactionId: string;
  /** "payment", "capture", "refund", "opening" (or "unknown"). */
  kind: KindName;
  /** For a refund: the payment or capture it returns money of; else "". */
  refundOf: string;
  /** What the entry is linked to: "refund of T", "capture of hold H", or "". */
  link: string;
  /**
   * Whether the account's owner may refund this entry: money it received by
   * a payment or a capture (only the recipient refunds).
   */
  refundable: boolean;
}

export type KindName = "payment" | "capture" | "refund" | "opening" | "unknown";

/** A transaction's kind in one lower-case word. */
export function kindName(kind: TransactionKind): KindName {
  switch (kind) {
    case TransactionKind.PAYMENT:
      return "payment";
    case TransactionKind.CAPTURE:
      return "capture";
    case TransactionKind.REFUND:
      return "refund";
    case TransactionKind.OPENING:
      return "opening";
    default:
      return "unknown";
  }
}

/** "refund of T", "capture of hold H", or "" for a payment or an opening credit. */
export function transactionLink(tx: Transaction | undefined): string {
  if (!tx) return "";
  if (tx.kind === TransactionKind.REFUND && tx.refundOf) return `refund of ${tx.refundOf}`;
  if (tx.kind === TransactionKind.CAPTURE) return `capture of hold ${tx.transactionId}`;
  return "";
}

/** "2025-01-31 14:05:09" in the browser's time zone. */
export function formatDate(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A protobuf Timestamp as local text and as ISO 8601 (UTC). */
export function formatTime(ts: Timestamp | undefined): { text: string; iso: string } {
  if (!ts) return { text: "", iso: "" };
  const d = timestampDate(ts);
  return { text: formatDate(d), iso: d.toISOString() };
}

export function historyRow(entry: GetTransactionHistoryResponse): HistoryRow {
  const tx = entry.transaction;
  const currency = tx?.currency ?? "";
  const amount = tx ? formatAmount(tx.amount, currency) : "";
  const time = formatTime(tx?.createdAt);
  const base = {
    sequence: entry.shard > 0 ? `${entry.shard}:${entry.sequence}` : entry.sequence.toString(),
    time: time.text,
    timeIso: time.iso,
    balanceAfter: `${formatAmount(entry.balanceAfter, currency)} ${currency}`,
    memo: tx?.memo ?? "",
    transactionId: tx?.transactionId ?? "",
    kind: kindName(tx?.kind ?? TransactionKind.UNSPECIFIED),
    refundOf: tx?.refundOf ?? "",
    link: transactionLink(tx),
    refundable: false,
  };
  switch (entry.direction) {
    case Direction.DEBIT:
      return { ...base, direction: "debit", counterparty: tx?.recipientId ?? "", amount: `-${amount} ${currency}` };
    case Direction.CREDIT:
      return {
        ...base,
        refundable: base.kind === "payment" || base.kind === "capture",
        direction: "credit",
        counterparty: tx?.senderId || "(opening balance)",
        amount: `+${amount} ${currency}`,
      };
    default:
      return { ...base, direction: "unknown", counterparty: "", amount: `${amount} ${currency}` };
  }
}
