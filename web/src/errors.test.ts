import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { codeName, describeError, describeMetadata, formatProblem, inputForField, InputError } from "./errors.js";
import { BadRequest_FieldViolationSchema, BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { AmountError } from "./money.js";

const fail = (code: Code, message: string) => describeError(new ConnectError(message, code));

describe("describeError", () => {
  it("names insufficient funds, with the code and the service's message", () => {
    const message = 'insufficient funds: sender account "a" holds 100 minor units, the payment needs 200';
    const problem = fail(Code.FailedPrecondition, message);
    expect(problem).toEqual({ code: "FAILED_PRECONDITION", summary: "Insufficient funds", detail: message });
    expect(formatProblem(problem)).toBe(`Insufficient funds (FAILED_PRECONDITION): ${message}`);
  });

  it("has a sentence for every code the service uses", () => {
    const codes: Array<[Code, string, RegExp]> = [
      [Code.Unauthenticated, "UNAUTHENTICATED", /not signed in/],
      [Code.PermissionDenied, "PERMISSION_DENIED", /not allowed/],
      [Code.NotFound, "NOT_FOUND", /No such account/],
      [Code.AlreadyExists, "ALREADY_EXISTS", /already exists/],
      [Code.InvalidArgument, "INVALID_ARGUMENT", /not valid/],
      [Code.FailedPrecondition, "FAILED_PRECONDITION", /cannot do this/],
      [Code.Aborted, "ABORTED", /try again/],
      [Code.Unavailable, "UNAVAILABLE", /cannot be reached/],
      [Code.DeadlineExceeded, "DEADLINE_EXCEEDED", /too long/],
      [Code.ResourceExhausted, "RESOURCE_EXHAUSTED", /too large/],
      [Code.Internal, "INTERNAL", /failed internally/],
      // Compressed frames and methods the endpoint does not serve.
      [Code.Unimplemented, "UNIMPLEMENTED", /does not offer this call/],
    ];
    for (const [code, name, summary] of codes) {
      const problem = fail(code, "detail");
      expect(problem.code).toBe(name);
      expect(problem.summary).toMatch(summary);
      expect(problem.detail).toBe("detail");
    }
  });

  it("is more specific where the message says more", () => {
    expect(fail(Code.NotFound, 'sender account "x" does not exist').summary).toBe("The sender account does not exist");
    expect(fail(Code.NotFound, 'recipient account "x" does not exist').summary).toBe("The recipient account does not exist");
    expect(fail(Code.AlreadyExists, 'account "x" already exists').summary).toBe("An account with this id already exists");
    expect(fail(Code.AlreadyExists, 'idempotency key "k" was already used by sender "a"').summary).toMatch(/key was already used/);
    expect(fail(Code.FailedPrecondition, 'sender account "a" holds EUR, but the payment is in USD').summary).toMatch(/currency/);
    expect(fail(Code.FailedPrecondition, "recipient account would exceed the balance limit").summary).toMatch(/limit/);
    expect(fail(Code.PermissionDenied, 'bob may not read account "a": only its owner or an admin may').summary).toBe(
      "You are not allowed to do this: the account belongs to someone else",
    );
    expect(fail(Code.PermissionDenied, 'the caller does not own sender account "a"').summary).toBe(
      "You may only pay from your own accounts",
    );
    expect(
      fail(Code.PermissionDenied, "a positive initial_balance creates money: only an admin (scope payments/admin) may set one").summary,
    ).toMatch(/^Only an admin may open an account with money in it/);
  });

  it("reports a failed fetch (server down, CORS) as UNAVAILABLE", () => {
    const err = new ConnectError("Failed to fetch", Code.Unknown, undefined, undefined, new TypeError("Failed to fetch"));
    const problem = describeError(err);
    expect(problem.code).toBe("UNAVAILABLE");
    expect(problem.summary).toMatch(/cannot be reached/);
    expect(problem.detail).toMatch(/Failed to fetch/);
  });

  it("describes form errors without a gRPC code", () => {
    expect(describeError(new AmountError("enter an amount"))).toEqual({
      code: "INPUT",
      summary: "Invalid amount",
      detail: "enter an amount",
    });
    expect(formatProblem(describeError(new InputError("Enter an account id", "required")))).toBe(
      "Enter an account id (INPUT): required",
    );
  });

  it("wraps anything else as UNKNOWN", () => {
    expect(describeError(new Error("boom"))).toMatchObject({ code: "UNKNOWN", detail: "boom" });
    expect(describeError("text")).toMatchObject({ code: "UNKNOWN", detail: "text" });
  });

  it("names codes as the gRPC specification does", () => {
    expect(codeName(Code.Canceled)).toBe("CANCELLED");
    expect(codeName(Code.DeadlineExceeded)).toBe("DEADLINE_EXCEEDED");
  });
});

describe("the service's error details (ErrorInfo, BadRequest)", () => {
  /** An error as it arrives: details as google.protobuf.Any bytes, as connect decodes grpc-status-details-bin. */
  function arrived(code: Code, message: string, reason: string, metadata: Record<string, string>, violations: Array<[string, string]> = []) {
    const details = [
      { type: "google.rpc.ErrorInfo", value: toBinary(ErrorInfoSchema, create(ErrorInfoSchema, { reason, domain: "payment.v1", metadata })) },
    ];
    if (violations.length > 0) {
      const bad = create(BadRequestSchema, {
        fieldViolations: violations.map(([field, description]) => create(BadRequest_FieldViolationSchema, { field, description })),
      });
      details.push({ type: "google.rpc.BadRequest", value: toBinary(BadRequestSchema, bad) });
    }
    const err = new ConnectError(message, code);
    err.details.push(...details); // as the gRPC-Web transport fills them in
    return err;
  }

  it("reads the reason and formats the amounts of insufficient funds in the currency", () => {
    const message = 'insufficient funds: account "bob" has 17.00 EUR available, the payment needs 1000.00 EUR';
    const problem = describeError(
      arrived(Code.FailedPrecondition, message, "INSUFFICIENT_FUNDS", {
        account_id: "bob",
        currency: "EUR",
        available_minor: "1700",
        held_minor: "0",
        needed_minor: "100000",
      }),
    );
    expect(problem.summary).toBe("Insufficient funds");
    expect(problem.reason).toBe("INSUFFICIENT_FUNDS");
    expect(problem.detail).toBe(message);
    expect(problem.facts).toBe("17.00 EUR available, the payment needs 1000.00 EUR (account bob)");
    expect(problem.violations).toBeUndefined();
  });

  it("says how much more is held, in the currency's own decimals", () => {
    const facts = describeMetadata("INSUFFICIENT_FUNDS", {
      currency: "JPY",
      available_minor: "500",
      held_minor: "250",
      needed_minor: "1000",
    });
    expect(facts).toBe("500 JPY available (250 JPY more is held), the payment needs 1000 JPY");
  });

  it("formats captures and refunds above their limits", () => {
    expect(
      describeMetadata("CAPTURE_EXCEEDS_HOLD", { hold_id: "h", currency: "EUR", held_minor: "2500", requested_minor: "3000" }),
    ).toBe("the hold is 25.00 EUR, the capture asks for 30.00 EUR");
    expect(
      describeMetadata("REFUND_EXCEEDS_PAYMENT", {
        transaction_id: "t",
        currency: "KWD",
        amount_minor: "10000",
        refunded_minor: "4000",
        refundable_minor: "6000",
        requested_minor: "7000",
      }),
    ).toBe("6.000 KWD of 10.000 KWD is left to refund (4.000 KWD refunded already), the refund asks for 7.000 KWD");
  });

  it("uses the form's currency where the metadata has none, and lists other metadata as key: value", () => {
    expect(describeMetadata("BALANCE_LIMIT", { account_id: "a", limit_minor: "1000000000000000" }, "EUR")).toBe(
      "an account may hold at most 10000000000000.00 EUR (account a)",
    );
    expect(describeMetadata("SPREAD_OVER_SHARDS", { account_id: "m", shards_max: "4", payable_minor: "1250" }, "EUR")).toBe(
      "account_id: m, payable: 12.50 EUR, shards_max: 4",
    );
    expect(describeMetadata("SPREAD_OVER_SHARDS", { account_id: "m", payable_minor: "1250" })).toBe(
      "account_id: m, payable_minor: 1250",
    );
    expect(describeMetadata("HOLD_VOIDED", { hold_id: "h-1" })).toBe("hold_id: h-1");
    expect(describeMetadata("CONTENDED", {})).toBe("");
  });

  it("names a reason the code alone does not", () => {
    const notFound = describeError(arrived(Code.NotFound, "payment not found", "PAYMENT_NOT_FOUND", { what: "transaction" }));
    expect(notFound.summary).toMatch(/^No such payment, hold or refund/);
    expect(notFound.facts).toBe("what: transaction");
    const voided = describeError(arrived(Code.FailedPrecondition, "hold h was voided", "HOLD_VOIDED", { hold_id: "h" }));
    expect(voided.summary).toBe("The hold was voided");
  });

  it("says a fenced key is closed for good, looked up or used", () => {
    const key = { sender_id: "alice", idempotency_key: "k1" };
    const lookedUp = describeError(
      arrived(Code.NotFound, 'no payment, hold or refund of sender "alice" with idempotency key "k1": the key is fenced', "KEY_FENCED", key),
    );
    const used = describeError(
      arrived(Code.FailedPrecondition, 'idempotency key "k1" of account "alice" is fenced: ...; use a new key', "KEY_FENCED", key),
    );
    for (const problem of [lookedUp, used]) {
      expect(problem.summary).toMatch(/closed for good.*use a new key$/);
      expect(problem.facts).toBe("idempotency_key: k1, sender_id: alice");
    }
    expect([lookedUp.code, used.code]).toEqual(["NOT_FOUND", "FAILED_PRECONDITION"]);
  });

  it("says a watch too far behind must catch up with the history", () => {
    const problem = describeError(
      arrived(Code.OutOfRange, "the resume_token is 10001 entries behind account \"a\"", "RESUME_TOKEN_TOO_OLD", {
        account_id: "a",
        behind: "10001",
        limit: "10000",
      }),
    );
    expect(problem.code).toBe("OUT_OF_RANGE");
    expect(problem.summary).toBe("The watch fell too far behind to catch up; load the history, then watch again");
    expect(problem.reason).toBe("RESUME_TOKEN_TOO_OLD");
  });

  it("keeps the message's more specific sentence over the reason's", () => {
    const problem = describeError(
      arrived(Code.PermissionDenied, 'the caller does not own sender account "a"', "NOT_ACCOUNT_OWNER", { account_id: "a" }),
    );
    expect(problem.summary).toBe("You may only pay from your own accounts");
    expect(problem.reason).toBe("NOT_ACCOUNT_OWNER");
  });

  it("reads the field violations of INVALID_ARGUMENT", () => {
    const problem = describeError(
      arrived(
        Code.InvalidArgument,
        "recipient_id: equals sender_id; an account cannot pay itself",
        "INVALID_FIELD",
        { field: "recipient_id" },
        [["recipient_id", "equals sender_id; an account cannot pay itself"]],
      ),
    );
    expect(problem.code).toBe("INVALID_ARGUMENT");
    expect(problem.violations).toEqual([{ field: "recipient_id", description: "equals sender_id; an account cannot pay itself" }]);
  });

  it("also reads details given as messages (as a test or an in-process transport sends them)", () => {
    const err = new ConnectError("amount: is 0", Code.InvalidArgument, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "INVALID_FIELD", domain: "payment.v1", metadata: { field: "amount" } } },
      { desc: BadRequestSchema, value: { fieldViolations: [{ field: "amount", description: "is 0" }] } },
    ]);
    expect(describeError(err)).toMatchObject({ reason: "INVALID_FIELD", violations: [{ field: "amount", description: "is 0" }] });
  });

  it("ignores details it cannot decode", () => {
    const err = new ConnectError("boom", Code.Internal);
    err.details.push({ type: "google.rpc.ErrorInfo", value: new Uint8Array([0xff, 0xff]) });
    expect(describeError(err)).toEqual({ code: "INTERNAL", summary: "The payment service failed internally", detail: "boom" });
  });
});

describe("inputForField", () => {
  const inputs = { sender_id: "pay-sender", recipient_id: "pay-recipient", amount: "pay-amount", "payment.transaction_id": "lookup-id" };
  it("finds the input of a field, of a nested field's leading part, or of its last part", () => {
    expect(inputForField("recipient_id", inputs)).toBe("pay-recipient");
    expect(inputForField("amount.minor_units", inputs)).toBe("pay-amount");
    expect(inputForField("payment.transaction_id", inputs)).toBe("lookup-id");
    expect(inputForField("hold.sender_id", inputs)).toBe("pay-sender");
    expect(inputForField("page_token", inputs)).toBeUndefined();
  });
});
