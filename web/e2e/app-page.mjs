// What a person does on the page, as functions over a playwright Page.
// Elements are found by their stable ids (see index.html).

import assert from "node:assert/strict";

const TIMEOUT_MS = 15_000;

/** Waits until the text of `selector` matches `pattern`; returns the text. */
export async function waitForText(page, selector, pattern, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let text = "";
  for (;;) {
    text = (await page.locator(selector).textContent()) ?? "";
    if (pattern.test(text)) return text;
    if (Date.now() > deadline) {
      assert.fail(`${selector}: expected text matching ${pattern}, got ${JSON.stringify(text)}`);
    }
    await page.waitForTimeout(100);
  }
}

/**
 * Clicks `button` and waits until the page is done with it: every action
 * button carries aria-busy while its call runs.
 */
async function clickAndSettle(page, button) {
  await page.click(button);
  await page.waitForSelector(`${button}:not([aria-busy])`, { state: "attached", timeout: TIMEOUT_MS });
}

/**
 * The visible one of a form's result and error boxes: { ok } or { error,
 * code, reason, facts }: error is the sentence with the code and the
 * service's message, facts what the ErrorInfo says ("REASON: ...").
 */
async function outcome(page, resultSelector, errorSelector) {
  const error = page.locator(errorSelector);
  if (await error.isVisible()) {
    const problem = error.locator(".problem");
    const facts = error.locator(".facts");
    return {
      error: ((await problem.count()) > 0 ? await problem.textContent() : await error.textContent()) ?? "",
      code: await error.getAttribute("data-code"),
      reason: (await error.getAttribute("data-reason")) ?? undefined,
      facts: (await facts.count()) > 0 ? ((await facts.textContent()) ?? "") : undefined,
    };
  }
  const result = page.locator(resultSelector);
  if (resultSelector && (await result.isVisible())) {
    return { ok: (await result.textContent()) ?? "", replayed: (await result.getAttribute("data-replayed")) === "true" };
  }
  return {};
}

export async function openApp(page, url) {
  await page.goto(url);
  await page.waitForSelector("#endpoint-status:not(:empty)");
}

/** Points the page at `endpoint` with the endpoint field. */
export async function useEndpoint(page, endpoint) {
  await page.fill("#endpoint", endpoint);
  await page.click("#endpoint-save");
  await waitForText(page, "#endpoint-status", /^Calls go to /);
}

/** Signs in by pasting `token` into the token field. Returns what the page says. */
export async function signIn(page, token) {
  await page.fill("#token", token);
  await page.click("#sign-in");
  return await waitForText(page, "#signed-in-as", /^Signed in as /);
}

/** Who the page says is signed in: the subject, or "" when nobody is. */
export async function signedInSubject(page) {
  return (await page.locator("#signed-in-as").getAttribute("data-subject")) ?? "";
}

/** What the account card shows: the balance (or undefined when hidden) and the history rows. */
export async function accountCard(page) {
  const balanceVisible = await page.locator("#balance-view").isVisible();
  return {
    balance: balanceVisible ? ((await page.locator("#balance").textContent()) ?? "") : undefined,
    rows: (await historyRows(page)).length,
    status: (await page.locator("#history-status").textContent()) ?? "",
  };
}

export async function signOut(page) {
  await page.click("#sign-out");
  await waitForText(page, "#signed-in-as", /^Not signed in/);
}

export async function openAccount(page, { id, name = "", currency = "EUR", initialBalance = "0" }) {
  await page.fill("#open-account-id", id);
  await page.fill("#open-display-name", name);
  await page.fill("#open-currency", currency);
  await page.fill("#open-initial-balance", initialBalance);
  await clickAndSettle(page, "#open-submit");
  return await outcome(page, "#open-result", "#open-error");
}

/** Fills the payment form without submitting it. */
export async function fillPayment(page, { from, to, amount, currency = "EUR", memo = "" }) {
  await page.fill("#pay-sender", from);
  await page.fill("#pay-recipient", to);
  await page.fill("#pay-amount", amount);
  await page.fill("#pay-currency", currency);
  await page.fill("#pay-memo", memo);
}

/** Submits the filled payment form with the Pay button and waits for the outcome. */
export async function submitPayment(page) {
  await clickAndSettle(page, "#pay-submit");
  return await outcome(page, "#pay-result", "#pay-error");
}

export async function pay(page, payment) {
  await fillPayment(page, payment);
  return await submitPayment(page);
}

export async function payKey(page) {
  return (await page.locator("#pay-key").textContent()) ?? "";
}

/** Shows an account's balance: { ok: "87.66 EUR", details } or { error, code }. */
export async function showBalance(page, id) {
  await page.fill("#account-id", id);
  await clickAndSettle(page, "#balance-show");
  const shown = await outcome(page, "", "#balance-error");
  if (shown.error) return shown;
  return {
    ok: (await page.locator("#balance").textContent()) ?? "",
    details: (await page.locator("#balance-details").textContent()) ?? "",
  };
}

export async function refreshBalance(page) {
  await clickAndSettle(page, "#balance-refresh");
  return (await page.locator("#balance").textContent()) ?? "";
}

/** The history table's rows, in page order. */
export async function historyRows(page) {
  return await page.$$eval('[data-testid="history-row"]', (rows) =>
    rows.map((tr) => {
      const cell = (cls) => tr.querySelector(`td.${cls}`)?.textContent ?? "";
      return {
        sequence: Number(tr.dataset.sequence),
        direction: tr.dataset.direction,
        counterparty: cell("counterparty"),
        amount: cell("amount"),
        balanceAfter: cell("balance-after"),
        memo: cell("memo"),
        time: cell("time"),
      };
    }),
  );
}

/** Streams the first page of an account's history into the table. */
export async function loadHistory(page, id, pageSize = 20) {
  await page.fill("#account-id", id);
  await page.fill("#history-page-size", String(pageSize));
  await clickAndSettle(page, "#history-load");
  return await historyOutcome(page);
}

export async function loadMore(page) {
  await clickAndSettle(page, "#history-more");
  return await historyOutcome(page);
}

async function historyOutcome(page) {
  const shown = await outcome(page, "", "#history-error");
  return {
    ...shown,
    rows: await historyRows(page),
    status: (await page.locator("#history-status").textContent()) ?? "",
    moreVisible: await page.locator("#history-more").isVisible(),
  };
}
