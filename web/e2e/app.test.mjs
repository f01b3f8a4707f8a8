// End-to-end tests of the web app: the built page (dist/) in headless
// Chromium, calling a real payment service over gRPC-Web, signed in with
// bearer tokens (the service always requires one). Every test runs against
// each entry point of the service (targets.mjs): the standalone
// payment-server and the Lambda function under `cargo lambda watch`, each
// with a fresh random dev secret and its own tables on one DynamoDB Local.
//
//   npm run build && npm run e2e      (scripts/web-e2e.sh does both, and more)
//
// Environment:
//   PAYMENT_E2E_TARGETS=payment-server|payment-lambda|cloud   run only these targets
//   PAYMENT_E2E_ENDPOINT        test against this running endpoint (may have a
//                               path prefix) instead; tokens are minted with
//                               its PAYMENT_DEV_JWT_SECRET, or taken from
//                               PAYMENT_E2E_TOKEN_ALICE / _BOB
//   PAYMENT_E2E_DOCS_SCREENSHOT=1  also write ../docs/web-app.png (from the
//                               first target)
//   PAYMENT_SERVER_BIN, PAYMENT_CLIENT_BIN, CHROMIUM_PATH  override binaries
//
// Screenshots (one per test, and web-app-<target>.png per target) and the
// processes' logs go to test-results/.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  accountCard,
  accountRows,
  authorize,
  capture,
  fieldError,
  fillPayment,
  followLink,
  historyEntries,
  historyRows,
  holdView,
  listAccounts,
  lookUp,
  moreAccounts,
  pickAccount,
  refundEntry,
  submitHold,
  voidHold,
  waitForAccount,
  loadHistory,
  loadMore,
  openAccount,
  openApp,
  pay,
  payKey,
  refreshBalance,
  showBalance,
  signedInSubject,
  signIn,
  signOut,
  submitPayment,
  useEndpoint,
  waitForText,
} from "./app-page.mjs";
import { mintToken, newDevSecret, unsignedToken } from "./auth.mjs";
import { launchBrowser } from "./browser.mjs";
import { authorizeRequest, historyRequest, listAccountsRequest, paymentRequest, recordCalls, responseFrames } from "./grpc-web.mjs";
import { clientBinary, REPO_DIR, RESULTS_DIR, WEB_DIR } from "./processes.mjs";
import { startPrefixProxy } from "./prefix-proxy.mjs";
import { serveStatic } from "./static-server.mjs";
import { e2eTargets, stopSharedServices } from "./targets.mjs";

const docsScreenshot = process.env.PAYMENT_E2E_DOCS_SCREENSHOT === "1";
const execFileAsync = promisify(execFile);
const TEST_TIMEOUT_MS = 90_000;

/** What the page says for a call without a token, and for a token the service does not accept. */
const NOT_SIGNED_IN = "You are not signed in, or your token is invalid or has expired; paste a fresh token (UNAUTHENTICATED)";
const NO_TOKEN = `${NOT_SIGNED_IN}: Bearer realm="payments": this call needs an 'authorization: Bearer <JWT>' header`;
const BAD_TOKEN = `${NOT_SIGNED_IN}: Bearer error="invalid_token": the bearer token is malformed, expired or not signed by a trusted key`;
const EXPIRY = "the token expires at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d";

/** "16.21 EUR" in cents. */
function eurCents(text) {
  const [units, cents] = text.replace(/ EUR$/, "").split(".");
  return Number(units) * 100 + Number(cents);
}

/** Cents as "16.21 EUR". */
function formatEur(cents) {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")} EUR`;
}

after(stopSharedServices, { timeout: 60_000 });

let docsWritten = false;

for (const target of e2eTargets()) {
  describe(`web app against ${target.name}`, () => {
    /** Unique per run, so a shared endpoint can be used again and again. */
    const run = Date.now().toString(36).slice(-6);
    const alice = `alice-${run}`;
    const bob = `bob-${run}`;
    const carol = `carol-${run}`;
    const dana = `dana-${run}`;
    const nobody = `nobody-${run}`;
    const erin = `erin-${run}`;
    const frank = `frank-${run}`;
    /** The hold that erin's first test places and frank captures, and its key. */
    let holdId;
    let holdKey;
    const shotPrefix = target.tag.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40);
    let shots = 0;

    let service;
    let site;
    let browser;
    let page;
    const pageErrors = [];
    /** Tokens minted for this target: alice is an admin, bob is not. */
    const tokens = {};

    before(
      async () => {
        mkdirSync(RESULTS_DIR, { recursive: true });
        for (const old of readdirSync(RESULTS_DIR)) {
          if (old.startsWith(`${shotPrefix}-`) || old === `web-app-${shotPrefix}.png`) rmSync(path.join(RESULTS_DIR, old));
        }
        service = await target.start();
        tokens.alice = service.tokenFor("alice", { admin: true });
        tokens.bob = service.tokenFor("bob");
        site = service.site ?? (await serveStatic(path.join(WEB_DIR, "dist")));
        browser = await launchBrowser();
        page = await browser.context.newPage();
        page.on("pageerror", (err) => pageErrors.push(err));
      },
      { timeout: target.startTimeoutMs + 60_000 },
    );

    after(
      async () => {
        await browser?.close();
        await site?.close();
        await service?.stop();
      },
      { timeout: 60_000 },
    );

    /**
     * A test named with its target (so that a report lists each test per
     * target) that leaves a full-page screenshot in test-results/, pass or fail.
     */
    function step(name, fn, options = {}) {
      test(`${name} [${target.tag}]`, { timeout: TEST_TIMEOUT_MS, ...options }, async (t) => {
        try {
          await fn(t);
        } finally {
          if (page && !options.skip) {
            const n = String(++shots).padStart(2, "0");
            const file = `${shotPrefix}-${n}-${name.replace(/[^A-Za-z0-9]+/g, "-").replace(/-$/, "")}.png`;
            await page.screenshot({ path: path.join(RESULTS_DIR, file), fullPage: true });
          }
        }
      });
    }

    /** The account list as it is now. */
    async function accountsOutcomeNow() {
      return { rows: await accountRows(page), status: (await page.locator("#accounts-status").textContent()) ?? "" };
    }

    /** The subject the service sees for `user`: the name itself, unless the target's tokens carry another (Cognito's). */
    const who = (user) => service.subjectOf?.(user) ?? user;

    /**
     * What the page shows for a call refused for want of a valid token (`kind`:
     * noToken or badToken): UNAUTHENTICATED and `expected`, unless the target
     * says otherwise (targets.mjs: refusals).
     */
    function assertRefused(result, expected, kind) {
      const { code = "UNAUTHENTICATED", error = expected } = service.refusals?.[kind] ?? {};
      assert.equal(result.code, code, JSON.stringify(result));
      if (error instanceof RegExp) assert.match(result.error, error);
      else assert.equal(result.error, error);
    }

    /** Signs in as `user` ("alice", an admin, or "bob") by pasting a token minted by payment-client. */
    async function actAs(user) {
      await signIn(page, tokens[user]);
      assert.equal(await signedInSubject(page), who(user));
    }

    /** Loads `id`'s history, and checks that it came as a gRPC-Web stream: one message per entry, then trailers. */
    async function loadStreamedHistory(id, pageSize) {
      const answered = page.waitForResponse(
        (r) => r.request().method() === "POST" && r.url().endsWith("/payment.v1.PaymentService/GetTransactionHistory"),
        { timeout: 15_000 },
      );
      const shown = await loadHistory(page, id, pageSize);
      const answer = await answered;
      assert.match(answer.headers()["content-type"] ?? "", /^application\/grpc-web(\+proto)?$/);
      const frames = responseFrames(await answer.body());
      assert.deepEqual(
        frames.map((f) => (f.trailer ? "trailers" : "message")),
        [...shown.rows.map(() => "message"), "trailers"],
        "one stream message per history row, then the trailers",
      );
      assert.match(frames.at(-1).data, /grpc-status:\s*0\r\n/);
      return shown;
    }

    step("the page remembers the endpoint it is given", async () => {
      await openApp(page, site.url);
      assert.match(await page.inputValue("#endpoint"), /^https?:\/\//);
      await useEndpoint(page, service.endpoint);
      await page.reload();
      await page.waitForSelector("#endpoint-status:not(:empty)");
      assert.equal(await page.inputValue("#endpoint"), service.endpoint);
      await waitForText(page, "#endpoint-status", new RegExp(`^Calls go to ${service.endpoint}`));
    });

    step("signs in by pasting a token minted by payment-client; without one every call is refused", async () => {
      assert.equal(await waitForText(page, "#signed-in-as", /^Not signed in/), "Not signed in: calls are sent without a token.");
      const anonymous = await showBalance(page, alice);
      assertRefused(anonymous, NO_TOKEN, "noToken");
      const anonymousPayment = await pay(page, { from: alice, to: bob, amount: "1.00" });
      assertRefused(anonymousPayment, NO_TOKEN, "noToken");

      assert.match(await signIn(page, tokens.bob), new RegExp(`^Signed in as ${who("bob")}; ${EXPIRY}$`));
      assert.match(await signIn(page, tokens.alice), new RegExp(`^Signed in as ${who("alice")} \\(admin\\); ${EXPIRY}$`));
      // The token is kept for the tab (sessionStorage), so a reload stays signed in.
      await page.reload();
      await page.waitForSelector("#endpoint-status:not(:empty)");
      assert.match(await waitForText(page, "#signed-in-as", /^Signed in as /), new RegExp(`^Signed in as ${who("alice")} \\(admin\\)`));
    });

    step("two users open an account each; only an admin may open one with money in it", async () => {
      await actAs("alice");
      const a = await openAccount(page, { id: alice, name: "Alice", initialBalance: "100.00" });
      assert.equal(a.ok, `Opened account ${alice} (Alice) with 100.00 EUR.`);

      await actAs("bob");
      const rich = await openAccount(page, { id: bob, name: "Bob", initialBalance: "5.00" });
      assert.equal(rich.code, "PERMISSION_DENIED", JSON.stringify(rich));
      assert.match(
        rich.error,
        /^Only an admin may open an account with money in it \(PERMISSION_DENIED\): a positive initial_balance creates money/,
      );
      const b = await openAccount(page, { id: bob, name: "Bob" });
      assert.equal(b.ok, `Opened account ${bob} (Bob) with 0.00 EUR.`);
      const taken = await openAccount(page, { id: alice, name: "Not Alice" });
      assert.equal(taken.code, "ALREADY_EXISTS");
      assert.match(taken.error, /^An account with this id already exists \(ALREADY_EXISTS\): account ".*" already exists$/);

      // Each account belongs to whoever opened it.
      assert.match((await showBalance(page, bob)).details, new RegExp(`^Bob · account ${bob} · owned by ${who("bob")} · opened `));
      await actAs("alice");
      assert.match((await showBalance(page, alice)).details, new RegExp(`^Alice · account ${alice} · owned by ${who("alice")} · opened `));
    });

    step("alice pays bob: both see their balance change and the entry in their streamed history", async () => {
      await actAs("alice");
      const calls = recordCalls(page, "MakePayment");
      const paid = await pay(page, { from: alice, to: bob, amount: "12.34", memo: "Lunch" });
      calls.stop();
      assert.match(paid.ok ?? paid.error, new RegExp(`^Paid 12\\.34 EUR from ${alice} to ${bob} \\(transaction .+\\)\\.$`));
      assert.equal(paid.replayed, false);
      assert.equal(calls.length, 1);
      assert.equal(calls[0].headers.authorization, `Bearer ${tokens.alice}`, "the call carries alice's token");
      const sent = paymentRequest(calls[0].body);
      assert.deepEqual({ ...sent, idempotencyKey: undefined }, {
        idempotencyKey: undefined, senderId: alice, recipientId: bob, amount: 1234n, currency: "EUR", memo: "Lunch",
      });
      assert.match(sent.idempotencyKey, /^[0-9a-f-]{36}$/);

      // alice sees her side.
      assert.equal((await showBalance(page, alice)).ok, "87.66 EUR");
      const aliceHistory = await loadStreamedHistory(alice);
      assert.deepEqual(
        // The memo of the opening entry is the service's to choose.
        aliceHistory.rows.map(({ time, memo, ...row }) => (row.sequence === 1 ? row : { ...row, memo })),
        [
          { sequence: 2, direction: "debit", counterparty: bob, amount: "-12.34 EUR", balanceAfter: "87.66 EUR", memo: "Lunch" },
          { sequence: 1, direction: "credit", counterparty: "(opening balance)", amount: "+100.00 EUR", balanceAfter: "100.00 EUR" },
        ],
      );
      assert.match(aliceHistory.status, /^2 entries of alice-.*newest first\. That is the whole history\.$/);

      // bob signs in and sees his; nothing of alice's is left on the page.
      await actAs("bob");
      assert.deepEqual(await accountCard(page), { balance: undefined, rows: 0, status: "" }, "a new user starts with an empty account card");
      const bobBalance = await showBalance(page, bob);
      assert.equal(bobBalance.ok, "12.34 EUR");
      assert.match(bobBalance.details, /^Bob · account bob-/);
      const bobHistory = await loadStreamedHistory(bob);
      assert.equal(bobHistory.error, undefined);
      assert.deepEqual(
        bobHistory.rows.map(({ time, ...row }) => row),
        [{ sequence: 1, direction: "credit", counterparty: alice, amount: "+12.34 EUR", balanceAfter: "12.34 EUR", memo: "Lunch" }],
      );
      assert.match(bobHistory.rows[0].time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      assert.equal(bobHistory.moreVisible, false);

      // An admin may read every account; the refresh button re-reads the shown one.
      await actAs("alice");
      assert.equal((await showBalance(page, bob)).ok, "12.34 EUR");
      assert.ok((await pay(page, { from: alice, to: bob, amount: "0.66", memo: "Coffee" })).ok);
      assert.equal(await refreshBalance(page), "13.00 EUR");
    });

    step("a double click pays once", async () => {
      await actAs("alice");
      const calls = recordCalls(page, "MakePayment");
      await fillPayment(page, { from: alice, to: bob, amount: "1", memo: "Double click" });
      await page.dblclick("#pay-submit");
      await page.waitForSelector("#pay-submit:not([aria-busy])", { state: "attached" });
      await waitForText(page, "#pay-result", /^Paid 1\.00 EUR/);
      // Two submits in one go (Enter pressed twice, say): still one call.
      await fillPayment(page, { from: alice, to: bob, amount: "1.00", memo: "Double submit" });
      await page.evaluate(() => {
        const form = document.getElementById("pay-form");
        form.requestSubmit();
        form.requestSubmit();
      });
      await page.waitForSelector("#pay-submit:not([aria-busy])", { state: "attached" });
      await waitForText(page, "#pay-result", /^Paid 1\.00 EUR .*/);
      calls.stop();
      assert.equal(calls.length, 2, "one call per payment");
      const keys = calls.map((c) => paymentRequest(c.body).idempotencyKey);
      assert.notEqual(keys[0], keys[1], "a new payment has a new key");
      assert.equal((await showBalance(page, alice)).ok, "85.00 EUR");
    });

    step("a retry after a lost response replays the payment instead of paying twice", async () => {
      await actAs("alice");
      const calls = recordCalls(page, "MakePayment");
      let lost = 0;
      // The first answer gets lost on its way back: the server has paid,
      // the page sees a network error.
      await page.route("**/payment.v1.PaymentService/MakePayment", async (route) => {
        if (route.request().method() !== "POST" || lost > 0) return route.fallback();
        lost++;
        await route.fetch();
        await route.abort("connectionreset");
      });
      const first = await pay(page, { from: alice, to: bob, amount: "2.00", memo: "Flaky network" });
      await page.unroute("**/payment.v1.PaymentService/MakePayment");
      assert.equal(first.code, "UNAVAILABLE", JSON.stringify(first));
      assert.match(first.error, /cannot be reached/);
      const keyAfterFailure = await payKey(page);

      const retry = await submitPayment(page);
      calls.stop();
      assert.equal(retry.replayed, true, JSON.stringify(retry));
      assert.match(retry.ok, /^Replayed: this payment had already been made \(2\.00 EUR from .*\); no money moved again\.$/);
      assert.equal(calls.length, 2);
      const [k1, k2] = calls.map((c) => paymentRequest(c.body).idempotencyKey);
      assert.equal(k1, k2, "the retry reuses the key");
      assert.equal(k1, keyAfterFailure);
      assert.equal((await showBalance(page, alice)).ok, "83.00 EUR");
    });

    step("shows insufficient funds", async () => {
      await actAs("bob");
      const result = await pay(page, { from: bob, to: alice, amount: "1000.00", memo: "Too much" });
      assert.equal(result.code, "FAILED_PRECONDITION", JSON.stringify(result));
      assert.equal(
        result.error,
        `Insufficient funds (FAILED_PRECONDITION): insufficient funds: account "${bob}" has 17.00 EUR available, the payment needs 1000.00 EUR`,
      );
      // The same, from the error's details: the reason, and its amounts in the account's currency.
      assert.equal(result.reason, "INSUFFICIENT_FUNDS");
      assert.equal(result.facts, `INSUFFICIENT_FUNDS: 17.00 EUR available, the payment needs 1000.00 EUR (account ${bob})`);
      assert.equal((await showBalance(page, bob)).ok, "17.00 EUR");
    });

    step("checks amounts before calling", async () => {
      const calls = recordCalls(page, "MakePayment");
      const result = await pay(page, { from: bob, to: alice, amount: "1.234" });
      calls.stop();
      assert.equal(result.code, "INPUT");
      assert.match(result.error, /^Invalid amount \(INPUT\): EUR has 2 decimal places/);
      assert.equal(calls.length, 0);
      // Shown next to the amount, too.
      const note = await fieldError(page, "pay-amount");
      assert.match(note.text, /^EUR has 2 decimal places/);
      assert.equal(note.invalid, true);
    });

    step("loads more history with the page token", async () => {
      await actAs("alice");
      assert.ok((await openAccount(page, { id: carol, name: "Carol", initialBalance: "10" })).ok);
      for (const memo of ["Book club", "Groceries", "Taxi"]) {
        assert.ok((await pay(page, { from: carol, to: alice, amount: "1.50", memo })).ok);
      }
      const calls = recordCalls(page, "GetTransactionHistory");
      const first = await loadStreamedHistory(carol, 2);
      assert.deepEqual(first.rows.map((r) => r.sequence), [4, 3]);
      assert.deepEqual(first.rows.map((r) => r.memo), ["Taxi", "Groceries"]);
      assert.equal(first.moreVisible, true);
      const second = await loadMore(page);
      assert.deepEqual(second.rows.map((r) => r.sequence), [4, 3, 2, 1]);
      assert.deepEqual(second.rows.map((r) => r.balanceAfter), ["5.50 EUR", "7.00 EUR", "8.50 EUR", "10.00 EUR"]);
      assert.equal(second.rows[3].counterparty, "(opening balance)");
      assert.equal(second.moreVisible, false, "no Load more after the oldest entry");
      calls.stop();
      const sent = calls.map((c) => historyRequest(c.body));
      assert.equal(sent.length, 2);
      assert.deepEqual({ ...sent[0] }, { accountId: carol, pageSize: 2, pageToken: "" });
      assert.equal(sent[1].accountId, carol);
      assert.notEqual(sent[1].pageToken, "", "Load more passes the last next_page_token");
    });

    step("one user cannot read or spend another's account: PERMISSION_DENIED, in words", async () => {
      await actAs("alice");
      assert.equal((await showBalance(page, alice)).ok, "87.50 EUR");
      assert.equal((await loadHistory(page, alice, 3)).rows.length, 3);

      await actAs("bob");
      assert.deepEqual(await accountCard(page), { balance: undefined, rows: 0, status: "" }, "alice's account is no longer shown");
      assert.equal((await showBalance(page, bob)).ok, "17.00 EUR", "bob reads his own account");
      const notYours = (id) =>
        `You are not allowed to do this: the account belongs to someone else (PERMISSION_DENIED): ${who("bob")} may not read account "${id}": only its owner or an admin may`;

      // An account that does not exist looks the same to bob, so that ids cannot be probed.
      const unknown = await showBalance(page, nobody);
      assert.equal(unknown.code, "PERMISSION_DENIED", JSON.stringify(unknown));
      assert.equal(unknown.error, notYours(nobody));
      assert.equal((await pay(page, { from: nobody, to: bob, amount: "0.01" })).code, "PERMISSION_DENIED");

      const spend = await pay(page, { from: alice, to: bob, amount: "0.01", memo: "Not mine" });
      assert.equal(spend.code, "PERMISSION_DENIED", JSON.stringify(spend));
      assert.equal(spend.error, `You may only pay from your own accounts (PERMISSION_DENIED): the caller does not own sender account "${alice}"`);
      const read = await showBalance(page, alice);
      assert.equal(read.code, "PERMISSION_DENIED", JSON.stringify(read));
      assert.equal(read.error, notYours(alice));
      const history = await loadHistory(page, alice);
      assert.equal(history.code, "PERMISSION_DENIED", JSON.stringify(history));
      assert.equal(history.error, notYours(alice));
      assert.deepEqual(history.rows, []);
      // (The screenshot of this test shows what bob sees here.)
    });

    step("explains an unknown account to an admin", async () => {
      await actAs("alice");
      assert.equal((await showBalance(page, alice)).ok, "87.50 EUR", "bob's attempt moved no money");
      const balance = await showBalance(page, nobody);
      assert.equal(balance.code, "NOT_FOUND");
      assert.match(balance.error, /^No such account \(NOT_FOUND\): .*"nobody-.*" does not exist$/);
      const history = await loadHistory(page, nobody);
      assert.equal(history.code, "NOT_FOUND");
      assert.deepEqual(history.rows, []);
      const payment = await pay(page, { from: alice, to: nobody, amount: "1.00" });
      assert.equal(payment.error, `The recipient account does not exist (NOT_FOUND): recipient account "${nobody}" does not exist`);
      const fromNobody = await pay(page, { from: nobody, to: alice, amount: "1.00" });
      assert.equal(fromNobody.error, `The sender account does not exist (NOT_FOUND): sender account "${nobody}" does not exist`);
    });

    step("sends the pasted token as a bearer header, none when signed out; refuses tokens it did not sign", async () => {
      await signOut(page);
      let calls = recordCalls(page, "GetAccountBalance");
      const anonymous = await showBalance(page, alice);
      calls.stop();
      assert.equal(calls.length, 1);
      assert.equal(calls[0].headers.authorization, undefined);
      assertRefused(anonymous, NO_TOKEN, "noToken");

      // A token whose signature is made up: the page reads it, the service refuses it.
      const forged = unsignedToken({ sub: "zed", scope: "payments/admin", exp: 4102444800 });
      const said = await signIn(page, `Bearer ${forged}\n`);
      assert.equal(said, "Signed in as zed (admin); the token expires at 2100-01-01 00:00:00");
      calls = recordCalls(page, "GetAccountBalance");
      const refused = await showBalance(page, alice);
      calls.stop();
      assert.equal(calls[0].headers.authorization, `Bearer ${forged}`);
      assertRefused(refused, BAD_TOKEN, "badToken");

      // A well-formed token signed with another secret (another run's, say).
      await signIn(page, mintToken(newDevSecret(), "alice", { admin: true }));
      assertRefused(await showBalance(page, alice), BAD_TOKEN, "badToken");

      await page.fill("#token", "not a token");
      await page.click("#sign-in");
      await waitForText(page, "#sign-in-error", /^Not signed in: this is not a JWT/);
      await waitForText(page, "#signed-in-as", /^Signed in as alice/);
      await signOut(page);
    });

    step("works with an endpoint under a path prefix", async () => {
      // The service seen through a proxy at http://127.0.0.1:PORT/lambda-url/payment-lambda,
      // the URL shape of a Lambda under `cargo lambda watch` (for the Lambda
      // target, one more prefix in front of its own).
      const proxy = await startPrefixProxy(service.endpoint);
      try {
        await useEndpoint(page, `${proxy.endpoint}/`);
        assert.equal(await page.inputValue("#endpoint"), proxy.endpoint, "the trailing slash is dropped");
        await actAs("alice");
        assert.equal((await showBalance(page, carol)).ok, "5.50 EUR");
        const history = await loadHistory(page, carol, 2);
        assert.deepEqual(history.rows.map((r) => r.sequence), [4, 3]);
        const calls = proxy.seen.filter((line) => line.startsWith("POST "));
        // Signing in also lists the signed-in person's accounts, at the same time as the rest.
        const listing = "POST /lambda-url/payment-lambda/payment.v1.PaymentService/ListAccounts";
        assert.ok(calls.includes(listing), JSON.stringify(calls));
        assert.deepEqual(
          calls.filter((line) => line !== listing),
          [
            "POST /lambda-url/payment-lambda/payment.v1.PaymentService/GetAccountBalance",
            "POST /lambda-url/payment-lambda/payment.v1.PaymentService/GetTransactionHistory",
          ],
        );
      } finally {
        await useEndpoint(page, service.endpoint);
        await proxy.close();
      }
    });

    step("a reload after a lost response cannot pay twice: the pending payment's key is kept for the tab", async () => {
      await actAs("alice");
      assert.ok((await openAccount(page, { id: dana, name: "Dana", initialBalance: "10.00" })).ok);
      const calls = recordCalls(page, "MakePayment");
      let lost = 0;
      // The server pays; its answer is lost on the way back.
      await page.route("**/payment.v1.PaymentService/MakePayment", async (route) => {
        if (route.request().method() !== "POST" || lost > 0) return route.fallback();
        lost++;
        await route.fetch();
        await route.abort("connectionreset");
      });
      const payment = { from: dana, to: bob, amount: "3.00", memo: "Lost, then reloaded" };
      const first = await pay(page, payment);
      await page.unroute("**/payment.v1.PaymentService/MakePayment");
      assert.equal(lost, 1);
      assert.equal(first.code, "UNAVAILABLE", JSON.stringify(first));
      const keyBefore = await payKey(page);
      assert.match(keyBefore, /^[0-9a-f-]{36}$/);
      const stored = () => page.evaluate(() => sessionStorage.getItem("payment.pending-keys") ?? "");
      assert.ok((await stored()).includes(keyBefore), "the pending key is in sessionStorage");

      // The person reloads the page and submits the same payment again.
      await page.reload();
      await page.waitForSelector("#endpoint-status:not(:empty)");
      assert.equal(await signedInSubject(page), who("alice"), "still signed in after the reload");
      await fillPayment(page, payment);
      assert.equal(await payKey(page), keyBefore, "the reloaded page shows the kept key for this payment");
      const retry = await submitPayment(page);
      calls.stop();
      assert.equal(retry.replayed, true, JSON.stringify(retry));
      assert.match(retry.ok, /^Replayed: this payment had already been made \(3\.00 EUR from dana-.*\); no money moved again\.$/);
      assert.equal(calls.length, 2, "one call before the reload, one after");
      const [k1, k2] = calls.map((c) => paymentRequest(c.body).idempotencyKey);
      assert.equal(k1, keyBefore);
      assert.equal(k2, keyBefore, "the call after the reload sends the same key");
      assert.ok(!(await stored()).includes(keyBefore), "the settled payment's key is dropped");

      // One payment only: dana paid 3.00 once.
      assert.equal((await showBalance(page, dana)).ok, "7.00 EUR");
      const history = await loadHistory(page, dana);
      assert.deepEqual(
        history.rows.map((r) => [r.sequence, r.direction, r.amount]),
        [
          [2, "debit", "-3.00 EUR"],
          [1, "credit", "+10.00 EUR"],
        ],
      );
      // Another payment has no kept key until it is submitted.
      await fillPayment(page, { ...payment, amount: "0.01" });
      assert.equal(await payKey(page), "(a new one for the next payment)");
    });

    // ------------------------------------------------------------ accounts, holds, refunds, lookups
    // On accounts of their own (erin: alice's, with money; frank: bob's), so
    // that the balances the other tests assert stay as they are.

    step("lists the signed-in person's accounts, page by page, with balance, available and held money", async () => {
      await actAs("alice");
      assert.ok((await openAccount(page, { id: erin, name: "Erin", initialBalance: "50.00" })).ok);
      // The list comes from an index that may lag a just opened account by a moment.
      let listed;
      for (let i = 0; i < 50; i++) {
        listed = await listAccounts(page, 2);
        if (listed.error) break;
        const all = listed.moreVisible ? await moreAccounts(page) : listed;
        if (all.rows.some((r) => r.id === erin)) break;
        await page.waitForTimeout(200);
      }
      const first = await listAccounts(page, 3);
      assert.equal(first.error, undefined, JSON.stringify(first));
      assert.deepEqual(first.rows.map((r) => r.id), [alice, carol, dana], "alice's own accounts, by id, three a page");
      assert.equal(first.moreVisible, true);
      const calls = recordCalls(page, "ListAccounts");
      const all = await moreAccounts(page);
      calls.stop();
      assert.deepEqual(all.rows.map((r) => r.id), [alice, carol, dana, erin], "the next page is added below");
      assert.equal(all.moreVisible, false);
      assert.equal(calls.length, 1);
      assert.notEqual(listAccountsRequest(calls[0].body).pageToken, "", "Load more passes next_page_token");
      assert.equal(listAccountsRequest(calls[0].body).owner, who("alice"), "an admin lists her own accounts unless she asks for every owner's");
      assert.match(all.status, /^4 accounts, by id\. That is all of them\.$/);
      assert.deepEqual(all.rows[3], { id: erin, name: "Erin", balance: "50.00 EUR", available: "50.00 EUR", held: "0.00 EUR" });

      // Picking fills the forms; typing an id still works (the other tests type).
      await pickAccount(page, erin, "from");
      assert.equal(await page.inputValue("#pay-sender"), erin);
      assert.equal(await page.inputValue("#hold-sender"), erin);
      assert.equal(await page.inputValue("#pay-currency"), "EUR");
      await pickAccount(page, carol, "to");
      assert.equal(await page.inputValue("#pay-recipient"), carol);
      assert.equal(await page.inputValue("#hold-recipient"), carol);
      await pickAccount(page, erin, "show");
      await waitForText(page, "#balance", /^50\.00 EUR$/);
      assert.equal(await page.locator("#balance-holds").textContent(), "50.00 EUR available · 0.00 EUR held");
      assert.equal(await page.locator("#my-accounts option").count(), 4, "the id fields suggest the listed accounts");

      // An admin may list every owner's accounts.
      await page.check("#accounts-all");
      await page.waitForSelector("#accounts-load:not([aria-busy])", { state: "attached" });
      const everyone = await accountsOutcomeNow();
      assert.ok(everyone.rows.some((r) => r.id === bob), JSON.stringify(everyone.rows.map((r) => r.id)));
      assert.match(everyone.status, /\(every owner's\)/);
      await page.uncheck("#accounts-all");
      await page.waitForSelector("#accounts-load:not([aria-busy])", { state: "attached" });

      // bob sees only his own.
      await actAs("bob");
      assert.ok((await openAccount(page, { id: frank, name: "Frank" })).ok);
      for (let i = 0; i < 50; i++) {
        if ((await listAccounts(page)).rows.some((r) => r.id === frank)) break;
        await page.waitForTimeout(200);
      }
      const bobs = await listAccounts(page);
      assert.deepEqual(bobs.rows.map((r) => [r.id, r.balance]), [[bob, "20.00 EUR"], [frank, "0.00 EUR"]]);
    });

    step("authorize, then capture part: the hold is available again, the recipient credited", async () => {
      await actAs("alice");
      await listAccounts(page);
      await pickAccount(page, erin, "from");
      const calls = recordCalls(page, "AuthorizePayment");
      const held = await authorize(page, { to: frank, amount: "20.00", expiry: "2h", memo: "Deposit" });
      calls.stop();
      assert.match(held.ok ?? held.error, new RegExp(`^Held 20\\.00 EUR of ${erin} for ${frank} \\(hold .+, key [0-9a-f-]{36}\\) until \\d{4}-`));
      assert.equal(calls.length, 1);
      const sent = authorizeRequest(calls[0].body);
      assert.deepEqual(
        { ...sent, idempotencyKey: undefined },
        { idempotencyKey: undefined, senderId: erin, recipientId: frank, amount: 2000n, currency: "EUR", memo: "Deposit", expiresInSeconds: 7200n },
      );
      assert.equal(sent.idempotencyKey, held.key);
      holdId = held.holdId;
      holdKey = held.key;
      assert.deepEqual(await holdView(page), {
        holdId,
        state: "OPEN",
        text: (await holdView(page)).text,
      });
      assert.match((await holdView(page)).text, new RegExp(`^Hold ${holdId}: OPEN 20\\.00 EUR from ${erin} to ${frank}, expires .* \\("Deposit"\\)$`));
      await waitForAccount(page, erin, { balance: "50.00 EUR", available: "30.00 EUR", held: "20.00 EUR" });

      // frank's owner captures 15.00 of it, from the hold found by its id.
      await actAs("bob");
      assert.equal(await holdView(page), undefined, "alice's hold is not shown to bob");
      const found = await lookUp(page, { id: holdId });
      assert.equal(found.kind, "hold", JSON.stringify(found));
      assert.equal(found.state, "OPEN");
      await page.click("#lookup-manage");
      assert.equal((await holdView(page)).state, "OPEN");
      const tooMuch = await capture(page, "25.00");
      assert.equal(tooMuch.code, "FAILED_PRECONDITION", JSON.stringify(tooMuch));
      assert.equal(tooMuch.facts, "CAPTURE_EXCEEDS_HOLD: the hold is 20.00 EUR, the capture asks for 25.00 EUR");
      assert.equal((await holdView(page)).state, "OPEN", "nothing was captured");
      const captured = await capture(page, "15.00");
      assert.equal(
        captured.ok ?? captured.error,
        `Captured 15.00 EUR from ${erin} to ${frank} (transaction ${holdId}); 5.00 EUR released to ${erin}.`,
      );
      assert.equal((await holdView(page)).state, "CAPTURED");
      assert.equal(await page.isDisabled("#capture-submit"), true, "a captured hold cannot be captured again");
      await waitForAccount(page, frank, { balance: "15.00 EUR", available: "15.00 EUR", held: "0.00 EUR" });
      const franks = await loadHistory(page, frank);
      assert.equal(franks.error, undefined);
      const [entry] = await historyEntries(page);
      assert.deepEqual(
        { ...entry },
        {
          sequence: 1, kind: "capture", direction: "credit", counterparty: erin, amount: "+15.00 EUR", memo: "Deposit",
          transactionId: holdId, refundOf: "", link: `capture of hold ${holdId}`, refundable: true,
        },
      );

      // The sender's held money is back to 0: 15.00 moved, 5.00 released.
      await actAs("alice");
      await listAccounts(page);
      await waitForAccount(page, erin, { balance: "35.00 EUR", available: "35.00 EUR", held: "0.00 EUR" });
    });

    step("authorize (a retry after a lost response places it once), then void", async () => {
      await actAs("alice");
      await listAccounts(page);
      const calls = recordCalls(page, "AuthorizePayment");
      let lost = 0;
      await page.route("**/payment.v1.PaymentService/AuthorizePayment", async (route) => {
        if (route.request().method() !== "POST" || lost > 0) return route.fallback();
        lost++;
        await route.fetch();
        await route.abort("connectionreset");
      });
      const first = await authorize(page, { from: erin, to: frank, amount: "10.00", expiry: "30m", memo: "Room" });
      await page.unroute("**/payment.v1.PaymentService/AuthorizePayment");
      assert.equal(first.code, "UNAVAILABLE", JSON.stringify(first));
      const keptKey = (await page.locator("#hold-key").textContent()) ?? "";
      assert.match(keptKey, /^[0-9a-f-]{36}$/);
      const retry = await submitHold(page);
      calls.stop();
      assert.equal(retry.replayed, true, JSON.stringify(retry));
      assert.match(retry.ok, /^Replayed: this hold had already been placed \(10\.00 EUR of erin-.* now OPEN\); nothing more is held\.$/);
      assert.deepEqual(calls.map((c) => authorizeRequest(c.body).idempotencyKey), [keptKey, keptKey]);
      await waitForAccount(page, erin, { balance: "35.00 EUR", available: "25.00 EUR", held: "10.00 EUR" });

      // Held money cannot be spent: the error says how much is held, in euros.
      const tooMuch = await authorize(page, { from: erin, to: frank, amount: "30.00" });
      assert.equal(tooMuch.code, "FAILED_PRECONDITION", JSON.stringify(tooMuch));
      assert.equal(tooMuch.reason, "INSUFFICIENT_FUNDS");
      assert.equal(tooMuch.facts, `INSUFFICIENT_FUNDS: 25.00 EUR available (10.00 EUR more is held), the payment needs 30.00 EUR (account ${erin})`);

      // The retried hold is the one shown; void it.
      assert.equal((await holdView(page)).holdId, retry.holdId);
      const voided = await voidHold(page);
      assert.equal(voided.ok ?? voided.error, `Voided: 10.00 EUR is available to ${erin} again; no money moved.`);
      assert.equal((await holdView(page)).state, "VOIDED");
      await waitForAccount(page, erin, { balance: "35.00 EUR", available: "35.00 EUR", held: "0.00 EUR" });
      const lookedUp = await lookUp(page, { sender: erin, key: keptKey });
      assert.deepEqual([lookedUp.kind, lookedUp.state], ["hold", "VOIDED"], JSON.stringify(lookedUp));
    });

    step("refunds part, then the rest, of a payment from its history entry; both histories link the refund", async () => {
      await actAs("alice");
      const paid = await pay(page, { from: erin, to: frank, amount: "8.00", memo: "Tickets" });
      assert.ok(paid.ok, JSON.stringify(paid));
      const paymentId = await page.getAttribute("#pay-result", "data-transaction-id");

      await actAs("bob");
      await loadHistory(page, frank);
      const before = await historyEntries(page);
      assert.deepEqual(
        before.map((e) => [e.kind, e.amount, e.refundable]),
        [["payment", "+8.00 EUR", true], ["capture", "+15.00 EUR", true]],
      );
      const part = await refundEntry(page, paymentId, { amount: "3.00", memo: "One ticket back" });
      assert.equal(
        part.ok ?? part.error,
        `Refunded 3.00 EUR from ${frank} to ${erin} (refund ${part.transactionId} of ${paymentId}); 3.00 EUR of 8.00 EUR refunded in all.`,
      );
      assert.equal(part.refundOf, paymentId);
      await loadHistory(page, frank);
      const rest = await refundEntry(page, paymentId);
      assert.match(rest.ok ?? rest.error, new RegExp(`^Refunded 5\\.00 EUR .*; 8\\.00 EUR of 8\\.00 EUR refunded in all\\.$`));
      await loadHistory(page, frank);
      const tooMuch = await refundEntry(page, paymentId, { amount: "1.00" });
      assert.equal(tooMuch.code, "FAILED_PRECONDITION", JSON.stringify(tooMuch));
      assert.equal(tooMuch.reason, "REFUND_EXCEEDS_PAYMENT");
      assert.equal(
        tooMuch.facts,
        "REFUND_EXCEEDS_PAYMENT: 0.00 EUR of 8.00 EUR is left to refund (8.00 EUR refunded already), the refund asks for 1.00 EUR",
      );

      // frank's history: the refunds, debits linked to the payment.
      await loadHistory(page, frank);
      const franks = await historyEntries(page);
      assert.deepEqual(
        franks.map((e) => [e.kind, e.direction, e.amount, e.refundOf, e.link, e.refundable]),
        [
          ["refund", "debit", "-5.00 EUR", paymentId, `refund of ${paymentId}`, false],
          ["refund", "debit", "-3.00 EUR", paymentId, `refund of ${paymentId}`, false],
          ["payment", "credit", "+8.00 EUR", "", "", true],
          ["capture", "credit", "+15.00 EUR", "", `capture of hold ${holdId}`, true],
        ],
      );
      assert.equal(franks[1].memo, "One ticket back");
      // The link looks the payment up.
      const original = await followLink(page, franks[0].transactionId);
      assert.equal(original.kind, "payment", JSON.stringify(original));
      assert.equal(original.transactionId, paymentId);
      assert.ok(original.lines.includes("Refunded so far: 8.00 EUR of 8.00 EUR"), JSON.stringify(original.lines));

      // erin's history: the same refunds, as credits, linked.
      await actAs("alice");
      await loadHistory(page, erin);
      const erins = await historyEntries(page);
      assert.deepEqual(
        erins.slice(0, 3).map((e) => [e.kind, e.direction, e.amount, e.refundOf]),
        [
          ["refund", "credit", "+5.00 EUR", paymentId],
          ["refund", "credit", "+3.00 EUR", paymentId],
          ["payment", "debit", "-8.00 EUR", ""],
        ],
      );
      assert.equal((await showBalance(page, erin)).ok, "35.00 EUR");
    });

    step("looks a payment up by sender and idempotency key, and by transaction id", async () => {
      await actAs("alice");
      const paid = await pay(page, { from: erin, to: frank, amount: "1.00", memo: "Looked up" });
      assert.ok(paid.ok, JSON.stringify(paid));
      const transactionId = await page.getAttribute("#pay-result", "data-transaction-id");
      const key = await page.getAttribute("#pay-result", "data-idempotency-key");
      const calls = recordCalls(page, "GetPayment");
      const byKey = await lookUp(page, { sender: erin, key });
      assert.deepEqual(
        { ...byKey, lines: byKey.lines.map((l) => l.replace(/ at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, " at TIME")) },
        {
          kind: "payment",
          state: "COMMITTED",
          transactionId,
          lines: [
            `Payment ${transactionId}: COMMITTED 1.00 EUR from ${erin} to ${frank} at TIME ("Looked up")`,
            "Nothing of it has been refunded",
            `Idempotency key: ${key}`,
          ],
        },
      );
      const byId = await lookUp(page, { id: transactionId });
      assert.deepEqual(byId, { ...byKey, lines: byId.lines });
      assert.deepEqual(byId.lines, byKey.lines);
      calls.stop();
      assert.equal(calls.length, 2);

      // The capture of the hold, by the hold's key: the hold with its state.
      const hold = await lookUp(page, { sender: erin, key: holdKey });
      assert.deepEqual([hold.kind, hold.state, hold.transactionId], ["hold", "CAPTURED", holdId]);
      assert.match(hold.lines[0], new RegExp(`^Hold ${holdId}: CAPTURED 20\\.00 EUR from ${erin} to ${frank}, captured 15\\.00 EUR at `));
      assert.match(hold.lines[1], new RegExp(`^Capture ${holdId}: COMMITTED 15\\.00 EUR`));

      const unknown = await lookUp(page, { sender: erin, key: "no-such-key" });
      assert.equal(unknown.code, "NOT_FOUND", JSON.stringify(unknown));
      assert.equal(unknown.reason, "PAYMENT_NOT_FOUND");
      assert.match(unknown.error, /^No such payment, hold or refund \(or it is not yours to see\) \(NOT_FOUND\): /);
    });

    step("shows a field violation next to the input it names", async () => {
      await actAs("alice");
      const self = await pay(page, { from: erin, to: erin, amount: "1.00" });
      assert.equal(self.code, "INVALID_ARGUMENT", JSON.stringify(self));
      assert.equal(self.reason, "INVALID_FIELD");
      assert.deepEqual(await fieldError(page, "pay-recipient"), {
        text: "recipient_id equals sender_id; an account cannot pay itself",
        field: "recipient_id",
        invalid: true,
      });
      assert.equal((await fieldError(page, "pay-sender")).invalid, false);
      // Fixed and sent again: the violation goes.
      assert.ok((await pay(page, { from: erin, to: frank, amount: "0.01" })).ok);
      assert.deepEqual(await fieldError(page, "pay-recipient"), { text: "", field: null, invalid: false });

      // A hold of 30 seconds: too short, says the service, next to the expiry.
      const short = await authorize(page, { from: erin, to: frank, amount: "1.00", expiry: "30s" });
      assert.equal(short.code, "INVALID_ARGUMENT", JSON.stringify(short));
      assert.match((await fieldError(page, "hold-expiry")).text, /^expires_in_seconds is 30; a hold lasts 60 seconds \(one minute\) to 2592000 \(30 days\)$/);

      // A lookup by sender without a key: payment.idempotency_key, next to the key.
      const noKey = await lookUp(page, { sender: erin });
      assert.equal(noKey.code, "INVALID_ARGUMENT", JSON.stringify(noKey));
      assert.equal((await fieldError(page, "lookup-key")).field, "payment.idempotency_key");
    });

    step("authorize, then capture all of it (the amount left empty)", async () => {
      await actAs("alice");
      await listAccounts(page);
      await waitForAccount(page, erin, { balance: "33.99 EUR", available: "33.99 EUR", held: "0.00 EUR" });
      const held = await authorize(page, { from: erin, to: frank, amount: "2.00", expiry: "10m" });
      assert.ok(held.ok, JSON.stringify(held));
      await waitForAccount(page, erin, { balance: "33.99 EUR", available: "31.99 EUR", held: "2.00 EUR" });
      const captured = await capture(page);
      assert.equal(captured.ok ?? captured.error, `Captured 2.00 EUR from ${erin} to ${frank} (transaction ${held.holdId}).`);
      assert.equal((await holdView(page)).state, "CAPTURED");
      await waitForAccount(page, erin, { balance: "31.99 EUR", available: "31.99 EUR", held: "0.00 EUR" });
      const found = await lookUp(page, { id: held.holdId });
      assert.deepEqual([found.kind, found.state], ["hold", "CAPTURED"]);
    });

    step("overview: signed in, after a payment, with the account's balance and history", async () => {
      await actAs("alice");
      await fillPayment(page, { from: alice, to: bob, amount: "5.00", memo: "Concert tickets" });
      assert.match((await submitPayment(page)).ok, /^Paid 5\.00 EUR/);
      assert.equal((await showBalance(page, alice)).ok, "82.50 EUR");
      const history = await loadStreamedHistory(alice, 5);
      assert.deepEqual(history.rows.map((r) => r.sequence), [10, 9, 8, 7, 6]);
      assert.equal(history.moreVisible, true);
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: path.join(RESULTS_DIR, `web-app-${shotPrefix}.png`), fullPage: true });
      if (docsScreenshot && !docsWritten) {
        mkdirSync(path.join(REPO_DIR, "docs"), { recursive: true });
        await page.screenshot({ path: path.join(REPO_DIR, "docs", "web-app.png"), fullPage: true });
        docsWritten = true;
      }
    });

    // A watch behind API Gateway is a long poll, and the local Lambda
    // runtimes serve one invocation at a time (cargo lambda watch has one
    // sandbox), so an open watch there would hold the page's other calls
    // behind it for up to 15 s: the live view is tested on the server.
    if (target.tag === "payment-server") {
      step("an open account view shows a payment made elsewhere as it arrives, without a reload", async () => {
        // alice (an admin) watches bob's account; her history stays shown.
        const shown = await showBalance(page, bob);
        assert.ok(shown.ok, JSON.stringify(shown));
        const expected = formatEur(eurCents(shown.ok) + 321);
        await page.evaluate(() => {
          window.sameDocument = true;
        });
        await page.click("#balance-watch");
        // Live once the service has fixed where the watch starts.
        await page.waitForSelector('#watch-status[data-state="live"]', { timeout: 30_000 });
        assert.match(await page.locator("#watch-status").textContent(), new RegExp(`^Watching ${bob}: `));

        // alice pays bob from another client: payment-client, not this page.
        const paid = JSON.parse(
          (
            await execFileAsync(
              clientBinary(),
              ["--endpoint", service.endpoint, "--json", "pay", "--from", alice, "--to", bob, "--amount", "3.21", "--memo", "From elsewhere", "--key", `watch-${run}`],
              { env: { ...process.env, PAYMENT_TOKEN: tokens.alice }, timeout: 30_000 },
            )
          ).stdout.trim().split("\n").at(-1),
        );
        const transactionId = paid.transaction_id;
        assert.ok(transactionId, JSON.stringify(paid));

        const row = page.locator(`[data-testid="watch-row"][data-transaction-id="${transactionId}"]`);
        await row.waitFor({ timeout: 30_000 });
        assert.equal(await row.getAttribute("data-direction"), "credit");
        assert.match(await row.textContent(), new RegExp(`^\\+3\\.21 EUR from ${alice} · balance ${expected.replace(".", "\\.")} · `));
        await waitForText(page, "#balance", new RegExp(`^${expected.replace(".", "\\.")}$`));
        await waitForText(page, "#watch-status", new RegExp(`^Watching ${bob}: 1 new entry so far\\.$`));
        assert.equal(await page.evaluate(() => window.sameDocument), true, "the page was not reloaded");

        await page.click("#balance-watch");
        await waitForText(page, "#watch-status", new RegExp(`^Stopped watching ${bob}\\.$`));
        assert.equal(await page.locator("#balance-watch").textContent(), "Watch for payments");
      });
    }

    step("the page threw no uncaught errors", async () => {
      assert.deepEqual(pageErrors.map((e) => String(e)), []);
      assert.equal((await historyRows(page)).length, 5);
    });
  });
}
