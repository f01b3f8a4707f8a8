// Watching an account: WatchAccount call after call, each resuming from the
// last token received, so that every new entry is shown exactly once (see
// ../../docs/watch.md). On payment-server one call streams for minutes;
// behind API Gateway each call is a long poll that ends with the first
// entries (or empty after 15 s): the loop is the same.

import { Code, ConnectError } from "@connectrpc/connect";
import type { WatchAccountResponse } from "./gen/payment/v1/payment_pb.js";

/** One WatchAccount call from `resumeToken` ("" for now), its messages as they come. */
export type WatchCall = (resumeToken: string, signal: AbortSignal) => AsyncIterable<WatchAccountResponse>;

/** Failed calls in a row after which the loop stops and says why. */
export const WATCH_FAILURES_MAX = 5;
/** Pause after the first failure; it doubles with each failure in a row. */
export const WATCH_RETRY_PAUSE_MS = 500;
/**
 * Calls that end with nothing, in a row, after which the loop stops: with
 * calls lasting minutes (or 15 s behind API Gateway) that is hours of a
 * quiet account, and it bounds a loop whose calls would end at once.
 */
export const WATCH_IDLE_CALLS_MAX = 360;

/** Why a watch loop ended. */
export type WatchEnd =
  | { reason: "stopped" }
  | { reason: "idle" }
  | { reason: "failed"; error: unknown };

/** Whether a failed call is worth calling again (the network, the service's load), rather than a refusal. */
export function retryable(err: unknown): boolean {
  const code = ConnectError.from(err).code;
  return [Code.Unavailable, Code.Unknown, Code.Internal, Code.DeadlineExceeded, Code.Aborted, Code.ResourceExhausted].includes(code);
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/**
 * Watches until `signal` aborts, passing each entry to `onEntry` and each
 * token to `onToken`. A failed call is made again from the same token
 * (with a growing pause), up to WATCH_FAILURES_MAX in a row; a refusal
 * (a bad token, no permission, OUT_OF_RANGE) ends the loop at once.
 */
export async function watchLoop(
  call: WatchCall,
  onEntry: (entry: WatchAccountResponse) => void,
  signal: AbortSignal,
  options: { resumeToken?: string; onToken?: (token: string) => void; sleep?: typeof pause } = {},
): Promise<WatchEnd> {
  const sleep = options.sleep ?? pause;
  let token = options.resumeToken ?? "";
  let failures = 0;
  let idleCalls = 0;
  while (!signal.aborted) {
    let entries = 0;
    try {
      for await (const message of call(token, signal)) {
        if (message.resumeToken) {
          token = message.resumeToken;
          options.onToken?.(token);
        }
        if (message.transaction) {
          entries++;
          onEntry(message);
        }
      }
      failures = 0;
      idleCalls = entries > 0 ? 0 : idleCalls + 1;
      if (idleCalls >= WATCH_IDLE_CALLS_MAX) return { reason: "idle" };
    } catch (err) {
      if (signal.aborted) break;
      failures++;
      if (!retryable(err) || failures >= WATCH_FAILURES_MAX) return { reason: "failed", error: err };
      await sleep(WATCH_RETRY_PAUSE_MS * 2 ** (failures - 1), signal);
    }
  }
  return { reason: "stopped" };
}
