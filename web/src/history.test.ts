import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  Direction,
  GetTransactionHistoryResponseSchema,
  TransactionKind,
  TransactionSchema,
} from "./gen/payment/v1/payment_pb.js";
import { historyRow, kindName, transactionLink } from "./history.js";

const at = new Date("2025-03-01T12:00:00Z");

function entry(direction: Direction, senderId: string, recipientId: string) {
  return create(GetTransactionHistoryResponseSchema, {
    transaction: create(TransactionSchema, {
      transactionId: "tx-1",
      senderId,
      recipientId,
      amount: 1234n,
      currency: "EUR",
      memo: "lunch",
      createdAt: timestampFromDate(at),
    }),
    direction,
    balanceAfter: 8766n,
    nextPageToken: "t",
    sequence: 2n,
  });
}

describe("historyRow", () => {
  it("names the shard of an entry of a sharded account", () => {
    const sharded = entry(Direction.CREDIT, "alice", "shop");
    sharded.shard = 3;
    expect(historyRow(sharded).sequence).toBe("3:2");
    expect(historyRow(entry(Direction.CREDIT, "alice", "shop")).sequence).toBe("2");
  });

  it("shows a debit with the recipient as counterparty and a minus sign", () => {
    expect(historyRow(entry(Direction.DEBIT, "alice", "bob"))).toMatchObject({
      sequence: "2",
      direction: "debit",
      counterparty: "bob",
      amount: "-12.34 EUR",
      balanceAfter: "87.66 EUR",
      memo: "lunch",
      timeIso: "2025-03-01T12:00:00.000Z",
      transactionId: "tx-1",
    });
  });

  it("shows a credit with the sender as counterparty and a plus sign", () => {
    expect(historyRow(entry(Direction.CREDIT, "alice", "bob"))).toMatchObject({
      direction: "credit",
      counterparty: "alice",
      amount: "+12.34 EUR",
    });
  });

  it("names the opening balance, which has no sender", () => {
    expect(historyRow(entry(Direction.CREDIT, "", "bob")).counterparty).toBe("(opening balance)");
  });

  it("shows the kind, and links a refund to its payment and a capture to its hold", () => {
    const payment = entry(Direction.CREDIT, "alice", "bob");
    payment.transaction!.kind = TransactionKind.PAYMENT;
    expect(historyRow(payment)).toMatchObject({ kind: "payment", refundOf: "", link: "", refundable: true });

    const refund = entry(Direction.DEBIT, "bob", "alice");
    refund.transaction!.kind = TransactionKind.REFUND;
    refund.transaction!.refundOf = "tx-0";
    expect(historyRow(refund)).toMatchObject({ kind: "refund", refundOf: "tx-0", link: "refund of tx-0", refundable: false });

    const capture = entry(Direction.CREDIT, "alice", "bob");
    capture.transaction!.kind = TransactionKind.CAPTURE;
    expect(historyRow(capture)).toMatchObject({ kind: "capture", link: "capture of hold tx-1", refundable: true });
  });

  it("offers a refund only to the recipient of a payment or capture", () => {
    const paid = entry(Direction.DEBIT, "alice", "bob");
    paid.transaction!.kind = TransactionKind.PAYMENT;
    expect(historyRow(paid).refundable).toBe(false);
    const opening = entry(Direction.CREDIT, "", "bob");
    opening.transaction!.kind = TransactionKind.OPENING;
    expect(historyRow(opening)).toMatchObject({ kind: "opening", refundable: false });
  });

  it("names every kind", () => {
    expect(kindName(TransactionKind.PAYMENT)).toBe("payment");
    expect(kindName(TransactionKind.CAPTURE)).toBe("capture");
    expect(kindName(TransactionKind.REFUND)).toBe("refund");
    expect(kindName(TransactionKind.OPENING)).toBe("opening");
    expect(kindName(TransactionKind.UNSPECIFIED)).toBe("unknown");
    expect(kindName(99 as TransactionKind)).toBe("unknown");
    expect(transactionLink(undefined)).toBe("");
  });
});
