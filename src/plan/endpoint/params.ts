// Request parameters checked against an endpoint's compiled parameters before anything is
// sent to ClickHouse. Every value goes to ClickHouse as a query parameter (bound by the
// server), never as SQL text; checking first gives callers a clear 400 and stops the values
// ClickHouse would silently bend (UInt8 256 → 0, Date 2020-02-30 → 2020-03-01).
//
// How values are written:
// - Query string: `?name=value`, once per parameter. Integers `-12`, floats `1.5` / `1e3`,
//   Decimal `12.34`, Date `YYYY-MM-DD`, DateTime `YYYY-MM-DD hh:mm:ss` (or with a `T`, or a
//   date alone for midnight; DateTime64 adds `.fff`), Bool `true|false|1|0`, UUID with dashes.
// - Arrays: a JSON array (`ids=[1,2,3]`, `names=["a,b","c"]`) or a comma list (`ids=1,2,3`);
//   an empty value is the empty array. Commas inside elements need the JSON form.
// - Nullable: an empty value (`?x=`) is NULL, so an empty string reaches a Nullable(String)
//   only from a POST body.
// - POST body: a JSON object `{ "name": value }` with JSON numbers, strings, booleans, arrays
//   and null (NULL for a Nullable parameter; for any other, the same as leaving it out).
//   64-bit integers beyond 2^53 must be JSON strings to stay exact.
// - Size: each value may be at most MAX_PARAM_BYTES as sent to ClickHouse (ClickHouse's own default for a
//   form field, http_max_field_value_size); a longer one is a 400 naming it. Long values travel in the body
//   of the request to ClickHouse, never in its URL.
import type { CompiledEndpoint, EndpointParameter } from './compiled.js';
import { isIPv4Text, isIPv6Text } from './ip-text.js';
import { parseParamType, type ParamType } from './param-types.js';

/** A value as sent to ClickHouse: text for a scalar (the client escapes it), JS values inside arrays. */
export type BoundValue = string | null | BoundElement[];
export type BoundElement = string | number | bigint | boolean | null | BoundElement[];

export interface GivenValue {
  value: unknown;
  from: 'query' | 'body';
}

export type Validated<T> = { ok: true; value: T } | { ok: false; errors: string[] };

const MAX_SHOWN = 80;

/** How a rejected value is quoted back to the caller: JSON, so quotes and control characters stay visible. */
export function shown(value: unknown): string {
  const text = typeof value === 'bigint' ? String(value) : (JSON.stringify(value) ?? String(value));
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
}

/** The parameters of a request: each query-string key once, and the keys of a JSON object body. */
export function gatherParams(search: URLSearchParams, body?: unknown): Validated<Map<string, GivenValue>> {
  const given = new Map<string, GivenValue>();
  const errors: string[] = [];
  const repeated = new Set<string>();
  for (const [name, value] of search) {
    if (given.has(name)) repeated.add(name);
    else given.set(name, { value, from: 'query' });
  }
  for (const name of repeated) errors.push(`parameter ${name} is given more than once (for an array, write one value: a JSON array or a comma list)`);
  if (body !== undefined) {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      errors.push('the request body must be a JSON object of parameters, e.g. {"tenant": "acme"}');
    } else {
      for (const [name, value] of Object.entries(body)) {
        if (given.has(name)) errors.push(`parameter ${name} is given both in the query string and in the body`);
        else given.set(name, { value, from: 'body' });
      }
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: given };
}

/**
 * The values to bind for a request, defaults filled in, or every problem with it: unknown
 * names, missing required parameters, values that are not of their type, and values outside
 * min, max or enum.
 */
export function validateParams(
  endpoint: Pick<CompiledEndpoint, 'name' | 'params'>,
  given: ReadonlyMap<string, GivenValue>,
): Validated<Record<string, BoundValue>> {
  const errors: string[] = [];
  const known = new Set(endpoint.params.map((p) => p.name));
  const unknown = [...given.keys()].filter((name) => !known.has(name));
  if (unknown.length > 0) {
    const takes = endpoint.params.length > 0 ? `takes ${endpoint.params.map((p) => p.name).join(', ')}` : 'takes no parameters';
    const names = unknown.slice(0, 10).map((n) => (n.length > 64 ? `${n.slice(0, 64)}…` : n));
    if (unknown.length > names.length) names.push(`and ${unknown.length - names.length} more`);
    errors.push(`unknown parameter${unknown.length > 1 ? 's' : ''} ${names.join(', ')}; ${endpoint.name} ${takes}`);
  }
  const values: Record<string, BoundValue> = {};
  for (const param of endpoint.params) {
    const type = paramType(param.type);
    const input = given.get(param.name);
    // JSON null means "not given" unless the parameter can hold NULL.
    const present = input !== undefined && !(input.value === null && type.kind !== 'nullable');
    if (!present && param.default === undefined) {
      errors.push(`parameter ${param.name} is required (${param.type})`);
      continue;
    }
    const checked = present ? checkParam(param, type, input.value, input.from) : checkParam(param, type, param.default, 'query');
    if (checked.ok) values[param.name] = checked.value;
    else errors.push(...checked.errors);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: values };
}

/** One parameter's value: its type, then min, max and enum. Also used to check defaults and enums when compiling. */
export function checkParam(param: EndpointParameter, type: ParamType, input: unknown, from: 'query' | 'body'): Validated<BoundValue> {
  const parsed = parseValue(type, input, from);
  if (!parsed.ok) {
    return { ok: false, errors: [`parameter ${param.name}: expected ${param.type}, got ${shown(input)}${parsed.hint ? ` (${parsed.hint})` : ''}`] };
  }
  const errors: string[] = [];
  for (const text of parsed.texts) {
    if (text === null) continue;
    if (param.min !== undefined && Number(text) < param.min) errors.push(`parameter ${param.name}: ${text} is below the minimum ${param.min}`);
    if (param.max !== undefined && Number(text) > param.max) errors.push(`parameter ${param.name}: ${text} is above the maximum ${param.max}`);
    if (param.enum !== undefined && !param.enum.includes(text)) {
      errors.push(`parameter ${param.name}: ${shown(text)} is not an allowed value (allowed: ${param.enum.join(', ')})`);
    }
  }
  return errors.length > 0 ? { ok: false, errors: [...new Set(errors)] } : { ok: true, value: parsed.bound };
}

/** The most bytes one parameter value may take as sent to ClickHouse: 128 KiB, ClickHouse's http_max_field_value_size default. */
export const MAX_PARAM_BYTES = 128 * 1024;

/** Every bound value longer than `limit` bytes once written as ClickHouse receives it (`sentText`), named. */
export function oversizedParams(values: Readonly<Record<string, BoundValue>>, sentText: (value: BoundValue) => string, limit = MAX_PARAM_BYTES): string[] {
  const errors: string[] = [];
  for (const [name, value] of Object.entries(values)) {
    const bytes = Buffer.byteLength(sentText(value));
    if (bytes > limit) errors.push(`parameter ${name} is ${bytes} bytes as sent to ClickHouse; a parameter value may be at most ${limit} bytes`);
  }
  return errors;
}

const typeCache = new Map<string, ParamType>();

/** The parsed type of a compiled parameter (compiling refused every type this cannot read). */
export function paramType(text: string): ParamType {
  let type = typeCache.get(text);
  if (!type) {
    const parsed = parseParamType(text);
    if ('unsupported' in parsed) throw new Error(`parameter type ${text} was not refused when compiling: ${parsed.unsupported}`);
    type = parsed;
    typeCache.set(text, type);
  }
  return type;
}

type Parsed =
  { ok: true; bound: BoundValue; /** Canonical text of each checked scalar, for min/max/enum. */ texts: (string | null)[] } | { ok: false; hint?: string };

/** A scalar in its canonical text, and as an element of a JS array the client formats. */
type Scalar = { ok: true; text: string; element: BoundElement | undefined; elementHint?: string } | { ok: false; hint?: string };

function parseValue(type: ParamType, input: unknown, from: 'query' | 'body'): Parsed {
  if (type.kind === 'nullable') {
    if (input === null || (from === 'query' && input === '')) return { ok: true, bound: null, texts: [null] };
    return parseValue(type.inner, input, from);
  }
  if (type.kind === 'array') {
    const items = arrayItems(input, from);
    if (!items.ok) return items;
    const bound: BoundElement[] = [];
    const texts: (string | null)[] = [];
    for (const [i, item] of items.value.entries()) {
      const element = parseElement(type.element, item.value, item.fromList);
      if (!element.ok) return { ok: false, hint: `element ${i + 1}: ${element.hint ?? `not a ${type.element.text}`}` };
      bound.push(element.element);
      texts.push(...element.texts);
    }
    return { ok: true, bound, texts };
  }
  const scalar = parseScalar(type, input);
  if (!scalar.ok) return scalar;
  return { ok: true, bound: scalar.text, texts: [scalar.text] };
}

type Element = { ok: true; element: BoundElement; texts: (string | null)[] } | { ok: false; hint?: string };

function parseElement(type: ParamType, input: unknown, fromList: boolean): Element {
  if (type.kind === 'nullable') {
    if (input === null || (fromList && input === '')) return { ok: true, element: null, texts: [null] };
    return parseElement(type.inner, input, fromList);
  }
  if (type.kind === 'array') {
    if (!Array.isArray(input)) return { ok: false, hint: `${shown(input)} is not an array` };
    const elements: BoundElement[] = [];
    const texts: (string | null)[] = [];
    for (const item of input) {
      const e = parseElement(type.element, item, false);
      if (!e.ok) return e;
      elements.push(e.element);
      texts.push(...e.texts);
    }
    return { ok: true, element: elements, texts };
  }
  if (input === null) return { ok: false, hint: `null where ${type.text} cannot be NULL` };
  const trimmed = fromList && typeof input === 'string' && !isStringLike(type) ? input.trim() : input;
  const scalar = parseScalar(type, trimmed);
  if (!scalar.ok) return { ok: false, hint: `${shown(trimmed)} is not a ${type.text}${scalar.hint ? `: ${scalar.hint}` : ''}` };
  if (scalar.element === undefined) return { ok: false, hint: scalar.elementHint ?? `${shown(trimmed)} cannot be sent inside an array` };
  return { ok: true, element: scalar.element, texts: [scalar.text] };
}

const isStringLike = (type: ParamType): boolean => type.kind === 'string' || type.kind === 'fixedString' || type.kind === 'enum' || type.kind === 'identifier';

/** An array parameter's items: a JSON array, or from the query string a JSON array text or a comma list. */
function arrayItems(input: unknown, from: 'query' | 'body'): { ok: true; value: { value: unknown; fromList: boolean }[] } | { ok: false; hint?: string } {
  if (Array.isArray(input)) return { ok: true, value: input.map((value: unknown) => ({ value, fromList: false })) };
  if (typeof input !== 'string') return { ok: false, hint: 'write an array as a JSON array' };
  const text = input.trim();
  if (text === '') return { ok: true, value: [] };
  if (text.startsWith('[')) {
    // Numbers are taken as written, so that 64-bit integers in a JSON array text stay exact.
    const numbers = NUMBER_ARRAY.exec(text);
    if (numbers) return { ok: true, value: numbers[1]?.trim() ? numbers[1].split(',').map((value) => ({ value: value.trim(), fromList: true })) : [] };
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed)) return { ok: true, value: parsed.map((value: unknown) => ({ value, fromList: false })) };
    } catch {
      // falls through to the hint
    }
    return { ok: false, hint: 'not a valid JSON array' };
  }
  if (from === 'body') return { ok: false, hint: 'in a JSON body, write an array as a JSON array' };
  return { ok: true, value: input.split(',').map((value) => ({ value, fromList: true })) };
}

/** The text of a scalar input: JSON numbers and strings are text; booleans only for Bool. */
function scalarText(type: ParamType, input: unknown): string | { hint?: string } {
  if (typeof input === 'string') return input;
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return {};
    if (type.kind === 'int' && Number.isInteger(input) && !Number.isSafeInteger(input)) {
      return { hint: 'integers beyond 2^53 lose digits as JSON numbers; send them as JSON strings' };
    }
    return String(input);
  }
  if (typeof input === 'boolean' && type.kind === 'bool') return input ? 'true' : 'false';
  return {};
}

const NUMBER_ARRAY = /^\[((?:\s*-?[0-9][0-9.eE+-]*\s*,)*\s*(?:-?[0-9][0-9.eE+-]*)?\s*)\]$/;
const INTEGER = /^[+-]?\d+$/;
const FLOAT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?)?$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const FLOAT32_MAX = 3.4028234663852886e38;

function isCalendarDate(text: string): boolean {
  const m = DATE.exec(text);
  if (!m) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

function parseScalar(type: ParamType, input: unknown): Scalar {
  const raw = scalarText(type, input);
  if (typeof raw !== 'string') return { ok: false, ...raw };
  switch (type.kind) {
    case 'int': {
      if (!INTEGER.test(raw)) return { ok: false };
      const n = BigInt(raw);
      if (n < type.min || n > type.max) return { ok: false, hint: `${type.text} holds ${type.min} to ${type.max}` };
      return { ok: true, text: n.toString(), element: type.bits <= 32 ? Number(n) : n };
    }
    case 'float': {
      const n = Number(raw);
      if (!FLOAT.test(raw) || !Number.isFinite(n)) return { ok: false };
      if (type.text.includes('Float32') && Math.abs(n) > FLOAT32_MAX) return { ok: false, hint: `beyond the range of ${type.text}` };
      return { ok: true, text: String(n), element: n };
    }
    case 'decimal': {
      const m = DECIMAL.exec(raw);
      if (!m || (m[2] === '' && (m[3] ?? '') === '')) return { ok: false };
      const whole = (m[2] ?? '').replace(/^0+(?=\d)/, '') || '0';
      const fraction = (m[3] ?? '').replace(/0+$/, '');
      if (fraction.length > type.scale) return { ok: false, hint: `at most ${type.scale} digit(s) after the point` };
      if (whole !== '0' && whole.length > type.precision - type.scale) {
        return { ok: false, hint: `at most ${type.precision - type.scale} digit(s) before the point` };
      }
      const negative = m[1] === '-' && /[1-9]/.test(whole + fraction);
      const text = `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
      // Inside an array the client writes numbers as JS numbers: exact up to 15 significant digits.
      const exact = (whole + fraction).replace(/^0+/, '').length <= 15;
      return exact
        ? { ok: true, text, element: Number(text) }
        : { ok: true, text, element: undefined, elementHint: 'Decimal elements of an array carry at most 15 significant digits' };
    }
    case 'date': {
      if (!DATE.test(raw) || !isCalendarDate(raw)) return { ok: false, hint: 'write dates as YYYY-MM-DD' };
      if (raw < type.min || raw > type.max) return { ok: false, hint: `${type.text} holds ${type.min} to ${type.max}` };
      return { ok: true, text: raw, element: raw };
    }
    case 'datetime': {
      const format = `YYYY-MM-DD hh:mm:ss${type.precision > 0 ? `[.${'f'.repeat(type.precision)}]` : ''}`;
      const m = DATE_TIME.exec(raw);
      const [date = '', hh = '00', mm = '00', ss = '00', fraction] = m ? m.slice(1) : [];
      if (!m || !isCalendarDate(date) || Number(hh) > 23 || Number(mm) > 59 || Number(ss) > 59) return { ok: false, hint: `write ${format}` };
      if (fraction !== undefined && fraction.length > type.precision) {
        return { ok: false, hint: type.precision === 0 ? `${type.text} has no fraction of a second` : `at most ${type.precision} digit(s) after the second` };
      }
      const seconds = `${date} ${hh}:${mm}:${ss}`;
      if (seconds < type.min || seconds > type.max) return { ok: false, hint: `${type.text} holds ${type.min} to ${type.max}` };
      const text = fraction === undefined ? seconds : `${seconds}.${fraction}`;
      return { ok: true, text, element: text };
    }
    case 'string':
      return { ok: true, text: raw, element: raw };
    case 'fixedString':
      if (Buffer.byteLength(raw) > type.bytes) return { ok: false, hint: `${type.text} holds at most ${type.bytes} byte(s)` };
      return { ok: true, text: raw, element: raw };
    case 'bool': {
      if (!/^(true|false|1|0)$/i.test(raw)) return { ok: false, hint: 'write true, false, 1 or 0' };
      const value = /^(true|1)$/i.test(raw);
      return { ok: true, text: String(value), element: value };
    }
    case 'uuid':
      if (!UUID.test(raw)) return { ok: false, hint: 'write xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx' };
      return { ok: true, text: raw.toLowerCase(), element: raw.toLowerCase() };
    case 'ipv4':
      return isIPv4Text(raw) ? { ok: true, text: raw, element: raw } : { ok: false };
    case 'ipv6':
      return isIPv6Text(raw) ? { ok: true, text: raw, element: raw } : { ok: false };
    case 'enum':
      if (!type.values.includes(raw)) return { ok: false, hint: `one of ${type.values.join(', ')}` };
      return { ok: true, text: raw, element: raw };
    case 'identifier':
      // Which names are allowed is the parameter's enum (required when compiling).
      return { ok: true, text: raw, element: undefined };
    case 'nullable':
    case 'array':
      return { ok: false };
  }
}
