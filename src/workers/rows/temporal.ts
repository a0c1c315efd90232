// Date, Date32, DateTime and DateTime64. ClickHouse clamps an out-of-range date (2106-02-08 into
// DateTime becomes 2106-02-07 06:28:15) without a word, so ranges are checked here.
import { Failure, type Convert } from './failure.js';

// YYYY-MM-DD, then optionally [T or space]hh:mm[:ss[.fraction]] and an offset (Z, ±hh, ±hhmm, ±hh:mm).
const DATE_TIME_TEXT = /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?([Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?$/;

const daysInMonth = (year: number, month: number): number =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;

// Date.UTC reads years 0..99 as 1900..1999; such years are out of every range anyway.
const utcSeconds = (year: number, month: number, day: number, hour = 0, minute = 0, second = 0): number =>
  year < 1000 ? -Infinity : Date.UTC(year, month - 1, day, hour, minute, second) / 1000;

const epochOf = (iso: string): number => Date.parse(iso) / 1000;

interface Range {
  /** Epoch seconds, inclusive. */
  min: number;
  max: number;
  text: string;
}

const DATE_RANGE: Range = { min: epochOf('1970-01-01T00:00:00Z'), max: epochOf('2149-06-06T00:00:00Z'), text: '1970-01-01..2149-06-06' };
const DATE32_RANGE: Range = { min: epochOf('1900-01-01T00:00:00Z'), max: epochOf('2299-12-31T00:00:00Z'), text: '1900-01-01..2299-12-31' };
const DATE_TIME_RANGE: Range = { min: 0, max: 2 ** 32 - 1, text: '1970-01-01 00:00:00..2106-02-07 06:28:15 UTC' };
const DATE_TIME64_RANGE: Range = {
  min: epochOf('1900-01-01T00:00:00Z'),
  max: epochOf('2299-12-31T23:59:59Z'),
  text: '1900-01-01 00:00:00..2299-12-31 23:59:59 UTC',
};
// DateTime64(9) counts nanoseconds in an Int64, which ends in 2262.
const DATE_TIME64_9_RANGE: Range = {
  min: DATE_TIME64_RANGE.min,
  max: epochOf('2262-04-11T23:47:15Z'),
  text: '1900-01-01 00:00:00..2262-04-11 23:47:15 UTC',
};

/** The text's parts, or a reason it is not a date-time; the epoch reads a wall-clock time without offset as UTC. */
type Parsed = { m: RegExpExecArray; epoch: number } | string;

function parse(text: string): Parsed {
  const m = DATE_TIME_TEXT.exec(text);
  if (!m) return 'not a date-time: use ISO 8601 or YYYY-MM-DD hh:mm:ss[.fff]';
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = m[4] === undefined ? 0 : Number(m[4]);
  const minute = m[5] === undefined ? 0 : Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
    return 'no such date or time';
  }
  let offset = 0;
  const zone = m[8];
  if (zone !== undefined && zone.length > 1) {
    const hours = Number(zone.slice(1, 3));
    const minutes = zone.length > 3 ? Number(zone.slice(-2)) : 0;
    if (hours > 23 || minutes > 59) return 'no such UTC offset';
    offset = (zone[0] === '-' ? -1 : 1) * (hours * 3600 + minutes * 60);
  }
  const epoch = utcSeconds(year, month, day, hour, minute, second) - offset;
  return { m, epoch };
}

/**
 * Date/Date32: 'YYYY-MM-DD', or a date-time whose date part is taken as written (its time and
 * offset are checked, then dropped: no conversion to UTC). Sent as 'YYYY-MM-DD'.
 */
export function date(expected: string, wide: boolean): Convert {
  const range = wide ? DATE32_RANGE : DATE_RANGE;
  return (v) => {
    if (typeof v !== 'string') return new Failure(expected, v);
    const p = parse(v);
    if (typeof p === 'string') return new Failure(expected, v, p);
    const m = p.m;
    const day = utcSeconds(Number(m[1]), Number(m[2]), Number(m[3]));
    if (!(day >= range.min && day <= range.max)) return new Failure(expected, v, `out of range ${range.text}`);
    return v.length === 10 ? v : v.slice(0, 10);
  };
}

const ZEROS = '000000000';

/**
 * DateTime (precision 'DateTime') and DateTime64(precision).
 * - Strings: ISO 8601 with or without T, seconds, fraction and offset. With an offset they are sent
 *   as 'YYYY-MM-DDThh:mm:ss[.f]±hh:mm' (an instant); without, as 'YYYY-MM-DD hh:mm:ss[.f]', a wall-clock
 *   time that ClickHouse reads in the column's (or the server's) time zone. The fraction is cut or
 *   padded to the precision.
 * - Numbers: Unix epoch seconds, with a fraction for DateTime64 (cut to the precision). DateTime sends
 *   whole seconds as a number; DateTime64 sends 'YYYY-MM-DDThh:mm:ss.fZ'.
 * Needs date_time_input_format='best_effort' for the ISO forms. A wall-clock time's range is checked
 * reading it as UTC, so within hours of a bound ClickHouse may still clamp it in another time zone.
 */
export function dateTime(expected: string, precision: number | 'DateTime'): Convert {
  const range = precision === 'DateTime' ? DATE_TIME_RANGE : precision >= 9 ? DATE_TIME64_9_RANGE : DATE_TIME64_RANGE;
  const outOfRange = `out of range ${range.text}`;
  const fromEpoch = precision === 'DateTime' ? epochSeconds(expected, range, outOfRange) : epochFraction(expected, precision, range, outOfRange);
  const digits = precision === 'DateTime' ? 0 : precision;
  return (v) => {
    if (typeof v === 'number') return fromEpoch(v);
    if (typeof v !== 'string') return new Failure(expected, v);
    const p = parse(v);
    if (typeof p === 'string') return new Failure(expected, v, p);
    if (!(p.epoch >= range.min && p.epoch <= range.max)) return new Failure(expected, v, outOfRange);
    const m = p.m;
    const time = m[4] === undefined ? '00:00:00' : `${m[4]}:${m[5]}:${m[6] ?? '00'}`;
    const fraction = digits === 0 ? '' : `.${m[7] === undefined ? ZEROS.slice(0, digits) : (m[7] + ZEROS).slice(0, digits)}`;
    const zone = m[8];
    if (zone === undefined) return `${m[1]}-${m[2]}-${m[3]} ${time}${fraction}`;
    const offset = zone.length === 1 ? 'Z' : zone.length === 3 ? `${zone}:00` : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone;
    return `${m[1]}-${m[2]}-${m[3]}T${time}${fraction}${offset}`;
  };
}

function epochSeconds(expected: string, range: Range, outOfRange: string): Convert {
  return (v) => {
    const seconds = Math.floor(v as number);
    if (seconds >= range.min && seconds <= range.max) return seconds;
    return new Failure(expected, v, Number.isFinite(v) ? outOfRange : undefined);
  };
}

function epochFraction(expected: string, precision: number, range: Range, outOfRange: string): Convert {
  const scale = 10 ** precision;
  return (v) => {
    const n = v as number;
    if (!(n >= range.min && n < range.max + 1)) return new Failure(expected, v, Number.isFinite(n) ? outOfRange : undefined);
    // The shortest text of the double (what the JSON said, mostly), not toFixed's binary expansion.
    const text = Math.abs(n) < 1e-6 ? n.toFixed(precision) : String(n);
    const dot = text.indexOf('.');
    let seconds = Number(dot < 0 ? text : text.slice(0, dot));
    let fraction = dot < 0 ? 0 : Number((text.slice(dot + 1) + ZEROS).slice(0, precision));
    if (n < 0 && fraction > 0) {
      seconds -= 1;
      fraction = scale - fraction;
    }
    const iso = new Date(seconds * 1000).toISOString().slice(0, 19);
    return precision === 0 ? `${iso}Z` : `${iso}.${String(fraction).padStart(precision, '0')}Z`;
  };
}
