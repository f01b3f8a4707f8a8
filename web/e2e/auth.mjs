// Tokens for the end-to-end tests.
//
// PAYMENT_E2E_AUTH=1 says the service under test requires tokens. Then
// tokenFor(sub) mints one with `payment-client token --sub SUB [--admin]`
// (the dev secret comes from the environment, as for the server), unless
// PAYMENT_E2E_TOKEN_<SUB> (upper case, non-alphanumerics as _) holds one.

import { execFileSync } from "node:child_process";
import { clientBinary } from "./processes.mjs";

export const authRequired = ["1", "true", "yes"].includes((process.env.PAYMENT_E2E_AUTH ?? "").toLowerCase());

export function tokenFor(sub, { admin = false } = {}) {
  const preset = process.env[`PAYMENT_E2E_TOKEN_${sub.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`];
  if (preset) return preset.trim();
  const args = ["token", "--sub", sub];
  if (admin) args.push("--admin");
  return execFileSync(clientBinary(), args, { encoding: "utf8" }).trim();
}

/**
 * A JWT-shaped token that no server accepts (its signature is made up); for
 * checking what the page shows and sends, not for authenticating.
 */
export function unsignedToken(payload) {
  const b64url = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(payload)}.${Buffer.from("not-a-signature").toString("base64url")}`;
}
