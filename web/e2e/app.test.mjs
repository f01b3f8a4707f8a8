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
//   PAYMENT_E2E_TARGETS=payment-server|payment-lambda   run only one target
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
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  accountCard,
  fillPayment,
  historyRows,
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
import { historyRequest, paymentRequest, recordCalls, responseFrames } from "./grpc-web.mjs";
import { REPO_DIR, RESULTS_DIR, WEB_DIR } from "./processes.mjs";
import { startPrefixProxy } from "./prefix-proxy.mjs";
import { serveStatic } from "./static-server.mjs";
import { e2eTargets, stopSharedServices } from "./targets.mjs";

const docsScreenshot = process.env.PAYMENT_E2E_DOCS_SCREENSHOT === "1";
const TEST_TIMEOUT_MS = 90_000;

/** What the page says for a call without a token, and for a token the service does not accept. */
const NOT_SIGNED_IN = "You are not signed in, or your token is invalid or has expired; paste a fresh token (UNAUTHENTICATED)";
const NO_TOKEN = `${NOT_SIGNED_IN}: Bearer realm="payments": this call needs an 'authorization: Bearer <JWT>' header`;
const BAD_TOKEN = `${NOT_SIGNED_IN}: Bearer error="invalid_token": the bearer token is malformed, expired or not signed by a trusted key`;
const EXPIRY = "the token expires at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d";

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
        site = await serveStatic(path.join(WEB_DIR, "dist"));
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

    /** Signs in as `user` ("alice", an admin, or "bob") by pasting a token minted by payment-client. */
    async function actAs(user) {
      await signIn(page, tokens[user]);
      assert.equal(await signedInSubject(page), user);
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
      assert.equal(anonymous.code, "UNAUTHENTICATED");
      assert.equal(anonymous.error, NO_TOKEN);
      const anonymousPayment = await pay(page, { from: alice, to: bob, amount: "1.00" });
      assert.equal(anonymousPayment.error, NO_TOKEN);

      assert.match(await signIn(page, tokens.bob), new RegExp(`^Signed in as bob; ${EXPIRY}$`));
      assert.match(await signIn(page, tokens.alice), new RegExp(`^Signed in as alice \\(admin\\); ${EXPIRY}$`));
      // The token is kept for the tab (sessionStorage), so a reload stays signed in.
      await page.reload();
      await page.waitForSelector("#endpoint-status:not(:empty)");
      assert.match(await waitForText(page, "#signed-in-as", /^Signed in as /), /^Signed in as alice \(admin\)/);
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
      assert.match((await showBalance(page, bob)).details, new RegExp(`^Bob · account ${bob} · owned by bob · opened `));
      await actAs("alice");
      assert.match((await showBalance(page, alice)).details, new RegExp(`^Alice · account ${alice} · owned by alice · opened `));
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
      assert.equal((await showBalance(page, bob)).ok, "17.00 EUR");
    });

    step("checks amounts before calling", async () => {
      const calls = recordCalls(page, "MakePayment");
      const result = await pay(page, { from: bob, to: alice, amount: "1.234" });
      calls.stop();
      assert.equal(result.code, "INPUT");
      assert.match(result.error, /^Invalid amount \(INPUT\): EUR has 2 decimal places/);
      assert.equal(calls.length, 0);
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
        `You are not allowed to do this: the account belongs to someone else (PERMISSION_DENIED): bob may not read account "${id}": only its owner or an admin may`;

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
      assert.equal(anonymous.error, NO_TOKEN);

      // A token whose signature is made up: the page reads it, the service refuses it.
      const forged = unsignedToken({ sub: "zed", scope: "payments/admin", exp: 4102444800 });
      const said = await signIn(page, `Bearer ${forged}\n`);
      assert.equal(said, "Signed in as zed (admin); the token expires at 2100-01-01 00:00:00");
      calls = recordCalls(page, "GetAccountBalance");
      const refused = await showBalance(page, alice);
      calls.stop();
      assert.equal(calls[0].headers.authorization, `Bearer ${forged}`);
      assert.equal(refused.code, "UNAUTHENTICATED", JSON.stringify(refused));
      assert.equal(refused.error, BAD_TOKEN);

      // A well-formed token signed with another secret (another run's, say).
      await signIn(page, mintToken(newDevSecret(), "alice", { admin: true }));
      assert.equal((await showBalance(page, alice)).error, BAD_TOKEN);

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
      assert.equal(await signedInSubject(page), "alice", "still signed in after the reload");
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

    step("the page threw no uncaught errors", async () => {
      assert.deepEqual(pageErrors.map((e) => String(e)), []);
      assert.equal((await historyRows(page)).length, 5);
    });
  });
}
