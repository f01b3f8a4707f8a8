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
