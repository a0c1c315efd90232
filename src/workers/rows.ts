// The row mapper the events API and the Kafka ingesters share: one JSON event in, one JSONEachRow
// row for a DataSource's table out, or the reason it cannot be one (the quarantine table keeps the raw
// message, so errors name the column, the path, the expected type and the offending value only).
//
// Compiled once per column list: each column gets a jsonPath getter and a type converter closure, so
// mapping a row is a JSON.parse and one loop, with no exceptions unless the line is not JSON.
//
// Inserts of mapped rows need MAPPED_ROW_SETTINGS:
// - input_format_defaults_for_omitted_fields=1: a missing value for a column with a DEFAULT is left out
//   of the row, and ClickHouse must fill in the DEFAULT expression (not the type's zero).
// - date_time_input_format='best_effort': DateTime values with an offset go as ISO 8601 text.
//
// Types the mapper does not know (JSON, Dynamic, Variant, Nested, AggregateFunction, geo types, ...)
// take the JSON value as it came: ClickHouse judges it, and a refusal fails the whole insert.
import type { Column } from '../api/datasource.js';
import { compileType, type CompiledType } from './rows/convert.js';
import { Failure, showValue } from './rows/failure.js';
import { compileJsonPath, type JsonPathGetter } from './rows/json-path.js';
import { parseType } from './rows/type-parser.js';

/** JSONEachRow-ready values keyed by column name; columns left out take their DEFAULT. */
export type MappedRow = Record<string, unknown>;
export type RowResult = { ok: true; row: MappedRow } | { ok: false; error: string };
export type LineResult = { ok: true; line: string } | { ok: false; error: string };

export interface RowMapper {
  /** Maps one message or NDJSON line. */
  map(raw: string): RowResult;
  /** Maps an already parsed event. */
  mapValue(json: unknown): RowResult;
  /**
   * Maps one message straight to its JSONEachRow line (what `map` then JSON.stringify give),
   * with no row object in between: the Kafka ingesters map millions of messages a minute.
   */
  mapLine(raw: string): LineResult;
  /** The columns the mapper fills (those with a jsonPath), in table order. */
  columns: string[];
}

/** Settings every insert of mapped rows must carry (see the top of this file). */
export const MAPPED_ROW_SETTINGS = {
  input_format_defaults_for_omitted_fields: 1,
  date_time_input_format: 'best_effort',
} as const satisfies Record<string, string | number>;

/** A column list the mapper cannot compile: a bad jsonPath or type, named by column. */
export class ColumnMappingError extends Error {
  constructor(
    readonly column: string,
    why: string,
  ) {
    super(`column ${column}: ${why}`);
    this.name = 'ColumnMappingError';
  }
}

// What a missing value (absent or null) becomes.
const OMIT = 0; // a DEFAULT exists: leave the key out
const NULL = 1; // Nullable without DEFAULT: send null
const REFUSE = 2;

interface FedColumn {
  name: string;
  jsonPath: string;
  get: JsonPathGetter;
  type: CompiledType;
  missing: typeof OMIT | typeof NULL | typeof REFUSE;
}

const MAX_PARSE_MESSAGE = 200;

function compileColumn(c: Column & { jsonPath: string }): FedColumn {
  let get: JsonPathGetter;
  let type: CompiledType;
  try {
    get = compileJsonPath(c.jsonPath);
    type = compileType(parseType(c.type));
  } catch (e) {
    throw new ColumnMappingError(c.name, e instanceof Error ? e.message : String(e));
  }
  const missing = c.default !== undefined ? OMIT : type.nullable ? NULL : REFUSE;
  return { name: c.name, jsonPath: c.jsonPath, get, type, missing };
}

const describe = (c: FedColumn, f: Failure): string =>
  `column ${c.name} (${c.jsonPath}${f.at}): expected ${f.expected}, got ${showValue(f.value)}${f.detail ? `: ${f.detail}` : ''}`;

/** A message that is not JSON, with the error the quarantine records. */
class NotJson {
  readonly result: { ok: false; error: string };
  constructor(e: unknown) {
    const message = e instanceof Error ? e.message : String(e);
    this.result = { ok: false, error: `not JSON: ${message.length > MAX_PARSE_MESSAGE ? `${message.slice(0, MAX_PARSE_MESSAGE)}…` : message}` };
  }
}

function parseMessage(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch (e) {
    return new NotJson(e);
  }
}

/**
 * Compiles the mapper for a table's columns. Throws ColumnMappingError for a jsonPath outside the
 * grammar or a type it cannot parse; unknown type names are not errors (their values pass through).
 */
export function compileRowMapper(columns: Column[]): RowMapper {
  const fed = columns.filter((c): c is Column & { jsonPath: string } => c.jsonPath !== undefined).map(compileColumn);
  // A column named __proto__ must be an own key, which only a prototype-less object allows.
  const newRow = fed.some((c) => c.name === '__proto__') ? (): MappedRow => Object.create(null) as MappedRow : (): MappedRow => ({});

  const mapValue = (json: unknown): RowResult => {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return { ok: false, error: 'not a JSON object' };
    const row = newRow();
    for (const c of fed) {
      const v = c.get(json);
      if (v === undefined || v === null) {
        if (c.missing === OMIT) continue;
        if (c.missing === NULL) {
          row[c.name] = null;
          continue;
        }
        return { ok: false, error: `missing required field ${c.jsonPath} for column ${c.name}` };
      }
      const out = c.type.convert(v);
      if (out instanceof Failure) return { ok: false, error: describe(c, out) };
      row[c.name] = out;
    }
    return { ok: true, row };
  };

  const map = (raw: string): RowResult => {
    const json = parseMessage(raw);
    return json instanceof NotJson ? json.result : mapValue(json);
  };

  // `"name":` for each column, serialized once.
  const keys = fed.map((c) => `${JSON.stringify(c.name)}:`);
  const mapLine = (raw: string): LineResult => {
    const json = parseMessage(raw);
    if (json instanceof NotJson) return json.result;
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return { ok: false, error: 'not a JSON object' };
    let line = '{';
    for (let i = 0; i < fed.length; i++) {
      const c = fed[i] as FedColumn;
      const v = c.get(json);
      let out: unknown;
      if (v === undefined || v === null) {
        if (c.missing === OMIT) continue;
        if (c.missing === REFUSE) return { ok: false, error: `missing required field ${c.jsonPath} for column ${c.name}` };
        out = null;
      } else {
        out = c.type.convert(v);
        if (out instanceof Failure) return { ok: false, error: describe(c, out) };
      }
      line += `${line.length > 1 ? ',' : ''}${keys[i]}${JSON.stringify(out)}`;
    }
    return { ok: true, line: `${line}}` };
  };

  return { map, mapValue, mapLine, columns: fed.map((c) => c.name) };
}
