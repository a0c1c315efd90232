import { describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/api/datasource.js';
import { tokenize } from '../../../src/plan/sql-text.js';
import {
  createQuarantineSql,
  createTableSql,
  embeddingProblem,
  embedSql,
  engineClause,
  keyTuple,
  pipeSqlProblem,
  qualified,
  quoteIdentifier,
  quoteString,
  withoutTrailingSemicolons,
} from '../../../src/plan/sql.js';

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
        engine: {
          type: 'MergeTree',
          sortingKey: ['country', 'timestamp'],
          partitionKey: 'toYYYYMM(timestamp)',
          ttl: 'toDateTime(timestamp) + INTERVAL 1 DAY',
          settings: { index_granularity: '4096' },
        },
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
    expect(createQuarantineSql('web', 'page_views')).toMatch(
      /^CREATE TABLE `web`\.`page_views_quarantine`\n\(\n  `received_at` DateTime64\(3, 'UTC'\) DEFAULT now64\(3\),/,
    );
  });
});

/** The tokens of weir's SQL around an embedded query: what ClickHouse would parse. */
const wordsOf = (sql: string) => [...tokenize(sql)].map((t) => t.text);

describe("embedSql: the user's SQL inside weir's", () => {
  const rollup = 'SELECT day, count() AS n\nFROM page_views\nGROUP BY day';
  const endings: [string, string][] = [
    ['a trailing -- comment line', `${rollup}\n-- one row per day`],
    ['a -- comment on the last line', `${rollup} -- one row per day`],
    ['a trailing # comment', `${rollup} # one row per day`],
    ['a trailing /* comment */', `${rollup} /* one row per day */`],
    ['a trailing ;', `${rollup};`],
    ['a ; then a comment', `${rollup}; -- done`],
    ['several ; and spaces', `${rollup} ; ;\n\n`],
  ];

  for (const [what, sql] of endings) {
    it(`keeps what weir writes after SQL ending with ${what}`, () => {
      const embedded = embedSql(sql);
      expect(embedded.endsWith('\n')).toBe(true);
      expect(wordsOf(`DESCRIBE TABLE (${embedded})`)).toEqual(['DESCRIBE', 'TABLE', '(', ...wordsOf(rollup), ')']);
      expect(wordsOf(`CREATE MATERIALIZED VIEW v TO t AS ${embedded} COMMENT 'weir-pipe:x'`).slice(-2)).toEqual(['COMMENT', "'weir-pipe:x'"]);
      expect(wordsOf(`INSERT INTO s SELECT * FROM (${embedded}) SETTINGS a = 1`).slice(-5)).toEqual([')', 'SETTINGS', 'a', '=', '1']);
    });
  }

  it('is idempotent and keeps comments in the middle', () => {
    const sql = 'SELECT 1 -- one\n, 2 /* two */';
    expect(embedSql(embedSql(sql))).toBe(embedSql(sql));
    expect(embedSql(sql)).toBe('SELECT 1 -- one\n, 2 /* two */\n');
  });

  it('removes only the ; that ends the statement, never one in a string, name or comment', () => {
    expect(withoutTrailingSemicolons("SELECT ';' AS `a;` -- ;")).toBe("SELECT ';' AS `a;` -- ;");
    expect(withoutTrailingSemicolons('  SELECT 1;  ')).toBe('SELECT 1');
    expect(withoutTrailingSemicolons('SELECT 1; -- done')).toBe('SELECT 1 -- done');
    // As Pipe SQL was always trimmed: a spec hash over it does not change.
    expect(withoutTrailingSemicolons('SELECT 1 ;')).toBe('SELECT 1 ');
  });

  it('refuses a second statement, naming it', () => {
    expect(embeddingProblem('SELECT 1; DROP TABLE t')).toBe("holds more than one statement (a second one starts after ';': DROP TABLE t)");
    expect(() => embedSql('SELECT 1; DROP TABLE t')).toThrow(/the SQL holds more than one statement/);
  });

  it("refuses open quotes, comments and parentheses, which would take weir's text into the user's", () => {
    expect(embeddingProblem("SELECT 'abc")).toMatch(/leaves a string or quoted name open/);
    expect(embeddingProblem("SELECT 'it''")).toMatch(/leaves a string or quoted name open/);
    expect(embeddingProblem('SELECT 1 AS `a')).toMatch(/leaves a string or quoted name open/);
    expect(embeddingProblem('SELECT $$abc')).toMatch(/leaves a string or quoted name open/);
    expect(embeddingProblem('SELECT 1 /* note')).toBe('leaves a /* comment open (its */ is missing)');
    expect(embeddingProblem('SELECT 1 /* a /* nested */ still open')).toBe('leaves a /* comment open (its */ is missing)');
    expect(embeddingProblem('SELECT (1')).toBe('leaves 1 parenthesis open');
    expect(embeddingProblem('SELECT * FROM t) WHERE (1')).toBe('closes a parenthesis it did not open (at offset 15)');
    expect(embeddingProblem('-- only a comment')).toBe('holds no statement');
    expect(embeddingProblem('')).toBe('holds no statement');
  });

  it('accepts closed quotes, heredocs and comments at the end', () => {
    for (const sql of [
      "SELECT 'a''b'",
      "SELECT 'a\\'b'",
      'SELECT 1 AS `x`',
      'SELECT $$a$$',
      'SELECT $t$a$t$',
      'SELECT 1 /* a /* b */ c */',
      'SELECT 1 -- /* not a block',
      'SELECT (1)',
    ]) {
      expect(embeddingProblem(sql), sql).toBeUndefined();
    }
  });
});

describe('pipeSqlProblem: what may end a Pipe node', () => {
  it('refuses FORMAT, which weir picks', () => {
    expect(pipeSqlProblem('SELECT 1 FORMAT JSON')).toBe('ends with FORMAT JSON; remove it: weir picks the output format (an endpoint takes it from its URL)');
    expect(pipeSqlProblem('SELECT 1 FORMAT JSON;')).toMatch(/^ends with FORMAT JSON/);
    expect(pipeSqlProblem('SELECT 1 FORMAT JSON -- as JSON')).toMatch(/^ends with FORMAT JSON/);
  });

  it('refuses a top-level SETTINGS clause, which weir sets', () => {
    expect(pipeSqlProblem('SELECT 1 SETTINGS max_threads = 1')).toBe(
      "has a SETTINGS max_threads clause; remove it: weir sets the settings of the queries it runs (an endpoint's limits, a backfill's filters)",
    );
    expect(pipeSqlProblem('SELECT 1 settings max_result_rows=0, readonly = 0;')).toMatch(/^has a SETTINGS max_result_rows clause/);
  });

  it('accepts SETTINGS and FORMAT as names, in strings, comments and subqueries', () => {
    for (const sql of [
      'SELECT settings FROM t',
      "SELECT 'SETTINGS a = 1' AS s",
      'SELECT 1 -- SETTINGS a = 1',
      'SELECT * FROM (SELECT 1 SETTINGS max_threads = 1)',
      'SELECT format FROM t',
      "SELECT formatDateTime(now(), '%F') AS d",
    ]) {
      expect(pipeSqlProblem(sql), sql).toBeUndefined();
    }
  });

  it('refuses INTO OUTFILE and everything embedSql refuses', () => {
    expect(pipeSqlProblem("SELECT 1 INTO OUTFILE '/tmp/x'")).toBe('writes INTO OUTFILE, which weir never runs');
    expect(pipeSqlProblem('SELECT 1; SELECT 2')).toMatch(/^holds more than one statement/);
    expect(pipeSqlProblem('SELECT 1 /*')).toMatch(/comment open/);
  });
});
