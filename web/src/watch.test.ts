import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { TransactionSchema, WatchAccountResponseSchema, type WatchAccountResponse } from "./gen/payment/v1/payment_pb.js";
import { WATCH_FAILURES_MAX, WATCH_IDLE_CALLS_MAX, watchLoop, type WatchCall } from "./watch.js";

const entry = (id: string, token: string): WatchAccountResponse =>
  create(WatchAccountResponseSchema, { transaction: create(TransactionSchema, { transactionId: id }), resumeToken: token });
const last = (token: string): WatchAccountResponse => create(WatchAccountResponseSchema, { resumeToken: token });

/** A service that answers each call from a script: its messages, or an error after them. */
function scripted(calls: Array<{ messages: WatchAccountResponse[]; error?: Error }>, abort: AbortController) {
  const tokens: string[] = [];
  const call: WatchCall = async function* (token) {
    tokens.push(token);
    const next = calls.shift();
    if (!next) {
      abort.abort();
      return;
    }
    yield* next.messages;
    if (next.error) throw next.error;
  };
  return { call, tokens };
}

const noPause = async () => {};

describe("watchLoop", () => {
  it("resumes every call from the last token it got, and shows each entry once", async () => {
    const abort = new AbortController();
    const { call, tokens } = scripted(
      [
        { messages: [last("t0")] },
        { messages: [entry("p1", "t1"), last("t1")] },
        // A call cut midway: resumed from the last entry's token.
        { messages: [entry("p2", "t2")], error: new ConnectError("reset", Code.Unavailable) },
        { messages: [entry("p3", "t3"), last("t3")] },
      ],
      abort,
    );
    const seen: string[] = [];
    const end = await watchLoop(call, (m) => seen.push(m.transaction!.transactionId), abort.signal, { sleep: noPause });
    expect(end).toEqual({ reason: "stopped" });
    expect(seen).toEqual(["p1", "p2", "p3"]);
    expect(tokens).toEqual(["", "t0", "t1", "t2", "t3"]);
  });

  it("stops at once on a refusal, and after too many failures in a row", async () => {
    const refused = new ConnectError("too old", Code.OutOfRange);
    let abort = new AbortController();
    let script = scripted([{ messages: [], error: refused }], abort);
    expect(await watchLoop(script.call, () => {}, abort.signal, { sleep: noPause })).toEqual({ reason: "failed", error: refused });

    abort = new AbortController();
    const down = () => ({ messages: [], error: new ConnectError("down", Code.Unavailable) });
    script = scripted(Array.from({ length: WATCH_FAILURES_MAX + 3 }, down), abort);
    const end = await watchLoop(script.call, () => {}, abort.signal, { sleep: noPause });
    expect(end.reason).toBe("failed");
    expect(script.tokens.length).toBe(WATCH_FAILURES_MAX);
  });

  it("stops after a bounded number of calls that bring nothing", async () => {
    const abort = new AbortController();
    const { call, tokens } = scripted(
      Array.from({ length: WATCH_IDLE_CALLS_MAX + 5 }, () => ({ messages: [last("t")] })),
      abort,
    );
    expect(await watchLoop(call, () => {}, abort.signal, { sleep: noPause })).toEqual({ reason: "idle" });
    expect(tokens.length).toBe(WATCH_IDLE_CALLS_MAX);
  });
});
