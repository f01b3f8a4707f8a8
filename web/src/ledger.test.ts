import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  AccountSchema,
  GetPaymentResponseSchema,
  HoldSchema,
  HoldState,
  TransactionKind,
  TransactionSchema,
} from "./gen/payment/v1/payment_pb.js";
import { InputError } from "./errors.js";
import { formatDate } from "./history.js";
import { accountLine, accountOption, holdStateName, holdText, lookupView, parseExpiry } from "./ledger.js";

const at = new Date("2025-03-01T12:00:00Z");
const later = new Date("2025-03-01T13:00:00Z");

describe("accounts", () => {
  const account = create(AccountSchema, {
    accountId: "alice",
    displayName: "Alice",
    currency: "JPY",
    balance: 10000n,
    held: 2500n,
    available: 7500n,
  });
  it("shows balance, available and held money in the account's currency", () => {
    expect(accountLine(account)).toEqual({
      accountId: "alice",
      name: "Alice",
      currency: "JPY",
      balance: "10000 JPY",
      available: "7500 JPY",
      held: "2500 JPY",
    });
  });
  it("labels a picker option with what may be spent", () => {
    expect(accountOption(account)).toBe("alice (Alice) · 7500 JPY available");
    expect(accountOption({ ...account, displayName: "" })).toBe("alice · 7500 JPY available");
  });
});

describe("parseExpiry", () => {
  it("reads seconds, minutes, hours and days; a bare number is minutes", () => {
    expect(parseExpiry("90s")).toBe(90n);
    expect(parseExpiry("30m")).toBe(1800n);
    expect(parseExpiry(" 2 h ")).toBe(7200n);
    expect(parseExpiry("7d")).toBe(604800n);
    expect(parseExpiry("15")).toBe(900n);
    expect(parseExpiry("1 day")).toBe(86400n);
    expect(parseExpiry("10 minutes")).toBe(600n);
  });
  it("leaves the range to the service but refuses what is not a duration", () => {
    expect(parseExpiry("1s")).toBe(1n);
    for (const bad of ["", "soon", "-5m", "1.5h", "3w"]) expect(() => parseExpiry(bad)).toThrow(InputError);
  });
});

describe("holds", () => {
  const hold = create(HoldSchema, {
    holdId: "h-1",
    senderId: "alice",
    recipientId: "bob",
    amount: 2500n,
    currency: "EUR",
    memo: "deposit",
    createdAt: timestampFromDate(at),
    expiresAt: timestampFromDate(later),
    state: HoldState.OPEN,
    idempotencyKey: "k-1",
  });
  it("says what became of a hold", () => {
    expect(holdText(hold)).toBe(`Hold h-1: OPEN 25.00 EUR from alice to bob, expires ${formatDate(later)} ("deposit")`);
    const captured = { ...hold, state: HoldState.CAPTURED, capturedAmount: 1000n, settledAt: timestampFromDate(later) };
    expect(holdText(captured)).toMatch(/^Hold h-1: CAPTURED 25\.00 EUR from alice to bob, captured 10\.00 EUR at /);
    expect(holdText({ ...hold, memo: "", state: HoldState.VOIDED, settledAt: timestampFromDate(later) })).toBe(
      `Hold h-1: VOIDED 25.00 EUR from alice to bob, voided at ${formatDate(later)}`,
    );
    expect(holdText({ ...hold, memo: "", state: HoldState.EXPIRED })).toBe(
      `Hold h-1: EXPIRED 25.00 EUR from alice to bob, expired at ${formatDate(later)}`,
    );
    expect(holdStateName(HoldState.UNSPECIFIED)).toBe("UNKNOWN");
  });

  it("shows a looked-up hold with its state, and its capture once captured", () => {
    const open = lookupView(create(GetPaymentResponseSchema, { hold, idempotencyKey: "k-1" }));
    expect(open).toMatchObject({ kind: "hold", state: "OPEN", transactionId: "h-1" });
    expect(open.lines).toEqual([holdText(hold), "Idempotency key: k-1"]);

    const capture = create(TransactionSchema, {
      transactionId: "h-1",
      senderId: "alice",
      recipientId: "bob",
      amount: 2500n,
      currency: "EUR",
      kind: TransactionKind.CAPTURE,
      createdAt: timestampFromDate(later),
    });
    const captured = lookupView(
      create(GetPaymentResponseSchema, {
        hold: { ...hold, state: HoldState.CAPTURED, capturedAmount: 2500n },
        transaction: capture,
        idempotencyKey: "k-1",
        refundedTotal: 500n,
      }),
    );
    expect(captured.state).toBe("CAPTURED");
    expect(captured.lines[1]).toBe(`Capture h-1: COMMITTED 25.00 EUR from alice to bob at ${formatDate(later)}`);
    expect(captured.lines[2]).toBe("Refunded so far: 5.00 EUR of 25.00 EUR");
  });
});

describe("lookupView of transactions", () => {
  const tx = create(TransactionSchema, {
    transactionId: "t-1",
    senderId: "alice",
    recipientId: "bob",
    amount: 1234n,
    currency: "EUR",
    memo: "lunch",
    kind: TransactionKind.PAYMENT,
    createdAt: timestampFromDate(at),
  });
  it("shows a payment and how much of it was refunded", () => {
    const view = lookupView(create(GetPaymentResponseSchema, { transaction: tx, idempotencyKey: "k" }));
    expect(view).toMatchObject({ kind: "payment", state: "COMMITTED", transactionId: "t-1" });
    expect(view.lines).toEqual([
      `Payment t-1: COMMITTED 12.34 EUR from alice to bob at ${formatDate(at)} ("lunch")`,
      "Nothing of it has been refunded",
      "Idempotency key: k",
    ]);
  });
  it("links a refund to the payment it returns money of", () => {
    const refund = { ...tx, transactionId: "r-1", senderId: "bob", recipientId: "alice", memo: "", kind: TransactionKind.REFUND, refundOf: "t-1" };
    const view = lookupView(create(GetPaymentResponseSchema, { transaction: refund, idempotencyKey: "rk" }));
    expect(view.kind).toBe("refund");
    expect(view.lines[0]).toBe(`Refund r-1: COMMITTED 12.34 EUR from bob to alice at ${formatDate(at)}, refund of t-1`);
    expect(view.lines).toHaveLength(2);
  });
});
