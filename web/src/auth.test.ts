import type { UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { bearerAuth, normalizeToken, readToken, TokenError } from "./auth.js";

/** base64url without padding, of the UTF-8 bytes of `text`. */
function b64url(text: string): string {
  const binary = String.fromCharCode(...new TextEncoder().encode(text));
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** An unsigned JWT-shaped token with `payload` (the signature is not checked here). */
function fakeJwt(payload: object): string {
  return `${b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))}.${b64url(JSON.stringify(payload))}.c2lnbmF0dXJl`;
}

describe("readToken", () => {
  it("reads the subject, admin flag and expiry", () => {
    const token = fakeJwt({ sub: "alice", scope: "payments/admin", exp: 2_000_000_000 });
    const info = readToken(token);
    expect(info).toEqual({ token, subject: "alice", admin: true, expiresAt: new Date(2_000_000_000_000) });
  });

  it("accepts a pasted 'Bearer ' prefix, spaces and line breaks", () => {
    const token = fakeJwt({ sub: "bob" });
    expect(normalizeToken(`  Bearer ${token.slice(0, 10)}\n${token.slice(10)} \n`)).toBe(token);
    expect(readToken(`Bearer ${token}`)).toMatchObject({ token, subject: "bob", admin: false });
  });

  it("decodes UTF-8 subjects and base64url characters", () => {
    expect(readToken(fakeJwt({ sub: "zoë?>>~" })).subject).toBe("zoë?>>~");
  });

  it("shows admin rights only for the scope the service grants them for (payments/admin)", () => {
    // The scope payment-client token --admin puts in, as the service checks it.
    expect(readToken(fakeJwt({ sub: "a", scope: "payments/admin" })).admin).toBe(true);
    expect(readToken(fakeJwt({ sub: "a", scope: "payments/read  payments/admin" })).admin).toBe(true);
    expect(readToken(fakeJwt({ sub: "a", scope: "openid\tpayments/admin" })).admin).toBe(true);
    expect(readToken(fakeJwt({ sub: "a", scope: "payments/read" })).admin).toBe(false);
    expect(readToken(fakeJwt({ sub: "a", scope: "billing/admin" })).admin).toBe(false);
    expect(readToken(fakeJwt({ sub: "a", scope: "payments/admins" })).admin).toBe(false);
    // Claims the service grants nothing for are not shown as admin rights.
    expect(readToken(fakeJwt({ sub: "a", scope: "admin" })).admin).toBe(false);
    expect(readToken(fakeJwt({ sub: "a", scope: "read admin" })).admin).toBe(false);
    expect(readToken(fakeJwt({ sub: "a", roles: ["admin"] })).admin).toBe(false);
    expect(readToken(fakeJwt({ sub: "a", admin: true })).admin).toBe(false);
    expect(readToken(fakeJwt({ sub: "a", admin: "yes" })).admin).toBe(false);
    expect(readToken(fakeJwt({ sub: "a", scope: ["payments/admin"] })).admin).toBe(false);
  });

  it.each([
    ["", /not a JWT/],
    ["abc", /not a JWT/],
    ["a.b", /not a JWT/],
    ["a.b.c.d", /not a JWT/],
    ["a.!!.c", /not a JWT/],
    ["eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", /not readable JSON/],
    [`x.${b64url("[1]")}.y`, /not a JSON object/],
    [fakeJwt({ name: "no subject" }), /no subject/],
    [fakeJwt({ sub: 42 }), /no subject/],
  ])("rejects %j", (text, message) => {
    expect(() => readToken(text)).toThrow(TokenError);
    expect(() => readToken(text)).toThrow(message);
  });
});

describe("bearerAuth", () => {
  async function headersSent(token: string | undefined): Promise<Headers> {
    let seen: Headers | undefined;
    const next = async (req: UnaryRequest) => {
      seen = req.header;
      return {} as UnaryResponse;
    };
    const req = { header: new Headers({ authorization: "Bearer stale" }) } as UnaryRequest;
    await bearerAuth(() => token)(next as never)(req);
    return seen!;
  }

  it("sends the token as a bearer authorization header", async () => {
    expect((await headersSent("abc.def.ghi")).get("authorization")).toBe("Bearer abc.def.ghi");
  });

  it("sends no authorization header without a token", async () => {
    expect((await headersSent(undefined)).has("authorization")).toBe(false);
    expect((await headersSent("")).has("authorization")).toBe(false);
  });
});
