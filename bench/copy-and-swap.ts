// Copy-and-swap benchmark: weir migrating a DataSource's sorting key, next to a bare
// CREATE TABLE … AS + INSERT … SELECT of the same table, while a fenced writer keeps inserting.
//
//   npx tsx bench/copy-and-swap.ts [--rows N[,N2,…]] [--repeat K] [--chunk-rows C] [--batch-rows R] [--writer-interval-ms MS] [--no-writer-baseline]
//                                  [--reader] [--max-threads T] [--probe [--probe-rounds P]]
//
// --reader runs an endpoint-shaped query in a loop (one at a time) on its own connection and
// reports its p50/p99 for the 10 s before the migration and during it; --max-threads sets the
// migration's spec.migration.backfill.maxThreads (what a backfill may take while endpoints serve).
//
// One embedded ClickHouse server (chDB over HTTP, temp data dir, port 0) for the whole run; each
// repetition gets its own database. See bench/README.md for what the figures mean.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { API_VERSION } from '../src/api/common.js';
import type { DataSource } from '../src/api/datasource.js';
import { applyProject } from '../src/execute/apply.js';
import type { TableRef } from '../src/plan/catalog.js';
import { connectClickHouse, type ClickHouse } from '../src/clickhouse/connection.js';
import { startClickHouseServer } from '../src/clickhouse/server.js';
import { keyTuple, qualified, quoteIdentifier, tableShape } from '../src/plan/sql.js';
import { sleep } from '../src/runtime/backoff.js';
import { createLogger } from '../src/runtime/log.js';
import { probeCopyCosts, type ProbeResult } from './copy-probes.js';
import { MigrationTimeline, type PhaseTiming, type StatementTotal } from './migration-timeline.js';
import { PageViewWriter } from './page-view-writer.js';

const OLD_KEY = ['tenant_id', 'timestamp'];
const NEW_KEY = ['tenant_id', 'pathname', 'timestamp'];
const PARTITION_KEY = 'toYYYYMM(timestamp)';
const TABLE = 'page_views';
const TTL = 'toDateTime(timestamp) + INTERVAL 180 DAY';
const DAY_MS = 86_400_000;
// The backfill of a large table outlasts the client's 30 s default (here from about 50M rows on).
const REQUEST_TIMEOUT_MS = 2 * 3600_000;
// Statements shorter than this are left out of the per-phase listing (they still count in the phase).
const LISTED_STATEMENT_MS = 50;

interface BenchOptions {
  /** Table sizes, each run `repeat` times: the writer pause side by side against size. */
  sizes: number[];
  repeat: number;
  /** Backfill chunk size; undefined: weir's default. */
  chunkRows: number | undefined;
  batchRows: number;
  writerIntervalMs: number;
  /** Rounds of copy-cost probes after each run; 0 skips them. */
  probeRounds: number;
  /** Run the endpoint-shaped reader before and during the migration. */
  reader: boolean;
  /** spec.migration.backfill.maxThreads of the migration; undefined: weir's default. */
  maxThreads: number | undefined;
  /** Also time the baseline with the same writer running (the migration's conditions). */
  baselineWithWriter: boolean;
}

/** Latencies of the endpoint-shaped reader, ms, before and during the migration. */
interface ReaderFigures {
  before: number[];
  during: number[];
}

interface RunResult {
  rows: number;
  fillS: number;
  baselineS: number;
  copyAndSwapS: number;
  ratio: number;
  /** The same bare INSERT … SELECT while the same writer writes (NaN when not run), and the migration's time against it. */
  baselineWithWriterS: number;
  ratioWithWriter: number;
  /** Process CPU seconds (chDB runs in this process); the copy-and-swap figure includes the writer's work. */
  baselineCpuS: number;
  copyAndSwapCpuS: number;
  fenceHeldMs: number;
  fenceWaitedMs: number;
  longestPauseMs: number;
  rowsDuringMigration: number;
  reader: ReaderFigures | undefined;
  /** Backfill chunks copied, and catch-up rounds before the fence. */
  chunks: number;
  catchUpRounds: number;
  phases: PhaseTiming[];
  statementTotals: StatementTotal[];
  probes: ProbeResult[];
}

function options(): BenchOptions {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '10000000' },
      repeat: { type: 'string', default: '1' },
      'chunk-rows': { type: 'string' },
      'batch-rows': { type: 'string', default: '1000' },
      'writer-interval-ms': { type: 'string', default: '0' },
      probe: { type: 'boolean', default: false },
      'probe-rounds': { type: 'string', default: '3' },
      reader: { type: 'boolean', default: false },
      'max-threads': { type: 'string' },
      'no-writer-baseline': { type: 'boolean', default: false },
    },
  });
  const integerFlag = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v?.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${v}`);
    return n;
  };
  return {
    sizes: (values.rows ?? '').split(',').map((v) => integerFlag('rows', v, 1)),
    repeat: integerFlag('repeat', values.repeat, 1),
    chunkRows: values['chunk-rows'] === undefined ? undefined : integerFlag('chunk-rows', values['chunk-rows'], 1),
    batchRows: integerFlag('batch-rows', values['batch-rows'], 1),
    writerIntervalMs: integerFlag('writer-interval-ms', values['writer-interval-ms'], 0),
    probeRounds: values.probe ? integerFlag('probe-rounds', values['probe-rounds'], 1) : 0,
    reader: values.reader ?? false,
    maxThreads: values['max-threads'] === undefined ? undefined : integerFlag('max-threads', values['max-threads'], 1),
    baselineWithWriter: !(values['no-writer-baseline'] ?? false),
  };
}

/** The example project's page-views DataSource (manifests/examples/web-analytics), minus Kafka ingestion. */
function pageViews(namespace: string, sortingKey: string[], maxThreads?: number): DataSource {
  return {
    apiVersion: API_VERSION,
    kind: 'DataSource',
    metadata: { name: 'page-views', namespace },
    spec: {
      columns: [
        { name: 'timestamp', type: 'DateTime64(3)', jsonPath: '$.timestamp' },
        { name: 'session_id', type: 'String', jsonPath: '$.session_id' },
        { name: 'tenant_id', type: 'LowCardinality(String)', jsonPath: '$.tenant_id' },
        { name: 'pathname', type: 'String', jsonPath: '$.payload.pathname' },
        { name: 'country', type: 'LowCardinality(String)', jsonPath: '$.payload.country', default: "'unknown'" },
        { name: 'duration_ms', type: 'UInt32', jsonPath: '$.payload.duration_ms', default: '0' },
      ],
      engine: { type: 'MergeTree', sortingKey, partitionKey: PARTITION_KEY, ttl: TTL },
      migration: { approval: 'Automatic', keepPreviousVersions: 1, ...(maxThreads !== undefined ? { backfill: { maxThreads } } : {}) },
      deletionPolicy: 'Retain',
    },
  };
}

const log = (message: string): void => console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
const seconds = (since: number): number => (performance.now() - since) / 1000;
const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};
const countOf = async (ch: ClickHouse, sql: string): Promise<number> => Number((await ch.query<{ n: string }>(sql))[0]?.n ?? NaN);

/** N page views over the last 29 days (inside the 180-day TTL), 50 tenants, 500 paths, unique session ids. */
async function fill(ch: ClickHouse, table: string, rows: number): Promise<void> {
  await ch.command(
    `INSERT INTO ${table} (timestamp, session_id, tenant_id, pathname, country, duration_ms)
     SELECT now64(3) - toIntervalMillisecond(cityHash64(number) % ${29 * DAY_MS}),
            concat('bulk-', toString(number)),
            concat('t', toString(number % 50)),
            concat('/page/', toString(cityHash64(number, 1) % 500)),
            ['de', 'us', 'fr', 'gb', 'jp', 'br', 'in'][number % 7 + 1],
            toUInt32(cityHash64(number, 2) % 30000)
     FROM numbers(${rows})`,
  );
}

/** Background merges of `database` have finished: the next timing does not share the CPU with them. */
async function mergesSettled(ch: ClickHouse, database: string): Promise<void> {
  const deadline = Date.now() + 10 * 60_000;
  while ((await countOf(ch, `SELECT count() AS n FROM system.merges WHERE database = '${database}'`)) > 0) {
    if (Date.now() > deadline) throw new Error(`merges in ${database} still running after 10 minutes`);
    await sleep(200);
  }
}

/** What a hand-run migration costs: copy the table into one with the new sorting key. */
async function baselineCopy(ch: ClickHouse, database: string): Promise<{ wallS: number; cpuS: number }> {
  const copy = qualified(database, 'baseline_copy');
  const cpu = process.cpuUsage();
  const started = performance.now();
  await ch.command(
    `CREATE TABLE ${copy} AS ${qualified(database, TABLE)}
     ENGINE = MergeTree PARTITION BY ${PARTITION_KEY} ORDER BY ${keyTuple(NEW_KEY)} TTL ${TTL}`,
  );
  await ch.command(`INSERT INTO ${copy} SELECT * FROM ${qualified(database, TABLE)}`);
  const measured = { wallS: seconds(started), cpuS: cpuSeconds(cpu) };
  await ch.command(`DROP TABLE ${copy} SYNC`);
  return measured;
}

/** Every row exactly once, under the new key, and the writer really was fenced: else the figures mean nothing. */
async function verify(ch: ClickHouse, database: string, expected: number, writerId: string, fencedWriters: string[][]): Promise<void> {
  const table = qualified(database, TABLE);
  const [row] = await ch.query<{ n: string; key: string }>(
    `SELECT count() AS n, (SELECT sorting_key FROM system.tables WHERE database = '${database}' AND name = '${TABLE}') AS key FROM ${table}`,
  );
  // uniqExact of 100M strings outgrows the server's memory limit: counted in buckets of about 10M rows each.
  const buckets = Math.max(1, Math.ceil(Number(row?.n) / 10_000_000));
  let unique = 0;
  for (let b = 0; b < buckets; b++) {
    unique += await countOf(ch, `SELECT uniqExact(session_id) AS n FROM ${table} WHERE cityHash64(session_id) % ${buckets} = ${b}`);
  }
  const u = String(unique);
  const failures = [
    Number(row?.n) !== expected ? `count() is ${row?.n}, expected ${expected} (bulk rows + rows the writer wrote)` : '',
    u !== row?.n ? `uniqExact(session_id) is ${u} but count() is ${row?.n}: rows were doubled` : '',
    row?.key !== NEW_KEY.join(', ') ? `sorting key is (${row?.key}), expected (${NEW_KEY.join(', ')})` : '',
    fencedWriters.length !== 1 ? `expected one fence, the executor raised ${fencedWriters.length}` : '',
    fencedWriters.length === 1 && !fencedWriters[0]?.includes(writerId) ? `the fence did not wait for writer ${writerId}` : '',
  ].filter(Boolean);
  if (failures.length > 0) throw new Error(`verification of ${table} failed:\n  ${failures.join('\n  ')}`);
}

/**
 * An endpoint-shaped read of the live table, one at a time, timed: a tenant's top pages of the
 * last day (the example's top_pages, read from the raw table instead of the rollup).
 */
class EndpointReader {
  private readonly samples: { at: number; ms: number }[] = [];
  private running = false;
  private loop: Promise<void> | undefined;
  failures = 0;

  constructor(
    private readonly ch: ClickHouse,
    private readonly table: string,
  ) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      for (let i = 0; this.running; i++) {
        const started = performance.now();
        try {
          await this.ch.query(
            `SELECT pathname, count() AS views, uniq(session_id) AS visitors FROM ${this.table}
             WHERE tenant_id = 't${i % 50}' AND timestamp >= now64(3) - INTERVAL 1 DAY
             GROUP BY pathname ORDER BY views DESC LIMIT 10`,
          );
          this.samples.push({ at: started, ms: performance.now() - started });
        } catch {
          // The swap renames the live table: a read at that instant may miss it. Counted, not hidden.
          this.failures++;
        }
      }
    })();
  }

  /** Latencies of the reads that started in [from, to). */
  between(from: number, to: number): number[] {
    return this.samples.filter((s) => s.at >= from && s.at < to).map((s) => s.ms);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

const READER_BEFORE_MS = 10_000;

async function runOnce(connect: () => ClickHouse, opts: BenchOptions & { rows: number }, run: number): Promise<RunResult> {
  const namespace = `bench-${randomBytes(4).toString('hex')}`;
  const database = namespace.replace(/-/g, '_');
  const table: TableRef = { database, table: TABLE };
  const ch = connect();
  const weirLog = createLogger({ level: 'warn' });

  log(`run ${run}: create ${database}.${TABLE} through weir, fill ${opts.rows.toLocaleString('en')} rows`);
  await applyProject(ch, [pageViews(namespace, OLD_KEY)], { log: weirLog });
  let started = performance.now();
  await fill(ch, qualified(database, TABLE), opts.rows);
  const fillS = seconds(started);
  await mergesSettled(ch, database);

  log(`run ${run}: baseline copy`);
  const baseline = await baselineCopy(ch, database);
  await mergesSettled(ch, database);
  // The same copy under the migration's conditions: the same writer writing into the table meanwhile.
  let baselineWithWriterS = NaN;
  let writtenForBaseline = 0;
  if (opts.baselineWithWriter) {
    log(`run ${run}: baseline copy with the writer (and the reader, with --reader) running`);
    const w = new PageViewWriter(connect(), table, { batchRows: opts.batchRows, intervalMs: opts.writerIntervalMs });
    w.start();
    await w.waitForRows(5 * opts.batchRows);
    // The same reader as during the migration: it takes CPU too, so the conditions match.
    const r = opts.reader ? new EndpointReader(connect(), qualified(database, TABLE)) : undefined;
    r?.start();
    baselineWithWriterS = (await baselineCopy(ch, database)).wallS;
    await r?.stop();
    await w.stop();
    writtenForBaseline = w.written;
    await mergesSettled(ch, database);
  }

  log(`run ${run}: weir copy-and-swap with a writer`);
  const writer = new PageViewWriter(connect(), table, { batchRows: opts.batchRows, intervalMs: opts.writerIntervalMs });
  writer.start();
  // A few batches first: the writer is registered and steady before the fence is raised.
  await writer.waitForRows(5 * opts.batchRows);
  const reader = opts.reader ? new EndpointReader(connect(), qualified(database, TABLE)) : undefined;
  const readerFrom = performance.now();
  if (reader) {
    reader.start();
    await sleep(READER_BEFORE_MS);
  }
  const timeline = new MigrationTimeline();
  const writtenBefore = writer.written;
  timeline.start();
  const cpu = process.cpuUsage();
  started = performance.now();
  let chunks = 0;
  let catchUpRounds = 0;
  const { executor } = await applyProject(timeline.timed(ch), [pageViews(namespace, NEW_KEY, opts.maxThreads)], {
    log: weirLog,
    ...(opts.chunkRows !== undefined ? { backfill: { chunkRows: opts.chunkRows } } : {}),
    hooks: {
      onProgress: (_step, state, detail) =>
        timeline.mark(state === 'Backfilling' && detail?.percent !== undefined ? `Backfilling ${Number(detail.percent)}%` : state),
      onMigrationProgress: (_step, p) => {
        chunks = Math.max(chunks, p.chunk);
        catchUpRounds = Math.max(catchUpRounds, p.catchUpRounds);
      },
    },
  });
  const copyAndSwapS = seconds(started);
  const copyAndSwapCpuS = cpuSeconds(cpu);
  timeline.mark('returned');
  const rowsDuringMigration = writer.written - writtenBefore;
  await reader?.stop();
  await writer.stop();
  const readerFigures = reader ? { before: reader.between(readerFrom, started), during: reader.between(started, started + copyAndSwapS * 1000) } : undefined;
  if (reader && reader.failures > 0) log(`run ${run}: ${reader.failures} endpoint read(s) failed during the migration`);

  await verify(
    ch,
    database,
    opts.rows + writtenForBaseline + writer.written,
    writer.fence.writerId,
    executor.fenceReports.map((r) => r.writers),
  );
  const fence = executor.fenceReports[0];
  const probes = opts.probeRounds > 0 ? await probe(ch, connect(), namespace, opts, run) : [];
  await ch.command(`DROP DATABASE ${quoteIdentifier(database)} SYNC`);
  return {
    rows: opts.rows,
    fillS,
    baselineS: baseline.wallS,
    copyAndSwapS,
    ratio: copyAndSwapS / baseline.wallS,
    baselineWithWriterS,
    ratioWithWriter: copyAndSwapS / baselineWithWriterS,
    baselineCpuS: baseline.cpuS,
    copyAndSwapCpuS,
    fenceHeldMs: fence?.heldMs ?? NaN,
    fenceWaitedMs: fence?.waitedMs ?? NaN,
    longestPauseMs: writer.fence.longestPauseMs,
    rowsDuringMigration,
    reader: readerFigures,
    chunks,
    catchUpRounds,
    phases: timeline.phases(),
    statementTotals: timeline.statementTotals(),
    probes,
  };
}

async function probe(ch: ClickHouse, writerCh: ClickHouse, namespace: string, opts: BenchOptions & { rows: number }, run: number): Promise<ProbeResult[]> {
  const database = namespace.replace(/-/g, '_');
  log(`run ${run}: ${opts.probeRounds} round(s) of copy-cost probes`);
  const [migration] = await ch.query<{ b: string }>(
    `SELECT toString(source_block) AS b FROM weir.migrations FINAL WHERE database = '${database}' AND table = '${TABLE}' AND state = 'Done'`,
  );
  return probeCopyCosts({
    ch,
    writerCh,
    live: { database, table: TABLE },
    source: { database, table: `${TABLE}__v1` },
    shape: tableShape(pageViews(namespace, NEW_KEY).spec),
    deltaFrom: migration?.b ?? '0',
    writer: { batchRows: opts.batchRows, intervalMs: opts.writerIntervalMs },
    rounds: opts.probeRounds,
    settled: () => mergesSettled(ch, database),
  });
}

// ---- report ------------------------------------------------------------------------------

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function formatTable(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ')).join('\n');
}

function resultTable(results: RunResult[]): string {
  const n = (v: number, digits = 0) => v.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const line = (label: string, r: Omit<RunResult, 'phases' | 'statementTotals' | 'probes' | 'reader'>) => [
    label,
    n(r.rows),
    n(r.fillS, 1),
    n(r.baselineS, 1),
    n(r.copyAndSwapS, 1),
    n(r.ratio, 2),
    n(r.baselineWithWriterS, 1),
    n(r.ratioWithWriter, 2),
    n(r.baselineCpuS, 1),
    n(r.copyAndSwapCpuS, 1),
    n(r.fenceHeldMs),
    n(r.fenceWaitedMs),
    n(r.longestPauseMs),
    n(r.rowsDuringMigration),
    n(r.rowsDuringMigration / r.copyAndSwapS),
    n(r.chunks),
    n(r.catchUpRounds),
  ];
  const header = [
    'run',
    'rows',
    'fill s',
    'baseline s',
    'copy-and-swap s',
    'ratio (goal ≤ 1.3)',
    'baseline with writer s',
    'ratio to it',
    'baseline cpu s',
    'copy-and-swap cpu s (with writer)',
    'fence held ms',
    'fence ack wait ms',
    'longest writer pause ms (goal ≤ 1000)',
    'rows written during migration',
    'writer rows/s',
    'chunks',
    'catch-up rounds',
  ];
  const rows = [header, ...results.map((r, i) => line(String(i + 1), r))];
  if (results.length > 1 && results.every((r) => r.rows === results[0]?.rows)) {
    const med = (f: (r: RunResult) => number) => median(results.map(f));
    rows.push(
      line('median', {
        rows: med((r) => r.rows),
        fillS: med((r) => r.fillS),
        baselineS: med((r) => r.baselineS),
        copyAndSwapS: med((r) => r.copyAndSwapS),
        ratio: med((r) => r.ratio),
        baselineWithWriterS: med((r) => r.baselineWithWriterS),
        ratioWithWriter: med((r) => r.ratioWithWriter),
        baselineCpuS: med((r) => r.baselineCpuS),
        copyAndSwapCpuS: med((r) => r.copyAndSwapCpuS),
        fenceHeldMs: med((r) => r.fenceHeldMs),
        fenceWaitedMs: med((r) => r.fenceWaitedMs),
        longestPauseMs: med((r) => r.longestPauseMs),
        rowsDuringMigration: med((r) => r.rowsDuringMigration),
        chunks: med((r) => r.chunks),
        catchUpRounds: med((r) => r.catchUpRounds),
      }),
    );
  }
  return formatTable(rows);
}

/** The figures that must not grow with the table, side by side against its size (medians of each size's runs). */
function sizeTable(bySize: RunResult[][]): string {
  const n = (v: number, digits = 0) => v.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const rows = [
    [
      'rows',
      'runs',
      'chunks',
      'catch-up rounds',
      'baseline s',
      'copy-and-swap s',
      'ratio (goal ≤ 1.3)',
      'ratio to the baseline with writer',
      'fence held ms',
      'longest writer pause ms (goal ≤ 1000)',
      'writer rows/s',
    ],
    ...bySize.map((rs) => {
      const med = (f: (r: RunResult) => number) => median(rs.map(f));
      return [
        n(rs[0]?.rows ?? 0),
        String(rs.length),
        n(med((r) => r.chunks)),
        n(med((r) => r.catchUpRounds)),
        n(
          med((r) => r.baselineS),
          1,
        ),
        n(
          med((r) => r.copyAndSwapS),
          1,
        ),
        n(
          med((r) => r.ratio),
          2,
        ),
        n(
          med((r) => r.ratioWithWriter),
          2,
        ),
        n(med((r) => r.fenceHeldMs)),
        n(med((r) => r.longestPauseMs)),
        n(med((r) => r.rowsDuringMigration / r.copyAndSwapS)),
      ];
    }),
  ];
  return `Against table size (medians):\n${formatTable(rows)}`;
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

/** The endpoint-shaped reader's latencies before and during each run's migration. */
function readerTable(results: RunResult[]): string {
  const n = (v: number) => v.toLocaleString('en', { maximumFractionDigits: 0 });
  const rows = [
    ['run', 'rows', 'reads before', 'p50 before ms', 'p99 before ms', 'reads during', 'p50 during ms', 'p99 during ms', 'p99 during / before'],
    ...results.flatMap((r, i) =>
      r.reader
        ? [
            [
              String(i + 1),
              n(r.rows),
              n(r.reader.before.length),
              n(percentile(r.reader.before, 50)),
              n(percentile(r.reader.before, 99)),
              n(r.reader.during.length),
              n(percentile(r.reader.during, 50)),
              n(percentile(r.reader.during, 99)),
              (percentile(r.reader.during, 99) / percentile(r.reader.before, 99)).toFixed(2),
            ],
          ]
        : [],
    ),
  ];
  return `Endpoint-shaped reader (a tenant's top pages of the last day from the live table, one read at a time; before = the ${READER_BEFORE_MS / 1000} s before the migration, writer running):\n${formatTable(rows)}`;
}

function phaseReport(r: RunResult, run: number): string {
  const total = r.phases.reduce((s, p) => s + p.ms, 0);
  const lines = [
    `Run ${run}: where the ${(total / 1000).toFixed(1)} s of copy-and-swap went (executor progress states; statements ≥ ${LISTED_STATEMENT_MS} ms; statements the executor runs in parallel overlap)`,
  ];
  for (const p of r.phases) {
    lines.push(`  ${(p.ms / 1000).toFixed(2).padStart(8)} s  ${((100 * p.ms) / total).toFixed(0).padStart(3)}%  ${p.phase}`);
    const listed = p.statements.filter((s) => s.ms >= LISTED_STATEMENT_MS);
    for (const s of listed) lines.push(`  ${(s.ms / 1000).toFixed(2).padStart(18)} s  ${s.statement}`);
    const rest = p.statements.filter((s) => s.ms < LISTED_STATEMENT_MS);
    if (rest.length > 0) lines.push(`  ${(rest.reduce((t, s) => t + s.ms, 0) / 1000).toFixed(2).padStart(18)} s  (${rest.length} shorter statements)`);
  }
  lines.push('  By statement (all phases): total s, runs');
  for (const t of r.statementTotals.slice(0, 8)) lines.push(`  ${(t.ms / 1000).toFixed(2).padStart(8)} s  ×${String(t.runs).padEnd(3)} ${t.statement}`);
  return lines.join('\n');
}

function probeReport(r: RunResult, run: number): string {
  const list = (xs: number[]) => xs.map((x) => x.toFixed(3)).join(' ');
  const rows = [
    ['probe', 'median s', 'median cpu s', 'samples s', 'samples cpu s'],
    ...r.probes.map((p) => [p.probe, median(p.samplesS).toFixed(3), median(p.cpuS).toFixed(3), list(p.samplesS), list(p.cpuS)]),
  ];
  return `Run ${run}: copy-cost probes (no writer unless stated; merges settled before each copy; cpu = this process, chDB included)\n${formatTable(rows)}`;
}

async function machine(ch: ClickHouse, commit: string): Promise<string> {
  const [row] = await ch.query<{ v: string }>('SELECT version() AS v');
  const chdb = (JSON.parse(readFileSync(join(process.cwd(), 'node_modules/chdb/package.json'), 'utf8')) as { version: string }).version;
  const cpus = os.cpus();
  return [
    `machine: ${os.availableParallelism()} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${os.type()} ${os.release()}`,
    `versions: node ${process.version}, ClickHouse ${row?.v ?? '?'} (chdb ${chdb}, embedded, served over HTTP by weir), weir ${commit}`,
  ].join('\n');
}

/** The executor under test changes often: name the commit (and whether its code was edited) the figures belong to. */
function weirCommit(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--', 'src/clickhouse', 'src/plan', 'src/execute') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' + uncommitted changes in src/clickhouse, src/plan or src/execute' : ''}`;
  } catch {
    return 'commit unknown';
  }
}

async function main(): Promise<void> {
  const opts = options();
  // Read before the run: the modules under test are loaded now, whatever is committed later.
  const commit = weirCommit();
  const dataDir = mkdtempSync(join(os.tmpdir(), 'weir-bench-'));
  const server = await startClickHouseServer({ dataDir, port: 0 });
  const opened: ClickHouse[] = [];
  const connect = () => {
    const c = connectClickHouse({ url: server.url, requestTimeoutMs: REQUEST_TIMEOUT_MS });
    opened.push(c);
    return c;
  };
  try {
    const bySize: RunResult[][] = [];
    let run = 0;
    for (const rows of opts.sizes) {
      const results: RunResult[] = [];
      for (let k = 1; k <= opts.repeat; k++) results.push(await runOnce(connect, { ...opts, rows }, ++run));
      bySize.push(results);
    }
    const results = bySize.flat();

    console.log(`\nCopy-and-swap: sorting key (${OLD_KEY.join(', ')}) → (${NEW_KEY.join(', ')})`);
    console.log(await machine(connect(), commit));
    const pace = opts.writerIntervalMs > 0 ? `, ${opts.writerIntervalMs} ms apart` : ', back to back';
    console.log(`writer: one weir-fenced writer, ${opts.batchRows}-row batches${pace}; default fence timing\n`);
    const threads = opts.maxThreads !== undefined ? `spec.migration.backfill.maxThreads ${opts.maxThreads}` : 'default backfill limits';
    console.log(`migration: ${threads}\n`);
    for (const size of bySize) console.log(`${resultTable(size)}\n`);
    if (opts.reader) console.log(`${readerTable(results)}\n`);
    if (bySize.length > 1) console.log(`${sizeTable(bySize)}\n`);
    for (const [i, r] of results.entries()) console.log(`\n${phaseReport(r, i + 1)}`);
    for (const [i, r] of results.entries()) if (r.probes.length > 0) console.log(`\n${probeReport(r, i + 1)}`);
  } finally {
    for (const c of opened) await c.close();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`copy-and-swap benchmark failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
