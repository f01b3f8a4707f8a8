// Starting and stopping the processes the end-to-end tests need: DynamoDB
// Local and payment-server, each on a free loopback port, with their output
// in test-results/logs/. Every process started here is stopped by stopAll()
// (and, as a last resort, killed when this Node process exits).

import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = path.resolve(WEB_DIR, "..");
export const RESULTS_DIR = path.join(WEB_DIR, "test-results");
const LOG_DIR = path.join(RESULTS_DIR, "logs");

/** Process groups started here that are still running. */
const running = new Set();

process.on("exit", () => {
  for (const child of running) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

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

function tail(file, lines = 30) {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Starts `command` in its own process group with its output in
 * test-results/logs/<name>.log, and waits until 127.0.0.1:<port> accepts
 * connections. Returns { name, pid, stop }.
 */
export async function startProcess({ name, command, args = [], env = {}, cwd = REPO_DIR, port, timeoutMs = 90_000 }) {
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
  running.add(child);
  let exited = null;
  const exit = new Promise((resolve) =>
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      running.delete(child);
      resolve(exited);
    }),
  );
  child.once("error", (err) => {
    exited = { error: err };
    running.delete(child);
  });

  const stop = async () => {
    if (exited) return;
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      return;
    }
    const done = await Promise.race([exit, sleep(10_000).then(() => null)]);
    if (!done) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
      await exit;
    }
    log.end();
  };

  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect(port))) {
    if (exited) {
      throw new Error(`${name} exited before listening (${JSON.stringify(exited)}); log ${logFile}:\n${tail(logFile)}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms; log ${logFile}:\n${tail(logFile)}`);
    }
    await sleep(200);
  }
  return { name, pid: child.pid, port, logFile, stop };
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

/**
 * payment-server on a free loopback port against DynamoDB Local at
 * `dynamoUrl`, with tables unique to this run. Any other setting (an auth
 * secret, say) comes from this process's environment.
 */
export async function startPaymentServer(dynamoUrl) {
  const port = await freePort();
  const run = `web-e2e-${Date.now().toString(36)}-${process.pid}`;
  const proc = await startProcess({
    name: "payment-server",
    command: serverBinary(),
    args: ["--create-tables"],
    port,
    env: {
      AWS_ENDPOINT_URL_DYNAMODB: dynamoUrl,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      PAYMENT_LISTEN: `127.0.0.1:${port}`,
      PAYMENT_ACCOUNTS_TABLE: `${run}-accounts`,
      PAYMENT_LEDGER_TABLE: `${run}-ledger`,
      RUST_LOG: process.env.RUST_LOG || "info",
    },
  });
  return { ...proc, endpoint: `http://127.0.0.1:${port}` };
}
