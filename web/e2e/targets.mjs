// The entry points of the service the page is tested against. Each target
// has a name (shown in the test report) and a start() that resolves to
// { endpoint, stop, tokenFor(sub, { admin }) }. The service always requires
// a token.
//
// - PAYMENT_E2E_ENDPOINT set: one already running endpoint, used as is. It
//   may carry a path prefix, e.g. a Lambda under `cargo lambda watch`:
//   PAYMENT_E2E_ENDPOINT=http://127.0.0.1:9000/lambda-url/payment-lambda.
//   Tokens come from PAYMENT_DEV_JWT_SECRET or PAYMENT_E2E_TOKEN_<SUB>.
// - otherwise, both entry points, each started here on free loopback ports
//   with a fresh random dev secret and fresh tables on one DynamoDB Local
//   (started on first use, stopped by stopSharedServices()):
//     payment-server                      the standalone server
//     payment-lambda (cargo lambda watch) the Lambda function binary
//   and the stack as deployed on the local AWS emulator (cloud-target.mjs):
//     cloud                               scripts/cloud.sh: template.yaml by
//                                         `sam deploy` on ministack, called
//                                         through its API Gateway (JWT
//                                         authorizer, CORS) with tokens from
//                                         its Cognito
//   PAYMENT_E2E_TARGETS=payment-server,cloud (any of the tags) runs only those.
//
// A target's start() may also resolve to `site` (the page served from the
// origin it was deployed for), `subjectOf(sub)` (the subject the service sees
// for a name given to tokenFor, when it is not the name) and `refusals`
// ({ noToken, badToken }, each { code, error }: what the page shows when a
// call is refused for want of a valid token, when not UNAUTHENTICATED with
// the service's own words).

import { externalTokenFor, mintToken, newDevSecret } from "./auth.mjs";
import { cloudTarget } from "./cloud-target.mjs";
import { createTables, startDynamoDbLocal, startLambdaWatch, startPaymentServer, uniqueTables } from "./processes.mjs";

let dynamo;

/** The DynamoDB Local all local targets share, started on first use. */
function sharedDynamoDb() {
  dynamo ??= startDynamoDbLocal();
  return dynamo;
}

/** Stops what targets share (DynamoDB Local), if it was started. */
export async function stopSharedServices() {
  const started = dynamo;
  dynamo = undefined;
  if (started) await (await started.catch(() => undefined))?.stop();
}

/** The standalone payment-server, on tables of its own. */
export const localServerTarget = {
  name: "payment-server",
  tag: "payment-server",
  startTimeoutMs: 180_000,
  async start() {
    const ddb = await sharedDynamoDb();
    const secret = newDevSecret();
    const server = await startPaymentServer({ dynamoUrl: ddb.url, tables: uniqueTables("server"), secret });
    return {
      endpoint: server.endpoint,
      tokenFor: (sub, options) => mintToken(secret, sub, options),
      stop: () => server.stop(),
    };
  },
};

/** The Lambda function binary under `cargo lambda watch`, on tables of its own. */
export const lambdaWatchTarget = {
  name: "payment-lambda (cargo lambda watch)",
  tag: "payment-lambda",
  // Building the function may first wait for cargo's lock.
  startTimeoutMs: (Number(process.env.PAYMENT_E2E_LAMBDA_START_TIMEOUT_MS) || 600_000) + 120_000,
  async start() {
    const ddb = await sharedDynamoDb();
    const secret = newDevSecret();
    const tables = uniqueTables("lambda");
    await createTables({ dynamoUrl: ddb.url, tables, secret });
    const lambda = await startLambdaWatch({
      dynamoUrl: ddb.url,
      tables,
      secret,
      probeToken: mintToken(secret, "e2e-readiness", { admin: true }),
    });
    console.log(`# payment-lambda served by cargo lambda watch at ${lambda.endpoint} after ${lambda.startedInMs} ms`);
    return {
      endpoint: lambda.endpoint,
      tokenFor: (sub, options) => mintToken(secret, sub, options),
      stop: () => lambda.stop(),
    };
  },
};

/** An endpoint someone else runs. */
export function externalTarget(endpoint, name = "external") {
  return {
    name: `${name} ${endpoint}`,
    tag: name,
    startTimeoutMs: 30_000,
    start: async () => ({ endpoint, tokenFor: externalTokenFor, stop: async () => {} }),
  };
}

const LOCAL_TARGETS = [localServerTarget, lambdaWatchTarget, cloudTarget];

export function e2eTargets() {
  const endpoint = process.env.PAYMENT_E2E_ENDPOINT?.trim();
  if (endpoint) return [externalTarget(endpoint)];
  const wanted = (process.env.PAYMENT_E2E_TARGETS ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
  if (wanted.length === 0) return LOCAL_TARGETS;
  const chosen = LOCAL_TARGETS.filter((t) => wanted.includes(t.tag));
  if (chosen.length !== wanted.length) {
    throw new Error(`PAYMENT_E2E_TARGETS=${wanted.join(",")}: known targets are ${LOCAL_TARGETS.map((t) => t.tag).join(", ")}`);
  }
  return chosen;
}
