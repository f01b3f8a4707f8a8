import { describe, expect, it } from "vitest";
import vectors from "../../testdata/money-vectors.json";
import {
  AmountError,
  formatAmount,
  formatMoney,
  isCurrencyCode,
  MINOR_UNIT_DIGITS,
  minorDigits,
  parseAmount,
} from "./money.js";

/** testdata/money-vectors.json: the cases `cargo test` runs too (minor units as strings). */
interface MoneyVectors {
  exponents: Record<string, number>;
  parse: Array<{ text: string; currency: string; minor?: string; refused?: string }>;
  format: Array<{ minor: string; currency: string; text: string }>;
}
const shared: MoneyVectors = vectors;

describe("the money vectors shared with the Rust crate", () => {
  it("list every exponent this side knows, and agree on each", () => {
    for (const [currency, digits] of Object.entries(shared.exponents)) {
      expect(minorDigits(currency), currency).toBe(digits);
    }
    for (const [currency, digits] of Object.entries(MINOR_UNIT_DIGITS)) {
      expect(shared.exponents[currency], currency).toBe(digits);
    }
  });

  it.each(shared.parse.filter((v) => v.minor !== undefined))("accept $text $currency as $minor", (v) => {
    expect(parseAmount(v.text, v.currency)).toBe(BigInt(v.minor ?? ""));
  });

  it.each(shared.parse.filter((v) => v.refused !== undefined))("refuse $text $currency: $refused", (v) => {
    expect(() => parseAmount(v.text, v.currency)).toThrow(AmountError);
  });

  it.each(shared.format)("format $minor $currency as $text", (v) => {
    expect(formatMoney(BigInt(v.minor), v.currency)).toBe(v.text);
  });
});

describe("minorDigits", () => {
  it.each<[string, number]>([
    ["EUR", 2], ["USD", 2], ["GBP", 2], ["XYZ", 2],
    ...["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"].map((c): [string, number] => [c, 0]),
    ...["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"].map((c): [string, number] => [c, 3]),
    ["CLF", 4], ["UYW", 4],
  ])("%s has %i digits", (currency, digits) => {
    expect(minorDigits(currency)).toBe(digits);
  });
});

describe("parseAmount", () => {
  it.each([
    ["12.34", "EUR", 1234n],
    ["12.3", "EUR", 1230n],
    ["12", "EUR", 1200n],
    ["0.01", "EUR", 1n],
    ["  3.10 ", "USD", 310n],
    ["0", "EUR", 0n],
    ["000123.45", "EUR", 12345n],
    ["500", "JPY", 500n],
    ["1.234", "KWD", 1234n],
    ["1.2", "KWD", 1200n],
    ["1.2345", "CLF", 12345n],
    ["1.50", "EUR", 150n],
    // Exact beyond 2^53, where a float would round.
    ["90071992547409.93", "EUR", 9007199254740993n],
    ["10000000000000.00", "EUR", 1_000_000_000_000_000n],
    ["92233720368547758.07", "EUR", 9223372036854775807n],
    ["0.1", "EUR", 10n],
    ["0.29", "EUR", 29n], // 0.29 * 100 is 28.999999999999996 in floats
  ])("%s %s is %s minor units", (text, currency, minor) => {
    expect(parseAmount(text, currency)).toBe(minor);
  });

  it.each([
    ["", "EUR", /enter an amount/],
    ["   ", "EUR", /enter an amount/],
    ["-1", "EUR", /negative/],
    ["1.234", "EUR", /2 decimal places/],
    ["0.001", "EUR", /2 decimal places/],
    ["5.5", "JPY", /no minor units/],
    ["5.00", "JPY", /no minor units/],
    ["1.500", "EUR", /2 decimal places/],
    [".5", "EUR", /digit on both sides/],
    ["7.", "EUR", /digit on both sides/],
    ["+1.00", "EUR", /not a decimal number/],
    ["1", "eur", /not an ISO 4217 code/],
    ["1.23456", "CLF", /4 decimal places/],
    ["1,50", "EUR", /not a decimal number/],
    ["1e3", "EUR", /not a decimal number/],
    ["1.2.3", "EUR", /not a decimal number/],
    ["12 EUR", "EUR", /not a decimal number/],
    [".", "EUR", /not a decimal number/],
    ["0x10", "EUR", /not a decimal number/],
    ["Infinity", "EUR", /not a decimal number/],
    ["92233720368547758.08", "EUR", /too large/],
  ])("rejects %j for %s", (text, currency, message) => {
    expect(() => parseAmount(text, currency)).toThrow(AmountError);
    expect(() => parseAmount(text, currency)).toThrow(message);
  });
});

describe("formatAmount", () => {
  it.each([
    [1234n, "EUR", "12.34"],
    [5n, "EUR", "0.05"],
    [50n, "EUR", "0.50"],
    [0n, "EUR", "0.00"],
    [100n, "EUR", "1.00"],
    [-5n, "EUR", "-0.05"],
    [-1234n, "EUR", "-12.34"],
    [500n, "JPY", "500"],
    [0n, "JPY", "0"],
    [1234n, "KWD", "1.234"],
    [1n, "KWD", "0.001"],
    [12345n, "CLF", "1.2345"],
    [9223372036854775807n, "EUR", "92233720368547758.07"],
    [9007199254740993n, "EUR", "90071992547409.93"],
  ])("%s %s is %s", (minor, currency, text) => {
    expect(formatAmount(minor, currency)).toBe(text);
  });

  it("round-trips through parseAmount", () => {
    for (const currency of ["EUR", "JPY", "KWD", "CLF"]) {
      for (const minor of [0n, 1n, 9n, 10n, 99n, 100n, 101n, 123456789n, 10n ** 15n]) {
        expect(parseAmount(formatAmount(minor, currency), currency)).toBe(minor);
      }
    }
  });

  it("formats with the code", () => {
    expect(formatMoney(8766n, "EUR")).toBe("87.66 EUR");
  });
});

describe("isCurrencyCode", () => {
  it("accepts three upper-case letters only", () => {
    expect(isCurrencyCode("EUR")).toBe(true);
    expect(isCurrencyCode("eur")).toBe(false);
    expect(isCurrencyCode("EURO")).toBe(false);
    expect(isCurrencyCode("")).toBe(false);
  });
});
