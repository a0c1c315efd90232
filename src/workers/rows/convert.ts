// One converter per ClickHouse type, built once per column: JSON value in, JSONEachRow value (or Failure) out.
import { isIPv6 } from 'node:net';
import { Failure, keyPath, type Convert } from './failure.js';
import { decimal, float, smallInteger, wideInteger } from './numbers.js';
import { date, dateTime } from './temporal.js';
import type { TypeArg, TypeNode } from './type-parser.js';

/** A compiled type: how to convert a non-null value, and whether null is allowed in its place. */
export interface CompiledType {
  convert: Convert;
  nullable: boolean;
  /** The type as written, for messages. */
  text: string;
}

/** A column type the mapper cannot honour, e.g. `FixedString(0)` or `DateTime64(12)`. */
export class UnsupportedTypeError extends Error {
  constructor(type: TypeNode, why: string) {
    super(`type ${type.text}: ${why}`);
    this.name = 'UnsupportedTypeError';
  }
}

// ClickHouse's SQL-compatibility aliases, by upper-case name (they are case-insensitive).
const ALIASES: Record<string, string> = {
  TINYINT: 'Int8',
  INT1: 'Int8',
  BYTE: 'Int8',
  'TINYINT SIGNED': 'Int8',
  'INT1 SIGNED': 'Int8',
  'TINYINT UNSIGNED': 'UInt8',
  'INT1 UNSIGNED': 'UInt8',
  SMALLINT: 'Int16',
  'SMALLINT SIGNED': 'Int16',
  'SMALLINT UNSIGNED': 'UInt16',
  YEAR: 'UInt16',
  INT: 'Int32',
  INTEGER: 'Int32',
  MEDIUMINT: 'Int32',
  'INT SIGNED': 'Int32',
  'INTEGER SIGNED': 'Int32',
  'MEDIUMINT SIGNED': 'Int32',
  'INT UNSIGNED': 'UInt32',
  'INTEGER UNSIGNED': 'UInt32',
  'MEDIUMINT UNSIGNED': 'UInt32',
  BIGINT: 'Int64',
  SIGNED: 'Int64',
  'BIGINT SIGNED': 'Int64',
  'BIGINT UNSIGNED': 'UInt64',
  UNSIGNED: 'UInt64',
  BIT: 'UInt64',
  SET: 'UInt64',
  FLOAT: 'Float32',
  REAL: 'Float32',
  SINGLE: 'Float32',
  DOUBLE: 'Float64',
  'DOUBLE PRECISION': 'Float64',
  BOOL: 'Bool',
  BOOLEAN: 'Bool',
  DECIMAL: 'Decimal',
  DEC: 'Decimal',
  NUMERIC: 'Decimal',
  FIXED: 'Decimal',
  DECIMAL32: 'Decimal32',
  DECIMAL64: 'Decimal64',
  DECIMAL128: 'Decimal128',
  DECIMAL256: 'Decimal256',
  DATE: 'Date',
  DATE32: 'Date32',
  DATETIME: 'DateTime',
  TIMESTAMP: 'DateTime',
  DATETIME64: 'DateTime64',
  ENUM: 'Enum',
  ENUM8: 'Enum8',
  ENUM16: 'Enum16',
  INET4: 'IPv4',
  INET6: 'IPv6',
  JSON: 'JSON',
  TEXT: 'String',
  TINYTEXT: 'String',
  MEDIUMTEXT: 'String',
  LONGTEXT: 'String',
  VARCHAR: 'String',
  VARCHAR2: 'String',
  NVARCHAR: 'String',
  CHAR: 'String',
  NCHAR: 'String',
  CHARACTER: 'String',
  'CHAR VARYING': 'String',
  'CHARACTER VARYING': 'String',
  'NATIONAL CHAR': 'String',
  'NATIONAL CHARACTER': 'String',
  'NATIONAL CHAR VARYING': 'String',
  'NATIONAL CHARACTER VARYING': 'String',
  'CHARACTER LARGE OBJECT': 'String',
  'CHAR LARGE OBJECT': 'String',
  'NCHAR VARYING': 'String',
  'NCHAR LARGE OBJECT': 'String',
  CLOB: 'String',
  BLOB: 'String',
  TINYBLOB: 'String',
  MEDIUMBLOB: 'String',
  LONGBLOB: 'String',
  BYTEA: 'String',
  'BINARY VARYING': 'String',
  VARBINARY: 'String',
  'BINARY LARGE OBJECT': 'String',
  BINARY: 'FixedString',
};

/** The family's canonical name: `BIGINT` → Int64, `datetime64` → DateTime64, `Int8` as is. */
export const canonicalName = (name: string): string => ALIASES[name.toUpperCase()] ?? name;

const INTEGERS: Record<string, [bits: number, signed: boolean]> = {
  Int8: [8, true],
  Int16: [16, true],
  Int32: [32, true],
  Int64: [64, true],
  Int128: [128, true],
  Int256: [256, true],
  UInt8: [8, false],
  UInt16: [16, false],
  UInt32: [32, false],
  UInt64: [64, false],
  UInt128: [128, false],
  UInt256: [256, false],
};

const DECIMAL_PRECISION: Record<string, number> = { Decimal32: 9, Decimal64: 18, Decimal128: 38, Decimal256: 76 };

const UUID_TEXT = /^(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|[0-9A-Fa-f]{32})$/;
// Dotted quad without leading zeros (01.2.3.4 would be octal to some readers).
const IPV4_TEXT = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

const passThrough: Convert = (v) => v;

/** JSON text of an object, or a Failure (cycles and BigInts, possible only through mapValue). */
function jsonText(expected: string, v: unknown): unknown {
  try {
    return JSON.stringify(v);
  } catch {
    return new Failure(expected, v, 'cannot be written as JSON');
  }
}

/** String: strings as they are; numbers and booleans as their text; objects and arrays as JSON text. */
function string(expected: string): Convert {
  return (v) => {
    switch (typeof v) {
      case 'string':
        return v;
      case 'number':
      case 'boolean':
      case 'bigint':
        return String(v);
      case 'object':
        return jsonText(expected, v);
      case 'undefined':
      case 'function':
      case 'symbol':
        return new Failure(expected, v);
    }
  };
}

/** FixedString(N): as String, then at most N bytes of UTF-8 (ClickHouse pads shorter values with zero bytes). */
function fixedString(expected: string, bytes: number): Convert {
  const toString = string(expected);
  return (v) => {
    const s = toString(v);
    if (typeof s !== 'string') return s;
    // Every UTF-16 unit is 1 to 3 bytes of UTF-8: short strings need no counting.
    if (s.length * 3 <= bytes) return s;
    const length = Buffer.byteLength(s, 'utf8');
    return length <= bytes ? s : new Failure(expected, v, `${length} bytes of UTF-8, more than ${bytes}`);
  };
}

const bool =
  (expected: string): Convert =>
  (v) => {
    if (v === true || v === 1 || v === 'true') return true;
    if (v === false || v === 0 || v === 'false') return false;
    return new Failure(expected, v);
  };

const matching =
  (expected: string, accepts: (s: string) => boolean): Convert =>
  (v) =>
    typeof v === 'string' && accepts(v) ? v : new Failure(expected, v);

/** Enum8/Enum16: a name, or a number that is one of the values; sent as the name. */
function enumeration(type: TypeNode): Convert {
  const byName = new Set<string>();
  const byValue = new Map<number, string>();
  type.args.forEach((arg, i) => {
    // Enum('a', 'b') numbers its names from 1.
    if (arg.kind === 'string') {
      byName.add(arg.value);
      byValue.set(i + 1, arg.value);
    } else if (arg.kind === 'enum') {
      byName.add(arg.name);
      byValue.set(Number(arg.value), arg.name);
    } else {
      throw new UnsupportedTypeError(type, "enum elements must be 'name' = value");
    }
  });
  if (byName.size === 0) throw new UnsupportedTypeError(type, 'an enum needs at least one element');
  return (v) => {
    if (typeof v === 'string') return byName.has(v) ? v : new Failure(type.text, v);
    if (typeof v === 'number') return byValue.get(v) ?? new Failure(type.text, v);
    return new Failure(type.text, v);
  };
}

const typeArg = (type: TypeNode, arg: TypeArg | undefined, what: string): TypeNode => {
  if (arg?.kind !== 'type') throw new UnsupportedTypeError(type, `expected ${what}`);
  return arg.type;
};

function integerArg(type: TypeNode, arg: TypeArg | undefined, what: string, min: number, max: number): number {
  const n = arg?.kind === 'number' ? Number(arg.value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new UnsupportedTypeError(type, `${what} must be an integer from ${min} to ${max}`);
  return n;
}

const isNull = (v: unknown): boolean => v === null || v === undefined;

/** Array(T): a JSON array, each element converted; null elements only when T is Nullable. */
function array(element: CompiledType): Convert {
  const { convert, nullable } = element;
  return (v) => {
    if (!Array.isArray(v)) return new Failure(`Array(${element.text})`, v);
    const out: unknown[] = new Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const e: unknown = v[i];
      if (isNull(e)) {
        if (!nullable) return new Failure(element.text, e ?? null, undefined, `[${i}]`);
        out[i] = null;
        continue;
      }
      const r = convert(e);
      if (r instanceof Failure) {
        r.at = `[${i}]${r.at}`;
        return r;
      }
      out[i] = r;
    }
    return out;
  };
}

/** Map(K, V): a JSON object; keys checked against K (String keys as they are), values converted. */
function map(type: TypeNode, key: CompiledType, value: CompiledType, stringKeys: boolean): Convert {
  return (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return new Failure(type.text, v);
    // No prototype: a "__proto__" key stays a key.
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const k of Object.keys(v)) {
      let outKey = k;
      if (!stringKeys) {
        const rk = key.convert(k);
        if (rk instanceof Failure) return new Failure(key.text, k, 'not a valid key', keyPath(k));
        outKey = String(rk);
      }
      const e = (v as Record<string, unknown>)[k];
      if (isNull(e)) {
        if (!value.nullable) return new Failure(value.text, e ?? null, undefined, keyPath(k));
        out[outKey] = null;
        continue;
      }
      const r = value.convert(e);
      if (r instanceof Failure) {
        r.at = `${keyPath(k)}${r.at}`;
        return r;
      }
      out[outKey] = r;
    }
    return out;
  };
}

/**
 * Tuple(T1, T2, ...): a JSON array of exactly that many elements, each converted. A named tuple
 * also takes a JSON object, its known fields converted (others and missing ones are ClickHouse's
 * call), and is always sent as an object: JSONEachRow reads named tuples only from objects.
 */
function tuple(type: TypeNode, elements: CompiledType[], names: (string | undefined)[]): Convert {
  const byName = new Map<string, CompiledType>();
  names.forEach((n, i) => n !== undefined && byName.set(n, elements[i] as CompiledType));
  const fieldNames = byName.size === elements.length ? (names as string[]) : undefined;
  const one = (el: CompiledType, e: unknown, at: string): unknown => {
    if (isNull(e)) return el.nullable ? null : new Failure(el.text, e ?? null, undefined, at);
    const r = el.convert(e);
    if (r instanceof Failure) r.at = `${at}${r.at}`;
    return r;
  };
  return (v) => {
    if (Array.isArray(v)) {
      if (v.length !== elements.length) return new Failure(type.text, v, `${elements.length} elements expected`);
      const out: unknown[] = new Array(v.length);
      for (let i = 0; i < v.length; i++) {
        const r = one(elements[i] as CompiledType, v[i], `[${i}]`);
        if (r instanceof Failure) return r;
        out[i] = r;
      }
      if (!fieldNames) return out;
      const named: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      fieldNames.forEach((n, i) => (named[n] = out[i]));
      return named;
    }
    if (fieldNames && typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      for (const k of Object.keys(v)) {
        const el = byName.get(k);
        const e = (v as Record<string, unknown>)[k];
        const r = el ? one(el, e, keyPath(k)) : e;
        if (r instanceof Failure) return r;
        out[k] = r;
      }
      return out;
    }
    return new Failure(type.text, v);
  };
}

/** Compiles a parsed column type. Throws UnsupportedTypeError for arguments ClickHouse would refuse too. */
export function compileType(type: TypeNode): CompiledType {
  const name = canonicalName(type.name);
  const text = type.text;
  const args = type.args;
  const plain = (convert: Convert): CompiledType => ({ convert, nullable: false, text });

  const integer = INTEGERS[name];
  if (integer) {
    const [bits, signed] = integer;
    if (bits <= 32) {
      const min = signed ? -(2 ** (bits - 1)) : 0;
      const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
      return plain(smallInteger(text, min, max));
    }
    return plain(wideInteger(text, bits, signed));
  }

  switch (name) {
    case 'LowCardinality':
      return compileType(typeArg(type, args[0], 'LowCardinality(T)'));
    case 'Nullable':
      return { ...compileType(typeArg(type, args[0], 'Nullable(T)')), nullable: true };
    case 'SimpleAggregateFunction':
      // Stored as its argument type: SimpleAggregateFunction(sum, UInt64) takes UInt64 values.
      return compileType(typeArg(type, args[args.length - 1], 'SimpleAggregateFunction(f, T)'));
    case 'Float32':
    case 'BFloat16':
      return plain(float(text, 32));
    case 'Float64':
      return plain(float(text, 64));
    case 'Decimal': {
      const precision = args.length === 0 ? 10 : integerArg(type, args[0], 'precision', 1, 76);
      const scale = args.length < 2 ? 0 : integerArg(type, args[1], 'scale', 0, precision);
      return plain(decimal(text, precision, scale));
    }
    case 'Decimal32':
    case 'Decimal64':
    case 'Decimal128':
    case 'Decimal256': {
      const precision = DECIMAL_PRECISION[name] as number;
      return plain(decimal(text, precision, integerArg(type, args[0], 'scale', 0, precision)));
    }
    case 'Bool':
      return plain(bool(text));
    case 'String':
      return plain(string(text));
    case 'FixedString':
      // BINARY without a length is refused by ClickHouse too.
      return plain(fixedString(text, integerArg(type, args[0], 'length', 1, 2 ** 30)));
    case 'UUID':
      return plain(matching(text, (s) => UUID_TEXT.test(s)));
    case 'IPv4':
      return plain(matching(text, (s) => IPV4_TEXT.test(s)));
    case 'IPv6':
      // IPv4 text is stored mapped (::ffff:a.b.c.d); zone ids (%eth0) are not accepted.
      return plain(matching(text, (s) => (isIPv6(s) && !s.includes('%')) || IPV4_TEXT.test(s)));
    case 'Date':
      return plain(date(text, false));
    case 'Date32':
      return plain(date(text, true));
    case 'DateTime':
      return plain(dateTime(text, 'DateTime'));
    case 'DateTime64':
      return plain(dateTime(text, integerArg(type, args[0], 'precision', 0, 9)));
    case 'Enum':
    case 'Enum8':
    case 'Enum16':
      return plain(enumeration(type));
    case 'Array':
      return plain(array(compileType(typeArg(type, args[0], 'Array(T)'))));
    case 'Map': {
      if (args.length !== 2) throw new UnsupportedTypeError(type, 'expected Map(K, V)');
      const key = typeArg(type, args[0], 'Map(K, V)');
      const keyBase = key.name === 'LowCardinality' ? typeArg(key, key.args[0], 'LowCardinality(T)') : key;
      const stringKeys = canonicalName(keyBase.name) === 'String';
      return plain(map(type, compileType(key), compileType(typeArg(type, args[1], 'Map(K, V)')), stringKeys));
    }
    case 'Tuple': {
      if (args.length === 0) throw new UnsupportedTypeError(type, 'expected Tuple(T1, ...)');
      const elements = args.map((a) => compileType(typeArg(type, a, 'Tuple(T1, ...)')));
      return plain(
        tuple(
          type,
          elements,
          args.map((a) => (a.kind === 'type' ? a.field : undefined)),
        ),
      );
    }
    default:
      // JSON, Object, Dynamic, Variant, Nested, AggregateFunction, geo types, Time, Interval and the
      // unknown: the value goes as it came, and ClickHouse judges it.
      return plain(passThrough);
  }
}
