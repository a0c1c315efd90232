// A materialized Pipe's backfill in chunks: the source's rows up to the recorded block are read
// chunk by chunk (planned from its active parts, as a copy-and-swap backfill is), one INSERT each,
// so a rollup's GROUP BY holds one chunk's groups at a time. Each chunk is an insert block of its
// own, as the view sees them, so the aggregate target is exact: counts and uniqs equal a direct
// GROUP BY over the source, for a new view and for a recompute (backfill: Full).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyProject } from '../../../src/execute/apply.js';
import type { Pipe } from '../../../src/api/pipe.js';
import type { ProjectResource } from '../../../src/plan/graph.js';
import { createLogger } from '../../../src/runtime/log.js';
import { uniqueNamespace } from '../../fixtures/builders.js';
import {
  count,
  FAST_FENCE,
  PageViewWriter,
  rollupMismatches,
  runWeirApply,
  startTestClickHouse,
  writeProject,
  writtenAtLeast,
  type TestClickHouse,
} from '../../fixtures/clickhouse.js';
import { exampleResources } from '../../fixtures/kube.js';

const log = createLogger({ level: 'warn' });
let server: TestClickHouse;

beforeAll(async () => {
  server = await startTestClickHouse();
});
afterAll(async () => {
  await server?.stop();
});

const withoutRollup = (ns: string) => (exampleResources(ns) as unknown as ProjectResource[]).filter((r) => r.metadata.name !== 'daily-rollup');
const withRollup = (ns: string) => exampleResources(ns) as unknown as ProjectResource[];

/**
 * Rows in three monthly partitions (months before this one, inside the example's 180-day TTL),
 * over inserts of different sizes: one partition far larger than a chunk.
 */
const INSERTS: { monthsAgo: number; rows: number }[] = [
  { monthsAgo: 3, rows: 700 },
  { monthsAgo: 2, rows: 150 },
  { monthsAgo: 3, rows: 900 },
  { monthsAgo: 1, rows: 120 },
  { monthsAgo: 3, rows: 650 },
  { monthsAgo: 2, rows: 480 },
];
const TOTAL = INSERTS.reduce((s, i) => s + i.rows, 0);

async function fill(db: string): Promise<void> {
  for (const [k, { monthsAgo, rows }] of INSERTS.entries()) {
    await server.ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname, country, duration_ms)
       SELECT toDateTime64(toStartOfMonth(now()) - toIntervalMonth(${monthsAgo}), 3) + toIntervalMinute(number * 37 % 40000), concat('s', toString((number * 7 + ${k}) % 97)),
              concat('t', toString(number % 3)), concat('/p', toString(number % 11)), 'nl', (number * 13 + ${k}) % 5000
       FROM numbers(${rows})`,
    );
  }
}

type Milestone = { state: string; detail: Record<string, unknown> | undefined };
const backfillMilestones = (events: Milestone[]) => events.filter((e) => e.state === 'Backfilling').map((e) => e.detail ?? {});

describe('a materialized Pipe backfilled in chunks', () => {
  it('a new view over a table with rows: several chunks, the rollup equal to a GROUP BY over the source', async () => {
    const ns = uniqueNamespace('mvchunks');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, withoutRollup(ns), { log });
    await fill(db);
    const events: Milestone[] = [];
    const { plan } = await applyProject(server.ch, withRollup(ns), {
      log,
      fenceTiming: FAST_FENCE,
      backfill: { chunkRows: 400 },
      hooks: { onProgress: (_step, state, detail) => events.push({ state, detail }) },
    });
    expect(plan.resources.flatMap((r) => r.steps.map((s) => s.kind))).toEqual(['CreateView']);
    const milestones = backfillMilestones(events);
    // Planned from the parts: one chunk per insert here (each part is a single block, none can be cut
    // finer), the month three back in three block ranges; Events at the quarters crossed: 53 % after the
    // second chunk (1,600 of 3,000 rows), 75 % after the third.
    expect(milestones[0]).toEqual({ chunks: 6, rowsTotal: TOTAL });
    expect(milestones.slice(1)).toEqual([
      { percent: 50, chunk: 2, chunks: 6, rowsRead: 1600, rowsTotal: TOTAL },
      { percent: 75, chunk: 3, chunks: 6, rowsRead: 2250, rowsTotal: TOTAL },
    ]);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.page_views`)).toBe(TOTAL);
    expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(TOTAL);
    expect(await rollupMismatches(server.ch, db)).toBe(0);
    // Rows inserted after the backfill go through the view, once.
    await server.ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname, country, duration_ms)
       SELECT toDateTime64(toStartOfMonth(now()) - toIntervalMonth(2), 3) + toIntervalDay(9), 'late', 't1', '/p1', 'nl', 1 FROM numbers(25)`,
    );
    expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(TOTAL + 25);
    expect(await rollupMismatches(server.ch, db)).toBe(0);
    expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND name LIKE '%weir_backfill%'`)).toBe(0);
  });

  it('a recompute (backfill: Full) in chunks: the new query over every existing row, exactly', async () => {
    const ns = uniqueNamespace('rcchunks');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, withRollup(ns), { log });
    await fill(db);
    const filtered = withRollup(ns).map((r) => {
      if (r.metadata.name !== 'daily-rollup') return r;
      const node = (r as Pipe).spec.nodes[0];
      if (node) node.sql = node.sql.replace('FROM page_views', 'FROM page_views WHERE duration_ms >= 2500');
      return r;
    });
    const events: Milestone[] = [];
    const { plan } = await applyProject(server.ch, filtered, {
      log,
      fenceTiming: FAST_FENCE,
      backfill: { chunkRows: 300 },
      hooks: { onProgress: (_step, state, detail) => events.push({ state, detail }) },
    });
    expect(plan.resources.flatMap((r) => r.steps.map((s) => s.kind))).toEqual(['RecomputeView']);
    expect(backfillMilestones(events)[0]).toEqual({ chunks: 6, rowsTotal: TOTAL });
    const expected = await count(server.ch, `SELECT count() AS n FROM ${db}.page_views WHERE duration_ms >= 2500`);
    expect(expected).toBeGreaterThan(0);
    expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(expected);
    const mismatches = await count(
      server.ch,
      `SELECT count() AS n FROM (
         SELECT day, tenant_id, pathname, countMerge(views) AS v, uniqMerge(visitors) AS u FROM ${db}.page_views_daily GROUP BY day, tenant_id, pathname
       ) AS r FULL OUTER JOIN (
         SELECT toDate(timestamp) AS day, tenant_id, pathname, count() AS v, uniq(session_id) AS u FROM ${db}.page_views WHERE duration_ms >= 2500 GROUP BY day, tenant_id, pathname
       ) AS x USING (day, tenant_id, pathname) WHERE r.v != x.v OR r.u != x.u`,
    );
    expect(mismatches).toBe(0);
    expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND name LIKE '%weir_backfill%'`)).toBe(0);
  });

  it('an apply SIGKILLed right after creating the view: rows the view pushed before the rerun are not backfilled again', async () => {
    const ns = uniqueNamespace('mvgap');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, withoutRollup(ns), { log });
    await fill(db);
    const writer = new PageViewWriter(server.connect(), db, { timing: FAST_FENCE });
    writer.start();
    await writtenAtLeast(writer, 1_000);
    const dir = writeProject(withRollup(ns));
    const crashed = await runWeirApply(dir, server.url, { WEIR_FAULT_AT: 'ViewCreated', WEIR_BACKFILL_CHUNK_ROWS: '400' });
    expect(crashed.signal, crashed.out).toBe('SIGKILL');
    // The dead apply's fence expires (4 s) and the writer goes on, through the view it created.
    await writtenAtLeast(writer, 1_000);
    const resumed = await runWeirApply(dir, server.url, { WEIR_BACKFILL_CHUNK_ROWS: '400' });
    expect(resumed.code, resumed.out).toBe(0);
    await writtenAtLeast(writer, 400);
    await writer.stop();
    const rows = await count(server.ch, `SELECT count() AS n FROM ${db}.page_views`);
    expect(rows).toBe(TOTAL + writer.written);
    expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(rows);
    expect(await rollupMismatches(server.ch, db)).toBe(0);
  });

  it('an apply SIGKILLed after the third of six view chunks landed, before it was recorded, resumes at that chunk: its parts dropped, the rollup exact', async () => {
    const ns = uniqueNamespace('mvresume');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, withoutRollup(ns), { log });
    await fill(db);
    const dir = writeProject(withRollup(ns));
    // Killed after chunk 3's INSERT landed and before it was recorded: the rerun must drop its parts and redo it.
    const crashed = await runWeirApply(dir, server.url, { WEIR_FAULT_AT: 'ViewChunkStaged@3', WEIR_BACKFILL_CHUNK_ROWS: '400' });
    expect(crashed.signal, crashed.out).toBe('SIGKILL');
    const staged = await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily__weir_backfill`);
    // Chunks 1-3 (700 + 150 + the first 400-row range of the big month) are in the staging table.
    expect(staged).toBeGreaterThan(0);
    const resumed = await runWeirApply(dir, server.url, { WEIR_BACKFILL_CHUNK_ROWS: '400' });
    expect(resumed.code, resumed.out).toBe(0);
    // It went on from the chunk in flight, not from the start, and dropped what that chunk had left.
    const line = resumed.out.split('\n').find((l) => l.includes('view backfill resumed'));
    expect(line, resumed.out).toBeDefined();
    const entry = JSON.parse(line ?? '{}') as { chunk: number; chunks: number; dropped: number };
    expect({ chunk: entry.chunk, chunks: entry.chunks }).toEqual({ chunk: 3, chunks: 6 });
    expect(entry.dropped).toBeGreaterThan(0);
    expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(TOTAL);
    expect(await rollupMismatches(server.ch, db)).toBe(0);
    expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND name LIKE '%weir_backfill%'`)).toBe(0);
  });
});
