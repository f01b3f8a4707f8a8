// Where calls go and who makes them: the endpoint, and signing in with a
// token (which clears what the previous person was shown).

import { readToken } from "../auth.js";
import { button, el, input, onSubmit, show } from "../dom.js";
import { normalizeEndpoint, saveEndpoint } from "../endpoint.js";
import { formatDate } from "../history.js";
import { setEndpoint, state } from "../state.js";
import { forgetAccounts, listAccounts } from "./accounts.js";
import { forgetBalance } from "./balance.js";
import { clearError, clearFieldErrors } from "./forms.js";
import { forgetHistory } from "./history.js";
import { forgetHold } from "./holds.js";
import { forgetLookup } from "./lookup.js";
import { forgetRefund } from "./refund.js";
import { forgetWatch } from "./watch.js";

const TOKEN_STORAGE_KEY = "payment.token";

/** Sends the next calls to `endpoint`, and says so. */
export function useEndpoint(endpoint: string): void {
  // A watch (and its resume token) belongs to the endpoint it began on.
  forgetWatch();
  setEndpoint(endpoint);
  input("endpoint").value = endpoint;
  show(el("endpoint-status"), `Calls go to ${endpoint}`);
}

export function renderSignedIn(): void {
  const who = el("signed-in-as");
  const signedIn = state.signedIn;
  if (!signedIn) {
    who.dataset.subject = "";
    show(who, "Not signed in: calls are sent without a token.");
    if (!state.accounts) show(el("accounts-status"), "Sign in to list your accounts.");
    return;
  }
  who.dataset.subject = signedIn.subject;
  let text = `Signed in as ${signedIn.subject}${signedIn.admin ? " (admin)" : ""}`;
  if (signedIn.expiresAt) {
    const when = formatDate(signedIn.expiresAt);
    text += signedIn.expiresAt.getTime() < Date.now() ? `; the token expired at ${when}` : `; the token expires at ${when}`;
  }
  show(who, text);
}

/**
 * Clears the account card (balance and history) and everything else read
 * with a token when the person signed in changes, so that nobody sees what
 * the previous one was allowed to read.
 */
function forgetAccountView(): void {
  forgetHistory();
  forgetBalance();
  forgetRefund();
  forgetAccounts();
  forgetHold();
  forgetLookup();
  clearFieldErrors(document.body);
}

function signIn(pasted: string): void {
  const info = readToken(pasted);
  if (info.subject !== state.signedIn?.subject) forgetAccountView();
  state.signedIn = info;
  sessionStorage.setItem(TOKEN_STORAGE_KEY, info.token);
  renderSignedIn();
  el("accounts-all-box").hidden = !info.admin;
  if (!info.admin) input("accounts-all").checked = false;
  listAccounts();
}

function signOut(): void {
  if (state.signedIn) forgetAccountView();
  el("accounts-all-box").hidden = true;
  input("accounts-all").checked = false;
  state.signedIn = undefined;
  sessionStorage.removeItem(TOKEN_STORAGE_KEY);
  el<HTMLTextAreaElement>("token").value = "";
  clearError(el("sign-in-error"));
  renderSignedIn();
}

/** Signs in again with the token of this tab's last session, if it is still readable. */
export function resumeSession(): void {
  const savedToken = sessionStorage.getItem(TOKEN_STORAGE_KEY);
  if (!savedToken) return;
  try {
    signIn(savedToken);
    el<HTMLTextAreaElement>("token").value = savedToken;
  } catch {
    sessionStorage.removeItem(TOKEN_STORAGE_KEY);
  }
}

export function setupSession(): void {
  onSubmit("endpoint-form", () => {
    try {
      const next = normalizeEndpoint(input("endpoint").value);
      saveEndpoint(next);
      useEndpoint(next);
    } catch (err) {
      show(el("endpoint-status"), `Not changed: ${(err as Error).message}`);
    }
  });
  onSubmit("sign-in-form", () => {
    const errorBox = el("sign-in-error");
    try {
      signIn(el<HTMLTextAreaElement>("token").value);
      clearError(errorBox);
    } catch (err) {
      errorBox.dataset.code = "INPUT";
      show(errorBox, `Not signed in: ${(err as Error).message}`);
    }
  });
  button("sign-out").addEventListener("click", signOut);
}
