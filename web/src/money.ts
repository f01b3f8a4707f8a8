// Exact conversion between decimal strings ("12.34") and int64 minor units
// (1234n) for ISO 4217 currencies. Only string and BigInt arithmetic: money
// never passes through a JavaScript number.

/**
 * The ISO 4217 currencies whose minor unit is not a hundredth, with the
 * digits it has. The Rust crate has the same table; both are checked against
 * testdata/money-vectors.json.
 */
export const MINOR_UNIT_DIGITS: Readonly<Record<string, number>> = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0,
  RWF: 0, UGX: 0, UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
  CLF: 4, UYW: 4,
};

/** The largest value an int64 field can carry. */
const INT64_MAX = (1n << 63n) - 1n;

/** An amount a person typed that cannot be converted exactly. */
export class AmountError extends Error {
  override name = "AmountError";
}

/** True for a well-formed ISO 4217 code: three upper-case letters. */
export function isCurrencyCode(code: string): boolean {
  return /^[A-Z]{3}$/.test(code);
}

/** Number of minor-unit digits of `currency` (2 unless listed otherwise). */
export function minorDigits(currency: string): number {
  const code = currency.trim().toUpperCase();
  return Object.hasOwn(MINOR_UNIT_DIGITS, code) ? (MINOR_UNIT_DIGITS[code] ?? 2) : 2;
}

/** Whitespace around an amount that is ignored: ASCII only, as in the Rust crate. */
const SURROUNDING_SPACE = /^[ \t\n\f\r]+|[ \t\n\f\r]+$/g;

/**
 * Parses a non-negative decimal amount in major units into minor units,
 * exactly and never by a guess, by the rule the Rust crate (and so
 * payment-client) follows too (testdata/money-vectors.json): digits 0-9,
 * optionally a "." and one to as many digits as the currency has, with
 * surrounding ASCII whitespace ignored. No sign, no lone point (".5", "7."),
 * no grouping, and no more fraction digits than the currency has, not even
 * zeros ("5.00" JPY; "1.500" EUR is one thousand five hundred in many
 * locales).
 */
export function parseAmount(text: string, currency: string): bigint {
  if (!isCurrencyCode(currency)) throw new AmountError(`"${currency}" is not an ISO 4217 code such as EUR`);
  const digits = minorDigits(currency);
  const trimmed = text.replace(SURROUNDING_SPACE, "");
  if (trimmed === "") throw new AmountError("enter an amount");
  if (trimmed.startsWith("-")) throw new AmountError("the amount cannot be negative");
  const match = /^(\d+)(?:\.(\d+))?$/.exec(trimmed);
  if (!match) {
    const lonePoint = /^\d*\.\d*$/.test(trimmed);
    throw new AmountError(
      lonePoint
        ? `"${trimmed}" is not a decimal number: write a digit on both sides of the "." (such as 0.50)`
        : `"${trimmed}" is not a decimal number (use digits and one "." for the decimal point)`,
    );
  }
  const whole = match[1] ?? "";
  const fraction = match[2] ?? "";
  if (fraction.length > digits) {
    throw new AmountError(
      digits === 0
        ? `${currency} has no minor units: enter a whole number`
        : `${currency} has ${digits} decimal places: "${trimmed}" has more`,
    );
  }
  const minor = BigInt(whole + fraction.padEnd(digits, "0"));
  if (minor > INT64_MAX) throw new AmountError("the amount is too large");
  return minor;
}

/**
 * Formats minor units as a decimal in major units with exactly the
 * currency's number of decimal places: 1234n EUR is "12.34", 5n JPY is "5",
 * -5n EUR is "-0.05".
 */
export function formatAmount(minor: bigint, currency: string): string {
  const digits = minorDigits(currency);
  const negative = minor < 0n;
  const abs = (negative ? -minor : minor).toString();
  const sign = negative ? "-" : "";
  if (digits === 0) return sign + abs;
  const padded = abs.padStart(digits + 1, "0");
  const whole = padded.slice(0, padded.length - digits);
  const fraction = padded.slice(padded.length - digits);
  return `${sign}${whole}.${fraction}`;
}

/** Formats an amount with its currency code: "12.34 EUR". */
export function formatMoney(minor: bigint, currency: string): string {
  return `${formatAmount(minor, currency)} ${currency}`;
}
