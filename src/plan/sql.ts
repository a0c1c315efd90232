// SQL text weir generates. Every identifier goes through quoteIdentifier and every literal
// through quoteString; expressions from the spec (defaults, keys, TTL) are the user's SQL
// and are passed as written.
import type { Column, DataSourceSpec, Engine, SkippingIndex } from '../api/datasource.js';
import { IDENTIFIER } from '../api/schema-dsl.js';
import { analyzeStatement, quoteIdentifier, quoteStringLiteral, tokenize, type Token } from './sql-text.js';

// One quoting rule for SQL weir writes and SQL it reads (sql-text.ts).
export { quoteIdentifier };
export const quoteString = quoteStringLiteral;

/**
 * Insert blocks each weir table remembers for deduplication (non_replicated_deduplication_window):
 * ingesters replay a batch with the same token after a crash (clickhouse/dedup.ts says more).
 */
export const DEDUPLICATION_WINDOW = 10_000;

export const qualified = (database: string, table: string): string => `${quoteIdentifier(database)}.${quoteIdentifier(table)}`;

const bareIdentifier = new RegExp(IDENTIFIER);

/** A key entry: a column name is quoted (it may be a keyword); an expression is the user's SQL. */
export const keyEntry = (entry: string): string => (bareIdentifier.test(entry) ? quoteIdentifier(entry) : entry);

export const keyTuple = (entries: string[]): string => (entries.length === 1 ? keyEntry(entries[0] as string) : `(${entries.map(keyEntry).join(', ')})`);

/** The part of a DataSource spec that defines its table: what a table version is made of. */
export interface TableShape {
  columns: Column[];
  engine: Engine;
  indexes: SkippingIndex[];
}

export const tableShape = (spec: DataSourceSpec): TableShape => ({
  columns: spec.columns.map((c) => ({ ...c })),
  engine: { ...spec.engine, type: spec.engine.type ?? 'MergeTree' },
  indexes: (spec.indexes ?? []).map((i) => ({ ...i, granularity: i.granularity ?? 1 })),
});

export function engineClause(engine: Engine): string {
  const id = quoteIdentifier;
  switch (engine.type) {
    case 'ReplacingMergeTree':
      return `ReplacingMergeTree(${[engine.versionColumn, engine.isDeletedColumn]
        .filter((c): c is string => !!c)
        .map(id)
        .join(', ')})`;
    case 'SummingMergeTree':
      return engine.sumColumns?.length ? `SummingMergeTree((${engine.sumColumns.map(id).join(', ')}))` : 'SummingMergeTree';
    case 'CollapsingMergeTree':
      return `CollapsingMergeTree(${id(engine.signColumn ?? 'sign')})`;
    case 'VersionedCollapsingMergeTree':
      return `VersionedCollapsingMergeTree(${id(engine.signColumn ?? 'sign')}, ${id(engine.versionColumn ?? 'version')})`;
    case 'MergeTree':
    case 'AggregatingMergeTree':
      return engine.type;
  }
}

/** The column part after the name and type: DEFAULT, COMMENT, CODEC, in ClickHouse's order. */
export function columnDetails(c: Column): string {
  return [
    c.default !== undefined ? `DEFAULT ${c.default}` : '',
    c.comment !== undefined ? `COMMENT ${quoteString(c.comment)}` : '',
    c.codec !== undefined ? `CODEC(${c.codec})` : '',
  ]
    .filter(Boolean)
    .join(' ');
}

export const columnDefinition = (c: Column): string => [quoteIdentifier(c.name), c.type, columnDetails(c)].filter(Boolean).join(' ');

export const indexDefinition = (i: SkippingIndex): string =>
  `INDEX ${quoteIdentifier(i.name)} ${i.expression} TYPE ${i.type} GRANULARITY ${i.granularity ?? 1}`;

/** Settings weir always sets: `_block_number` must survive merges for exactly-once copies. */
// enable_block_number_column: migrations copy by block number (see executor.ts).
// non_replicated_deduplication_window: ingest replays dedupe by token (see clickhouse/dedup.ts).
export const REQUIRED_TABLE_SETTINGS: Record<string, string> = {
  enable_block_number_column: '1',
  non_replicated_deduplication_window: String(DEDUPLICATION_WINDOW),
};

export function settingsClause(settings: Record<string, string> | undefined): string {
  const all = { ...REQUIRED_TABLE_SETTINGS, ...(settings ?? {}) };
  return Object.entries(all)
    .map(([k, v]) => `${k} = ${/^-?\d+(\.\d+)?$/.test(v) ? v : quoteString(v)}`)
    .join(', ');
}

export function createTableSql(database: string, table: string, shape: TableShape, comment: string): string {
  const e = shape.engine;
  const body = [...shape.columns.map(columnDefinition), ...shape.indexes.map(indexDefinition)].map((l) => `  ${l}`).join(',\n');
  return [
    `CREATE TABLE ${qualified(database, table)}`,
    `(\n${body}\n)`,
    `ENGINE = ${engineClause(e)}`,
    e.partitionKey ? `PARTITION BY ${e.partitionKey}` : '',
    e.primaryKey ? `PRIMARY KEY ${keyTuple(e.primaryKey)}` : '',
    `ORDER BY ${keyTuple(e.sortingKey)}`,
    e.ttl ? `TTL ${e.ttl}` : '',
    `SETTINGS ${settingsClause(e.settings)}`,
    `COMMENT ${quoteString(comment)}`,
  ]
    .filter(Boolean)
    .join('\n');
}

export const QUARANTINE_COLUMNS: Column[] = [
  { name: 'received_at', type: "DateTime64(3, 'UTC')", default: 'now64(3)' },
  { name: 'source', type: 'LowCardinality(String)', comment: 'http or kafka' },
  { name: 'raw', type: 'String', comment: 'the message as received' },
  { name: 'error', type: 'String', comment: 'why it was not ingested' },
  { name: 'topic', type: 'String', default: "''" },
  { name: 'partition', type: 'Int32', default: '-1' },
  { name: 'offset', type: 'Int64', default: '-1' },
];

export const quarantineTableName = (table: string): string => `${table}_quarantine`;

/** The COMMENT of a DataSource's quarantine table: how weir knows it as its own. */
export const quarantineComment = (database: string, table: string): string => `weir: rows of ${database}.${table} that could not be ingested`;

export function createQuarantineSql(database: string, table: string): string {
  return createTableSql(
    database,
    quarantineTableName(table),
    { columns: QUARANTINE_COLUMNS, engine: { type: 'MergeTree', sortingKey: ['received_at'], partitionKey: 'toYYYYMM(received_at)' }, indexes: [] },
    quarantineComment(database, table),
  );
}

// ---- the user's SQL inside weir's ------------------------------------------------------
// Pipe SQL (and a DataSource's forwardQuery) is spliced into `AS …`, `FROM (…)` and
// `DESCRIBE TABLE (…)`. Spliced as written, a trailing `-- comment` swallows what weir writes
// after it, a trailing ';' ends weir's statement early, and an open quote, comment or
// parenthesis takes weir's own text into the user's. embedSql is the one way in.

const isSymbolToken = (t: Token | undefined, s: string): boolean => t?.kind === 'symbol' && t.text === s;

/** Does the quoted run `raw` (a string, quoted name or heredoc token) have its closing quote? */
function isClosed(raw: string): boolean {
  const heredoc = /^\$[A-Za-z0-9_]*\$/.exec(raw)?.[0];
  if (heredoc) return raw.length >= 2 * heredoc.length && raw.endsWith(heredoc);
  const quote = raw[0];
  for (let i = 1; i < raw.length; i++) {
    if (raw[i] === '\\') i++;
    else if (raw[i] === quote) {
      if (raw[i + 1] !== quote) return i === raw.length - 1;
      i++;
    }
  }
  return false;
}

/** Is a block comment left open in `tail` (text holding only spaces and comments)? */
function opensBlockComment(tail: string): boolean {
  let i = 0;
  while (i < tail.length) {
    if (tail.startsWith('--', i) || tail[i] === '#') {
      const eol = tail.indexOf('\n', i);
      if (eol < 0) return false;
      i = eol + 1;
    } else if (tail.startsWith('/*', i)) {
      let depth = 0;
      while (i < tail.length) {
        if (tail.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (tail.startsWith('*/', i)) {
          depth--;
          i += 2;
          if (depth === 0) break;
        } else i++;
      }
      if (depth > 0) return true;
    } else i++;
  }
  return false;
}

/**
 * Why `sql` cannot be spliced into weir's statements, or undefined: it must be one statement
 * (a trailing ';' is fine), with its quotes, comments and parentheses closed. Worded to follow
 * "the SQL …".
 */
export function embeddingProblem(sql: string): string | undefined {
  const tokens = [...tokenize(sql)];
  const last = tokens[tokens.length - 1];
  if (!last) return 'holds no statement';
  if ((last.kind === 'string' || last.kind === 'quotedIdentifier') && !isClosed(sql.slice(last.start, last.end))) {
    return 'leaves a string or quoted name open (its closing quote is missing)';
  }
  if (opensBlockComment(sql.slice(last.end))) return 'leaves a /* comment open (its */ is missing)';
  let depth = 0;
  let ended = false;
  for (const t of tokens) {
    if (ended && !isSymbolToken(t, ';'))
      return `holds more than one statement (a second one starts after ';': ${sql.slice(t.start, t.start + 40).split('\n')[0] ?? ''})`;
    if (isSymbolToken(t, ';')) ended = true;
    else if (isSymbolToken(t, '(')) depth++;
    else if (isSymbolToken(t, ')') && --depth < 0) return `closes a parenthesis it did not open (at offset ${t.start})`;
  }
  if (depth > 0) return `leaves ${depth} parenthes${depth === 1 ? 'is' : 'es'} open`;
  return undefined;
}

/** The SQL without the ';' that ends it (comments after it stay), trimmed as Pipe SQL always was. */
export function withoutTrailingSemicolons(sql: string): string {
  const text = sql.trim();
  const tokens = [...tokenize(text)];
  let out = text;
  for (let i = tokens.length - 1; i >= 0 && isSymbolToken(tokens[i], ';'); i--) {
    const t = tokens[i] as Token;
    out = `${out.slice(0, t.start)}${out.slice(t.end)}`;
  }
  return out;
}

/**
 * The user's SQL, ready to splice into weir's: one statement, its ';' removed, ending on a
 * new line so that a trailing `-- comment` ends before weir's text goes on. Throws when it
 * cannot be spliced (planners refuse such SQL first, with embeddingProblem).
 */
export function embedSql(sql: string): string {
  const problem = embeddingProblem(sql);
  if (problem) throw new Error(`the SQL ${problem}: ${sql.trim().slice(0, 80)}`);
  return `${withoutTrailingSemicolons(sql)}\n`;
}

/** A top-level `SETTINGS name = …` clause of a query, as `SETTINGS name`. */
function querySettingsClause(sql: string): string | undefined {
  const tokens = [...tokenize(sql)];
  let depth = 0;
  for (const [i, t] of tokens.entries()) {
    if (isSymbolToken(t, '(')) depth++;
    else if (isSymbolToken(t, ')')) depth--;
    const next = tokens[i + 1];
    if (
      depth === 0 &&
      t.kind === 'word' &&
      t.text.toUpperCase() === 'SETTINGS' &&
      (next?.kind === 'word' || next?.kind === 'quotedIdentifier') &&
      isSymbolToken(tokens[i + 2], '=')
    ) {
      return `SETTINGS ${next.text}`;
    }
  }
  return undefined;
}

/**
 * Why a Pipe node's SQL cannot be one of weir's queries, or undefined: on top of
 * embeddingProblem, no FORMAT (weir picks the output format), no SETTINGS (weir sets the
 * settings of what it runs: an endpoint's limits, a backfill's filters) and no INTO OUTFILE.
 * Worded to follow "node <name> …".
 */
export function pipeSqlProblem(sql: string): string | undefined {
  const problem = embeddingProblem(sql);
  if (problem) return problem;
  const statement = analyzeStatement(sql);
  if (statement.outputFormat !== undefined) {
    return `ends with FORMAT ${statement.outputFormat}; remove it: weir picks the output format (an endpoint takes it from its URL)`;
  }
  const settings = querySettingsClause(sql);
  if (settings) {
    return `has a ${settings} clause; remove it: weir sets the settings of the queries it runs (an endpoint's limits, a backfill's filters)`;
  }
  if (statement.intoOutfile) return 'writes INTO OUTFILE, which weir never runs';
  return undefined;
}
