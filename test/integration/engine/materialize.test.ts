// A materialized Pipe created over a table that already holds rows and keeps receiving
// them: the target ends up equal to a recomputation from the source, exactly, also when
// `weir apply` is SIGKILLed in the middle of the backfill and run again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyProject } from '../../../src/execute/apply.js';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
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

async function assertRollupExact(ch: ClickHouse, db: string, written: number): Promise<void> {
  expect(await count(ch, `SELECT count() AS n FROM ${db}.page_views`)).toBe(written);
  expect(await count(ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(written);
  expect(await rollupMismatches(ch, db)).toBe(0);
}

describe('materialized Pipe over a table with rows and live inserts', () => {
  it('backfills the existing rows exactly once while new rows flow through the view', async () => {
    const ns = uniqueNamespace('mv');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, withoutRollup(ns), { log });
    const writer = new PageViewWriter(server.connect(), db, { timing: FAST_FENCE });
    writer.start();
    await writtenAtLeast(writer, 10_000);
    const { executor, plan } = await applyProject(server.ch, withRollup(ns), { log, fenceTiming: FAST_FENCE });
    expect(plan.resources.flatMap((r) => r.steps.map((s) => s.kind))).toEqual(['CreateView']);
    await writtenAtLeast(writer, 3_000);
    await writer.stop();
    await assertRollupExact(server.ch, db, writer.written);
    expect(executor.fenceReports[0]?.writers).toEqual([writer.fence.writerId]);
  });

  for (const fault of ['ViewCreated', 'Staged', 'PartitionMoved']) {
    it(`lands the backfill exactly once when weir apply is SIGKILLed at ${fault}`, async () => {
      const ns = uniqueNamespace('mvcrash');
      const db = ns.replace(/-/g, '_');
      await applyProject(server.ch, withoutRollup(ns), { log });
      const writer = new PageViewWriter(server.connect(), db, { timing: FAST_FENCE });
      writer.start();
      await writtenAtLeast(writer, 6_000);
      const dir = writeProject(withRollup(ns));
      const crashed = await runWeirApply(dir, server.url, { WEIR_FAULT_AT: fault });
      expect(crashed.signal, crashed.out).toBe('SIGKILL');
      const resumed = await runWeirApply(dir, server.url);
      expect(resumed.code, resumed.out).toBe(0);
      await writtenAtLeast(writer, 2_000);
      await writer.stop();
      await assertRollupExact(server.ch, db, writer.written);
      expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND name LIKE '%weir_backfill%'`)).toBe(0);
    });
  }

  it('recomputes the target exactly when the query of a materialized Pipe changes (backfill: Full), under live inserts', async () => {
    const ns = uniqueNamespace('recompute');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, withRollup(ns), { log });
    const writer = new PageViewWriter(server.connect(), db, { timing: FAST_FENCE });
    writer.start();
    await writtenAtLeast(writer, 6_000);
    // Only long views count from now on: every existing row must be recounted.
    const filtered = withRollup(ns).map((r) => {
      if (r.metadata.name !== 'daily-rollup') return r;
      const node = (r as Pipe).spec.nodes[0];
      if (node) node.sql = node.sql.replace('FROM page_views', 'FROM page_views WHERE duration_ms >= 2500');
      return r;
    });
    const { plan, executor } = await applyProject(server.ch, filtered, { log, fenceTiming: FAST_FENCE });
    expect(plan.resources.flatMap((r) => r.steps.map((s) => s.kind))).toEqual(['RecomputeView']);
    await writtenAtLeast(writer, 2_000);
    await writer.stop();
    expect(executor.fenceReports).toHaveLength(2);
    expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(
      await count(server.ch, `SELECT count() AS n FROM ${db}.page_views WHERE duration_ms >= 2500`),
    );
    const mismatches = await count(
      server.ch,
      `SELECT count() AS n FROM (
         SELECT day, tenant_id, pathname, countMerge(views) AS v FROM ${db}.page_views_daily GROUP BY day, tenant_id, pathname
       ) AS r FULL OUTER JOIN (
         SELECT toDate(timestamp) AS day, tenant_id, pathname, count() AS v FROM ${db}.page_views WHERE duration_ms >= 2500 GROUP BY day, tenant_id, pathname
       ) AS x USING (day, tenant_id, pathname) WHERE r.v != x.v`,
    );
    expect(mismatches).toBe(0);
    const tables = await server.ch.query<{ name: string }>(`SELECT name FROM system.tables WHERE database = '${db}' AND name LIKE '%weir%' ORDER BY name`);
    expect(tables).toEqual([]);
    expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND name = 'page_views_daily__v1'`)).toBe(1);
  });
});
