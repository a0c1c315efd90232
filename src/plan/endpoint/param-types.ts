// The ClickHouse types an endpoint parameter may have, read from its {name:Type} placeholder.
// weir checks every value against its type before ClickHouse sees it, because ClickHouse is
// forgiving where an API must not be: it reads UInt8 256 as 0 and Date 2020-02-30 as
// 2020-03-01. A type weir cannot check is refused when the endpoint compiles.

export type ParamType =
  | { kind: 'int'; text: string; signed: boolean; bits: number; min: bigint; max: bigint }
  | { kind: 'float'; text: string }
  | { kind: 'decimal'; text: string; precision: number; scale: number }
  | { kind: 'date'; text: string; min: string; max: string }
  | { kind: 'datetime'; text: string; /** Digits after the second: 0 for DateTime. */ precision: number; min: string; max: string }
  | { kind: 'string'; text: string }
  | { kind: 'fixedString'; text: string; bytes: number }
  | { kind: 'bool'; text: string }
  | { kind: 'uuid'; text: string }
  | { kind: 'ipv4'; text: string }
  | { kind: 'ipv6'; text: string }
  | { kind: 'enum'; text: string; values: string[] }
  /** A name substituted into the SQL: allowed only with an enum of the names callers may pick. */
  | { kind: 'identifier'; text: string }
  | { kind: 'array'; text: string; element: ParamType }
  | { kind: 'nullable'; text: string; inner: ParamType };

/** A type with its arguments split at top-level commas: `DateTime64(3, 'UTC')` → DateTime64, [3, 'UTC']. */
export function splitType(text: string): { name: string; args: string[] | undefined } | undefined {
  const open = text.indexOf('(');
  if (open < 0) return /^[A-Za-z_][A-Za-z0-9_]*$/.test(text) ? { name: text, args: undefined } : undefined;
  if (!text.endsWith(')')) return undefined;
  const name = text.slice(0, open).trim();
  const inner = text.slice(open + 1, -1);
  const args: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '`' || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      args.push(inner.slice(start, i).trim());
      start = i + 1;
    }
    if (depth < 0) return undefined;
  }
  if (depth !== 0 || quote) return undefined;
  args.push(inner.slice(start).trim());
  return { name, args };
}

const INT = /^(U?)Int(8|16|32|64|128|256)$/;
const DECIMAL_PRECISION: Record<string, number> = { Decimal32: 9, Decimal64: 18, Decimal128: 38, Decimal256: 76 };

const intType = (text: string, signed: boolean, bits: number): ParamType => {
  const b = BigInt(bits);
  return signed
    ? { kind: 'int', text, signed, bits, min: -(1n << (b - 1n)), max: (1n << (b - 1n)) - 1n }
    : { kind: 'int', text, signed, bits, min: 0n, max: (1n << b) - 1n };
};

/** The names of an Enum8/Enum16 type: `Enum8('a' = 1, 'b' = 2)` → [a, b]. */
function enumNames(args: string[]): string[] | undefined {
  const names: string[] = [];
  for (const arg of args) {
    const m = /^'((?:[^'\\]|\\.|'')*)'(?:\s*=\s*-?\d+)?$/s.exec(arg);
    if (m?.[1] === undefined) return undefined;
    names.push(m[1].replace(/\\(.)|''/gs, (pair, escaped: string | undefined) => escaped ?? (pair === "''" ? "'" : pair)));
  }
  return names;
}

const isTimezone = (arg: string | undefined): boolean => arg === undefined || /^'[^'\\]*'$/.test(arg);

/**
 * The checkable shape of a ClickHouse type, or a reason it is not one endpoints take.
 * LowCardinality is transparent: a value is checked as its inner type.
 */
export function parseParamType(raw: string): ParamType | { unsupported: string } {
  const text = raw.trim();
  const parts = splitType(text);
  if (!parts) return { unsupported: `${text} is not a type weir can read` };
  const { name, args } = parts;
  const arity = args?.length ?? 0;
  const noArgs = args === undefined;

  const int = INT.exec(name);
  if (int && noArgs) return intType(text, int[1] === '', Number(int[2]));
  if ((name === 'Float32' || name === 'Float64') && noArgs) return { kind: 'float', text };
  if (name === 'Decimal' && args && (arity === 1 || arity === 2)) {
    const precision = Number(args[0]);
    const scale = Number(args[1] ?? 0);
    if (Number.isInteger(precision) && Number.isInteger(scale) && precision >= 1 && precision <= 76 && scale >= 0 && scale <= precision) {
      return { kind: 'decimal', text, precision, scale };
    }
  }
  const fixedPrecision = DECIMAL_PRECISION[name];
  if (fixedPrecision !== undefined && args && arity === 1) {
    const scale = Number(args[0]);
    if (Number.isInteger(scale) && scale >= 0 && scale <= fixedPrecision) return { kind: 'decimal', text, precision: fixedPrecision, scale };
  }
  if (name === 'Date' && noArgs) return { kind: 'date', text, min: '1970-01-01', max: '2149-06-06' };
  if (name === 'Date32' && noArgs) return { kind: 'date', text, min: '1900-01-01', max: '2299-12-31' };
  if (name === 'DateTime' && (noArgs || (arity === 1 && isTimezone(args?.[0])))) {
    return { kind: 'datetime', text, precision: 0, min: '1970-01-01 00:00:00', max: '2106-02-07 06:28:15' };
  }
  if (name === 'DateTime64' && args && (arity === 1 || arity === 2) && isTimezone(args[1])) {
    const precision = Number(args[0]);
    if (Number.isInteger(precision) && precision >= 0 && precision <= 9) {
      return { kind: 'datetime', text, precision, min: '1900-01-01 00:00:00', max: '2299-12-31 23:59:59' };
    }
  }
  if (name === 'String' && noArgs) return { kind: 'string', text };
  if (name === 'FixedString' && args && arity === 1) {
    const bytes = Number(args[0]);
    if (Number.isInteger(bytes) && bytes >= 1) return { kind: 'fixedString', text, bytes };
  }
  if ((name === 'Bool' || name === 'Boolean') && noArgs) return { kind: 'bool', text };
  if (name === 'UUID' && noArgs) return { kind: 'uuid', text };
  if (name === 'IPv4' && noArgs) return { kind: 'ipv4', text };
  if (name === 'IPv6' && noArgs) return { kind: 'ipv6', text };
  if ((name === 'Enum8' || name === 'Enum16' || name === 'Enum') && args) {
    const values = enumNames(args);
    if (values && values.length > 0) return { kind: 'enum', text, values };
  }
  if (name === 'Identifier' && noArgs) return { kind: 'identifier', text };
  if ((name === 'LowCardinality' || name === 'Nullable' || name === 'Array') && args && arity === 1) {
    const inner = parseParamType(args[0] ?? '');
    if ('unsupported' in inner) return inner;
    if (inner.kind === 'identifier') return { unsupported: `${text}: Identifier cannot be wrapped in another type` };
    if (name === 'LowCardinality') return { ...inner, text };
    if (name === 'Array') return { kind: 'array', text, element: inner };
    if (inner.kind === 'nullable' || inner.kind === 'array') return { unsupported: `${text} is not a valid ClickHouse type` };
    return { kind: 'nullable', text, inner };
  }
  return {
    unsupported: `${text} is not a type endpoint parameters take (they take integers, floats, Decimal, Date, Date32, DateTime, DateTime64, String, FixedString, Bool, UUID, IPv4, IPv6, Enum, Identifier, and Array, Nullable or LowCardinality of those)`,
  };
}

/** The type a scalar check runs on: Nullable's inner type, else the type itself. */
export const nonNull = (t: ParamType): ParamType => (t.kind === 'nullable' ? t.inner : t);

/** Numeric types: the ones min and max apply to (for an array, to each element). */
export function isNumeric(t: ParamType): boolean {
  const base = nonNull(t);
  if (base.kind === 'array') return isNumeric(base.element);
  return base.kind === 'int' || base.kind === 'float' || base.kind === 'decimal';
}
