// The copy-and-swap protocol against the real ClickHouse engine: the example project, a
// writer inserting continuously, a reader checking count() and the rollup, and the sorting
// key of page_views changed in between, first in-process, then with `weir apply` SIGKILLed
// at each step of the protocol in turn and run again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyProject } from '../../../src/execute/apply.js';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
import type { ProjectResource } from '../../../src/plan/graph.js';
import { createLogger } from '../../../src/runtime/log.js';
import { uniqueNamespace } from '../../fixtures/builders.js';
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

function project(namespace: string, sortingKey?: string[]): ProjectResource[] {
  const resources = exampleResources(namespace) as unknown as ProjectResource[];
  if (sortingKey) {
    const pv = resources.find((r) => r.kind === 'DataSource' && r.metadata.name === 'page-views');
    if (pv && pv.kind === 'DataSource') (pv.spec as { engine: { sortingKey: string[] } }).engine.sortingKey = sortingKey;
  }
  return resources;
}

/** Everything the protocol promises, checked by counting. */
async function assertExact(ch: ClickHouse, db: string, written: number): Promise<void> {
  expect(await count(ch, `SELECT count() AS n FROM ${db}.page_views`)).toBe(written);
  expect(await count(ch, `SELECT uniqExact(session_id) AS n FROM ${db}.page_views`)).toBe(written);
  expect(await count(ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(written);
  expect(await rollupMismatches(ch, db)).toBe(0);
  const [key] = await server.ch.query<{ sorting_key: string }>(`SELECT sorting_key FROM system.tables WHERE database = '${db}' AND name = 'page_views'`);
  expect(key?.sorting_key).toBe('tenant_id, pathname, timestamp');
}

describe('copy-and-swap of page_views while writing and reading', () => {
  it('keeps every row exactly once, the rollup exact, and reads complete and monotonic', async () => {
    const ns = uniqueNamespace('cas');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, project(ns), { log });
    const writer = new PageViewWriter(server.connect(), db, { timing: FAST_FENCE });
    const reader = new Reader(server.connect(), db);
    writer.start();
    reader.start();
    await writtenAtLeast(writer, 20_000);

    const { executor } = await applyProject(server.ch, project(ns, ['tenant_id', 'pathname', 'timestamp']), { log, fenceTiming: FAST_FENCE });
    await writtenAtLeast(writer, 5_000);
    await writer.stop();
    await reader.stop();

    await assertExact(server.ch, db, writer.written);
    expect(reader.errors).toEqual([]);
    expect(reader.wentBackwards).toEqual([]);
    expect(reader.reads).toBeGreaterThan(10);
    expect(executor.fenceReports).toHaveLength(1);
    expect(executor.fenceReports[0]?.writers).toEqual([writer.fence.writerId]);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.page_views__v1`)).toBeGreaterThanOrEqual(20_000);
    console.log(
      `rows ${writer.written}, reads ${reader.reads}, longest writer pause ${writer.fence.longestPauseMs} ms, fence held ${executor.fenceReports[0]?.heldMs} ms`,
    );
  });

  const faults = ['Created', 'Backfilled', 'DeltaCopied', 'Verified', 'Exchanged', 'GapChecked'];
  for (const fault of faults) {
    it(`survives weir apply SIGKILLed at ${fault} and run again`, async () => {
      const ns = uniqueNamespace('crash');
      const db = ns.replace(/-/g, '_');
      await applyProject(server.ch, project(ns), { log });
      const writer = new PageViewWriter(server.connect(), db, { timing: FAST_FENCE });
      const reader = new Reader(server.connect(), db);
      writer.start();
      reader.start();
      await writtenAtLeast(writer, 5_000);

      const dir = writeProject(project(ns, ['tenant_id', 'pathname', 'timestamp']));
      const crashed = await runWeirApply(dir, server.url, { WEIR_FAULT_AT: fault });
      expect(crashed.signal, crashed.out).toBe('SIGKILL');
      const resumed = await runWeirApply(dir, server.url);
      expect(resumed.code, resumed.out).toBe(0);
      await writtenAtLeast(writer, 2_000);
      await writer.stop();
      await reader.stop();

      await assertExact(server.ch, db, writer.written);
      expect(reader.errors).toEqual([]);
      expect(reader.wentBackwards).toEqual([]);
      const [m] = await server.ch.query<{ state: string }>(
        `SELECT argMax(state, seq) AS state FROM weir.migrations WHERE database = '${db}' AND table = 'page_views'`,
      );
      expect(m?.state).toBe('Done');
    });
  }
});
