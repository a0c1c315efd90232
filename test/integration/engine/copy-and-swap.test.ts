// The copy-and-swap protocol against the real ClickHouse engine: the example project, a
// writer inserting continuously, a reader checking count() and the rollup, and the sorting
// key of page_views changed in between, first in-process, then with `weir apply` SIGKILLed
// at each step of the protocol in turn and run again.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyProject } from '../../../src/clickhouse/apply.js';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
import type { ProjectResource } from '../../../src/plan/graph.js';
import { createLogger } from '../../../src/runtime/log.js';
import { uniqueNamespace } from '../../fixtures/builders.js';
import { count, PageViewWriter, Reader, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { exampleResources } from '../../fixtures/kube.js';
import { WEIR_BIN } from '../../fixtures/processes.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

const log = createLogger({ level: 'warn' });
const fastFence = { livenessMs: 2000, fenceTtlMs: 4000, ackTimeoutMs: 10_000, pollMs: 10 };
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

function writeProject(resources: ProjectResource[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'weir-project-'));
  writeFileSync(join(dir, 'project.yaml'), resources.map((r) => stringify(r)).join('---\n'));
  return dir;
}

/** Everything the protocol promises, checked by counting. */
async function assertExact(ch: ClickHouse, db: string, written: number): Promise<void> {
  expect(await count(ch, `SELECT count() AS n FROM ${db}.page_views`)).toBe(written);
  expect(await count(ch, `SELECT uniqExact(session_id) AS n FROM ${db}.page_views`)).toBe(written);
  expect(await count(ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(written);
  // The rollup equals a recomputation from page_views, group by group.
  const diff = await count(
    ch,
    `SELECT count() AS n FROM (
       SELECT day, tenant_id, pathname, countMerge(views) AS v, uniqMerge(visitors) AS u FROM ${db}.page_views_daily GROUP BY day, tenant_id, pathname
     ) AS r FULL OUTER JOIN (
       SELECT toDate(timestamp) AS day, tenant_id, pathname, count() AS v, uniq(session_id) AS u FROM ${db}.page_views GROUP BY day, tenant_id, pathname
     ) AS x USING (day, tenant_id, pathname) WHERE r.v != x.v OR r.u != x.u`,
  );
  expect(diff).toBe(0);
  const [key] = await server.ch.query<{ sorting_key: string }>(`SELECT sorting_key FROM system.tables WHERE database = '${db}' AND name = 'page_views'`);
  expect(key?.sorting_key).toBe('tenant_id, pathname, timestamp');
}

describe('copy-and-swap of page_views while writing and reading', () => {
  it('keeps every row exactly once, the rollup exact, and reads complete and monotonic', async () => {
    const ns = uniqueNamespace('cas');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, project(ns), { log });
    const writer = new PageViewWriter(server.connect(), db, { timing: fastFence });
    const reader = new Reader(server.connect(), db);
    writer.start();
    reader.start();
    while (writer.written < 20_000) await new Promise((r) => setTimeout(r, 20));

    const { executor } = await applyProject(server.ch, project(ns, ['tenant_id', 'pathname', 'timestamp']), { log, fenceTiming: fastFence });
    const during = writer.written;
    while (writer.written < during + 5_000) await new Promise((r) => setTimeout(r, 20));
    await writer.stop();
    await reader.stop();

    await assertExact(server.ch, db, writer.written);
    expect(reader.errors).toEqual([]);
    expect(reader.wentBackwards).toEqual([]);
    expect(reader.reads).toBeGreaterThan(10);
    expect(executor.fenceReports).toHaveLength(1);
    expect(executor.fenceReports[0]?.writers).toEqual([writer.fence.writerId]);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.page_views__v1`)).toBeGreaterThanOrEqual(20_000);
    console.log(`rows ${writer.written}, reads ${reader.reads}, longest writer pause ${writer.fence.longestPauseMs} ms, fence held ${executor.fenceReports[0]?.heldMs} ms`);
  });

  const faults = ['Created', 'Backfilled', 'DeltaCopied', 'Verified', 'Exchanged', 'GapChecked'];
  for (const fault of faults) {
    it(`survives weir apply SIGKILLed at ${fault} and run again`, async () => {
      const ns = uniqueNamespace('crash');
      const db = ns.replace(/-/g, '_');
      await applyProject(server.ch, project(ns), { log });
      const writer = new PageViewWriter(server.connect(), db, { timing: fastFence });
      const reader = new Reader(server.connect(), db);
      writer.start();
      reader.start();
      while (writer.written < 5_000) await new Promise((r) => setTimeout(r, 20));

      const dir = writeProject(project(ns, ['tenant_id', 'pathname', 'timestamp']));
      const args = [WEIR_BIN, 'apply', '-f', dir, '--clickhouse', server.url, '--fence-ttl', '4000'];
      const run = (env: Record<string, string>) =>
        new Promise<{ code: number | null; signal: string | null; out: string }>((resolve) => {
          const child = spawn(process.execPath, args, { env: { ...process.env, ...env } });
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.stderr.on('data', (d: Buffer) => (out += d.toString()));
          child.on('exit', (code, signal) => resolve({ code, signal, out }));
        });
      const crashed = await run({ WEIR_FAULT_AT: fault });
      expect(crashed.signal, crashed.out).toBe('SIGKILL');
      const resumed = await run({});
      expect(resumed.code, resumed.out).toBe(0);
      const during = writer.written;
      while (writer.written < during + 2_000) await new Promise((r) => setTimeout(r, 20));
      await writer.stop();
      await reader.stop();

      await assertExact(server.ch, db, writer.written);
      expect(reader.errors).toEqual([]);
      expect(reader.wentBackwards).toEqual([]);
      const [m] = await server.ch.query<{ state: string }>(`SELECT argMax(state, seq) AS state FROM weir.migrations WHERE database = '${db}' AND table = 'page_views'`);
      expect(m?.state).toBe('Done');
    });
  }
});
