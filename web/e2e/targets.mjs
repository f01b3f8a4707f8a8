// The entry points of the service the page is tested against.
//
// - PAYMENT_E2E_ENDPOINT set: one already running endpoint, used as is. It
//   may carry a path prefix, e.g. a Lambda under `cargo lambda watch`:
//   PAYMENT_E2E_ENDPOINT=http://127.0.0.1:9000/lambda-url/payment-lambda
// - otherwise: DynamoDB Local and payment-server, started here on free
//   loopback ports and stopped afterwards.
//
// Another entry point (say, the Lambda started by this harness) is one more
// entry in the list returned by e2eTargets(): a name and a start() that
// resolves to { endpoint, stop }.

import { startDynamoDbLocal, startPaymentServer } from "./processes.mjs";

/** payment-server against a fresh DynamoDB Local. */
export const localServerTarget = {
  name: "payment-server",
  async start() {
    const dynamo = await startDynamoDbLocal();
    try {
      const server = await startPaymentServer(dynamo.url);
      return {
        endpoint: server.endpoint,
        stop: async () => {
          await server.stop();
          await dynamo.stop();
        },
      };
    } catch (err) {
      await dynamo.stop();
      throw err;
    }
  },
};

/** An endpoint someone else runs. */
export function externalTarget(endpoint, name = "external") {
  return { name: `${name} ${endpoint}`, start: async () => ({ endpoint, stop: async () => {} }) };
}

export function e2eTargets() {
  const endpoint = process.env.PAYMENT_E2E_ENDPOINT?.trim();
  if (endpoint) return [externalTarget(endpoint)];
  return [localServerTarget];
}
