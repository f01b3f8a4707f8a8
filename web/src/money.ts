// Exact conversion between decimal strings ("12.34") and int64 minor units
// (1234n) for ISO 4217 currencies. Only string and BigInt arithmetic: money
// never passes through a JavaScript number.

/** Currencies without minor units. */
const ZERO_DIGITS = new Set([
  "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
  "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
]);
/** Currencies with thousandths. */
const THREE_DIGITS = new Set(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]);
/** Currencies with ten-thousandths. */
const FOUR_DIGITS = new Set(["CLF", "UYW"]);

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
  if (ZERO_DIGITS.has(code)) return 0;
  if (THREE_DIGITS.has(code)) return 3;
  if (FOUR_DIGITS.has(code)) return 4;
  return 2;
}

/**
 * Parses a non-negative decimal amount in major units into minor units,
 * exactly. Accepts "12", "12.3", "12.34", ".5" and surrounding spaces; "_"
 * and spaces between digit groups are not accepted. More fraction digits
 * than the currency has are accepted only when they are zeros ("5.00" JPY),
 * since anything else could not be represented exactly.
 */
export function parseAmount(text: string, currency: string): bigint {
  const digits = minorDigits(currency);
  const trimmed = text.trim();
  if (trimmed === "") throw new AmountError("enter an amount");
  if (trimmed.startsWith("-")) throw new AmountError("the amount cannot be negative");
  const match = /^\+?(\d*)(?:\.(\d*))?$/.exec(trimmed);
  if (!match) throw new AmountError(`"${trimmed}" is not a decimal number (use digits and one "." for the decimal point)`);
  const whole = match[1] ?? "";
  let fraction = match[2] ?? "";
  if (whole === "" && fraction === "") throw new AmountError(`"${trimmed}" is not a decimal number`);
  if (fraction.length > digits) {
    const extra = fraction.slice(digits);
    if (/[^0]/.test(extra)) {
      throw new AmountError(
        digits === 0
          ? `${currency} has no minor units: enter a whole number`
          : `${currency} has ${digits} decimal places: "${trimmed}" has more`,
      );
    }
    fraction = fraction.slice(0, digits);
  }
  const minor = BigInt((whole || "0") + fraction.padEnd(digits, "0"));
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
