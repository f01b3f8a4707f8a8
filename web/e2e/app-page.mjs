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

/**
 * The history table's rows with what the holds and refunds work added:
 * kind, transaction id, refund_of, the link shown and whether it has a
 * Refund button.
 */
export async function historyEntries(page) {
  return await page.$$eval('[data-testid="history-row"]', (rows) =>
    rows.map((tr) => {
      const cell = (cls) => tr.querySelector(`td.${cls}`)?.textContent ?? "";
      return {
        sequence: Number(tr.dataset.sequence),
        kind: tr.dataset.kind,
        direction: tr.dataset.direction,
        counterparty: cell("counterparty"),
        amount: cell("amount"),
        memo: cell("memo"),
        transactionId: tr.dataset.transactionId,
        refundOf: tr.dataset.refundOf ?? "",
        link: cell("link"),
        refundable: tr.querySelector('button[data-action="refund"]') !== null,
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

// ---------------------------------------------------------------- accounts, holds, refunds, lookups

/** The account list's rows, in page order. */
export async function accountRows(page) {
  return await page.$$eval('[data-testid="account-row"]', (rows) =>
    rows.map((tr) => {
      const cell = (cls) => tr.querySelector(`td.${cls}`)?.textContent ?? "";
      return { id: tr.dataset.accountId, name: cell("name"), balance: cell("balance"), available: cell("available"), held: cell("held") };
    }),
  );
}

async function accountsOutcome(page) {
  const shown = await outcome(page, "", "#accounts-error");
  return {
    ...shown,
    rows: await accountRows(page),
    status: (await page.locator("#accounts-status").textContent()) ?? "",
    moreVisible: await page.locator("#accounts-more").isVisible(),
  };
}

/** Lists the signed-in person's accounts, `pageSize` a page. */
export async function listAccounts(page, pageSize = 10) {
  await page.fill("#accounts-page-size", String(pageSize));
  await clickAndSettle(page, "#accounts-load");
  return await accountsOutcome(page);
}

export async function moreAccounts(page) {
  await clickAndSettle(page, "#accounts-more");
  return await accountsOutcome(page);
}

/**
 * Waits until the account list shows `id` as `want` ({ balance, available,
 * held }, each optional): the list is read again after each call that
 * moves or holds money, a moment later. Returns the row.
 */
export async function waitForAccount(page, id, want = {}, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let row;
  for (;;) {
    row = (await accountRows(page)).find((r) => r.id === id);
    if (row && Object.entries(want).every(([k, v]) => row[k] === v)) return row;
    if (Date.now() > deadline) assert.fail(`account ${id}: expected ${JSON.stringify(want)}, got ${JSON.stringify(row)}`);
    await page.waitForTimeout(100);
  }
}

/** Clicks From, To or Show of an account in the list. */
export async function pickAccount(page, id, action) {
  await page.click(`[data-testid="account-row"][data-account-id="${id}"] button[data-action="${action}"]`);
}

/** Fills the hold form without submitting it. */
export async function fillHold(page, { from, to, amount, currency = "EUR", expiry = "1h", memo = "" }) {
  if (from !== undefined) await page.fill("#hold-sender", from);
  if (to !== undefined) await page.fill("#hold-recipient", to);
  await page.fill("#hold-amount", amount);
  await page.fill("#hold-currency", currency);
  await page.fill("#hold-expiry", expiry);
  await page.fill("#hold-memo", memo);
}

/** Submits the hold form; { ok, replayed, holdId, key } or { error, code, reason, facts }. */
export async function submitHold(page) {
  await clickAndSettle(page, "#hold-submit");
  const shown = await outcome(page, "#hold-result", "#hold-error");
  if (shown.ok === undefined) return shown;
  const result = page.locator("#hold-result");
  return { ...shown, holdId: await result.getAttribute("data-hold-id"), key: await result.getAttribute("data-idempotency-key") };
}

export async function authorize(page, hold) {
  await fillHold(page, hold);
  return await submitHold(page);
}

/** The hold shown with Capture and Void: { holdId, state, text }, or undefined when none is. */
export async function holdView(page) {
  if (!(await page.locator("#hold-view").isVisible())) return undefined;
  return {
    holdId: await page.locator("#hold-view").getAttribute("data-hold-id"),
    state: await page.locator("#hold-view").getAttribute("data-state"),
    text: (await page.locator("#hold-text").textContent()) ?? "",
  };
}

/** Captures the shown hold: all of it ("") or `amount`. */
export async function capture(page, amount = "") {
  await page.fill("#capture-amount", amount);
  await clickAndSettle(page, "#capture-submit");
  return await outcome(page, "#capture-result", "#capture-error");
}

export async function voidHold(page) {
  await clickAndSettle(page, "#void-submit");
  return await outcome(page, "#capture-result", "#capture-error");
}

/** Refunds a history row's payment with its Refund button: all of what is left ("") or `amount`. */
export async function refundEntry(page, transactionId, { amount = "", memo = "" } = {}) {
  await page.click(`[data-testid="history-row"][data-transaction-id="${transactionId}"] button[data-action="refund"]`);
  await page.waitForSelector("#refund-form:not([hidden])", { timeout: TIMEOUT_MS });
  await page.fill("#refund-amount", amount);
  await page.fill("#refund-memo", memo);
  await clickAndSettle(page, "#refund-submit");
  const shown = await outcome(page, "#refund-result", "#refund-error");
  if (shown.ok === undefined) return shown;
  const result = page.locator("#refund-result");
  return {
    ...shown,
    transactionId: await result.getAttribute("data-transaction-id"),
    refundOf: await result.getAttribute("data-refund-of"),
  };
}

async function lookupOutcome(page) {
  const shown = await outcome(page, "", "#lookup-error");
  if (shown.error !== undefined) return shown;
  const view = page.locator("#lookup-view");
  return {
    kind: await view.getAttribute("data-kind"),
    state: await view.getAttribute("data-state"),
    transactionId: await view.getAttribute("data-transaction-id"),
    lines: await page.$$eval("#lookup-lines li", (items) => items.map((li) => li.textContent ?? "")),
  };
}

/** Looks up by what is given: { id } or { sender, key } (or all three, to see the service refuse). */
export async function lookUp(page, { id = "", sender = "", key = "" }) {
  await page.fill("#lookup-id", id);
  await page.fill("#lookup-sender", sender);
  await page.fill("#lookup-key", key);
  await clickAndSettle(page, "#lookup-submit");
  return await lookupOutcome(page);
}

/** Clicks a history row's link ("refund of T", "capture of hold H"), which looks T up. */
export async function followLink(page, transactionId) {
  await page.click(`[data-testid="history-row"][data-transaction-id="${transactionId}"] button[data-action="look-up"]`);
  await page.waitForSelector("#lookup-submit:not([aria-busy])", { state: "attached", timeout: TIMEOUT_MS });
  await page.waitForSelector("#lookup-view:not([hidden]), #lookup-error:not([hidden])", { timeout: TIMEOUT_MS });
  return await lookupOutcome(page);
}

/** The field violation shown below input `id`: { text, invalid }, text "" when there is none. */
export async function fieldError(page, id) {
  const note = page.locator(`#${id}-violation`);
  const placed = (await note.count()) > 0 && (await page.locator(`#${id} + .field-error`).count()) > 0;
  return {
    text: placed ? ((await note.textContent()) ?? "") : "",
    field: placed ? await note.getAttribute("data-field") : null,
    invalid: (await page.getAttribute(`#${id}`, "aria-invalid")) === "true",
  };
}
