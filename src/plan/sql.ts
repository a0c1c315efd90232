// SQL text weir generates. Every identifier goes through quoteIdentifier and every literal
// through quoteString; expressions from the spec (defaults, keys, TTL) are the user's SQL
// and are passed as written.
import type { Column, DataSourceSpec, Engine, SkippingIndex } from '../api/datasource.js';
import { IDENTIFIER } from '../api/schema-dsl.js';
import { DEDUPLICATION_WINDOW } from '../clickhouse/dedup.js';

export const quoteIdentifier = (name: string): string => `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;

export const quoteString = (value: string): string => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

export const qualified = (database: string, table: string): string => `${quoteIdentifier(database)}.${quoteIdentifier(table)}`;

const bareIdentifier = new RegExp(IDENTIFIER);

/** A key entry: a column name is quoted (it may be a keyword); an expression is the user's SQL. */
export const keyEntry = (entry: string): string => (bareIdentifier.test(entry) ? quoteIdentifier(entry) : entry);

export const keyTuple = (entries: string[]): string =>
  entries.length === 1 ? keyEntry(entries[0] as string) : `(${entries.map(keyEntry).join(', ')})`;

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
      return `ReplacingMergeTree(${[engine.versionColumn, engine.isDeletedColumn].filter((c): c is string => !!c).map(id).join(', ')})`;
    case 'SummingMergeTree':
      return engine.sumColumns?.length ? `SummingMergeTree((${engine.sumColumns.map(id).join(', ')}))` : 'SummingMergeTree';
    case 'CollapsingMergeTree':
      return `CollapsingMergeTree(${id(engine.signColumn ?? 'sign')})`;
    case 'VersionedCollapsingMergeTree':
      return `VersionedCollapsingMergeTree(${id(engine.signColumn ?? 'sign')}, ${id(engine.versionColumn ?? 'version')})`;
    default:
      return `${engine.type}`;
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
export const REQUIRED_TABLE_SETTINGS: Record<string, string> = { enable_block_number_column: '1', non_replicated_deduplication_window: String(DEDUPLICATION_WINDOW) };

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

export function createQuarantineSql(database: string, table: string): string {
  return createTableSql(
    database,
    quarantineTableName(table),
    { columns: QUARANTINE_COLUMNS, engine: { type: 'MergeTree', sortingKey: ['received_at'], partitionKey: 'toYYYYMM(received_at)' }, indexes: [] },
    `weir: rows of ${database}.${table} that could not be ingested`,
  );
}
