import { describe, expect, it } from "vitest";
import { DEFAULT_ENDPOINT, loadEndpoint, normalizeEndpoint, saveEndpoint } from "./endpoint.js";

function memoryStorage() {
  const items = new Map<string, string>();
  return {
    getItem: (k: string) => items.get(k) ?? null,
    setItem: (k: string, v: string) => void items.set(k, v),
  };
}

describe("normalizeEndpoint", () => {
  it.each([
    ["http://127.0.0.1:50051", "http://127.0.0.1:50051"],
    ["http://127.0.0.1:50051/", "http://127.0.0.1:50051"],
    ["  https://pay.example.com  ", "https://pay.example.com"],
    ["http://127.0.0.1:9000/lambda-url/payment-lambda/", "http://127.0.0.1:9000/lambda-url/payment-lambda"],
  ])("%s becomes %s", (text, url) => {
    expect(normalizeEndpoint(text)).toBe(url);
  });

  it.each(["", "127.0.0.1:50051x", "ftp://host", "http://host/?a=1", "http://host/#x", "not a url"])("rejects %j", (text) => {
    expect(() => normalizeEndpoint(text)).toThrow();
  });
});

describe("loadEndpoint / saveEndpoint", () => {
  it("defaults to the build-time endpoint, else a local server", () => {
    expect(DEFAULT_ENDPOINT).toBe(import.meta.env.VITE_PAYMENT_ENDPOINT || "http://127.0.0.1:50051");
    expect(loadEndpoint(memoryStorage())).toBe(normalizeEndpoint(DEFAULT_ENDPOINT));
  });

  it("remembers the chosen endpoint", () => {
    const storage = memoryStorage();
    saveEndpoint("http://127.0.0.1:9000/lambda-url/payment-lambda", storage);
    expect(loadEndpoint(storage)).toBe("http://127.0.0.1:9000/lambda-url/payment-lambda");
  });

  it("ignores a remembered value that is not a URL", () => {
    const storage = memoryStorage();
    storage.setItem("payment.endpoint", "nonsense");
    expect(loadEndpoint(storage)).toBe(DEFAULT_ENDPOINT);
  });
});
