// Reading the gRPC-Web requests the page sends, for assertions on what went
// over the wire (the tests have no generated code of their own).

/** Splits a protobuf message into { fieldNumber: value } (varints as BigInt, bytes as Buffer). */
function decodeFields(buf) {
  const fields = {};
  let i = 0;
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = buf[i++];
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wireType = key & 7;
    if (wireType === 0) fields[field] = varint();
    else if (wireType === 2) {
      const length = Number(varint());
      fields[field] = buf.subarray(i, i + length);
      i += length;
    } else throw new Error(`unexpected wire type ${wireType}`);
  }
  return fields;
}

/** The message of a gRPC-Web request body: 1 flag byte, 4 length bytes, the message. */
function requestMessage(body) {
  if (!body || body.length < 5 || body[0] !== 0) throw new Error("not an uncompressed gRPC-Web request");
  return decodeFields(body.subarray(5, 5 + body.readUInt32BE(1)));
}

/** Decodes a GetTransactionHistoryRequest body. */
export function historyRequest(body) {
  const f = requestMessage(body);
  return {
    accountId: f[1]?.toString("utf8") ?? "",
    pageSize: Number(f[2] ?? 0n),
    pageToken: f[3]?.toString("utf8") ?? "",
  };
}

/** Decodes a MakePaymentRequest body. */
export function paymentRequest(body) {
  const f = requestMessage(body);
  return {
    idempotencyKey: f[1]?.toString("utf8") ?? "",
    senderId: f[2]?.toString("utf8") ?? "",
    recipientId: f[3]?.toString("utf8") ?? "",
    amount: f[4] ?? 0n,
    currency: f[5]?.toString("utf8") ?? "",
    memo: f[6]?.toString("utf8") ?? "",
  };
}

/** Decodes a ListAccountsRequest body. */
export function listAccountsRequest(body) {
  const f = requestMessage(body);
  return { pageSize: Number(f[1] ?? 0n), pageToken: f[2]?.toString("utf8") ?? "", owner: f[3]?.toString("utf8") ?? "" };
}

/** Decodes an AuthorizePaymentRequest body. */
export function authorizeRequest(body) {
  const f = requestMessage(body);
  return { ...paymentRequest(body), expiresInSeconds: f[7] ?? 0n };
}

/**
 * Records the page's calls of one method as [{ url, headers, body }] until
 * the array's stop() is called.
 */
export function recordCalls(page, method) {
  const calls = [];
  const listener = (request) => {
    if (request.method() === "POST" && request.url().endsWith(`/payment.v1.PaymentService/${method}`)) {
      calls.push({ url: request.url(), headers: request.headers(), body: request.postDataBuffer() });
    }
  };
  page.on("request", listener);
  calls.stop = () => page.off("request", listener);
  return calls;
}

/**
 * Splits a gRPC-Web response body into its frames: [{ trailer, data }],
 * data messages (flag 0) and the closing trailer frame (flag 0x80), whose
 * data is the text of the trailers.
 */
export function responseFrames(body) {
  const frames = [];
  let i = 0;
  while (i + 5 <= body.length) {
    const flag = body[i];
    const length = body.readUInt32BE(i + 1);
    const data = body.subarray(i + 5, i + 5 + length);
    frames.push({ trailer: (flag & 0x80) !== 0, data: flag & 0x80 ? data.toString("latin1") : data });
    i += 5 + length;
  }
  if (i !== body.length) throw new Error(`a gRPC-Web body of ${body.length} bytes ends inside a frame`);
  return frames;
}

/** The grpc-status of a gRPC-Web answer: from its headers, else from its trailer frame. */
function grpcStatus(headers, body) {
  const fromHeaders = headers.get("grpc-status");
  if (fromHeaders !== null) return { code: Number(fromHeaders), message: decodeURIComponent(headers.get("grpc-message") ?? "") };
  const trailer = responseFrames(body).find((f) => f.trailer);
  if (!trailer) return undefined;
  const fields = Object.fromEntries(
    trailer.data
      .split("\r\n")
      .filter(Boolean)
      .map((line) => {
        const colon = line.indexOf(":");
        return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
      }),
  );
  if (fields["grpc-status"] === undefined) return undefined;
  return { code: Number(fields["grpc-status"]), message: decodeURIComponent(fields["grpc-message"] ?? "") };
}

/** gRPC status codes by number, as the page names them. */
export const GRPC_CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

/**
 * Calls GetAccountBalance over gRPC-Web from Node (no browser), for probing
 * whether an endpoint is up. Resolves to { httpStatus, code, codeName,
 * message }; code is undefined when the answer carried no gRPC status.
 */
export async function getAccountBalance(endpoint, accountId, { token, timeoutMs = 30_000 } = {}) {
  const id = Buffer.from(accountId, "utf8");
  if (id.length > 127) throw new Error("account id too long for this probe");
  const message = Buffer.concat([Buffer.from([0x0a, id.length]), id]);
  const frame = Buffer.alloc(5);
  frame.writeUInt32BE(message.length, 1);
  const headers = { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
  if (token) headers.authorization = `Bearer ${token}`;
  const answer = await fetch(`${endpoint}/payment.v1.PaymentService/GetAccountBalance`, {
    method: "POST",
    headers,
    body: Buffer.concat([frame, message]),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = Buffer.from(await answer.arrayBuffer());
  let status;
  try {
    status = answer.ok ? grpcStatus(answer.headers, body) : undefined;
  } catch {
    status = undefined;
  }
  return {
    httpStatus: answer.status,
    code: status?.code,
    codeName: status ? GRPC_CODE_NAMES[status.code] ?? `CODE_${status.code}` : undefined,
    message: status?.message ?? body.toString("utf8").slice(0, 300),
  };
}
