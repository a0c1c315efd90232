// The chunked, resumable backfill of a copy-and-swap against the real ClickHouse engine: a table
// of several partitions copied in small chunks; `weir apply` SIGKILLed after a chunk landed and run
// again redoes that one chunk only; a statement left running under a chunk's query_id is killed
// before the chunk is redone; catch-up rounds copy live writes outside the fence, also across a
// SIGKILL. Every case counts exactly: no row lost, none doubled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyProject } from '../../../src/execute/apply.js';
import type { MigrationProgress } from '../../../src/execute/executor.js';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
import type { ProjectResource } from '../../../src/plan/graph.js';
import { createLogger } from '../../../src/runtime/log.js';
import { column, dataSource, inNamespace, uniqueNamespace, withColumns, withEngine } from '../../fixtures/builders.js';
import {
  count,
  FAST_FENCE,
  PageViewWriter,
  Reader,
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

const MONTHS = 4;
const INSERTS_PER_MONTH = 3;
const ROWS_PER_INSERT = 5_000;
const TOTAL = MONTHS * INSERTS_PER_MONTH * ROWS_PER_INSERT;
const CHUNK_ROWS = 6_000;

const events = (ns: string, sortingKey: string[], settings?: Record<string, string>, verify?: 'Counts' | 'Checksum') => {
  const ds = dataSource(
    'events',
    inNamespace(ns),
    withColumns(column('ts', 'DateTime'), column('id', 'UInt64'), column('v', 'String')),
    withEngine({ type: 'MergeTree', sortingKey, partitionKey: 'toYYYYMM(ts)', ...(settings ? { settings } : {}) }),
  );
  if (verify) ds.spec.migration = { ...ds.spec.migration, verify };
  return ds;
};

/** Twelve inserts (parts) over four monthly partitions, ids 0 … TOTAL-1 once each. */
async function fillEvents(ch: ClickHouse, db: string): Promise<void> {
  for (let i = 0; i < MONTHS * INSERTS_PER_MONTH; i++) {
    const month = (i % MONTHS) + 1;
    await ch.command(
      `INSERT INTO ${db}.events SELECT toDateTime('2026-0${month}-10 00:00:00', 'UTC') + number, ${i * ROWS_PER_INSERT} + number, toString(number) FROM numbers(${ROWS_PER_INSERT})`,
    );
  }
}

async function assertEventsExact(db: string): Promise<void> {
  const [row] = await server.ch.query<{ n: string; u: string; s: string; p: string }>(
    `SELECT count() AS n, uniqExact(id) AS u, sum(id) AS s, uniqExact(_partition_id) AS p FROM ${db}.events`,
  );
  expect(Number(row?.n)).toBe(TOTAL);
  expect(Number(row?.u)).toBe(TOTAL); // rows copied twice in the final table: 0
  expect(Number(row?.s)).toBe((TOTAL * (TOTAL - 1)) / 2);
  expect(Number(row?.p)).toBe(MONTHS);
  const [key] = await server.ch.query<{ k: string }>(`SELECT sorting_key AS k FROM system.tables WHERE database = '${db}' AND name = 'events'`);
  expect(key?.k).toBe('v, id');
}

/** The chunk numbers a `weir apply` reported copying, in order (its 'migration copy' log lines). */
function chunksReported(out: string): number[] {
  return out
    .split('\n')
    .filter((l) => l.includes('"message":"migration copy"') && l.includes('"phase":"Backfilling"'))
    .map((l) => (JSON.parse(l) as { chunk: number }).chunk);
}

async function migrationOf(db: string): Promise<{ id: string; state: string; chunk_plan: string }> {
  const [m] = await server.ch.query<{ id: string; state: string; chunk_plan: string }>(
    `SELECT id, argMax(state, seq) AS state, argMax(chunk_plan, seq) AS chunk_plan FROM weir.migrations WHERE database = '${db}' AND table = 'events' GROUP BY id`,
  );
  if (!m) throw new Error(`no migration of ${db}.events`);
  return m;
}

async function chunkStates(migrationId: string, planId: string): Promise<{ chunks: number; done: number }> {
  const [row] = await server.ch.query<{ chunks: string; done: string }>(
    `SELECT count() AS chunks, countIf(done = 1) AS done FROM weir.migration_chunks FINAL WHERE migration_id = '${migrationId}' AND plan_id = '${planId}'`,
  );
  return { chunks: Number(row?.chunks), done: Number(row?.done) };
}

describe('chunked backfill', () => {
  it('copies partition by partition in chunks of about the configured size, recording each in the ledger', async () => {
    const ns = uniqueNamespace('chunks');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, [events(ns, ['id'])], { log });
    await fillEvents(server.ch, db);
    const progress: MigrationProgress[] = [];
    await applyProject(server.ch, [events(ns, ['v', 'id'])], {
      log,
      backfill: { chunkRows: CHUNK_ROWS },
      hooks: { onMigrationProgress: (_s, p) => progress.push(p) },
    });
    await assertEventsExact(db);
    // The new live table merges (its merges were stopped while it was being built).
    await server.ch.command(`OPTIMIZE TABLE ${db}.events FINAL`);
    const backfill = progress.filter((p) => p.phase === 'Backfilling');
    expect(backfill.length).toBeGreaterThanOrEqual(TOTAL / CHUNK_ROWS);
    expect(backfill.map((p) => p.chunk)).toEqual(backfill.map((_, i) => i + 1));
    expect(backfill.at(-1)).toMatchObject({ rowsCopied: TOTAL, rowsTotal: TOTAL, percent: 100, chunks: backfill.length });
    const m = await migrationOf(db);
    expect(m.state).toBe('Done');
    expect(await chunkStates(m.id, m.chunk_plan)).toEqual({ chunks: backfill.length, done: backfill.length });
  });

  it('resumes after weir apply is SIGKILLed once chunk 3 landed: only chunk 3 is copied again, exactly once', async () => {
    const ns = uniqueNamespace('chunk-kill');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, [events(ns, ['id'])], { log });
    await fillEvents(server.ch, db);
    const dir = writeProject([events(ns, ['v', 'id'])]);
    const env = { WEIR_BACKFILL_CHUNK_ROWS: String(CHUNK_ROWS) };

    const crashed = await runWeirApply(dir, server.url, { ...env, WEIR_FAULT_AT: 'ChunkCopied@3' });
    expect(crashed.signal, crashed.out).toBe('SIGKILL');
    expect(chunksReported(crashed.out)).toEqual([1, 2]);
    const m = await migrationOf(db);
    expect(m.state).toBe('Backfilling');
    const before = await chunkStates(m.id, m.chunk_plan);
    expect(before.done).toBe(2);
    expect(before.chunks).toBeGreaterThanOrEqual(TOTAL / CHUNK_ROWS);

    const resumed = await runWeirApply(dir, server.url, env);
    expect(resumed.code, resumed.out).toBe(0);
    // Chunks 1 and 2 are not copied again; chunk 3 (landed, not recorded) is, once; then the rest.
    expect(chunksReported(resumed.out)).toEqual(Array.from({ length: before.chunks - 2 }, (_, i) => i + 3));
    await assertEventsExact(db);
    expect(await migrationOf(db)).toMatchObject({ id: m.id, state: 'Done', chunk_plan: m.chunk_plan });
    // What the executor copied twice: chunk 3, once before the kill and once after (the ledger's running total).
    const [redone] = await server.ch.query<{ twice: string; planned: string }>(
      `SELECT toString(anyIf(copied_rows, chunk = 2) - anyIf(copied_rows, chunk = 1)) AS twice, toString(anyIf(rows, chunk = 2)) AS planned
       FROM weir.migration_chunks FINAL WHERE migration_id = '${m.id}' AND plan_id = '${m.chunk_plan}'`,
    );
    expect(Number(redone?.twice)).toBeGreaterThan(0);
    expect(Number(redone?.twice)).toBeLessThanOrEqual(CHUNK_ROWS);
    console.log(
      `SIGKILL after chunk 3 of ${before.chunks}: rows copied twice by the executor ${redone?.twice} (chunk 3, planned ${redone?.planned}); rows twice in the table 0`,
    );
    expect(await chunkStates(m.id, m.chunk_plan)).toEqual({ chunks: before.chunks, done: before.chunks });
  });

  it('cuts a merged part larger than a chunk by ranges of its primary key, and resumes such a plan after a SIGKILL exactly', async () => {
    const ns = uniqueNamespace('chunk-keys');
    const db = ns.replace(/-/g, '_');
    // Granules of 1,000 rows, so that a 15,000-row part has an index fine enough to cut.
    const granules = { index_granularity: '1000' };
    await applyProject(server.ch, [events(ns, ['id'], granules)], { log });
    await fillEvents(server.ch, db);
    // One merged part per partition (15,000 rows, blocks spread through it): a block range would read all of it.
    await server.ch.command(`OPTIMIZE TABLE ${db}.events FINAL`);
    const parts = await server.ch.query<{ rows: string; merged: number }>(
      `SELECT rows, max_block_number > min_block_number AS merged FROM system.parts WHERE database = '${db}' AND table = 'events' AND active`,
    );
    expect(parts.map((p) => [Number(p.rows), p.merged])).toEqual(Array.from({ length: MONTHS }, () => [TOTAL / MONTHS, 1]));
    const dir = writeProject([events(ns, ['v', 'id'], granules)]);
    const env = { WEIR_BACKFILL_CHUNK_ROWS: '4000' };
    const crashed = await runWeirApply(dir, server.url, { ...env, WEIR_FAULT_AT: 'ChunkCopied@6' });
    expect(crashed.signal, crashed.out).toBe('SIGKILL');
    const m = await migrationOf(db);
    const plan = await server.ch.query<{ chunk: string; key_columns: string[]; key_from: string[]; key_to: string[]; rows: string }>(
      `SELECT chunk, key_columns, key_from, key_to, rows FROM weir.migration_chunks FINAL WHERE migration_id = '${m.id}' AND plan_id = '${m.chunk_plan}' ORDER BY chunk`,
    );
    // Each 15,000-row part in key ranges of about 4,000 rows: the first open below, the last above, on the key (id).
    expect(plan.length).toBeGreaterThanOrEqual(MONTHS * 3);
    expect(plan.every((c) => c.key_columns.join() === '`id`')).toBe(true);
    expect(plan.filter((c) => c.key_from.length === 0)).toHaveLength(MONTHS);
    expect(plan.filter((c) => c.key_to.length === 0)).toHaveLength(MONTHS);
    expect(plan.map((c) => Number(c.rows)).filter((n) => n <= 0 || n > 5_000)).toEqual([]);
    expect(plan.reduce((sum, c) => sum + Number(c.rows), 0)).toBe(TOTAL);
    const resumed = await runWeirApply(dir, server.url, env);
    expect(resumed.code, resumed.out).toBe(0);
    expect(chunksReported(resumed.out)).toEqual(Array.from({ length: plan.length - 5 }, (_, i) => i + 6));
    await assertEventsExact(db);
  });

  it('refuses to swap when the live rows changed after they were copied (same counts): the checksum sees it, counts alone do not', async () => {
    for (const verify of ['Checksum', 'Counts'] as const) {
      const ns = uniqueNamespace(`verify-${verify.toLowerCase()}`);
      const db = ns.replace(/-/g, '_');
      await applyProject(server.ch, [events(ns, ['id'])], { log });
      await fillEvents(server.ch, db);
      const dir = writeProject([events(ns, ['v', 'id'], undefined, verify)]);
      const crashed = await runWeirApply(dir, server.url, { WEIR_FAULT_AT: 'Backfilled' });
      expect(crashed.signal, crashed.out).toBe('SIGKILL');
      // What a hand-run ALTER … UPDATE on the live table does meanwhile: values change, no row comes or goes.
      await server.ch.command(`ALTER TABLE ${db}.events UPDATE v = 'changed by hand' WHERE id < 10`, { settings: { mutations_sync: 2 } });
      const resumed = await runWeirApply(dir, server.url);
      if (verify === 'Checksum') {
        expect(resumed.code, resumed.out).not.toBe(0);
        expect(resumed.out).toMatch(
          /verification failed: partition \w+ of `\w+`\.`events` and the new version both have \d+ rows up to block \d+, but not the same values/,
        );
        // Nothing swapped: the live table keeps its key and every row, the changed values included.
        const [key] = await server.ch.query<{ k: string }>(`SELECT sorting_key AS k FROM system.tables WHERE database = '${db}' AND name = 'events'`);
        expect(key?.k).toBe('id');
        expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events`)).toBe(TOTAL);
        expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events WHERE v = 'changed by hand'`)).toBe(10);
        // The stale copy was thrown away with the migration: the next apply copies again from the start, the changes included.
        expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND name = 'events__weir_next'`)).toBe(0);
        const again = await runWeirApply(dir, server.url);
        expect(again.code, again.out).toBe(0);
        expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events WHERE v = 'changed by hand'`)).toBe(10);
        expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events`)).toBe(TOTAL);
        const [after] = await server.ch.query<{ k: string }>(`SELECT sorting_key AS k FROM system.tables WHERE database = '${db}' AND name = 'events'`);
        expect(after?.k).toBe('v, id');
      } else {
        // Counts match, so the stale copy is swapped in: what Counts trades for not reading the tables.
        expect(resumed.code, resumed.out).toBe(0);
        expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events WHERE v = 'changed by hand'`)).toBe(0);
        expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events`)).toBe(TOTAL);
      }
    }
  });

  it("stops the next version's merges while it is built and starts them once it is live, also when weir apply died right after the exchange", async () => {
    const ns = uniqueNamespace('merges');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, [events(ns, ['id'])], { log });
    await fillEvents(server.ch, db);
    const dir = writeProject([events(ns, ['v', 'id'])]);
    const env = { WEIR_BACKFILL_CHUNK_ROWS: String(CHUNK_ROWS) };
    const crashed = await runWeirApply(dir, server.url, { ...env, WEIR_FAULT_AT: 'Exchanged' });
    expect(crashed.signal, crashed.out).toBe('SIGKILL');
    // Killed between the exchange and restarting them: the new live table's merges are still stopped.
    await expect(server.ch.command(`OPTIMIZE TABLE ${db}.events FINAL`)).rejects.toThrow(/Cancelled merging parts/);
    const resumed = await runWeirApply(dir, server.url, env);
    expect(resumed.code, resumed.out).toBe(0);
    await server.ch.command(`OPTIMIZE TABLE ${db}.events FINAL`);
    const parts = await count(server.ch, `SELECT count() AS n FROM system.parts WHERE database = '${db}' AND table = 'events' AND active`);
    expect(parts).toBe(MONTHS);
    await assertEventsExact(db);
  });

  it('kills a statement still running under the query_id of the chunk it redoes, and lands that chunk once', async () => {
    const ns = uniqueNamespace('orphan');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, [events(ns, ['id'])], { log });
    await fillEvents(server.ch, db);
    const dir = writeProject([events(ns, ['v', 'id'])]);
    const env = { WEIR_BACKFILL_CHUNK_ROWS: String(CHUNK_ROWS) };
    const crashed = await runWeirApply(dir, server.url, { ...env, WEIR_FAULT_AT: 'ChunkCopied@2' });
    expect(crashed.signal, crashed.out).toBe('SIGKILL');
    const m = await migrationOf(db);

    // What a ClickHouse server does with a dead client's INSERT … SELECT: it goes on. weir's embedded
    // server cancels a request whose client is gone, so the orphan is sent here, under the id of the
    // chunk the resumed executor redoes (chunk 2: index 1), landing blocks of junk rows as it runs.
    const orphanCh = server.connect();
    const orphan = orphanCh
      .command(
        `INSERT INTO ${db}.events__weir_next (ts, id, v) SELECT toDateTime('2026-02-01 00:00:00', 'UTC'), 1000000 + number, 'orphan'
         FROM numbers(200000) WHERE sleepEachRow(0.0001) = 0`,
        { queryId: `${m.id}-c1`, settings: { max_block_size: 1000, min_insert_block_size_rows: 1000, max_threads: 1 } },
      )
      .then(
        () => 'finished',
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
    // Some of its blocks have landed before the executor comes back.
    const landed = async () => count(server.ch, `SELECT count() AS n FROM ${db}.events__weir_next WHERE v = 'orphan'`);
    while ((await landed()) < 2000) await new Promise((r) => setTimeout(r, 50));

    const resumed = await runWeirApply(dir, server.url, env);
    expect(resumed.code, resumed.out).toBe(0);
    expect(await orphan).toMatch(/cancel/i);
    expect(resumed.out).toContain('killed statements an earlier attempt of the migration left running');
    expect(resumed.out).toContain(`${m.id}-c1`);
    expect(chunksReported(resumed.out)[0]).toBe(2);
    await assertEventsExact(db);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events WHERE v = 'orphan'`)).toBe(0);
  });
});

/** The example project, with page_views under another sorting key when given. */
function pageViewsProject(ns: string, sortingKey?: string[]): ProjectResource[] {
  const resources = exampleResources(ns) as unknown as ProjectResource[];
  const pv = resources.find((r) => r.kind === 'DataSource' && r.metadata.name === 'page-views');
  if (sortingKey && pv && pv.kind === 'DataSource') (pv.spec as { engine: { sortingKey: string[] } }).engine.sortingKey = sortingKey;
  return resources;
}

/** The example project applied, page_views filled with `rows` page views over five months: several partitions, several parts. */
async function fillPageViews(ch: ClickHouse, ns: string, rows: number): Promise<void> {
  await applyProject(ch, pageViewsProject(ns), { log });
  const db = ns.replace(/-/g, '_');
  for (let i = 0; i < 4; i++) {
    await ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname, country, duration_ms)
       SELECT now64(3) - toIntervalSecond((number * 7919) % (150 * 86400)), concat('bulk-${i}-', toString(number)), concat('t', toString(number % 3)),
              concat('/page/', toString(number % 17)), 'de', number % 5000
       FROM numbers(${rows / 4})`,
    );
  }
}

async function assertPageViewsExact(db: string, rows: number): Promise<void> {
  expect(await count(server.ch, `SELECT count() AS n FROM ${db}.page_views`)).toBe(rows);
  expect(await count(server.ch, `SELECT uniqExact(session_id) AS n FROM ${db}.page_views`)).toBe(rows);
  expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(rows);
  expect(await rollupMismatches(server.ch, db)).toBe(0);
  const [key] = await server.ch.query<{ k: string }>(`SELECT sorting_key AS k FROM system.tables WHERE database = '${db}' AND name = 'page_views'`);
  expect(key?.k).toBe('tenant_id, pathname, timestamp');
}

const BULK = 40_000;
const NEW_KEY = ['tenant_id', 'pathname', 'timestamp'];

/** page_views filled with BULK rows, a writer writing to it, and the project with the new key written out for weir apply. */
async function writingToPageViews(name: string): Promise<{ db: string; writer: PageViewWriter; dir: string }> {
  const ns = uniqueNamespace(name);
  const db = ns.replace(/-/g, '_');
  await fillPageViews(server.ch, ns, BULK);
  const writer = new PageViewWriter(server.connect(), db, { timing: FAST_FENCE });
  writer.start();
  await writtenAtLeast(writer, 2_000);
  return { db, writer, dir: writeProject(pageViewsProject(ns, NEW_KEY)) };
}

describe('chunked backfill and catch-up rounds with live writes', () => {
  it('copies in chunks and catches up in rounds outside the fence while a writer writes; every row exactly once', async () => {
    const ns = uniqueNamespace('catchup');
    const db = ns.replace(/-/g, '_');
    await fillPageViews(server.ch, ns, BULK);
    const writer = new PageViewWriter(server.connect(), db, { timing: FAST_FENCE });
    const reader = new Reader(server.connect(), db);
    writer.start();
    reader.start();
    await writtenAtLeast(writer, 2_000);

    const progress: MigrationProgress[] = [];
    const states: string[] = [];
    const { executor } = await applyProject(server.ch, pageViewsProject(ns, NEW_KEY), {
      log,
      fenceTiming: FAST_FENCE,
      // Rounds until the third, whatever is left: the writer never stops.
      backfill: { chunkRows: 3_000, catchUpRows: 0, catchUpRoundMs: 0, catchUpMaxRounds: 3 },
      hooks: { onMigrationProgress: (_s, p) => progress.push(p), onProgress: (_s, state) => states.push(state) },
    });
    await writtenAtLeast(writer, 1_000);
    await writer.stop();
    await reader.stop();

    await assertPageViewsExact(db, BULK + writer.written);
    expect(reader.errors).toEqual([]);
    expect(reader.wentBackwards).toEqual([]);
    expect(progress.filter((p) => p.phase === 'Backfilling').length).toBeGreaterThan(BULK / 3_000);
    expect(progress.filter((p) => p.phase === 'CatchingUp').map((p) => p.catchUpRounds)).toEqual([1, 2, 3]);
    expect(states.filter((s) => s === 'CatchingUp')).toHaveLength(3);
    expect(states.indexOf('CatchingUp')).toBeLessThan(states.indexOf('Fenced'));
    expect(executor.fenceReports).toHaveLength(1);
  });

  for (const fault of ['ChunkCopied@4', 'CaughtUp']) {
    it(`survives weir apply SIGKILLed at ${fault} with a writer writing, and run again`, async () => {
      const ns = uniqueNamespace('catchup-kill');
      const db = ns.replace(/-/g, '_');
      await fillPageViews(server.ch, ns, BULK);
      const writer = new PageViewWriter(server.connect(), db, { timing: FAST_FENCE });
      writer.start();
      await writtenAtLeast(writer, 2_000);
      const dir = writeProject(pageViewsProject(ns, NEW_KEY));
      const env = { WEIR_BACKFILL_CHUNK_ROWS: '3000', WEIR_CATCH_UP_ROWS: '0' };
      const crashed = await runWeirApply(dir, server.url, { ...env, WEIR_FAULT_AT: fault });
      expect(crashed.signal, crashed.out).toBe('SIGKILL');
      const resumed = await runWeirApply(dir, server.url, env);
      expect(resumed.code, resumed.out).toBe(0);
      await writtenAtLeast(writer, 1_000);
      await writer.stop();
      await assertPageViewsExact(db, BULK + writer.written);
      const [m] = await server.ch.query<{ state: string }>(
        `SELECT argMax(state, seq) AS state FROM weir.migrations WHERE database = '${db}' AND table = 'page_views'`,
      );
      expect(m?.state).toBe('Done');
    });
  }

  it('keeps the fenced copy when a merge of the live table came after it started: the counts show it read every row', async () => {
    const { db, writer, dir } = await writingToPageViews('delta-merged-after');
    // OPTIMIZE … FINAL between the fenced copy and its check: the parts it read are merged away, after it read them.
    const run = await runWeirApply(dir, server.url, { WEIR_TEST_MERGE_BEFORE_DELTA_CHECK: '1', WEIR_CATCH_UP_ROWS: '0' });
    expect(run.code, run.out).toBe(0);
    // No second fenced copy (a catch-up round may meet a writer's own merges and say so; that is not this case).
    expect(run.out.split('\n').filter((l) => l.includes('a merge raced the copy by parts') && l.includes('"round":"fenced"'))).toEqual([]);
    await writtenAtLeast(writer, 1_000);
    await writer.stop();
    await assertPageViewsExact(db, BULK + writer.written);
  });

  it("copies the delta again when a merge of the live table came between listing its parts and the fenced copy, dropping the first attempt's parts: every row exactly once", async () => {
    const { db, writer, dir } = await writingToPageViews('delta-race');
    // OPTIMIZE … FINAL after the parts are listed and before the copy: the copy finds none of them.
    const run = await runWeirApply(dir, server.url, { WEIR_TEST_MERGE_BEFORE_DELTA_COPY: '1', WEIR_CATCH_UP_ROWS: '0' });
    expect(run.code, run.out).toBe(0);
    const race = run.out.split('\n').find((l) => l.includes('a merge raced the copy by parts') && l.includes('"round":"fenced"'));
    expect(race, run.out).toBeDefined();
    const { attempt, droppedParts, missedRows } = JSON.parse(race ?? '{}') as { attempt: number; droppedParts: number; missedRows: number };
    expect(attempt).toBe(1);
    expect(missedRows).toBeGreaterThan(0);
    // What the first attempt copied (nothing, or some parts) leaves by DROP PART: never the whole-table DELETE (-1), as the next version does not merge while it is built.
    expect(droppedParts, run.out).toBeGreaterThanOrEqual(0);
    await writtenAtLeast(writer, 1_000);
    await writer.stop();
    await assertPageViewsExact(db, BULK + writer.written);
  });
});
