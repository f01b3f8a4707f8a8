// The bearer token a person pastes to sign in, what it says about them, and
// the interceptor that sends it with every call.
//
// The browser does not verify the token: it only reads the payload to show
// who it names. The service verifies it on every call.

import type { Interceptor } from "@connectrpc/connect";

/** What the page shows about a pasted token. */
export interface TokenInfo {
  /** The token itself, without any "Bearer " prefix. */
  token: string;
  /** The JWT subject (the identity accounts are owned by). */
  subject: string;
  /** True when the payload carries the admin scope the service grants admin rights for. */
  admin: boolean;
  /** Expiry from the "exp" claim, if any. */
  expiresAt?: Date;
}

/** A pasted text that is not a JWT whose payload can be read. */
export class TokenError extends Error {
  override name = "TokenError";
}

/** Decodes base64url (with or without padding) into text, as UTF-8. */
function base64UrlDecode(segment: string): string {
  const base64 = segment.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

/** Removes whitespace and a leading "Bearer " that came with the paste. */
export function normalizeToken(pasted: string): string {
  return pasted.trim().replace(/^bearer\s+/i, "").replace(/\s+/g, "");
}

/**
 * Reads a JWT's payload without verifying it. Throws TokenError when the
 * text is not three base64url segments with a JSON object in the middle
 * that names a subject.
 */
export function readToken(pasted: string): TokenInfo {
  const token = normalizeToken(pasted);
  const parts = token.split(".");
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p)) || !parts[1]) {
    throw new TokenError("this is not a JWT: expected three base64url parts separated by dots");
  }
  let payload: unknown;
  try {
    payload = JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    throw new TokenError("the token's payload is not readable JSON");
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new TokenError("the token's payload is not a JSON object");
  }
  const claims = payload as Record<string, unknown>;
  if (typeof claims.sub !== "string" || claims.sub === "") {
    throw new TokenError('the token names no subject (no "sub" claim)');
  }
  const info: TokenInfo = { token, subject: claims.sub, admin: isAdmin(claims) };
  if (typeof claims.exp === "number" && Number.isFinite(claims.exp)) {
    info.expiresAt = new Date(claims.exp * 1000);
  }
  return info;
}

/** The scope that makes a caller an admin, as the service checks it (src/auth: ADMIN_SCOPE). */
export const ADMIN_SCOPE = "payments/admin";

/**
 * The service's rule, and only it: ADMIN_SCOPE among the space-separated
 * "scope" claim. Other claims ("admin": true, "roles", a plain "admin"
 * scope) grant nothing there, so the page does not show them as admin
 * rights. Only for showing: the service decides.
 */
function isAdmin(claims: Record<string, unknown>): boolean {
  return typeof claims.scope === "string" && claims.scope.split(/\s+/).includes(ADMIN_SCOPE);
}

/**
 * Adds `authorization: Bearer <token>` to every call while `currentToken`
 * returns a token, and no authorization header at all while it returns
 * nothing.
 */
export function bearerAuth(currentToken: () => string | undefined): Interceptor {
  return (next) => async (req) => {
    const token = currentToken();
    if (token) {
      req.header.set("authorization", `Bearer ${token}`);
    } else {
      req.header.delete("authorization");
    }
    return await next(req);
  };
}
