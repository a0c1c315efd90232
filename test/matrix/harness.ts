// One cell of the safety-of-change matrix: apply a row's `before` project, seed it, start its
// writer and reader, make the change under the cell's condition, then check everything a cell
// promises (docs/safety-matrix.md lists them) and return what was seen as a CellResult. The
// harness never throws for a broken promise: it reports it as a problem, so the table can say why.
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka, Admin } from 'kafkajs';
import type { Endpoint } from '../../src/api/endpoint.js';
import type { Pipe } from '../../src/api/pipe.js';
import { applyProject } from '../../src/execute/apply.js';
import { DEFAULT_FENCE_TIMING, type FenceTiming } from '../../src/execute/fence.js';
import { connectClickHouse, type ClickHouse } from '../../src/clickhouse/connection.js';
import type { ProjectResource } from '../../src/plan/graph.js';
import { quarantineTableName } from '../../src/plan/sql.js';
import { createLogger } from '../../src/runtime/log.js';
import { waitFor } from '../env/wait.js';
import { count, FAST_FENCE, runWeirApply, writeProject } from '../fixtures/clickhouse.js';
import type { ClickHouseProcess } from '../fixtures/ingest.js';
import type { TestKafka } from '../fixtures/kafka.js';
import { compiled, writeServeConfig, type ServeProcess } from '../fixtures/serve.js';
import type { Condition } from './conditions.js';
import { EndpointReader, readEndpoint } from './reader.js';
import { dataSourceOf, type MatrixRow, type RowContext } from './rows.js';
import { EventsWriter, HttpEventsWriter, KafkaWriter, type MatrixWriter } from './writers.js';

/** What the matrix shares across cells: one ClickHouse process, one `weir serve`, one Kafka broker. */
export interface MatrixEnv {
  clickhouse: ClickHouseProcess;
  serve: ServeProcess;
  kafka?: { broker: TestKafka; client: Kafka; admin: Admin };
}

export interface CellResult {
  row: string;
  title: string;
  condition: string;
  ok: boolean;
  /** Set when the cell cannot run: why (shown in the table instead of ✓/✗). */
  notApplicable?: string;
  reason?: string;
  problems: string[];
  /** The longest a writer's batch waited at a fence (FenceParticipant / weir_ingest_longest_fence_pause_seconds). */
  longestPauseMs: number | null;
  /** The longest the executor held a fence (Executor.fenceReports, or `weir apply`'s "longest fence"). */
  fenceHeldMs: number | null;
  rowsBefore: number;
  rowsAcked: number;
  reads: number;
  failedReadsDuringOutage: number;
  writerRetries: number;
  writer: string;
  durationMs: number;
}

const SEED_ROWS = 2000;
const SEED_MALFORMED = 2;
const log = createLogger({ level: 'error' });

export function notApplicableResult(row: MatrixRow, condition: Condition, reason: string): CellResult {
  return {
    row: row.id,
    title: row.title,
    condition: condition.id,
    ok: true,
    notApplicable: reason,
    problems: [],
    longestPauseMs: null,
    fenceHeldMs: null,
    rowsBefore: 0,
    rowsAcked: 0,
    reads: 0,
    failedReadsDuringOutage: 0,
    writerRetries: 0,
    writer: row.writer,
    durationMs: 0,
  };
}

export function appendResult(file: string, result: CellResult): void {
  appendFileSync(file, `${JSON.stringify(result)}\n`);
}

/** Tags given to cells in this process: one ClickHouse per run, so no two cells may share a namespace (and its database). */
const usedTags = new Set<string>();

/**
 * A tag no other cell of this run has. Three random bytes alone collided once (2026-12-01: the idle and live cells of
 * 4-sorting-key-http shared mx_4_31df8a; the live cell's apply rolled the idle cell's table back and seeded into it).
 */
function cellTag(): string {
  for (;;) {
    const tag = randomBytes(4).toString('hex');
    if (!usedTags.has(tag)) return (usedTags.add(tag), tag);
  }
}

export async function runCell(env: MatrixEnv, row: MatrixRow, condition: Condition): Promise<CellResult> {
  const started = Date.now();
  const tag = cellTag();
  const ns = `mx-${row.id.split('-')[0]}-${tag}`;
  const ctx: RowContext = { ns, db: ns.replace(/-/g, '_'), bootstrap: env.kafka?.broker.bootstrap ?? '', topic: `matrix-${tag}`, readEndpoint: `reads-${tag}` };
  // A scale row's statements (the bulk insert, the checks over 100M rows) outlast the shared client's 60 s.
  const ch = row.bulkRows ? connectClickHouse({ url: env.clickhouse.url, requestTimeoutMs: 60 * 60_000 }) : env.clickhouse.ch;
  const problems: string[] = [];
  // The scale row fences with weir's own timing: its critical section may take longer than the 2 s
  // (half the tests' 4 s TTL) that a 2,000-row table needs, and the figure is measured, not the budget.
  const timing = row.bulkRows ? DEFAULT_FENCE_TIMING : FAST_FENCE;
  const apply = async (resources: ProjectResource[]) => void (await applyProject(ch, resources, { log, fenceTiming: timing }));
  const before = row.before(ctx);
  await apply(before);
  const writer = await openWriter(env, row, ctx, before);
  // The scale row's bulk rows are acknowledged by their INSERT: every read must see them too.
  const bulk = row.bulkRows ?? 0;
  const reader = new EndpointReader(env.serve.base, ctx.readEndpoint, { acked: async () => (await writer.acked()) + bulk });
  let fenceHeldMs: number | null = null;
  let rowsBefore = 0;
  let longestPauseMs: number | null = null;
  let acked = 0;
  try {
    await writer.seed(SEED_ROWS, SEED_MALFORMED);
    if (row.setup) await row.setup(ctx, apply);
    if (bulk > 0) await insertBulk(ch, ctx.db, bulk);
    rowsBefore = await count(ch, `SELECT count() AS n FROM ${ctx.db}.page_views`);
    if (rowsBefore !== SEED_ROWS + bulk) problems.push(`seeded ${SEED_ROWS + bulk} rows but the table holds ${rowsBefore}`);
    await serve(env, before, ctx, (r) => r.n === rowsBefore);
    const schemaBefore = await schema(ch, ctx.db);
    const live = condition.kind !== 'idle';
    if (live) {
      writer.start();
      reader.start();
      await ackedAtLeast(writer, rowsBefore - bulk + 300);
    } else await reader.readOnce();

    const after = row.after(ctx);
    const change = await makeChange(env, ch, timing, condition, after, reader, problems);
    fenceHeldMs = change.fenceHeldMs;
    if (row.outcome === 'applied' && change.error) problems.push(`the change failed: ${change.error}`);
    if (row.outcome === 'refused') {
      if (!change.error) problems.push('the change was applied but must be refused');
      else if (row.refusal && !row.refusal.test(change.error)) problems.push(`refused, but not saying ${row.refusal}: ${change.error}`);
    }
    if (row.outcome === 'applied' && !change.error) writer.useSpec(dataSourceOf(after, 'page-views'));
    if (row.rollsOutEndpoints) await rollOut(env, after, ctx, reader, live);
    if (live) await ackedAtLeast(writer, (await writer.acked()) + 500);
    await writer.stop();
    await reader.stop();
    longestPauseMs = await writer.longestPauseMs();

    const expected = (await writer.acked()) + bulk;
    acked = expected;
    const final = await reader.readOnce();
    problems.push(...(await exactness(ch, ctx.db, expected, row.rollupWhere ?? '1', bulk)));
    problems.push(...(await quarantineHolds(ch, ctx.db, writer.malformed)));
    if (final?.n !== expected) problems.push(`the last read saw ${final?.n ?? 'nothing'} rows, ${expected} were acknowledged`);
    problems.push(
      ...reader
        .failed()
        .slice(0, 3)
        .map((f) => `a read failed: ${f}`),
    );
    problems.push(...reader.backwards.slice(0, 3).map((b) => `a read went backwards: ${b}`));
    problems.push(...reader.incomplete.slice(0, 3).map((b) => `an incomplete read: ${b}`));
    problems.push(...reader.doubled.slice(0, 3).map((b) => `a read counted an id twice: ${b}`));
    problems.push(...(await leftovers(ch, ctx.db)));
    if (row.outcome === 'refused') {
      const schemaAfter = await schema(ch, ctx.db);
      if (schemaAfter !== schemaBefore) problems.push(`the refused change changed the schema: ${schemaBefore} → ${schemaAfter}`);
    }
    if (row.check && !(row.outcome === 'applied' && change.error)) problems.push(...(await row.check({ ...ctx, ch, lastRead: final })));
  } catch (e) {
    problems.push(`the cell broke: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    await writer.stop().catch(() => undefined);
    await reader.stop().catch(() => undefined);
    await writer.close().catch(() => undefined);
    if (ch !== env.clickhouse.ch) await ch.close().catch(() => undefined);
  }
  return {
    row: row.id,
    title: row.title,
    condition: condition.id,
    ok: problems.length === 0,
    ...(problems.length > 0 ? { reason: problems.join('; ') } : {}),
    problems,
    longestPauseMs,
    fenceHeldMs,
    rowsBefore,
    rowsAcked: Math.max(0, acked - rowsBefore),
    reads: reader.reads,
    failedReadsDuringOutage: reader.failedDuringOutage(),
    writerRetries: writer.retries,
    writer: row.writer,
    durationMs: Date.now() - started,
  };
}

// ---- the change, under each condition ----------------------------------------------------------

interface ChangeOutcome {
  /** Why the change did not apply (a refusal, or a failure). */
  error?: string;
  fenceHeldMs: number | null;
}

async function makeChange(
  env: MatrixEnv,
  ch: ClickHouse,
  timing: FenceTiming,
  condition: Condition,
  after: ProjectResource[],
  reader: EndpointReader,
  problems: string[],
): Promise<ChangeOutcome> {
  const url = env.clickhouse.url;
  switch (condition.kind) {
    case 'idle':
    case 'live':
      return applyInProcess(ch, after, timing);
    case 'kill': {
      const dir = writeProject(after);
      const crashed = await runWeirApply(dir, url, { WEIR_FAULT_AT: condition.faultPoint }, timing.fenceTtlMs);
      if (crashed.signal !== 'SIGKILL')
        problems.push(`weir apply never reached fault point ${condition.faultPoint} (exit ${crashed.code}): ${tail(crashed.out)}`);
      return applyAgain(dir, url, timing);
    }
    case 'clickhouseKill': {
      if (!condition.faultPoint) {
        // No executor step to stand at: ClickHouse goes down and comes back between the change's parts.
        await outage(env, reader, async () => undefined);
        return applyInProcess(ch, after, timing);
      }
      const dir = writeProject(after);
      const release = join(mkdtempSync(join(tmpdir(), 'weir-matrix-hold-')), 'release');
      const held = runWeirApply(dir, url, { WEIR_FAULT_AT: condition.faultPoint, WEIR_FAULT_HOLD: release }, timing.fenceTtlMs);
      let exited = false;
      void held.then(() => (exited = true));
      await waitFor(`weir apply to reach ${condition.faultPoint}`, () => existsSync(`${release}.reached`) || exited || undefined, {
        timeoutMs: 120_000,
        intervalMs: 20,
      });
      if (!existsSync(`${release}.reached`)) {
        problems.push(`weir apply never reached fault point ${condition.faultPoint}: ${tail((await held).out)}`);
        return applyAgain(dir, url, timing);
      }
      await outage(env, reader, async () => {
        writeFileSync(release, '');
        await held; // its next statement finds no ClickHouse: it stops, as a crashed executor would
      });
      return applyAgain(dir, url, timing);
    }
  }
}

/** SIGKILL ClickHouse, run `meanwhile`, restart it on the same data dir and port. Reads fail only in between. */
async function outage(env: MatrixEnv, reader: EndpointReader, meanwhile: () => Promise<unknown>): Promise<void> {
  reader.outage = { from: Date.now(), to: Number.POSITIVE_INFINITY };
  await env.clickhouse.kill();
  await meanwhile();
  await env.clickhouse.restart();
  reader.outage.to = Date.now();
}

async function applyInProcess(ch: ClickHouse, after: ProjectResource[], timing: FenceTiming): Promise<ChangeOutcome> {
  try {
    const { executor } = await applyProject(ch, after, { log, fenceTiming: timing });
    return { fenceHeldMs: executor.fenceReports.length > 0 ? Math.max(...executor.fenceReports.map((r) => r.heldMs)) : null };
  } catch (e) {
    const cause = (e as { cause?: unknown }).cause;
    return { error: `${e instanceof Error ? e.message : String(e)}${cause instanceof Error ? ` (${cause.message})` : ''}`, fenceHeldMs: null };
  }
}

async function applyAgain(dir: string, url: string, timing: FenceTiming): Promise<ChangeOutcome> {
  const resumed = await runWeirApply(dir, url, {}, timing.fenceTtlMs);
  const held = /longest fence (\d+) ms/.exec(resumed.out);
  return {
    ...(resumed.code === 0 ? {} : { error: `weir apply run again exited ${resumed.code}: ${tail(resumed.out)}` }),
    fenceHeldMs: held ? Number(held[1]) : null,
  };
}

const tail = (out: string): string => out.trim().split('\n').slice(-3).join(' | ').slice(0, 600);

// ---- writers and endpoints ---------------------------------------------------------------------

async function openWriter(env: MatrixEnv, row: MatrixRow, ctx: RowContext, before: ProjectResource[]): Promise<MatrixWriter> {
  const ds = dataSourceOf(before, 'page-views');
  if (row.writer === 'events') return new EventsWriter(env.clickhouse.ch, ds, ctx.ns);
  if (row.writer === 'http') {
    const w = new HttpEventsWriter(ds, env.clickhouse.url, ctx.ns);
    await w.open();
    return w;
  }
  if (!env.kafka) throw new Error(`row ${row.id} writes through Kafka but no broker was started`);
  const w = new KafkaWriter(env.kafka.client, env.kafka.admin, ds, ctx.topic, env.clickhouse.url, ctx.ns);
  await w.open();
  return w;
}

/** The project's Endpoints, compiled as the operator renders weir serve's config. */
function endpointsOf(resources: ProjectResource[], db: string, only: string) {
  const pipes = new Map(resources.filter((r) => r.kind === 'Pipe').map((p) => [p.metadata.name, p as Pipe]));
  return resources
    .filter((r): r is Endpoint & ProjectResource => r.kind === 'Endpoint' && r.metadata.name === only)
    .map((ep) => {
      const p = pipes.get(ep.spec.pipe);
      if (!p) throw new Error(`Endpoint ${ep.metadata.name} has no Pipe ${ep.spec.pipe}`);
      return compiled(ep, p, db);
    });
}

/** Point weir serve at this cell's reader Endpoint and wait until it answers as `ready` says. */
async function serve(env: MatrixEnv, resources: ProjectResource[], ctx: RowContext, ready: (r: { n: number; [k: string]: unknown }) => boolean): Promise<void> {
  writeServeConfig(env.serve.configPath, endpointsOf(resources, ctx.db, ctx.readEndpoint));
  await waitFor(
    `weir serve to serve ${ctx.readEndpoint}`,
    async () => {
      const r = await readEndpoint(env.serve.base, ctx.readEndpoint).catch(() => undefined);
      return (r && ready(r)) || undefined;
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
}

/** The Endpoint change reaches weir serve as a rewritten config file while the reader keeps reading. */
async function rollOut(env: MatrixEnv, after: ProjectResource[], ctx: RowContext, reader: EndpointReader, live: boolean): Promise<void> {
  writeServeConfig(env.serve.configPath, endpointsOf(after, ctx.db, ctx.readEndpoint));
  await waitFor(
    `weir serve to serve the new ${ctx.readEndpoint}`,
    async () => {
      if (!live) await reader.readOnce();
      return (reader.last && 'longest' in reader.last) || undefined;
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
}

async function ackedAtLeast(writer: MatrixWriter, rows: number): Promise<void> {
  await waitFor(`the writer to have ${rows} rows acknowledged`, async () => (await writer.acked().catch(() => 0)) >= rows || undefined, {
    timeoutMs: 120_000,
    intervalMs: 50,
  });
}

// ---- the final checks --------------------------------------------------------------------------

/**
 * The scale row's bulk rows, inserted by SQL in statements of 10M: tenant 'bulk', no session id,
 * timestamps one millisecond apart from two days ago (so each row is told apart by its
 * timestamp), ten paths. The rollup's view takes them as it takes any insert.
 */
async function insertBulk(ch: ClickHouse, db: string, rows: number): Promise<void> {
  const statement = 10_000_000;
  for (let from = 0; from < rows; from += statement) {
    await ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname, country, duration_ms)
       SELECT toDateTime64(toStartOfDay(now()) - INTERVAL 2 DAY, 3) + toIntervalMillisecond(number), '', 'bulk', concat('/bulk/', toString(number % 10)), 'nl', 1 + number % 1000
       FROM numbers(${from}, ${Math.min(statement, rows - from)})`,
    );
  }
}

/** Distinct ids: session ids of the writer's rows, and timestamps of the bulk rows counted in buckets of about 10M. */
async function distinctIds(ch: ClickHouse, db: string, bulk: number): Promise<number> {
  if (bulk === 0) return count(ch, `SELECT uniqExact(session_id) AS n FROM ${db}.page_views`);
  let ids = await count(ch, `SELECT uniqExact(session_id) AS n FROM ${db}.page_views WHERE tenant_id != 'bulk'`);
  const buckets = Math.max(1, Math.ceil(bulk / 10_000_000));
  for (let b = 0; b < buckets; b++)
    ids += await count(
      ch,
      `SELECT uniqExact(timestamp) AS n FROM ${db}.page_views WHERE tenant_id = 'bulk' AND toUnixTimestamp64Milli(timestamp) % ${buckets} = ${b}`,
    );
  return ids;
}

/** Rows = rows acknowledged, by count and by id; the rollup equals a recomputation of its filter. */
async function exactness(ch: ClickHouse, db: string, expected: number, rollupWhere: string, bulk: number): Promise<string[]> {
  const problems: string[] = [];
  const rows = await count(ch, `SELECT count() AS n FROM ${db}.page_views`);
  const ids = await distinctIds(ch, db, bulk);
  if (rows !== expected) problems.push(`page_views holds ${rows} rows, ${expected} were acknowledged`);
  if (ids !== expected) problems.push(`page_views holds ${ids} distinct ids, ${expected} were acknowledged`);
  const views = await count(ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`);
  const recomputed = await count(ch, `SELECT count() AS n FROM ${db}.page_views WHERE ${rollupWhere}`);
  if (views !== recomputed) problems.push(`the rollup counts ${views} views, a recomputation ${recomputed}`);
  const mismatches = await count(
    ch,
    `SELECT count() AS n FROM (
       SELECT day, tenant_id, pathname, countMerge(views) AS v, uniqMerge(visitors) AS u FROM ${db}.page_views_daily GROUP BY day, tenant_id, pathname
     ) AS r FULL OUTER JOIN (
       SELECT toDate(timestamp) AS day, tenant_id, pathname, count() AS v, uniq(session_id) AS u FROM ${db}.page_views WHERE ${rollupWhere} GROUP BY day, tenant_id, pathname
     ) AS x USING (day, tenant_id, pathname) WHERE r.v != x.v OR r.u != x.u`,
  );
  if (mismatches > 0) problems.push(`${mismatches} rollup group(s) differ from a recomputation`);
  return problems;
}

/** The quarantine holds exactly the malformed inputs sent, each once. */
async function quarantineHolds(ch: ClickHouse, db: string, malformed: string[]): Promise<string[]> {
  const rows = await ch.query<{ raw: string }>(`SELECT raw FROM ${db}.${quarantineTableName('page_views')} ORDER BY raw`);
  const held = rows.map((r) => r.raw).sort();
  const sent = [...malformed].sort();
  return JSON.stringify(held) === JSON.stringify(sent)
    ? []
    : [`the quarantine holds ${held.length} input(s) (${JSON.stringify(held.slice(0, 3))}…), ${sent.length} malformed were sent`];
}

/** No `__weir_next`, staging or recompute tables (nor views) are left behind. */
async function leftovers(ch: ClickHouse, db: string): Promise<string[]> {
  const rows = await ch.query<{ name: string }>(`SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE '%\\_\\_weir\\_%' ORDER BY name`, {
    params: { db },
  });
  return rows.length === 0 ? [] : [`left behind: ${rows.map((r) => r.name).join(', ')}`];
}

/** Every table's engine, keys, comment (weir's marker) and columns: equal before and after a refusal. */
async function schema(ch: ClickHouse, db: string): Promise<string> {
  const tables = await ch.query<{ name: string; engine_full: string; comment: string }>(
    'SELECT name, engine_full, comment FROM system.tables WHERE database = {db:String} ORDER BY name',
    { params: { db } },
  );
  const cols = await ch.query<{ table: string; name: string; type: string; default_expression: string }>(
    'SELECT table, name, type, default_expression FROM system.columns WHERE database = {db:String} ORDER BY table, position',
    { params: { db } },
  );
  return JSON.stringify({ tables, cols });
}
