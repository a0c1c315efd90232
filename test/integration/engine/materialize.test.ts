// A materialized Pipe created over a table that already holds rows and keeps receiving
// them: the target ends up equal to a recomputation from the source, exactly, also when
// `weir apply` is SIGKILLed in the middle of the backfill and run again.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { applyProject } from '../../../src/clickhouse/apply.js';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
import type { ProjectResource } from '../../../src/plan/graph.js';
import { createLogger } from '../../../src/runtime/log.js';
import { uniqueNamespace } from '../../fixtures/builders.js';
import { count, PageViewWriter, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { exampleResources } from '../../fixtures/kube.js';
import { WEIR_BIN } from '../../fixtures/processes.js';

const log = createLogger({ level: 'warn' });
const fastFence = { livenessMs: 2000, fenceTtlMs: 4000, ackTimeoutMs: 10_000, pollMs: 10 };
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
  const diff = await count(
    ch,
    `SELECT count() AS n FROM (
       SELECT day, tenant_id, pathname, countMerge(views) AS v, uniqMerge(visitors) AS u FROM ${db}.page_views_daily GROUP BY day, tenant_id, pathname
     ) AS r FULL OUTER JOIN (
       SELECT toDate(timestamp) AS day, tenant_id, pathname, count() AS v, uniq(session_id) AS u FROM ${db}.page_views GROUP BY day, tenant_id, pathname
     ) AS x USING (day, tenant_id, pathname) WHERE r.v != x.v OR r.u != x.u`,
  );
  expect(diff).toBe(0);
}

describe('materialized Pipe over a table with rows and live inserts', () => {
  it('backfills the existing rows exactly once while new rows flow through the view', async () => {
    const ns = uniqueNamespace('mv');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, withoutRollup(ns), { log });
    const writer = new PageViewWriter(server.connect(), db, { timing: fastFence });
    writer.start();
    while (writer.written < 10_000) await new Promise((r) => setTimeout(r, 20));
    const { executor, plan } = await applyProject(server.ch, withRollup(ns), { log, fenceTiming: fastFence });
    expect(plan.resources.flatMap((r) => r.steps.map((s) => s.kind))).toEqual(['CreateView']);
    const at = writer.written;
    while (writer.written < at + 3_000) await new Promise((r) => setTimeout(r, 20));
    await writer.stop();
    await assertRollupExact(server.ch, db, writer.written);
    expect(executor.fenceReports[0]?.writers).toEqual([writer.fence.writerId]);
  });

  for (const fault of ['ViewCreated', 'Staged', 'PartitionMoved']) {
    it(`lands the backfill exactly once when weir apply is SIGKILLed at ${fault}`, async () => {
      const ns = uniqueNamespace('mvcrash');
      const db = ns.replace(/-/g, '_');
      await applyProject(server.ch, withoutRollup(ns), { log });
      const writer = new PageViewWriter(server.connect(), db, { timing: fastFence });
      writer.start();
      while (writer.written < 6_000) await new Promise((r) => setTimeout(r, 20));
      const dir = mkdtempSync(join(tmpdir(), 'weir-project-'));
      writeFileSync(join(dir, 'project.yaml'), withRollup(ns).map((r) => stringify(r)).join('---\n'));
      const run = (env: Record<string, string>) =>
        new Promise<{ code: number | null; signal: string | null; out: string }>((resolve) => {
          const child = spawn(process.execPath, [WEIR_BIN, 'apply', '-f', dir, '--clickhouse', server.url, '--fence-ttl', '4000'], { env: { ...process.env, ...env } });
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.stderr.on('data', (d: Buffer) => (out += d.toString()));
          child.on('exit', (code, signal) => resolve({ code, signal, out }));
        });
      const crashed = await run({ WEIR_FAULT_AT: fault });
      expect(crashed.signal, crashed.out).toBe('SIGKILL');
      const resumed = await run({});
      expect(resumed.code, resumed.out).toBe(0);
      const at = writer.written;
      while (writer.written < at + 2_000) await new Promise((r) => setTimeout(r, 20));
      await writer.stop();
      await assertRollupExact(server.ch, db, writer.written);
      expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND name LIKE '%weir_backfill%'`)).toBe(0);
    });
  }
});
