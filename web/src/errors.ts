// Turns any failure of a call into words a person understands, keeping the
// gRPC code name and the service's own message for whoever debugs it.

import { Code, ConnectError } from "@connectrpc/connect";
import { AmountError } from "./money.js";

/** A failure as shown on the page. */
export interface Problem {
  /** The gRPC code name, e.g. "FAILED_PRECONDITION"; "INPUT" for a form error. */
  code: string;
  /** A sentence for a person, e.g. "Insufficient funds". */
  summary: string;
  /** The detail: the service's message, or what was wrong with the input. */
  detail: string;
}

/** A form field that is missing or malformed, found before any call. */
export class InputError extends Error {
  override name = "InputError";
  constructor(
    readonly summary: string,
    detail: string,
  ) {
    super(detail);
  }
}

/** gRPC code names, as in the gRPC specification. */
const CODE_NAMES: Record<Code, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/** One sentence per code, used when no more specific one applies. */
const SUMMARIES: Partial<Record<Code, string>> = {
  [Code.Unauthenticated]: "You are not signed in, or your token is invalid or has expired; paste a fresh token",
  [Code.PermissionDenied]: "You are not allowed to do this: the account belongs to someone else",
  [Code.NotFound]: "No such account",
  [Code.AlreadyExists]: "This already exists",
  [Code.InvalidArgument]: "Some of what was entered is not valid",
  [Code.FailedPrecondition]: "The ledger cannot do this in its current state",
  [Code.Aborted]: "The payment collided with other payments at the same moment; try again (it cannot pay twice)",
  [Code.Unavailable]: "The payment service cannot be reached right now; check the endpoint, or try again shortly",
  [Code.DeadlineExceeded]: "The payment service took too long to answer; try again (a payment cannot be made twice)",
  [Code.Canceled]: "The call was cancelled",
  [Code.ResourceExhausted]: "The request is too large, or the service is overloaded",
  [Code.Unimplemented]: "The service at this endpoint does not offer this call; check the endpoint",
  [Code.Internal]: "The payment service failed internally",
  [Code.Unknown]: "Something went wrong",
};

/** Sentences chosen by what the service's message says, within a code. */
const SPECIFIC: Array<{ code: Code; pattern: RegExp; summary: string }> = [
  { code: Code.FailedPrecondition, pattern: /insufficient funds/i, summary: "Insufficient funds" },
  { code: Code.FailedPrecondition, pattern: /holds [A-Z]{3}, but the payment is in/, summary: "The currency does not match the account's currency" },
  { code: Code.FailedPrecondition, pattern: /balance limit/i, summary: "The recipient's balance would exceed the limit" },
  { code: Code.AlreadyExists, pattern: /idempotency key/i, summary: "This payment's key was already used for a different payment" },
  { code: Code.AlreadyExists, pattern: /^account .* already exists/i, summary: "An account with this id already exists" },
  { code: Code.PermissionDenied, pattern: /initial_balance/, summary: "Only an admin may open an account with money in it" },
  { code: Code.PermissionDenied, pattern: /does not own sender account/, summary: "You may only pay from your own accounts" },
  { code: Code.NotFound, pattern: /^sender account/i, summary: "The sender account does not exist" },
  { code: Code.NotFound, pattern: /^recipient account/i, summary: "The recipient account does not exist" },
];

/** The gRPC name of a code: Code.FailedPrecondition is "FAILED_PRECONDITION". */
export function codeName(code: Code): string {
  return CODE_NAMES[code] ?? `CODE_${code}`;
}

/**
 * fetch() rejects with a TypeError when no HTTP response arrived at all:
 * the server is down, the URL is wrong, or CORS refused the call. connect
 * reports that as UNKNOWN; gRPC clients call it UNAVAILABLE.
 */
function isNetworkFailure(err: ConnectError): boolean {
  return err.code === Code.Unknown && err.cause instanceof TypeError;
}

/** Describes any error thrown by a call (or by checking a form). */
export function describeError(err: unknown): Problem {
  if (err instanceof AmountError) {
    return { code: "INPUT", summary: "Invalid amount", detail: err.message };
  }
  if (err instanceof InputError) {
    return { code: "INPUT", summary: err.summary, detail: err.message };
  }
  const connectErr = ConnectError.from(err);
  if (isNetworkFailure(connectErr)) {
    return {
      code: codeName(Code.Unavailable),
      summary: "The payment service cannot be reached; check the endpoint and that the server is running",
      detail: `network error: ${connectErr.rawMessage}`,
    };
  }
  const detail = connectErr.rawMessage;
  const specific = SPECIFIC.find((s) => s.code === connectErr.code && s.pattern.test(detail));
  return {
    code: codeName(connectErr.code),
    summary: specific?.summary ?? SUMMARIES[connectErr.code] ?? "Something went wrong",
    detail,
  };
}

/** One line: "Insufficient funds (FAILED_PRECONDITION): insufficient funds: ...". */
export function formatProblem(problem: Problem): string {
  return problem.detail
    ? `${problem.summary} (${problem.code}): ${problem.detail}`
    : `${problem.summary} (${problem.code})`;
}
