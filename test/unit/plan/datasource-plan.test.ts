import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { emptyCatalog } from '../../../src/plan/catalog.js';
import { describeStep, planDataSource, planHash, type MigrationStep } from '../../../src/plan/datasource-plan.js';
import { column, dataSource, inNamespace, materializedInto, pipe, withColumns, withEngine, withSortingKey, withSpec } from '../../fixtures/builders.js';
import { catalogOf, tableFor } from '../../fixtures/catalog.js';

const pageViews = (...mods: ((d: DataSource) => void)[]) =>
  dataSource(
    'page-views',
    inNamespace('web'),
    withColumns(
      column('timestamp', 'DateTime64(3)'),
      column('tenant_id', 'LowCardinality(String)'),
      column('pathname', 'String'),
      column('duration_ms', 'UInt32', { default: '0' }),
    ),
    withSortingKey('tenant_id', 'timestamp'),
    withEngine({ partitionKey: 'toYYYYMM(timestamp)' }),
    ...mods,
  );

/** Plan `next` against the catalog in which `current` was applied. */
const change = (current: DataSource, next: DataSource) => planDataSource(next, catalogOf(tableFor(current)));
const kinds = (steps: MigrationStep[]) => steps.map((s) => s.kind);
const alter = (steps: MigrationStep[]) => (steps[0]?.kind === 'AlterTable' ? steps[0].actions : []);
const copy = (steps: MigrationStep[]) => (steps[0]?.kind === 'CopyAndSwap' ? steps[0] : undefined);

describe('planDataSource: create', () => {
  it('creates database, table (version 1) and quarantine, in that order', () => {
    const plan = planDataSource(pageViews(), emptyCatalog());
    expect(plan.refusals).toEqual([]);
    expect(kinds(plan.steps)).toEqual(['CreateDatabase', 'CreateTable', 'CreateQuarantine']);
    expect(plan.table).toBe('web.page_views');
    expect(plan.steps.map(describeStep)[1]).toBe('create table web.page_views (4 columns, MergeTree ORDER BY (tenant_id, timestamp)) as version 1');
  });

  it('has nothing to do when the table was built from the same spec', () => {
    expect(change(pageViews(), pageViews()).steps).toEqual([]);
  });

  it('refuses to take over a table weir did not create', () => {
    const catalog = catalogOf(tableFor(pageViews()));
    const t = catalog.tables[0];
    if (t) {
      t.comment = '';
      delete t.marker;
    }
    expect(planDataSource(pageViews(), catalog).refusals[0]).toMatch(/exists but was not created by weir/);
  });
});

describe('planDataSource: in place', () => {
  it('adds a column with its default after its predecessor', () => {
    const next = pageViews((d) => d.spec.columns.splice(3, 0, column('country', 'LowCardinality(String)', { default: "'unknown'" })));
    expect(alter(change(pageViews(), next).steps)).toEqual(["ADD COLUMN IF NOT EXISTS `country` LowCardinality(String) DEFAULT 'unknown' AFTER `pathname`"]);
  });

  it('adds a first column with FIRST', () => {
    const next = pageViews((d) => d.spec.columns.unshift(column('id', 'UInt64')));
    expect(alter(change(pageViews(), next).steps)).toEqual(['ADD COLUMN IF NOT EXISTS `id` UInt64 FIRST']);
  });

  it('refuses to drop a column unless allowDestructive', () => {
    const next = pageViews((d) => d.spec.columns.splice(2, 1));
    expect(change(pageViews(), next).refusals).toEqual(['dropping column pathname loses data; set spec.migration.allowDestructive: true to allow it']);
    next.spec.migration = { allowDestructive: true };
    const plan = change(pageViews(), next);
    expect(plan.refusals).toEqual([]);
    expect(alter(plan.steps)).toEqual(['DROP COLUMN IF EXISTS `pathname`']);
  });

  it('changes and removes defaults, codecs and comments', () => {
    const next = pageViews((d) => {
      const [ts, , path, dur] = d.spec.columns;
      if (ts) ts.codec = 'Delta, ZSTD(3)';
      if (path) path.comment = "the page's path";
      if (dur) delete dur.default;
    });
    expect(alter(change(pageViews(), next).steps)).toEqual([
      'MODIFY COLUMN `timestamp` DateTime64(3) CODEC(Delta, ZSTD(3))',
      "COMMENT COLUMN `pathname` 'the page\\'s path'",
      'MODIFY COLUMN `duration_ms` REMOVE DEFAULT',
    ]);
  });

  it('sets and removes TTL, settings and skipping indexes', () => {
    const withAll = pageViews((d) => {
      d.spec.engine.ttl = 'toDateTime(timestamp) + INTERVAL 30 DAY';
      d.spec.engine.settings = { index_granularity_bytes: '10485760', merge_with_ttl_timeout: '3600' };
      d.spec.indexes = [{ name: 'path_idx', expression: 'pathname', type: 'bloom_filter(0.01)', granularity: 4 }];
    });
    expect(alter(change(pageViews(), withAll).steps)).toEqual([
      'MODIFY TTL toDateTime(timestamp) + INTERVAL 30 DAY',
      'MODIFY SETTING index_granularity_bytes = 10485760',
      'MODIFY SETTING merge_with_ttl_timeout = 3600',
      'ADD INDEX IF NOT EXISTS `path_idx` pathname TYPE bloom_filter(0.01) GRANULARITY 4',
    ]);
    expect(alter(change(withAll, pageViews()).steps)).toEqual([
      'REMOVE TTL',
      'RESET SETTING index_granularity_bytes',
      'RESET SETTING merge_with_ttl_timeout',
      'DROP INDEX IF EXISTS `path_idx`',
    ]);
  });

  it('changes an index by dropping and re-adding it', () => {
    const a = pageViews((d) => (d.spec.indexes = [{ name: 'i', expression: 'pathname', type: 'minmax', granularity: 1 }]));
    const b = pageViews((d) => (d.spec.indexes = [{ name: 'i', expression: 'pathname', type: 'set(100)', granularity: 1 }]));
    expect(alter(change(a, b).steps)).toEqual(['DROP INDEX IF EXISTS `i`', 'ADD INDEX IF NOT EXISTS `i` pathname TYPE set(100) GRANULARITY 1']);
  });

  it('extends the sorting key in place with columns added in the same change', () => {
    const next = pageViews((d) => {
      d.spec.columns.push(column('session_id', 'String'));
      d.spec.engine.sortingKey = ['tenant_id', 'timestamp', 'session_id'];
    });
    const plan = change(pageViews(), next);
    expect(alter(plan.steps)).toEqual([
      'ADD COLUMN IF NOT EXISTS `session_id` String AFTER `duration_ms`',
      'MODIFY ORDER BY (`tenant_id`, `timestamp`, `session_id`)',
    ]);
  });
});

describe('planDataSource: copy-and-swap', () => {
  it('re-sorting by an existing column needs a new table version', () => {
    const plan = change(pageViews(), pageViews(withSortingKey('tenant_id', 'pathname', 'timestamp')));
    expect(copy(plan.steps)).toMatchObject({
      fromVersion: 1,
      toVersion: 2,
      oneToOne: true,
      reasons: ['sortingKey (tenant_id, timestamp) → (tenant_id, pathname, timestamp)'],
    });
    expect(describeStep(plan.steps[0] as MigrationStep)).toMatch(/^migrate web\.page_views v1 → v2 by copy-and-swap/);
  });

  it.each([
    ['partition key', pageViews(withEngine({ partitionKey: 'toYYYYMMDD(timestamp)' })), /^partitionKey/],
    ['engine', pageViews(withEngine({ type: 'ReplacingMergeTree' })), /^engine MergeTree → ReplacingMergeTree/],
    ['engine parameters', pageViews(withEngine({ type: 'SummingMergeTree', sumColumns: ['duration_ms'] })), /^engine/],
    ['primary key', pageViews(withEngine({ primaryKey: ['tenant_id'] })), /^primaryKey changed/],
    ['a column type', pageViews((d) => d.spec.columns[3] && (d.spec.columns[3].type = 'UInt64')), /^column duration_ms: UInt32 → UInt64/],
  ])('a change of %s needs a new table version', (_what, next, reason) => {
    const step = copy(change(pageViews(), next).steps);
    expect(step?.reasons[0]).toMatch(reason);
  });

  it('records type changes so the executor can count rows that would not convert', () => {
    const next = pageViews((d) => d.spec.columns[2] && (d.spec.columns[2].type = 'UInt32'));
    expect(copy(change(pageViews(), next).steps)?.typeChanges).toEqual([{ column: 'pathname', from: 'String', to: 'UInt32' }]);
  });

  it('uses the forward query and drops the 1:1 count check when one is given', () => {
    const next = pageViews(withSortingKey('pathname'), withSpec({ migration: { forwardQuery: "SELECT * FROM {source} WHERE pathname != ''" } }));
    expect(copy(change(pageViews(), next).steps)).toMatchObject({ oneToOne: false, forwardQuery: "SELECT * FROM {source} WHERE pathname != ''" });
  });

  it('does in-place changes as part of the copy, not separately', () => {
    const next = pageViews(withSortingKey('pathname'), (d) => (d.spec.engine.ttl = 'toDateTime(timestamp) + INTERVAL 1 DAY'));
    expect(kinds(change(pageViews(), next).steps)).toEqual(['CopyAndSwap']);
  });

  it('still refuses a dropped column during a copy without allowDestructive', () => {
    const next = pageViews(withSortingKey('timestamp'), (d) => d.spec.columns.splice(2, 1));
    expect(change(pageViews(), next).refusals).toHaveLength(1);
  });

  it('numbers the next version past every retained one', () => {
    const v3 = tableFor(pageViews(), { version: 3 });
    const retained = tableFor(pageViews(withSortingKey('timestamp')), { version: 2, name: 'page_views__v2' });
    const plan = planDataSource(pageViews(withSortingKey('pathname')), catalogOf(v3, retained));
    expect(copy(plan.steps)).toMatchObject({ fromVersion: 3, toVersion: 4 });
  });

  it('rolls back to a retained version with the same shape without a full copy', () => {
    const current = tableFor(pageViews(withSortingKey('tenant_id', 'pathname', 'timestamp')), { version: 2 });
    const retained = tableFor(pageViews(), { version: 1, name: 'page_views__v1' });
    const plan = planDataSource(pageViews(), catalogOf(current, retained));
    expect(plan.steps).toEqual([expect.objectContaining({ kind: 'SwapBack', fromVersion: 2, toVersion: 1, retainedTable: 'page_views__v1' })]);
  });

  it('finishes a migration interrupted after its swap went live', () => {
    const live = tableFor(pageViews(withSortingKey('pathname')), { version: 2 });
    const old = tableFor(pageViews(), { version: 1, name: 'page_views__weir_next' });
    const plan = planDataSource(pageViews(withSortingKey('pathname')), catalogOf(live, old));
    expect(plan.refusals).toEqual([]);
    expect(copy(plan.steps)).toMatchObject({ fromVersion: 1, toVersion: 2, reasons: ['finish the migration interrupted after v2 went live'] });
  });

  it('resumes, not restarts, a migration interrupted before its swap', () => {
    const live = tableFor(pageViews(), { version: 1 });
    const next = tableFor(pageViews(withSortingKey('pathname')), { version: 2, name: 'page_views__weir_next' });
    const plan = planDataSource(pageViews(withSortingKey('pathname')), catalogOf(live, next));
    expect(copy(plan.steps)).toMatchObject({ fromVersion: 1, toVersion: 2 });
  });
});

describe('planDataSource: backfill limits', () => {
  it('the copy carries spec.migration.backfill, and the plan hash an approval names does not change with it', () => {
    const resorted = (limits?: object) =>
      planDataSource(
        pageViews(withSortingKey('pathname', 'timestamp'), ...(limits ? [withSpec<DataSource>({ migration: { backfill: limits } })] : [])),
        catalogOf(tableFor(pageViews())),
      ).steps;
    const limited = resorted({ maxThreads: 1, maxMemoryBytes: 1024 ** 3, maxRowsPerSecond: 50_000 });
    expect(copy(limited)?.backfill).toEqual({ maxThreads: 1, maxMemoryBytes: 1024 ** 3, maxRowsPerSecond: 50_000 });
    expect(copy(resorted())).not.toHaveProperty('backfill');
    expect(planHash(limited)).toBe(planHash(resorted()));
    expect(planHash(resorted())).not.toBe(planHash(planDataSource(pageViews(withSortingKey('timestamp')), catalogOf(tableFor(pageViews()))).steps));
  });
});

describe('planDataSource: names taken', () => {
  const view = (name: string, comment: string) => ({ database: 'web', name, target: 'web.other', query: 'SELECT 1', comment });

  it('refuses a table name a view holds: CREATE TABLE IF NOT EXISTS would create nothing', () => {
    const plan = planDataSource(pageViews(), { databases: ['web'], tables: [], views: [view('page_views', 'weir-pipe:abc')] });
    expect(plan).toEqual({
      table: 'web.page_views',
      steps: [],
      refusals: ["web.page_views exists as a materialized Pipe's view, so its table cannot be created; rename the DataSource or drop the view"],
      preflightRefusals: [],
      drift: [],
    });
    expect(planDataSource(pageViews(), { databases: ['web'], tables: [], views: [view('page_views', '')] }).refusals).toEqual([
      'web.page_views exists as a view weir did not create, so its table cannot be created; rename the DataSource or drop the view',
    ]);
  });

  it("refuses a quarantine name a view or another DataSource's table holds", () => {
    const byView = planDataSource(pageViews(), { databases: ['web'], tables: [], views: [view('page_views_quarantine', '')] });
    expect(byView.steps).toEqual([]);
    expect(byView.refusals).toEqual([
      expect.stringMatching(/^web\.page_views_quarantine exists as a view weir did not create, so the quarantine table of web\.page_views cannot be created/),
    ]);
    const other = tableFor(dataSource('page-views-quarantine', inNamespace('web')));
    expect(planDataSource(pageViews(), catalogOf(other)).refusals).toEqual([
      'web.page_views_quarantine is the table of another DataSource, so it cannot be the quarantine table of web.page_views; rename one of the DataSources',
    ]);
  });

  it('refuses a clash with another resource of the project, before any step', () => {
    const rollup = pipe('page-views', inNamespace('web'), materializedInto('daily'));
    const plan = planDataSource(pageViews(), emptyCatalog(), [rollup, dataSource('daily', inNamespace('web'))]);
    expect(plan.steps).toEqual([]);
    expect(plan.refusals).toEqual([
      'web.page_views would be both the table of DataSource web/page-views and the materialized view of Pipe web/page-views; two ClickHouse objects cannot share a name: rename one of them',
    ]);
  });

  it('refuses reserved names and a forwardQuery it cannot embed', () => {
    expect(planDataSource(dataSource('events--v2'), emptyCatalog()).refusals).toEqual([expect.stringMatching(/^events--v2 is ClickHouse name events__v2/)]);
    const bad = pageViews(withSpec<DataSource>({ migration: { forwardQuery: 'SELECT * FROM {source}; DROP TABLE x' } }));
    expect(planDataSource(bad, emptyCatalog()).refusals).toEqual([expect.stringMatching(/^spec\.migration\.forwardQuery holds more than one statement/)]);
  });
});
