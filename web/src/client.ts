// The PaymentService client over gRPC-Web (binary protobuf), with the
// bearer token interceptor.

import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { PaymentService } from "./gen/payment/v1/payment_pb.js";
import { bearerAuth } from "./auth.js";

export type PaymentClient = Client<typeof PaymentService>;

/** Time limit for a unary call, sent to the server as grpc-timeout. */
export const UNARY_TIMEOUT_MS = 15_000;
/** Time limit for one page of history. */
export const STREAM_TIMEOUT_MS = 60_000;
/**
 * Time limit for one WatchAccount call: the service ends a call by itself
 * after at most 300 s (15 s behind API Gateway), with the token to resume
 * from, so the limit only catches a call that hangs.
 */
export const WATCH_TIMEOUT_MS = 330_000;

/**
 * A client for the service at `baseUrl`; the path of each method is appended
 * to it, so a path prefix ("http://host/lambda-url/payment") works.
 */
export function paymentClient(baseUrl: string, currentToken: () => string | undefined): PaymentClient {
  const transport = createGrpcWebTransport({
    baseUrl,
    useBinaryFormat: true,
    interceptors: [bearerAuth(currentToken)],
  });
  return createClient(PaymentService, transport);
}
