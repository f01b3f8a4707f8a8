// Turns any failure of a call into words a person understands, keeping the
// gRPC code name and the service's own message for whoever debugs it.

import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { AmountError, formatMoney, isCurrencyCode } from "./money.js";

/** A failure as shown on the page. */
export interface Problem {
  /** The gRPC code name, e.g. "FAILED_PRECONDITION"; "INPUT" for a form error. */
  code: string;
  /** A sentence for a person, e.g. "Insufficient funds". */
  summary: string;
  /** The detail: the service's message, or what was wrong with the input. */
  detail: string;
  /** The stable reason of the service's google.rpc.ErrorInfo, e.g. "INSUFFICIENT_FUNDS". */
  reason?: string;
  /** The ErrorInfo's metadata, as sent (amounts as `*_minor` in minor units). */
  metadata?: Record<string, string>;
  /** What the metadata says, for a person: "17.00 EUR available, the payment needs 1000.00 EUR". */
  facts?: string;
  /** The request fields a google.rpc.BadRequest names, with what is wrong with each. */
  violations?: FieldViolation[];
}

/** One field a BadRequest names: "recipient_id", "equals sender_id; an account cannot pay itself". */
export interface FieldViolation {
  field: string;
  description: string;
}

/** What describeError may know besides the error. */
export interface ErrorContext {
  /**
   * The currency of the form's account, for `*_minor` metadata that comes
   * without a `currency` key (BALANCE_LIMIT's limit_minor, say).
   */
  currency?: string;
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
  { code: Code.AlreadyExists, pattern: /idempotency key/i, summary: "This key was already used for another payment, hold or refund" },
  { code: Code.AlreadyExists, pattern: /^account .* already exists/i, summary: "An account with this id already exists" },
  { code: Code.PermissionDenied, pattern: /initial_balance/, summary: "Only an admin may open an account with money in it" },
  { code: Code.PermissionDenied, pattern: /does not own sender account/, summary: "You may only pay from your own accounts" },
  { code: Code.NotFound, pattern: /^sender account/i, summary: "The sender account does not exist" },
  { code: Code.NotFound, pattern: /^recipient account/i, summary: "The recipient account does not exist" },
];

/**
 * Sentences by the ErrorInfo reason, which is stable (docs/api.md, "Reasons
 * a program can read"); they win over the code's sentence but not over a
 * SPECIFIC one, which says more for the payment form.
 */
const BY_REASON: Record<string, string> = {
  INSUFFICIENT_FUNDS: "Insufficient funds",
  CURRENCY_MISMATCH: "The currency does not match the account's currency",
  BALANCE_LIMIT: "The recipient's balance would exceed the limit",
  IDEMPOTENCY_KEY_REUSED: "This key was already used for another payment, hold or refund",
  // Both codes: a lookup of a fenced key (NOT_FOUND), a call with it (FAILED_PRECONDITION).
  KEY_FENCED: "This key was closed for good by a final lookup: no call with it happened or ever will; use a new key",
  ACCOUNT_EXISTS: "An account with this id already exists",
  ADMIN_ONLY: "Only an admin may open an account with money in it",
  NOT_ALLOWED: "Only the recipient's owner (or an admin) may capture, void or refund",
  PAYMENT_NOT_FOUND: "No such payment, hold or refund (or it is not yours to see)",
  HOLD_EXPIRED: "The hold has expired",
  HOLD_VOIDED: "The hold was voided",
  HOLD_ALREADY_CAPTURED: "The hold was already captured",
  CAPTURE_EXCEEDS_HOLD: "The capture is more than the hold",
  REFUND_EXCEEDS_PAYMENT: "The refund is more than what is left of the payment",
  NOT_REFUNDABLE: "This cannot be refunded: only a payment or a captured hold can",
  SPREAD_OVER_SHARDS: "The amount is spread over too many balance shards of the account",
  TOO_MANY_OPEN_HOLDS: "The account has too many open holds; capture or void one first",
  TOO_MANY_ACCOUNTS: "Too many accounts for this owner",
  INVALID_FIELD: "Some of what was entered is not valid",
  RESUME_TOKEN_TOO_OLD: "The watch fell too far behind to catch up; load the history, then watch again",
};

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
export function describeError(err: unknown, context: ErrorContext = {}): Problem {
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
  const problem: Problem = {
    code: codeName(connectErr.code),
    summary: specific?.summary ?? SUMMARIES[connectErr.code] ?? "Something went wrong",
    detail,
  };
  const info = errorInfo(connectErr);
  if (info) {
    problem.reason = info.reason;
    problem.metadata = info.metadata;
    if (!specific && BY_REASON[info.reason]) problem.summary = BY_REASON[info.reason]!;
    const facts = describeMetadata(info.reason, info.metadata, context.currency);
    if (facts) problem.facts = facts;
  }
  const violations = fieldViolations(connectErr);
  if (violations.length > 0) problem.violations = violations;
  return problem;
}

/** The google.rpc.ErrorInfo in an error's details (grpc-status-details-bin), if any. */
export function errorInfo(err: ConnectError): { reason: string; domain: string; metadata: Record<string, string> } | undefined {
  try {
    const [info] = err.findDetails(ErrorInfoSchema);
    return info ? { reason: info.reason, domain: info.domain, metadata: { ...info.metadata } } : undefined;
  } catch {
    return undefined; // undecodable details: the code and message still say what happened
  }
}

/** The field violations of the google.rpc.BadRequest in an error's details. */
export function fieldViolations(err: ConnectError): FieldViolation[] {
  try {
    return err
      .findDetails(BadRequestSchema)
      .flatMap((b) => b.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
  } catch {
    return [];
  }
}

/** A `*_minor` metadata value in `currency`, or undefined when it is not one. */
function money(metadata: Record<string, string>, key: string, currency: string | undefined): string | undefined {
  const text = metadata[key];
  if (text === undefined || !/^-?\d+$/.test(text) || !currency || !isCurrencyCode(currency)) return undefined;
  try {
    return formatMoney(BigInt(text), currency);
  } catch {
    return undefined;
  }
}

/**
 * What the metadata of a reason says, for a person, amounts formatted in
 * their currency (the metadata's `currency`, else the form's): e.g.
 * INSUFFICIENT_FUNDS reads "17.00 EUR available, the payment needs 1000.00 EUR".
 * Reasons without a sentence of their own list their metadata as
 * "key: value" (a `*_minor` amount as money, without the suffix), as
 * payment-client does. Empty when there is no metadata.
 */
export function describeMetadata(reason: string, metadata: Record<string, string>, fallbackCurrency?: string): string {
  const currency = metadata.currency ?? fallbackCurrency;
  const m = (key: string) => money(metadata, key, currency);
  const account = metadata.account_id ? ` (account ${metadata.account_id})` : "";
  switch (reason) {
    case "INSUFFICIENT_FUNDS": {
      const available = m("available_minor");
      const needed = m("needed_minor");
      if (!available || !needed) break;
      const held = m("held_minor");
      const heldText = held && metadata.held_minor !== "0" ? ` (${held} more is held)` : "";
      return `${available} available${heldText}, the payment needs ${needed}${account}`;
    }
    case "CAPTURE_EXCEEDS_HOLD": {
      const held = m("held_minor");
      const requested = m("requested_minor");
      if (!held || !requested) break;
      return `the hold is ${held}, the capture asks for ${requested}`;
    }
    case "REFUND_EXCEEDS_PAYMENT": {
      const refundable = m("refundable_minor");
      const amount = m("amount_minor");
      const requested = m("requested_minor");
      if (!refundable || !amount || !requested) break;
      const refunded = m("refunded_minor");
      return `${refundable} of ${amount} is left to refund${refunded ? ` (${refunded} refunded already)` : ""}, the refund asks for ${requested}`;
    }
    case "HOLD_ALREADY_CAPTURED": {
      const captured = m("captured_minor");
      if (!captured) break;
      return `${captured} of it was captured already`;
    }
    case "BALANCE_LIMIT": {
      const limit = m("limit_minor");
      if (!limit) break;
      return `an account may hold at most ${limit}${account}`;
    }
    case "CURRENCY_MISMATCH": {
      if (!metadata.account_currency || !metadata.currency) break;
      const role = metadata.role ? `the ${metadata.role} account` : "the account";
      return `${role}${account} is in ${metadata.account_currency}, the call is in ${metadata.currency}`;
    }
  }
  return Object.keys(metadata)
    .sort()
    .filter((key) => !(key === "currency" && metadata.currency !== undefined && Object.keys(metadata).some((k) => k.endsWith("_minor"))))
    .map((key) => {
      const amount = key.endsWith("_minor") ? m(key) : undefined;
      return amount ? `${key.slice(0, -"_minor".length)}: ${amount}` : `${key}: ${metadata[key]}`;
    })
    .join(", ");
}

/**
 * The input a violated request field belongs to, from `inputs` (request
 * field name to input id): the field itself ("recipient_id"), else the
 * longest leading part of its path that has one ("amount.minor_units" is
 * "amount"), else its last part ("hold.sender_id" is "sender_id").
 */
export function inputForField(field: string, inputs: Readonly<Record<string, string>>): string | undefined {
  const parts = field.split(".");
  for (let n = parts.length; n > 0; n--) {
    const id = inputs[parts.slice(0, n).join(".")];
    if (id) return id;
  }
  return inputs[parts.at(-1) ?? ""];
}

/** One line: "Insufficient funds (FAILED_PRECONDITION): insufficient funds: ...". */
export function formatProblem(problem: Problem): string {
  return problem.detail
    ? `${problem.summary} (${problem.code}): ${problem.detail}`
    : `${problem.summary} (${problem.code})`;
}
