// The "cloud" target: the stack as deployed on the local AWS emulator
// (ministack), i.e. what `make cloud` (scripts/cloud.sh) brings up:
// template.yaml deployed with `sam deploy`, the HTTP API with its JWT
// authorizer and CORS, the emulated Cognito, the function running as
// deployed (PAYMENT_AUTH_MODE=apigateway) on the emulator's DynamoDB.
//
// - scripts/cloud.sh runs in its own process group, on a free port of
//   127.0.0.1 (PAYMENT_CLOUD_PORT=0), in .data/cloud-web-e2e/, with the
//   debug payment-lambda that scripts/web-e2e.sh has just built (no release
//   build: it would add minutes to every run). Ready once it has written the
//   deployed stack's facts to PAYMENT_CLOUD_STATE.
// - The page is served by this target, before the deploy, so that its origin
//   is known to the deploy: it is the API's only AllowedOrigins (CORS) and the
//   web client's callback URL.
// - The endpoint is the same API by path, http://127.0.0.1:<port>/_aws/execute-api/<api-id>
//   (the stack's ApiUrl, http://<api-id>.execute-api.localhost:<port>, needs
//   *.localhost resolved, which Chromium does but Node, where Playwright's
//   route.fetch() runs, does not).
// - Tokens are real ones from the emulated Cognito (scripts/cloud-py.sh): an
//   admin by client credentials (scope payments/admin; its sub is the service
//   client's id), everyone else as a Cognito user `${sub}@example.test`
//   signed in through the Hosted UI's code flow with PKCE. Their subjects are
//   Cognito's, not the names the tests use: subjectOf(name) tells them.
// - The JWT authorizer refuses a missing or foreign token with a bare 401
//   before the function runs, and the emulated gateway puts no CORS headers on
//   it, so the page cannot show the service's own explanation then:
//   `refusals` says what it shows instead.

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { REPO_DIR, WEB_DIR, serverBinary, startProcess } from "./processes.mjs";
import { serveStatic } from "./static-server.mjs";

/** Building nothing (the binaries are built), starting the emulator and `sam deploy`. */
const CLOUD_START_TIMEOUT_MS = Number(process.env.PAYMENT_E2E_CLOUD_START_TIMEOUT_MS) || 600_000;
const CLOUD_DIR = path.join(".data", "cloud-web-e2e");

/** The function binary to deploy: PAYMENT_LAMBDA_BIN, else payment-lambda beside payment-server. */
function lambdaBinary() {
  return process.env.PAYMENT_LAMBDA_BIN || path.join(path.dirname(serverBinary()), "payment-lambda");
}

/** The `sub` claim of a JWT (read without verifying it: our own tokens). */
export function subjectOfToken(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8")).sub;
}

export const cloudTarget = {
  name: "the deployed stack on the local cloud (ministack: sam deploy, HTTP API, JWT authorizer, Cognito)",
  tag: "cloud",
  startTimeoutMs: CLOUD_START_TIMEOUT_MS + 60_000,
  async start() {
    const dir = path.join(REPO_DIR, CLOUD_DIR);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    // Not $CLOUD_DIR/state.json: scripts/cloud.sh copies that one here once the
    // deploy is done, so this file appearing means the stack is up.
    const stateFile = path.join(dir, "web-e2e-state.json");
    const site = await serveStatic(path.join(WEB_DIR, "dist"));
    const origin = new URL(site.url).origin;
    let cloud;
    try {
      const started = Date.now();
      let state;
      cloud = await startProcess({
        name: "cloud",
        command: path.join(REPO_DIR, "scripts", "cloud.sh"),
        env: {
          CLOUD_DIR,
          PAYMENT_CLOUD_PORT: "0",
          PAYMENT_CLOUD_LAMBDA_BIN: lambdaBinary(),
          PAYMENT_CLOUD_ORIGINS: origin,
          PAYMENT_CLOUD_STATE: stateFile,
        },
        ready: async () => {
          try {
            state = JSON.parse(readFileSync(stateFile, "utf8"));
            return true;
          } catch {
            return false;
          }
        },
        timeoutMs: CLOUD_START_TIMEOUT_MS,
      });
      console.log(`# cloud: stack deployed on the local cloud after ${Date.now() - started} ms; API ${state.api_url}`);

      const cloudPy = (...args) => {
        try {
          return execFileSync(path.join(REPO_DIR, "scripts", "cloud-py.sh"), args, {
            cwd: REPO_DIR,
            encoding: "utf8",
            env: { ...process.env, CLOUD_STATE: stateFile, PAYMENT_CLOUD_REDIRECT_URI: origin },
            stdio: ["ignore", "pipe", "pipe"],
            timeout: 60_000,
          }).trim();
        } catch (err) {
          throw new Error(`scripts/cloud-py.sh ${args.join(" ")} failed: ${err.stderr || err.message}`);
        }
      };
      /** One token per name and role for the whole run, so that a name keeps its subject. */
      const tokens = new Map();
      const tokenFor = (sub, { admin = false } = {}) => {
        const key = `${admin ? "admin" : "user"}:${sub}`;
        if (!tokens.has(key)) {
          tokens.set(key, admin ? cloudPy("token", "admin") : cloudPy("token", "user", `${sub}@example.test`));
        }
        return tokens.get(key);
      };
      return {
        // The gateway by path: Playwright's route.fetch() (the lost-response
        // tests) runs in Node, which cannot resolve *.execute-api.localhost.
        endpoint: state.gateway_url,
        site,
        tokenFor,
        /** The subject the service sees for the name given to tokenFor (Cognito's, not the name). */
        subjectOf: (sub) => {
          const token = tokens.get(`admin:${sub}`) ?? tokens.get(`user:${sub}`);
          if (!token) throw new Error(`no token for ${sub} yet`);
          return subjectOfToken(token);
        },
        refusals: {
          // The JWT authorizer refuses a missing, forged or foreign token with
          // a bare 401 before the function runs, and the emulated gateway puts
          // no CORS headers on that 401 (ministack 1.5.33), so the browser may
          // not read it: the page can only say the service cannot be reached.
          // (The function's own 401 explanation is tested on the other targets.)
          noToken: { code: "UNAVAILABLE", error: /^The payment service cannot be reached; .*\(UNAVAILABLE\): network error/ },
          badToken: { code: "UNAVAILABLE", error: /^The payment service cannot be reached; .*\(UNAVAILABLE\): network error/ },
        },
        stop: async () => {
          await cloud.stop();
          await site.close();
        },
      };
    } catch (err) {
      await cloud?.stop();
      await site.close();
      throw new Error(`cloud target: ${err.message}\n(see ${path.join(dir, "ministack.log")}, ${path.join(dir, "sam-deploy.log")})`);
    }
  },
};
