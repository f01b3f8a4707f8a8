import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { codeName, describeError, formatProblem, InputError } from "./errors.js";
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
