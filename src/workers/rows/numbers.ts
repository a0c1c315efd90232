// Integers, floats and decimals. ClickHouse wraps an out-of-range integer (256 into UInt8 is 0)
// and truncates extra decimal places without a word, so every bound is checked here.
import { Failure, type Convert } from './failure.js';

const INTEGER_TEXT = /^[+-]?[0-9]+$/;
const BIG_INTEGER_TEXT = /^([+-]?)0*([0-9]+)$/;
const FLOAT_TEXT = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const DECIMAL_TEXT = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/;

const NOT_EXACT = 'integers beyond 2^53 are not exact as JSON numbers: send 64-bit and wider integers as strings';

/** Int8..Int32 and UInt8..UInt32: JSON numbers and strings of digits, sent as numbers. */
export function smallInteger(expected: string, min: number, max: number): Convert {
  return (v) => {
    if (typeof v === 'number') {
      if (Number.isInteger(v) && v >= min && v <= max) return v;
    } else if (typeof v === 'string' && INTEGER_TEXT.test(v)) {
      const n = Number(v);
      if (n >= min && n <= max) return n;
    }
    return new Failure(expected, v);
  };
}

/** `digits` (no sign, no leading zeros) is at most `bound`, both decimal strings. */
const atMost = (digits: string, bound: string): boolean => digits.length < bound.length || (digits.length === bound.length && digits <= bound);

/**
 * Int64..Int256 and UInt64..UInt256: safe-integer JSON numbers (sent as numbers) and strings of
 * digits (sent as normalised strings, exact at any width).
 */
export function wideInteger(expected: string, bits: number, signed: boolean): Convert {
  const b = BigInt(bits);
  const max = (signed ? 2n ** (b - 1n) - 1n : 2n ** b - 1n).toString();
  const minAbs = signed ? (2n ** (b - 1n)).toString() : '0';
  return (v) => {
    if (typeof v === 'number') {
      if (Number.isSafeInteger(v)) return signed || v >= 0 ? v : new Failure(expected, v);
      if (Number.isInteger(v)) return new Failure(expected, v, NOT_EXACT);
    } else if (typeof v === 'string') {
      const m = BIG_INTEGER_TEXT.exec(v);
      if (m) {
        const digits = m[2] as string;
        if (digits === '0') return '0';
        if (m[1] === '-') {
          if (atMost(digits, minAbs)) return `-${digits}`;
        } else if (atMost(digits, max)) {
          return digits;
        }
        return new Failure(expected, v, 'out of range');
      }
    }
    return new Failure(expected, v);
  };
}

const SPECIAL_FLOATS = new Map([
  ['nan', 'nan'],
  ['+nan', 'nan'],
  ['-nan', 'nan'],
  ['inf', 'inf'],
  ['+inf', 'inf'],
  ['-inf', '-inf'],
  ['infinity', 'inf'],
  ['+infinity', 'inf'],
  ['-infinity', '-inf'],
]);

/**
 * Float32/Float64: numbers and numeric strings, sent as numbers; "nan", "inf", "-inf" (any case)
 * sent as those strings, since JSON has no such numbers. Finite values beyond the type's range fail.
 */
export function float(expected: string, bits: 32 | 64): Convert {
  const finite = bits === 32 ? (n: number) => Number.isFinite(Math.fround(n)) : Number.isFinite;
  return (v) => {
    if (typeof v === 'number') {
      if (finite(v)) return v;
      if (Number.isNaN(v)) return 'nan';
      if (v === Infinity) return 'inf';
      if (v === -Infinity) return '-inf';
      return new Failure(expected, v, 'out of range');
    }
    if (typeof v === 'string') {
      if (FLOAT_TEXT.test(v)) {
        const n = Number(v);
        return finite(n) ? n : new Failure(expected, v, 'out of range');
      }
      const special = SPECIAL_FLOATS.get(v.toLowerCase());
      if (special !== undefined) return special;
    }
    return new Failure(expected, v);
  };
}

// Beyond this exponent every non-zero value has too many digits for Decimal256 either way.
const MAX_DECIMAL_EXPONENT = 200;

/**
 * Decimal(P, S): numbers and decimal strings (exponents allowed), sent as plain decimal strings.
 * More than S places or more than P - S integer digits fail: ClickHouse would truncate or refuse.
 */
export function decimal(expected: string, precision: number, scale: number): Convert {
  const integerDigits = precision - scale;
  return (v) => {
    let text: string;
    if (typeof v === 'string') text = v;
    else if (typeof v === 'number' && Number.isFinite(v)) text = String(v);
    else return new Failure(expected, v);
    const m = DECIMAL_TEXT.exec(text);
    if (!m || (m[2] === '' && (m[3] ?? '') === '')) return new Failure(expected, v);
    let whole = (m[2] as string).replace(/^0+/, '');
    let fraction = (m[3] ?? '').replace(/0+$/, '');
    if (whole === '' && fraction === '') return '0';
    if (m[4] !== undefined) {
      const exponent = Number(m[4]);
      if (exponent > MAX_DECIMAL_EXPONENT) return new Failure(expected, v, 'out of range');
      if (exponent < -MAX_DECIMAL_EXPONENT) return new Failure(expected, v, `more than ${scale} decimal places`);
      if (exponent > 0) {
        const moved = fraction.slice(0, exponent);
        whole = (whole + moved.padEnd(exponent, '0')).replace(/^0+/, '');
        fraction = fraction.slice(exponent);
      } else if (exponent < 0) {
        const padded = whole.padStart(-exponent, '0');
        fraction = (padded.slice(padded.length + exponent) + fraction).replace(/0+$/, '');
        whole = padded.slice(0, padded.length + exponent).replace(/^0+/, '');
      }
    }
    if (fraction.length > scale) return new Failure(expected, v, `more than ${scale} decimal places`);
    if (whole.length > integerDigits) return new Failure(expected, v, `more than ${integerDigits} digits before the decimal point`);
    return `${m[1] === '-' ? '-' : ''}${whole || '0'}${fraction ? `.${fraction}` : ''}`;
  };
}
