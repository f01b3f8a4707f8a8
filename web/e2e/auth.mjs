// Tokens for the end-to-end tests. The service always requires them.
//
// A service started here gets a random development secret, new for every
// run (newDevSecret); tokens are minted for it with `payment-client token
// --sub SUB [--admin]`, as a person would mint one to paste into the page.
// For an endpoint someone else runs (PAYMENT_E2E_ENDPOINT), tokens are
// minted with the PAYMENT_DEV_JWT_SECRET of this environment, unless
// PAYMENT_E2E_TOKEN_<SUB> (upper case, non-alphanumerics as _) holds one.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { clientBinary } from "./processes.mjs";

/** A fresh HS256 development secret: 32 random bytes as 64 hex characters. */
export function newDevSecret() {
  return randomBytes(32).toString("hex");
}

/** Mints a token for `sub` signed with `secret`, with `payment-client token`. */
export function mintToken(secret, sub, { admin = false, ttl = "1h" } = {}) {
  const args = ["token", "--sub", sub, "--ttl", ttl];
  if (admin) args.push("--admin");
  try {
    return execFileSync(clientBinary(), args, {
      encoding: "utf8",
      env: { ...process.env, PAYMENT_DEV_JWT_SECRET: secret },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    }).trim();
  } catch (err) {
    throw new Error(`${clientBinary()} ${args.join(" ")} failed: ${err.stderr || err.message}`);
  }
}

/** A token for an endpoint someone else runs: preset in the environment, or minted with its secret. */
export function externalTokenFor(sub, options = {}) {
  const preset = process.env[`PAYMENT_E2E_TOKEN_${sub.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`];
  if (preset) return preset.trim();
  const secret = process.env.PAYMENT_DEV_JWT_SECRET;
  if (!secret) {
    throw new Error(
      `no token for ${sub}: set PAYMENT_DEV_JWT_SECRET to the endpoint's dev secret, or PAYMENT_E2E_TOKEN_${sub.toUpperCase()}`,
    );
  }
  return mintToken(secret, sub, options);
}

/**
 * A JWT-shaped token that no server accepts (its signature is made up); for
 * checking what the page shows and sends, and that the service refuses it.
 */
export function unsignedToken(payload) {
  const b64url = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(payload)}.${Buffer.from("not-a-signature").toString("base64url")}`;
}
