import { describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/api/datasource.js';
import { createQuarantineSql, createTableSql, engineClause, keyTuple, qualified, quoteIdentifier, quoteString } from '../../../src/plan/sql.js';

describe('quoting', () => {
  it('quotes identifiers with odd characters and reserved words', () => {
    expect(quoteIdentifier('select')).toBe('`select`');
    expect(quoteIdentifier('we`ird')).toBe('`we\\`ird`');
    expect(quoteIdentifier('back\\slash')).toBe('`back\\\\slash`');
    expect(qualified('my-db', 'order')).toBe('`my-db`.`order`');
  });

  it('quotes string literals so a quote cannot end them', () => {
    expect(quoteString("it's")).toBe("'it\\'s'");
    expect(quoteString("\\'; DROP TABLE t; --")).toBe("'\\\\\\'; DROP TABLE t; --'");
  });

  it('quotes plain column names in keys and leaves expressions as written', () => {
    expect(keyTuple(['order'])).toBe('`order`');
    expect(keyTuple(['tenant_id', 'toStartOfHour(ts)'])).toBe('(`tenant_id`, toStartOfHour(ts))');
  });
});

describe('engineClause', () => {
  const e = (x: Partial<Engine>): Engine => ({ type: 'MergeTree', sortingKey: ['a'], ...x });
  it.each([
    [e({}), 'MergeTree'],
    [e({ type: 'ReplacingMergeTree' }), 'ReplacingMergeTree()'],
    [e({ type: 'ReplacingMergeTree', versionColumn: 'v', isDeletedColumn: 'd' }), 'ReplacingMergeTree(`v`, `d`)'],
    [e({ type: 'SummingMergeTree' }), 'SummingMergeTree'],
    [e({ type: 'SummingMergeTree', sumColumns: ['x', 'y'] }), 'SummingMergeTree((`x`, `y`))'],
    [e({ type: 'AggregatingMergeTree' }), 'AggregatingMergeTree'],
    [e({ type: 'CollapsingMergeTree', signColumn: 's' }), 'CollapsingMergeTree(`s`)'],
    [e({ type: 'VersionedCollapsingMergeTree', signColumn: 's', versionColumn: 'v' }), 'VersionedCollapsingMergeTree(`s`, `v`)'],
  ])('%o → %s', (engine, sql) => {
    expect(engineClause(engine)).toBe(sql);
  });
});

describe('createTableSql', () => {
  it('writes every part of the table definition, with block numbers and insert deduplication enabled', () => {
    const sql = createTableSql(
      'web',
      'page_views',
      {
        columns: [
          { name: 'timestamp', type: 'DateTime64(3)', codec: 'Delta, ZSTD' },
          { name: 'country', type: 'LowCardinality(String)', default: "'unknown'", comment: 'ISO code' },
        ],
        engine: { type: 'MergeTree', sortingKey: ['country', 'timestamp'], partitionKey: 'toYYYYMM(timestamp)', ttl: 'toDateTime(timestamp) + INTERVAL 1 DAY', settings: { index_granularity: '4096' } },
        indexes: [{ name: 'c', expression: 'country', type: 'set(10)', granularity: 2 }],
      },
      'weir:{}',
    );
    expect(sql).toBe(
      [
        'CREATE TABLE `web`.`page_views`',
        '(',
        '  `timestamp` DateTime64(3) CODEC(Delta, ZSTD),',
        "  `country` LowCardinality(String) DEFAULT 'unknown' COMMENT 'ISO code',",
        '  INDEX `c` country TYPE set(10) GRANULARITY 2',
        ')',
        'ENGINE = MergeTree',
        'PARTITION BY toYYYYMM(timestamp)',
        'ORDER BY (`country`, `timestamp`)',
        'TTL toDateTime(timestamp) + INTERVAL 1 DAY',
        'SETTINGS enable_block_number_column = 1, non_replicated_deduplication_window = 10000, index_granularity = 4096',
        "COMMENT 'weir:{}'",
      ].join('\n'),
    );
  });

  it('creates the quarantine table with the columns ingestion fills', () => {
    expect(createQuarantineSql('web', 'page_views')).toMatch(/^CREATE TABLE `web`\.`page_views_quarantine`\n\(\n  `received_at` DateTime64\(3, 'UTC'\) DEFAULT now64\(3\),/);
  });
});
