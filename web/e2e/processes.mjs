// Starting and stopping the processes the end-to-end tests need: DynamoDB
// Local, payment-server and the Lambda function under `cargo lambda watch`,
// each on a free loopback port, in its own process group, with its output in
// test-results/logs/. Every process started here is stopped by the stop() it
// comes with; as a last resort its whole group is killed when this Node
// process exits or is told to stop (SIGINT, SIGTERM, SIGHUP).

import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { getAccountBalance } from "./grpc-web.mjs";

export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = path.resolve(WEB_DIR, "..");
export const RESULTS_DIR = path.join(WEB_DIR, "test-results");
const LOG_DIR = path.join(RESULTS_DIR, "logs");

/** Ids of the process groups started here that may still have members. */
const running = new Set();

/** Sends `signal` to process group `pgid`; false when the group has no process left. */
function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

function killAll() {
  for (const pgid of running) signalGroup(pgid, "SIGKILL");
}
process.on("exit", killAll);
for (const [signal, number] of [["SIGINT", 2], ["SIGTERM", 15], ["SIGHUP", 1]]) {
  process.once(signal, () => {
    console.error(`e2e: ${signal}: killing ${running.size} process group(s)`);
    killAll();
    process.exit(128 + number);
  });
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export function tail(file, lines = 30) {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Starts `command` in its own process group with its output in
 * test-results/logs/<name>.log, and waits until 127.0.0.1:<port> accepts
 * connections (or, given `ready`, until `await ready()` is true). Returns
 * { name, pid, port, logFile, stop, exited }, where exited() is null while
 * the group's leader runs.
 */
export async function startProcess({ name, command, args = [], env = {}, cwd = REPO_DIR, port, ready, timeoutMs = 90_000 }) {
  mkdirSync(LOG_DIR, { recursive: true });
  const logFile = path.join(LOG_DIR, `${name}.log`);
  const log = createWriteStream(logFile);
  await new Promise((resolve) => log.once("open", resolve));
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", log, log],
    detached: true,
  });
  const pgid = child.pid;
  if (pgid) running.add(pgid);
  let exited = null;
  const exit = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    child.once("error", (err) => {
      exited = { error: err.message };
      resolve(exited);
    });
  });

  /** Stops the whole group (children too, even if the leader is gone): SIGTERM, then SIGKILL after 10 s. */
  let stopped;
  const stop = () =>
    (stopped ??= (async () => {
      if (pgid && signalGroup(pgid, "SIGTERM")) {
        const termDeadline = Date.now() + 10_000;
        while (signalGroup(pgid, 0) && Date.now() < termDeadline) await sleep(100);
        if (signalGroup(pgid, "SIGKILL")) {
          const killDeadline = Date.now() + 5_000;
          while (signalGroup(pgid, 0) && Date.now() < killDeadline) await sleep(100);
        }
      }
      await Promise.race([exit, sleep(5_000)]);
      running.delete(pgid);
      log.end();
    })());

  // Ready once 127.0.0.1:<port> accepts connections, or once ready() says so.
  const isReady = ready ?? (() => canConnect(port));
  const what = ready ? "become ready" : `listen on 127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  while (!(await isReady())) {
    if (exited) {
      await stop();
      throw new Error(`${name} exited before it was ready (${JSON.stringify(exited)}); log ${logFile}:\n${tail(logFile)}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not ${what} within ${timeoutMs} ms; log ${logFile}:\n${tail(logFile)}`);
    }
    await sleep(200);
  }
  return { name, pid: child.pid, port, logFile, stop, exited: () => exited };
}

/** DynamoDB Local in memory (scripts/dynamodb-local.sh; run scripts/setup.sh first). */
export async function startDynamoDbLocal() {
  const port = await freePort();
  const proc = await startProcess({
    name: "dynamodb-local",
    command: path.join(REPO_DIR, "scripts", "dynamodb-local.sh"),
    args: [String(port)],
    port,
  });
  return { ...proc, url: `http://127.0.0.1:${port}` };
}

/** The payment-server binary: PAYMENT_SERVER_BIN, else target/debug/payment-server. */
export function serverBinary() {
  return process.env.PAYMENT_SERVER_BIN || path.join(REPO_DIR, "target", "debug", "payment-server");
}

/** The payment-client binary: PAYMENT_CLIENT_BIN, else target/debug/payment-client. */
export function clientBinary() {
  return process.env.PAYMENT_CLIENT_BIN || path.join(REPO_DIR, "target", "debug", "payment-client");
}

/** The DynamoDB settings every process here gets: DynamoDB Local at `dynamoUrl`, `tables`. */
function ledgerEnv(dynamoUrl, tables) {
  return {
    AWS_ENDPOINT_URL_DYNAMODB: dynamoUrl,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    PAYMENT_ACCOUNTS_TABLE: tables.accounts,
    PAYMENT_LEDGER_TABLE: tables.ledger,
  };
}

/** Table names unique to this run and `label`. */
export function uniqueTables(label) {
  const run = `web-e2e-${Date.now().toString(36)}-${process.pid}-${label}`;
  return { accounts: `${run}-accounts`, ledger: `${run}-ledger` };
}

/**
 * payment-server on a free loopback port against DynamoDB Local at
 * `dynamoUrl`, creating `tables` if missing, verifying callers with the dev
 * `secret`. Every caller must send a token signed with it.
 */
export async function startPaymentServer({ dynamoUrl, tables, secret, name = "payment-server" }) {
  const port = await freePort();
  const proc = await startProcess({
    name,
    command: serverBinary(),
    args: ["--create-tables"],
    port,
    env: {
      ...ledgerEnv(dynamoUrl, tables),
      PAYMENT_LISTEN: `127.0.0.1:${port}`,
      PAYMENT_DEV_JWT_SECRET: secret,
      PAYMENT_CORS_ORIGINS: "*",
      RUST_LOG: process.env.RUST_LOG || "info",
    },
  });
  return { ...proc, endpoint: `http://127.0.0.1:${port}` };
}

/** Creates `tables` on DynamoDB Local: payment-server --create-tables, stopped once it listens. */
export async function createTables({ dynamoUrl, tables, secret }) {
  const server = await startPaymentServer({ dynamoUrl, tables, secret, name: "create-tables" });
  await server.stop();
}

/** The folder holding cargo-lambda (scripts/setup-serverless.sh installs it). */
export const CARGO_LAMBDA_DIR = path.join(REPO_DIR, ".tools", "venv", "bin");

/** How long `cargo lambda watch` may take to build and serve the function (it may wait for cargo's lock). */
const LAMBDA_START_TIMEOUT_MS = Number(process.env.PAYMENT_E2E_LAMBDA_START_TIMEOUT_MS) || 600_000;

/**
 * The function binary payment-lambda under `cargo lambda watch` on a free
 * loopback port, against `tables` (which must exist) on DynamoDB Local at
 * `dynamoUrl`, verifying callers with the dev `secret`. The function answers
 * CORS preflights itself (--disable-cors turns off cargo lambda's own CORS).
 *
 * Ready once a GetAccountBalance call with `probeToken` (an admin's) is
 * answered by the function: NOT_FOUND for a made-up account.
 */
export async function startLambdaWatch({ dynamoUrl, tables, secret, probeToken }) {
  if (!existsSync(path.join(CARGO_LAMBDA_DIR, "cargo-lambda"))) {
    throw new Error(`cargo-lambda is not installed in ${CARGO_LAMBDA_DIR}: run scripts/setup-serverless.sh`);
  }
  const port = await freePort();
  const envVars = Object.entries({
    ...ledgerEnv(dynamoUrl, tables),
    PAYMENT_DEV_JWT_SECRET: secret,
    PAYMENT_CORS_ORIGINS: "*",
    RUST_LOG: process.env.RUST_LOG || "info",
  })
    .map(([key, value]) => {
      if (/[,=]/.test(value)) throw new Error(`${key}=${value}: --env-vars cannot carry , or = in a value`);
      return `${key}=${value}`;
    })
    .join(",");
  const started = Date.now();
  const proc = await startProcess({
    name: "payment-lambda",
    command: "cargo",
    args: [
      "lambda", "watch",
      "--invoke-address", "127.0.0.1",
      "--invoke-port", String(port),
      "--ignore-changes",
      "--disable-cors",
      "--bin", "payment-lambda",
      "--env-vars", envVars,
    ],
    env: { PATH: `${CARGO_LAMBDA_DIR}:${process.env.PATH ?? ""}` },
    port,
    timeoutMs: LAMBDA_START_TIMEOUT_MS,
  });
  const endpoint = `http://127.0.0.1:${port}/lambda-url/payment-lambda`;
  const deadline = started + LAMBDA_START_TIMEOUT_MS;
  let last = "no answer yet";
  try {
    for (;;) {
      if (proc.exited()) throw new Error(`cargo lambda watch exited (${JSON.stringify(proc.exited())})`);
      try {
        const answer = await getAccountBalance(endpoint, `readiness-probe-${process.pid}`, {
          token: probeToken,
          timeoutMs: Math.max(1_000, Math.min(60_000, deadline - Date.now())),
        });
        if (answer.codeName === "NOT_FOUND") break;
        last = JSON.stringify(answer);
        // Any other gRPC answer comes from the function itself, so waiting
        // longer will not change it (a wrong secret, say): give up now.
        // UNAVAILABLE may be DynamoDB Local not answering yet.
        if (answer.code !== undefined && answer.codeName !== "UNAVAILABLE") {
          throw new Error(`the function answered the readiness probe with ${last}`);
        }
      } catch (err) {
        if (err.message?.startsWith("the function answered")) throw err;
        last = String(err.cause ?? err);
      }
      if (Date.now() > deadline) {
        throw new Error(`not serving within ${LAMBDA_START_TIMEOUT_MS} ms; last answer: ${last}`);
      }
      await sleep(500);
    }
  } catch (err) {
    await proc.stop();
    throw new Error(`payment-lambda under cargo lambda watch: ${err.message}; log ${proc.logFile}:\n${tail(proc.logFile)}`);
  }
  return { ...proc, endpoint, startedInMs: Date.now() - started };
}
