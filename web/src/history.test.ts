import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Direction, GetTransactionHistoryResponseSchema, TransactionSchema } from "./gen/payment/v1/payment_pb.js";
import { historyRow } from "./history.js";

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
});
