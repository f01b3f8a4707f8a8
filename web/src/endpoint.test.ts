import { afterEach, describe, expect, it, vi } from "vitest";
import { loadEndpoint, normalizeEndpoint, saveEndpoint } from "./endpoint.js";

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
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  // The module reads the build-time setting when it loads, so each case
  // loads it afresh with the setting it names.
  const withBuildEndpoint = async (value: string) => {
    vi.stubEnv("VITE_PAYMENT_ENDPOINT", value);
    vi.resetModules();
    return import("./endpoint.js");
  };

  it("defaults to the build-time endpoint, normalized", async () => {
    const built = await withBuildEndpoint("https://pay.example.com/api/");
    expect(built.DEFAULT_ENDPOINT).toBe("https://pay.example.com/api/");
    expect(built.loadEndpoint(memoryStorage())).toBe("https://pay.example.com/api");
  });

  it("defaults to a local server without a build-time endpoint", async () => {
    const built = await withBuildEndpoint("");
    expect(built.DEFAULT_ENDPOINT).toBe("http://127.0.0.1:50051");
    expect(built.loadEndpoint(memoryStorage())).toBe("http://127.0.0.1:50051");
  });

  it("remembers the chosen endpoint", () => {
    const storage = memoryStorage();
    saveEndpoint("http://127.0.0.1:9000/lambda-url/payment-lambda", storage);
    expect(loadEndpoint(storage)).toBe("http://127.0.0.1:9000/lambda-url/payment-lambda");
  });

  it("ignores a remembered value that is not a URL", async () => {
    const built = await withBuildEndpoint("https://pay.example.com/");
    const storage = memoryStorage();
    storage.setItem("payment.endpoint", "nonsense");
    expect(built.loadEndpoint(storage)).toBe("https://pay.example.com");
  });
});
