// The rows of the safety-of-change matrix: one kind of change each, as data. A row says what
// the project is before and after, which writer feeds the table, whether the change is applied
// or refused, which executor fault points the change passes (each one a cell of the "executor
// SIGKILLed" column), where ClickHouse is killed, and what else to check at the end.
// To add a row, append one here; the harness and the report need no change (test/matrix/README.md).
import type { DataSource } from '../../src/api/datasource.js';
import type { Endpoint } from '../../src/api/endpoint.js';
import type { Pipe } from '../../src/api/pipe.js';
import type { ProjectResource } from '../../src/plan/graph.js';
import { column, endpoint, inNamespace, node, pipe, withNodes, withParams } from '../fixtures/builders.js';
import { exampleResources } from '../fixtures/kube.js';
import type { ClickHouse } from '../../src/clickhouse/connection.js';
import { DEFAULT_CHUNK_ROWS } from '../../src/plan/chunks.js';

export type WriterKind = 'events' | 'http' | 'kafka';

export interface RowContext {
  ns: string;
  db: string;
  /** The Kafka broker and this cell's topic (rows with the Kafka writer). */
  bootstrap: string;
  topic: string;
  /** This cell's reader Endpoint (unique per cell: `weir serve` serves one cell at a time). */
  readEndpoint: string;
}

export interface CheckContext extends RowContext {
  ch: ClickHouse;
  /** The last read through the endpoint, after the change. */
  lastRead: Record<string, unknown> | undefined;
}

export interface MatrixRow {
  id: string;
  title: string;
  writer: WriterKind;
  before(ctx: RowContext): ProjectResource[];
  after(ctx: RowContext): ProjectResource[];
  /** Runs after `before` is applied and seeded, before the cell's writer and reader start (e.g. reach v2 for a rollback). */
  setup?(ctx: RowContext, apply: (resources: ProjectResource[]) => Promise<void>): Promise<void>;
  outcome: 'applied' | 'refused';
  /** What the refusal must say (refused rows). */
  refusal?: RegExp;
  /** Executor fault points the change passes, in order: one "executor SIGKILLed" cell each. */
  faultPoints: string[];
  /** The fault point at which the executor is held while ClickHouse is SIGKILLed and restarted. */
  clickhouseKillAt?: string;
  /** Cells that cannot run, with the reason the table shows. */
  notApplicable?: { idle?: string; kill?: string; clickhouseKill?: string };
  /**
   * Rows inserted in bulk (by SQL, tenant 'bulk', no session id, each its own timestamp) after
   * the seed and before the writer starts: the scale row. The reader and the final checks count
   * them without a hash set of 100M ids (by timestamp, in buckets).
   */
  bulkRows?: number;
  /** A cell's time limit when it is not the default 5 minutes (the scale row). */
  cellTimeoutMs?: number;
  /** SQL filter over page_views that the rollup must equal a recomputation of (default: every row). */
  rollupWhere?: string;
  /** Serve the `after` Endpoints once the change is applied (the rollout of an Endpoint change). */
  rollsOutEndpoints?: boolean;
  /** Row-specific checks on the final state: problems, empty when it holds. */
  check?(ctx: CheckContext): Promise<string[]>;
}

// ---- the project ----------------------------------------------------------------------------

const READ_SQL = 'SELECT count() AS n, uniqExact(session_id) AS ids FROM page_views';

/**
 * The reader of the scale row: the writer's rows by id, the bulk rows by count (a bulk row
 * counted twice makes ids < n: `least` caps them at the number inserted).
 */
const bulkReadSql = (bulk: number): string =>
  `SELECT count() AS n, uniqExactIf(session_id, tenant_id != 'bulk') + least(countIf(tenant_id = 'bulk'), ${bulk}) AS ids FROM page_views`;

/**
 * WEIR_MATRIX_SCALE_ROWS=100000000 adds the scale row (npm run matrix:scale): a sorting-key
 * change of a table that many rows large, live and with the executor SIGKILLed at about 70 % of
 * its backfill. Not in npm test nor npm run matrix: each cell takes minutes on this machine.
 */
export const SCALE_ROWS = Number(process.env.WEIR_MATRIX_SCALE_ROWS ?? 0);

/** The example project, page-views fed by `writer`, plus the reader's Pipe and Endpoint over page_views itself. */
export function baseProject(ctx: RowContext, writer: WriterKind, readSql = READ_SQL, readParams: Endpoint['spec']['params'] = []): ProjectResource[] {
  const resources = (exampleResources(ctx.ns) as unknown as ProjectResource[]).map((r) => structuredClone(r));
  const pv = dataSourceOf(resources, 'page-views');
  if (writer === 'kafka' && pv.spec.ingestion)
    pv.spec.ingestion = {
      ...pv.spec.ingestion,
      kafka: { ...pv.spec.ingestion.kafka, bootstrapServers: [ctx.bootstrap], topic: ctx.topic },
      batch: { maxRows: 1000, maxDelayMs: 50 },
    };
  if (writer === 'events') delete pv.spec.ingestion;
  if (writer === 'http') pv.spec.ingestion = { http: { replicas: 1 } };
  const reads = pipe(ctx.readEndpoint, inNamespace(ctx.ns), withNodes(node('totals', readSql)));
  const ep = endpoint(ctx.readEndpoint, ctx.readEndpoint, inNamespace(ctx.ns), withParams(...(readParams ?? [])));
  return [...resources, reads, ep] as ProjectResource[];
}

export function dataSourceOf(resources: ProjectResource[], name: string): DataSource {
  const ds = resources.find((r) => r.kind === 'DataSource' && r.metadata.name === name);
  if (!ds) throw new Error(`no DataSource ${name}`);
  return ds as DataSource;
}

export function pipeOf(resources: ProjectResource[], name: string): Pipe {
  const p = resources.find((r) => r.kind === 'Pipe' && r.metadata.name === name);
  if (!p) throw new Error(`no Pipe ${name}`);
  return p as Pipe;
}

/** The base project with page-views changed by `change`. */
const withPageViews = (ctx: RowContext, writer: WriterKind, change: (ds: DataSource) => void): ProjectResource[] => {
  const resources = baseProject(ctx, writer);
  change(dataSourceOf(resources, 'page-views'));
  return resources;
};

const columnOf = (ds: DataSource, name: string) => {
  const c = ds.spec.columns.find((x) => x.name === name);
  if (!c) throw new Error(`no column ${name}`);
  return c;
};

// ---- row checks ----------------------------------------------------------------------------

async function tableInfo(ch: ClickHouse, db: string): Promise<{ engine_full: string; sorting_key: string; partition_key: string }> {
  const [t] = await ch.query<{ engine_full: string; sorting_key: string; partition_key: string }>(
    'SELECT engine_full, sorting_key, partition_key FROM system.tables WHERE database = {db:String} AND name = {t:String}',
    { params: { db, t: 'page_views' } },
  );
  return t ?? { engine_full: '', sorting_key: '', partition_key: '' };
}

async function columns(ch: ClickHouse, db: string): Promise<string[]> {
  return (await ch.query<{ name: string; type: string; default_expression: string }>(`DESCRIBE TABLE ${db}.page_views`)).map(
    (c) => `${c.name} ${c.type}${c.default_expression ? ` DEFAULT ${c.default_expression}` : ''}`,
  );
}

const expectThat = (what: string, actual: unknown, expected: unknown): string[] =>
  JSON.stringify(actual) === JSON.stringify(expected) ? [] : [`${what} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`];

const expectMatch = (what: string, actual: string, pattern: RegExp): string[] =>
  pattern.test(actual) ? [] : [`${what} is ${JSON.stringify(actual)}, expected ${pattern}`];

const COPY_AND_SWAP = ['Created', 'ChunkCopied', 'Backfilled', 'DeltaCopied', 'Verified', 'Exchanged', 'GapChecked'];
const IN_PLACE = ['AlterApplied', 'Altered', 'MarkerMoved'];
const NO_STEPS = 'a refused change stops before its first step: there is nothing to interrupt';

// ---- the rows ------------------------------------------------------------------------------

export const ROWS: MatrixRow[] = [
  {
    id: '1-in-place',
    title: 'Add a column, change a default, change the TTL (in place)',
    writer: 'events',
    before: (ctx) => baseProject(ctx, 'events'),
    after: (ctx) =>
      withPageViews(ctx, 'events', (ds) => {
        ds.spec.columns.push(column('referrer', 'String', { jsonPath: '$.payload.referrer', default: "''" }));
        columnOf(ds, 'country').default = "'zz'";
        ds.spec.engine.ttl = 'toDateTime(timestamp) + INTERVAL 365 DAY';
      }),
    outcome: 'applied',
    faultPoints: IN_PLACE,
    clickhouseKillAt: 'AlterApplied',
    check: async ({ ch, db }) => {
      const cols = await columns(ch, db);
      return [
        ...expectThat(
          'column referrer',
          cols.find((c) => c.startsWith('referrer ')),
          "referrer String DEFAULT ''",
        ),
        ...expectThat(
          'column country',
          cols.find((c) => c.startsWith('country ')),
          "country LowCardinality(String) DEFAULT 'zz'",
        ),
        ...expectMatch('engine', (await tableInfo(ch, db)).engine_full, /TTL toDateTime\(timestamp\) \+ toIntervalDay\(365\)/),
      ];
    },
  },
  {
    id: '2-drop-column',
    title: 'Drop a column (allowDestructive)',
    writer: 'events',
    before: (ctx) => baseProject(ctx, 'events'),
    after: (ctx) =>
      withPageViews(ctx, 'events', (ds) => {
        ds.spec.columns = ds.spec.columns.filter((c) => c.name !== 'country');
        ds.spec.migration = { ...ds.spec.migration, allowDestructive: true };
      }),
    outcome: 'applied',
    faultPoints: IN_PLACE,
    clickhouseKillAt: 'AlterApplied',
    check: async ({ ch, db }) =>
      expectThat(
        'columns',
        (await columns(ch, db)).map((c) => c.split(' ')[0]),
        ['timestamp', 'session_id', 'tenant_id', 'pathname', 'duration_ms'],
      ),
  },
  {
    id: '3-type-convertible',
    title: 'A convertible type change (duration_ms UInt32 → UInt64)',
    writer: 'events',
    before: (ctx) => baseProject(ctx, 'events'),
    after: (ctx) => withPageViews(ctx, 'events', (ds) => (columnOf(ds, 'duration_ms').type = 'UInt64')),
    outcome: 'applied',
    faultPoints: COPY_AND_SWAP,
    clickhouseKillAt: 'Backfilled',
    check: async ({ ch, db }) =>
      expectThat(
        'column duration_ms',
        (await columns(ch, db)).find((c) => c.startsWith('duration_ms ')),
        'duration_ms UInt64 DEFAULT 0',
      ),
  },
  {
    id: '3-type-refused',
    title: 'A type change some rows cannot take (pathname String → UInt32): refused',
    writer: 'events',
    before: (ctx) => baseProject(ctx, 'events'),
    after: (ctx) => withPageViews(ctx, 'events', (ds) => (columnOf(ds, 'pathname').type = 'UInt32')),
    outcome: 'refused',
    refusal: /\d+ row\(s\) of \w+\.page_views have a pathname that does not convert from String to UInt32 \(e\.g\. "\/page\/\d+"/,
    faultPoints: [],
    notApplicable: { kill: NO_STEPS, clickhouseKill: NO_STEPS },
  },
  {
    id: '4-sorting-key',
    title: 'Sorting key (tenant_id, timestamp) → (tenant_id, pathname, timestamp)',
    writer: 'kafka',
    before: (ctx) => baseProject(ctx, 'kafka'),
    after: (ctx) => withPageViews(ctx, 'kafka', (ds) => (ds.spec.engine.sortingKey = ['tenant_id', 'pathname', 'timestamp'])),
    outcome: 'applied',
    faultPoints: COPY_AND_SWAP,
    clickhouseKillAt: 'Backfilled',
    check: async ({ ch, db }) => expectThat('sorting key', (await tableInfo(ch, db)).sorting_key, 'tenant_id, pathname, timestamp'),
  },
  {
    id: '4-sorting-key-http',
    title: 'Sorting key change under the events API pod (weir events over HTTP, clients retrying with Idempotency-Key)',
    writer: 'http',
    before: (ctx) => baseProject(ctx, 'http'),
    after: (ctx) => withPageViews(ctx, 'http', (ds) => (ds.spec.engine.sortingKey = ['tenant_id', 'pathname', 'timestamp'])),
    outcome: 'applied',
    faultPoints: COPY_AND_SWAP,
    clickhouseKillAt: 'Backfilled',
    check: async ({ ch, db }) => expectThat('sorting key', (await tableInfo(ch, db)).sorting_key, 'tenant_id, pathname, timestamp'),
  },
  {
    id: '5-partition-key',
    title: 'Partition key toYYYYMM(timestamp) → toMonday(timestamp)',
    writer: 'kafka',
    before: (ctx) => baseProject(ctx, 'kafka'),
    after: (ctx) => withPageViews(ctx, 'kafka', (ds) => (ds.spec.engine.partitionKey = 'toMonday(timestamp)')),
    outcome: 'applied',
    faultPoints: COPY_AND_SWAP,
    clickhouseKillAt: 'Backfilled',
    check: async ({ ch, db }) => expectThat('partition key', (await tableInfo(ch, db)).partition_key, 'toMonday(timestamp)'),
  },
  {
    id: '6-replacing',
    title: 'Engine MergeTree → ReplacingMergeTree',
    writer: 'kafka',
    before: (ctx) => baseProject(ctx, 'kafka'),
    after: (ctx) => withPageViews(ctx, 'kafka', (ds) => (ds.spec.engine = { ...ds.spec.engine, type: 'ReplacingMergeTree' })),
    outcome: 'applied',
    faultPoints: COPY_AND_SWAP,
    clickhouseKillAt: 'Backfilled',
    check: async ({ ch, db }) => expectMatch('engine', (await tableInfo(ch, db)).engine_full, /^ReplacingMergeTree/),
  },
  {
    id: '6-summing',
    title: 'Engine MergeTree → SummingMergeTree(duration_ms)',
    writer: 'kafka',
    before: (ctx) => baseProject(ctx, 'kafka'),
    after: (ctx) => withPageViews(ctx, 'kafka', (ds) => (ds.spec.engine = { ...ds.spec.engine, type: 'SummingMergeTree', sumColumns: ['duration_ms'] })),
    outcome: 'applied',
    faultPoints: COPY_AND_SWAP,
    clickhouseKillAt: 'Backfilled',
    check: async ({ ch, db }) => expectMatch('engine', (await tableInfo(ch, db)).engine_full, /^SummingMergeTree\(\(?duration_ms\)?\)/),
  },
  {
    id: '7-pipe-recompute',
    title: "A materialized Pipe's SQL changed, target recomputed (backfill: Full)",
    writer: 'kafka',
    before: (ctx) => baseProject(ctx, 'kafka'),
    after: (ctx) => {
      const resources = baseProject(ctx, 'kafka');
      const rollup = pipeOf(resources, 'daily-rollup');
      const n = rollup.spec.nodes[0];
      if (n) n.sql = n.sql.replace('FROM page_views', 'FROM page_views WHERE duration_ms >= 2500');
      return resources;
    },
    outcome: 'applied',
    faultPoints: ['ViewCreated', 'Staged', 'PartitionMoved', 'Backfilled', 'Exchanged', 'Swapped', 'Retained'],
    clickhouseKillAt: 'Staged',
    rollupWhere: 'duration_ms >= 2500',
  },
  {
    id: '8-new-pipe',
    title: 'A new materialized Pipe over a table that already has rows',
    writer: 'kafka',
    before: (ctx) => baseProject(ctx, 'kafka').filter((r) => r.metadata.name !== 'daily-rollup'),
    after: (ctx) => baseProject(ctx, 'kafka'),
    outcome: 'applied',
    faultPoints: ['ViewCreated', 'Staged', 'PartitionMoved'],
    clickhouseKillAt: 'Staged',
  },
  {
    id: '9-endpoint',
    title: "An Endpoint's SQL and parameters changed (rolled out to weir serve)",
    writer: 'events',
    before: (ctx) => baseProject(ctx, 'events', `${READ_SQL} WHERE startsWith(tenant_id, {tenant_prefix:String})`, [{ name: 'tenant_prefix', default: '' }]),
    after: (ctx) =>
      baseProject(
        ctx,
        'events',
        'SELECT count() AS n, uniqExact(session_id) AS ids, max(duration_ms) AS longest FROM page_views WHERE duration_ms >= {min_duration:UInt32}',
        [{ name: 'min_duration', default: 0 }],
      ),
    outcome: 'applied',
    faultPoints: [],
    rollsOutEndpoints: true,
    notApplicable: { kill: 'an Endpoint change runs no executor step (ClickHouse is not changed; the rollout is a new config for weir serve)' },
    check: async ({ lastRead }) => expectThat('the served endpoint answers with the new SQL (longest)', lastRead !== undefined && 'longest' in lastRead, true),
  },
  {
    id: '10-rollback',
    title: 'Rollback to a retained version (v2 → v1, sorting key)',
    writer: 'events',
    before: (ctx) => baseProject(ctx, 'events'),
    setup: async (ctx, apply) => apply(withPageViews(ctx, 'events', (ds) => (ds.spec.engine.sortingKey = ['tenant_id', 'pathname', 'timestamp']))),
    after: (ctx) => baseProject(ctx, 'events'),
    outcome: 'applied',
    faultPoints: ['DeltaCopied', 'Exchanged', 'Retained'],
    clickhouseKillAt: 'DeltaCopied',
    check: async ({ ch, db }) => {
      const versions = await ch.query<{ name: string }>(
        `SELECT name FROM system.tables WHERE database = '${db}' AND startsWith(name, 'page_views__v') ORDER BY name`,
      );
      return [
        ...expectThat('sorting key', (await tableInfo(ch, db)).sorting_key, 'tenant_id, timestamp'),
        ...expectThat(
          'retained versions',
          versions.map((v) => v.name),
          ['page_views__v2'],
        ),
      ];
    },
  },
];

if (SCALE_ROWS > 0) {
  const sortingKey = ['tenant_id', 'pathname', 'timestamp'];
  const atSeventyPercent = Math.max(1, Math.floor((0.7 * SCALE_ROWS) / DEFAULT_CHUNK_ROWS));
  const millions = SCALE_ROWS / 1_000_000;
  ROWS.push({
    id: `S-sorting-key-${Number.isInteger(millions) ? `${millions}M` : SCALE_ROWS}`,
    title: `Sorting key change of a ${SCALE_ROWS.toLocaleString('en')}-row table (the scale row)`,
    writer: 'events',
    before: (ctx) => baseProject(ctx, 'events', bulkReadSql(SCALE_ROWS)),
    after: (ctx) => {
      const resources = baseProject(ctx, 'events', bulkReadSql(SCALE_ROWS));
      dataSourceOf(resources, 'page-views').spec.engine.sortingKey = sortingKey;
      return resources;
    },
    bulkRows: SCALE_ROWS,
    cellTimeoutMs: 90 * 60_000,
    outcome: 'applied',
    faultPoints: [`ChunkCopied@${atSeventyPercent}`],
    notApplicable: {
      idle: 'the scale row runs live only (each cell takes minutes)',
      clickhouseKill: 'covered at 2,000 rows by 4-sorting-key; not repeated at scale (time)',
    },
    check: async ({ ch, db }) => expectThat('sorting key', (await tableInfo(ch, db)).sorting_key, sortingKey.join(', ')),
  });
}
