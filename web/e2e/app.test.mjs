// End-to-end tests of the web app: the built page (dist/) in headless
// Chromium, calling a real payment service over gRPC-Web.
//
//   npm run build && npm run e2e
//
// Environment:
//   PAYMENT_E2E_ENDPOINT        test against this running endpoint (may have a
//                               path prefix) instead of starting DynamoDB Local
//                               and payment-server here
//   PAYMENT_E2E_AUTH=1          the service requires tokens: sign in with
//                               tokens minted by `payment-client token` and
//                               run the two-user checks
//   PAYMENT_E2E_DOCS_SCREENSHOT=1  also write ../docs/web-app.png
//   PAYMENT_SERVER_BIN, PAYMENT_CLIENT_BIN, CHROMIUM_PATH  override binaries
//
// Screenshots and process logs go to test-results/.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
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
  signIn,
  signOut,
  submitPayment,
  useEndpoint,
  waitForText,
} from "./app-page.mjs";
import { authRequired, tokenFor, unsignedToken } from "./auth.mjs";
import { launchBrowser } from "./browser.mjs";
import { historyRequest, paymentRequest, recordCalls } from "./grpc-web.mjs";
import { REPO_DIR, RESULTS_DIR, WEB_DIR } from "./processes.mjs";
import { startPrefixProxy } from "./prefix-proxy.mjs";
import { serveStatic } from "./static-server.mjs";
import { e2eTargets } from "./targets.mjs";

const docsScreenshot = process.env.PAYMENT_E2E_DOCS_SCREENSHOT === "1";

for (const target of e2eTargets()) {
  describe(`web app against ${target.name}`, () => {
    /** Unique per run, so a shared endpoint can be used again and again. */
    const run = Date.now().toString(36).slice(-6);
    const alice = `alice-${run}`;
    const bob = `bob-${run}`;
    const carol = `carol-${run}`;
    const nobody = `nobody-${run}`;
    const shotPrefix = target.name.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40);
    let shots = 0;

    let service;
    let site;
    let browser;
    let page;
    const pageErrors = [];

    before(async () => {
      mkdirSync(RESULTS_DIR, { recursive: true });
      service = await target.start();
      site = await serveStatic(path.join(WEB_DIR, "dist"));
      browser = await launchBrowser();
      page = await browser.context.newPage();
      page.on("pageerror", (err) => pageErrors.push(err));
    });

    after(async () => {
      await browser?.close();
      await site?.close();
      await service?.stop();
    });

    /** A test that leaves a full-page screenshot in test-results/, pass or fail. */
    function step(name, fn, options = {}) {
      test(name, options, async (t) => {
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

    /** Signs in as `sub` when the service requires tokens; without auth, calls carry no token. */
    async function actAs(sub, { admin = false } = {}) {
      if (authRequired) await signIn(page, tokenFor(sub, { admin }));
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

    step("opens two accounts, one with an initial balance", async () => {
      await actAs("alice", { admin: true });
      const a = await openAccount(page, { id: alice, name: "Alice", initialBalance: "100.00" });
      assert.equal(a.ok, `Opened account ${alice} (Alice) with 100.00 EUR.`);
      const b = await openAccount(page, { id: bob, name: "Bob" });
      assert.equal(b.ok, `Opened account ${bob} (Bob) with 0.00 EUR.`);
      const again = await openAccount(page, { id: alice, name: "Alice again" });
      assert.equal(again.code, "ALREADY_EXISTS");
      assert.match(again.error, /^An account with this id already exists \(ALREADY_EXISTS\): account ".*" already exists$/);
    });

    step("pays; both balances change and the history shows the entry", async () => {
      const calls = recordCalls(page, "MakePayment");
      const paid = await pay(page, { from: alice, to: bob, amount: "12.34", memo: "Lunch" });
      calls.stop();
      assert.match(paid.ok ?? paid.error, new RegExp(`^Paid 12\\.34 EUR from ${alice} to ${bob} \\(transaction .+\\)\\.$`));
      assert.equal(paid.replayed, false);
      assert.equal(calls.length, 1);
      const sent = paymentRequest(calls[0].body);
      assert.deepEqual({ ...sent, idempotencyKey: undefined }, {
        idempotencyKey: undefined, senderId: alice, recipientId: bob, amount: 1234n, currency: "EUR", memo: "Lunch",
      });
      assert.match(sent.idempotencyKey, /^[0-9a-f-]{36}$/);

      assert.equal((await showBalance(page, alice)).ok, "87.66 EUR");
      const bobBalance = await showBalance(page, bob);
      assert.equal(bobBalance.ok, "12.34 EUR");
      assert.match(bobBalance.details, /^Bob · account bob-/);

      const bobHistory = await loadHistory(page, bob);
      assert.equal(bobHistory.error, undefined);
      assert.deepEqual(
        bobHistory.rows.map(({ time, ...row }) => row),
        [{ sequence: 1, direction: "credit", counterparty: alice, amount: "+12.34 EUR", balanceAfter: "12.34 EUR", memo: "Lunch" }],
      );
      assert.match(bobHistory.rows[0].time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      assert.equal(bobHistory.moreVisible, false);

      const aliceHistory = await loadHistory(page, alice);
      assert.deepEqual(
        // The memo of the opening entry is the service's to choose.
        aliceHistory.rows.map(({ time, memo, ...row }) => (row.sequence === 1 ? row : { ...row, memo })),
        [
          { sequence: 2, direction: "debit", counterparty: bob, amount: "-12.34 EUR", balanceAfter: "87.66 EUR", memo: "Lunch" },
          { sequence: 1, direction: "credit", counterparty: "(opening balance)", amount: "+100.00 EUR", balanceAfter: "100.00 EUR" },
        ],
      );
      assert.match(aliceHistory.status, /^2 entries of alice-.*newest first\. That is the whole history\.$/);

      // The refresh button re-reads the shown account.
      await showBalance(page, bob);
      assert.ok((await pay(page, { from: alice, to: bob, amount: "0.66", memo: "Coffee" })).ok);
      assert.equal(await refreshBalance(page), "13.00 EUR");
    });

    step("a double click pays once", async () => {
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
      const result = await pay(page, { from: bob, to: alice, amount: "1000.00", memo: "Too much" });
      assert.equal(result.code, "FAILED_PRECONDITION");
      assert.match(result.error, /^Insufficient funds \(FAILED_PRECONDITION\): insufficient funds: sender account ".*" holds \d+ minor units, the payment needs 100000$/);
      assert.equal((await showBalance(page, bob)).ok, "17.00 EUR");
    });

    step("checks amounts before calling", async () => {
      const calls = recordCalls(page, "MakePayment");
      const result = await pay(page, { from: alice, to: bob, amount: "1.234" });
      calls.stop();
      assert.equal(result.code, "INPUT");
      assert.match(result.error, /^Invalid amount \(INPUT\): EUR has 2 decimal places/);
      assert.equal(calls.length, 0);
    });

    step("loads more history with the page token", async () => {
      assert.ok((await openAccount(page, { id: carol, name: "Carol", initialBalance: "10" })).ok);
      for (const memo of ["Book club", "Groceries", "Taxi"]) {
        assert.ok((await pay(page, { from: carol, to: alice, amount: "1.50", memo })).ok);
      }
      const calls = recordCalls(page, "GetTransactionHistory");
      const first = await loadHistory(page, carol, 2);
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

    step("explains an unknown account", async () => {
      const balance = await showBalance(page, nobody);
      assert.equal(balance.code, "NOT_FOUND");
      assert.match(balance.error, /^No such account \(NOT_FOUND\): .*"nobody-.*" does not exist$/);
      const history = await loadHistory(page, nobody);
      assert.equal(history.code, "NOT_FOUND");
      assert.deepEqual(history.rows, []);
      const payment = await pay(page, { from: alice, to: nobody, amount: "1.00" });
      assert.match(payment.error, /^The recipient account does not exist \(NOT_FOUND\): recipient account ".*" does not exist$/);
    });

    step("sends the pasted token as a bearer header, and none when signed out", async () => {
      await signOut(page);
      let calls = recordCalls(page, "GetAccountBalance");
      await showBalance(page, alice);
      calls.stop();
      assert.equal(calls.length, 1);
      assert.equal(calls[0].headers.authorization, undefined);

      const token = unsignedToken({ sub: "zed", admin: true, exp: 4102444800 });
      const said = await signIn(page, `Bearer ${token}\n`);
      assert.equal(said, "Signed in as zed (admin); the token expires at 2100-01-01 00:00:00");
      calls = recordCalls(page, "GetAccountBalance");
      await showBalance(page, alice); // refused once the service checks tokens
      calls.stop();
      assert.equal(calls[0].headers.authorization, `Bearer ${token}`);

      await page.fill("#token", "not a token");
      await page.click("#sign-in");
      await waitForText(page, "#sign-in-error", /^Not signed in: this is not a JWT/);
      await waitForText(page, "#signed-in-as", /^Signed in as zed/);
      await signOut(page);
    });

    step("works with an endpoint under a path prefix", async () => {
      // The service seen through a proxy at http://127.0.0.1:PORT/lambda-url/payment-lambda,
      // the URL shape of a Lambda under `cargo lambda watch`.
      const proxy = await startPrefixProxy(service.endpoint);
      try {
        await useEndpoint(page, `${proxy.endpoint}/`);
        assert.equal(await page.inputValue("#endpoint"), proxy.endpoint, "the trailing slash is dropped");
        await actAs("alice", { admin: true });
        assert.equal((await showBalance(page, carol)).ok, "5.50 EUR");
        const history = await loadHistory(page, carol, 2);
        assert.deepEqual(history.rows.map((r) => r.sequence), [4, 3]);
        const calls = proxy.seen.filter((line) => line.startsWith("POST "));
        assert.deepEqual(calls, [
          "POST /lambda-url/payment-lambda/payment.v1.PaymentService/GetAccountBalance",
          "POST /lambda-url/payment-lambda/payment.v1.PaymentService/GetTransactionHistory",
        ]);
      } finally {
        await useEndpoint(page, service.endpoint);
        await proxy.close();
      }
    });

    step(
      "two users: one cannot use the other's account",
      async () => {
        const alicePrivate = `alice-own-${run}`;
        await signIn(page, tokenFor("alice"));
        assert.ok((await openAccount(page, { id: alicePrivate, name: "Alice's own" })).ok);
        assert.equal((await showBalance(page, alicePrivate)).ok, "0.00 EUR");
        const who = await signIn(page, tokenFor("bob"));
        assert.match(who, /^Signed in as bob/);
        // Whether the service says PERMISSION_DENIED or hides the account
        // behind NOT_FOUND is its choice; it must not show it.
        const read = await showBalance(page, alicePrivate);
        assert.match(read.code ?? "", /^(PERMISSION_DENIED|NOT_FOUND)$/, JSON.stringify(read));
        const history = await loadHistory(page, alicePrivate);
        assert.match(history.code ?? "", /^(PERMISSION_DENIED|NOT_FOUND)$/);
        const payment = await pay(page, { from: alicePrivate, to: bob, amount: "0.01" });
        assert.match(payment.code ?? "", /^(PERMISSION_DENIED|NOT_FOUND|FAILED_PRECONDITION)$/);
        await signOut(page);
        const anonymous = await showBalance(page, alicePrivate);
        assert.equal(anonymous.code, "UNAUTHENTICATED");
        assert.match(anonymous.error, /^You are not signed in/);
      },
      { skip: authRequired ? false : "the service under test does not require tokens (set PAYMENT_E2E_AUTH=1)" },
    );

    step("overview: an account with its balance and history", async () => {
      await actAs("alice", { admin: true });
      await fillPayment(page, { from: alice, to: bob, amount: "5.00", memo: "Concert tickets" });
      assert.match((await submitPayment(page)).ok, /^Paid 5\.00 EUR/);
      assert.equal((await showBalance(page, alice)).ok, "82.50 EUR");
      const history = await loadHistory(page, alice, 5);
      assert.deepEqual(history.rows.map((r) => r.sequence), [10, 9, 8, 7, 6]);
      assert.equal(history.moreVisible, true);
      await page.evaluate(() => window.scrollTo(0, 0));
      if (docsScreenshot) {
        mkdirSync(path.join(REPO_DIR, "docs"), { recursive: true });
        await page.screenshot({ path: path.join(REPO_DIR, "docs", "web-app.png"), fullPage: true });
      }
    });

    step("the page threw no uncaught errors", async () => {
      assert.deepEqual(pageErrors.map((e) => String(e)), []);
      assert.equal((await historyRows(page)).length, 5);
    });
  });
}
