// ClickHouse maps the rows: a Kafka batch goes to ClickHouse as the raw messages, one a line, and an
// `INSERT … SELECT <mapping> FROM format(LineAsString, …)` turns them into the table's rows, so the
// worker parses no JSON for the messages that map cleanly (nearly all of them).
//
// The SQL accepts a message only when the JavaScript mapper (rows.ts) would accept it *and* give the
// same values: `ok` is a conservative subset of the mapper's rules (top-level jsonPaths; a key that
// appears once; String, integer and DateTime/DateTime64 columns in their plain JSON forms: strings,
// integer literals, `YYYY-MM-DDThh:mm:ss[.f]Z`). Every message the SQL refuses is mapped by the
// JavaScript mapper as before: inserted as a JSONEachRow line if it maps, quarantined with the
// mapper's reason if not. So reasons, what is accepted and what is stored are those of the events API.
//
// Column lists the SQL cannot map (other types, nested paths) are not compiled: the worker maps
// their batches in JavaScript. Pure: the statements are text, run by the worker.
import type { Column } from '../../api/datasource.js';
import { quoteIdentifier, quoteString } from '../../plan/sql.js';
import { canonicalName } from '../rows/convert.js';
import { parseJsonPath } from '../rows/json-path.js';
import { parseType, type TypeNode } from '../rows/type-parser.js';

export interface SqlMapping {
  /** `(a, b)`: the columns filled, in table order. */
  columnList: string;
  /** `expr AS __weir_…` over a String column `raw`: what `values` and `ok` read (each computed once a row). */
  bindings: string[];
  /** One expression per column, for a row where `ok` holds. */
  values: string[];
  /** True for a message the SQL maps exactly as the JavaScript mapper would. */
  ok: string;
}

/** Why a column list is mapped in JavaScript instead (for the log). */
export interface NotSqlMappable {
  reason: string;
}

/** The heredoc tag around a batch's messages in the statement; a message containing it goes to the JavaScript mapper. */
export const HEREDOC_TAG = '$weir_batch$';

/** Settings both statements of a batch need: one stream in message order, and room for the batch in the statement. */
export const sqlMappingSettings = (statementBytes: number) => ({
  max_threads: 1,
  input_format_parallel_parsing: 0,
  max_query_size: statementBytes + 65_536,
});

const SAFE = 2 ** 53 - 1;

const INTEGER_RANGES: Record<string, [min: number, max: number]> = {
  Int8: [-128, 127],
  Int16: [-32_768, 32_767],
  Int32: [-2_147_483_648, 2_147_483_647],
  Int64: [-SAFE, SAFE],
  UInt8: [0, 255],
  UInt16: [0, 65_535],
  UInt32: [0, 4_294_967_295],
  UInt64: [0, SAFE],
};

const ISO_UTC = "'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\\\.[0-9]+)?Z$'";

interface ColumnSql {
  bindings: string[];
  /** Accepts a present, non-null value. */
  ok: string;
  /** The value, for a row where `ok` holds. */
  value: string;
}

/**
 * The conversion of the non-null JSON value whose text is `rv` (one column's binding) to `type`,
 * or undefined when the SQL does not map that type. `i` names the column's other bindings.
 */
function convert(type: TypeNode, rv: string, i: number): ColumnSql | undefined {
  const name = canonicalName(type.name);
  // A JSON string's value: without escapes it is the text between the quotes.
  const s = `__weir_s${i}`;
  const stringBinding = `if(position(${rv}, '\\\\') = 0, substring(${rv}, 2, length(${rv}) - 2), JSONExtractString(${rv})) AS ${s}`;
  const isString = `startsWith(${rv}, '"')`;
  if (name === 'String') return { bindings: [stringBinding], ok: isString, value: s };
  const range = INTEGER_RANGES[name];
  if (range) {
    // An integer literal (not 1.0, not 1e2: those are the mapper's), exact within ±2^53.
    const n = `__weir_n${i}`;
    return {
      bindings: [`toInt64OrNull(${rv}) AS ${n}`],
      ok: `match(${rv}, '^-?[0-9]{1,16}$') AND ${n} BETWEEN ${range[0]} AND ${range[1]}`,
      value: `assumeNotNull(${n})`,
    };
  }
  if (name === 'DateTime64' || name === 'DateTime') {
    const precisionArg = name === 'DateTime64' ? type.args[0] : undefined;
    if (name === 'DateTime64' && precisionArg?.kind !== 'number') return undefined;
    const precision = precisionArg?.kind === 'number' ? Number(precisionArg.value) : 0;
    if (!Number.isInteger(precision) || precision < 0 || precision > 9) return undefined;
    const t = `__weir_t${i}`;
    const seconds = `substring(${s}, 1, 19)`;
    const wall = `concat(substring(${s}, 1, 10), ' ', substring(${s}, 12, 8))`;
    // The fraction cut or padded to the precision, as the mapper does (never rounded).
    const fraction = `substring(concat(extract(${s}, '\\\\.([0-9]+)Z$'), '000000000'), 1, ${precision})`;
    const parsed =
      name === 'DateTime'
        ? `toDateTimeOrNull(${wall}, 'UTC')`
        : precision === 0
          ? `toDateTime64OrNull(${wall}, 0, 'UTC')`
          : `toDateTime64OrNull(concat(${wall}, '.', ${fraction}), ${precision}, 'UTC')`;
    // The mapper's ranges, in whole seconds of the text (DateTime64(9) ends in 2262).
    const [min, max] =
      name === 'DateTime'
        ? ['1970-01-01T00:00:00', '2106-02-07T06:28:15']
        : precision >= 9
          ? ['1900-01-01T00:00:00', '2262-04-11T23:47:15']
          : ['1900-01-01T00:00:00', '2299-12-31T23:59:59'];
    return {
      bindings: [stringBinding, `${parsed} AS ${t}`],
      // The text read back must be the text sent: no 25:00, no 30 February, nothing clamped.
      ok: `${isString} AND match(${s}, ${ISO_UTC}) AND ${seconds} BETWEEN '${min}' AND '${max}' AND ${t} IS NOT NULL AND formatDateTime(assumeNotNull(${t}), '%Y-%m-%dT%H:%i:%S', 'UTC') = ${seconds}`,
      value: `assumeNotNull(${t})`,
    };
  }
  return undefined;
}

/**
 * The SQL mapping of a table's fed columns, or why there is none. Columns with a DEFAULT map too:
 * a message that leaves such a column out is the JavaScript mapper's (it omits the key).
 */
export function compileSqlMapping(columns: Column[]): SqlMapping | NotSqlMappable {
  const fed = columns.filter((c): c is Column & { jsonPath: string } => c.jsonPath !== undefined);
  if (fed.length === 0) return { reason: 'no column has a jsonPath' };
  // One parse a message: its top-level keys and the text of their values. Not JSON, or not an
  // object, gives none; so does {}, which the mapper then judges.
  const bindings: string[] = ['raw', 'JSONExtractKeysAndValuesRaw(raw) AS __weir_kv'];
  // No \u escapes (lone surrogates are the mapper's call).
  const ok: string[] = ['notEmpty(__weir_kv)', "position(raw, '\\\\u') = 0"];
  const values: string[] = [];
  for (const [i, c] of fed.entries()) {
    let path: (string | number)[];
    let type: TypeNode;
    try {
      path = parseJsonPath(c.jsonPath);
      type = parseType(c.type);
    } catch {
      return { reason: `column ${c.name}: the JavaScript mapper reports this column's problem` };
    }
    const key = path[0];
    if (path.length !== 1 || typeof key !== 'string') return { reason: `column ${c.name}: jsonPath ${c.jsonPath} is not a top-level key` };
    let base = type;
    let nullable = false;
    for (;;) {
      const n = canonicalName(base.name);
      const inner = base.args[0];
      if ((n === 'LowCardinality' || n === 'Nullable') && inner?.kind === 'type') {
        nullable ||= n === 'Nullable';
        base = inner.type;
        continue;
      }
      break;
    }
    const k = quoteString(key);
    const rv = `__weir_r${i}`;
    const sql = convert(base, rv, i);
    if (!sql) return { reason: `column ${c.name}: type ${c.type} is mapped in JavaScript` };
    bindings.push(`arrayFirst(x -> x.1 = ${k}, __weir_kv).2 AS ${rv}`, ...sql.bindings);
    // JSON.parse keeps the last of a repeated key, JSONExtract the first: a key must appear once.
    const once = `arrayCount(x -> x.1 = ${k}, __weir_kv) <= 1`;
    const absent = `(${rv} = '' OR ${rv} = 'null')`; // missing or null, as the mapper treats both
    if (nullable && c.default === undefined) {
      ok.push(`${once} AND (${absent} OR (${sql.ok}))`);
      values.push(`if(${absent}, NULL, ${sql.value})`);
    } else {
      // Missing and non-nullable (refused) or with a DEFAULT (left out): the mapper's.
      ok.push(`${once} AND NOT ${absent} AND ${sql.ok}`);
      values.push(sql.value);
    }
  }
  return { columnList: `(${fed.map((c) => quoteIdentifier(c.name)).join(', ')})`, bindings, values, ok: ok.map((o) => `(${o})`).join(' AND ') };
}

export const isSqlMapping = (m: SqlMapping | NotSqlMappable): m is SqlMapping => 'ok' in m;

/** The batch's lines as the `format()` source; the messages must not contain the tag or line breaks. */
const source = (lines: string): string => `format(LineAsString, 'raw String', ${HEREDOC_TAG}${lines}${HEREDOC_TAG})`;

/** The statement that inserts the lines the SQL maps. */
export function insertStatement(m: SqlMapping, table: string, lines: string): string {
  return `INSERT INTO ${table} ${m.columnList} SELECT ${m.values.join(', ')} FROM (SELECT ${m.bindings.join(', ')} FROM ${source(lines)}) WHERE ${m.ok}`;
}

/** The query that lists the lines (0-based) the SQL does not map: `SELECT refused` answers one row. */
export function refusedQuery(m: SqlMapping, lines: string): string {
  return `SELECT groupArray(n) AS refused FROM (SELECT rowNumberInAllBlocks() AS n, ${m.bindings.join(', ')} FROM ${source(lines)}) WHERE NOT (${m.ok})`;
}
