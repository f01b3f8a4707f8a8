// Where the payment service is: set at build time, changeable in the page.

const STORAGE_KEY = "payment.endpoint";

/** The build-time default: VITE_PAYMENT_ENDPOINT, else a local server. */
export const DEFAULT_ENDPOINT: string =
  (import.meta.env?.VITE_PAYMENT_ENDPOINT as string | undefined) || "http://127.0.0.1:50051";

/**
 * Checks and normalizes an endpoint: an http(s) URL, possibly with a path
 * prefix (e.g. a Lambda function URL behind a gateway), without a trailing
 * slash, query or fragment. Throws Error with a readable message otherwise.
 */
export function normalizeEndpoint(text: string): string {
  const trimmed = text.trim();
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new Error(`"${trimmed}" is not a URL; expected e.g. http://127.0.0.1:50051`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`the endpoint must be an http:// or https:// URL, not ${url.protocol}`);
  }
  if (url.search || url.hash) {
    throw new Error("the endpoint must not have a query (?) or fragment (#)");
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, "");
}

/** The remembered endpoint, else the build-time default. */
export function loadEndpoint(storage: Pick<Storage, "getItem"> = localStorage): string {
  const saved = storage.getItem(STORAGE_KEY);
  if (saved) {
    try {
      return normalizeEndpoint(saved);
    } catch {
      // A bad remembered value falls back to the default.
    }
  }
  return normalizeEndpoint(DEFAULT_ENDPOINT);
}

/** Remembers the endpoint for the next visit. */
export function saveEndpoint(endpoint: string, storage: Pick<Storage, "setItem"> = localStorage): void {
  storage.setItem(STORAGE_KEY, endpoint);
}
