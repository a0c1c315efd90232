// Migrations off the reconcile path, against the real API server and engine: while a long
// (throttled) copy-and-swap runs in the background, 100 new DataSources become Ready and another
// is deleted and finalized, all before it ends; a second migration waits for the one slot
// (MigrationQueued) and runs after it; and a leader SIGKILLed mid-migration hands it to the next
// operator, which waits out its table lock and finishes it once, with exact counts.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP, VERSION } from '../../../src/api/common.js';
import type { DataSource } from '../../../src/api/datasource.js';
import { mergePatch } from '../../../src/operator/events.js';
import { isNotFound } from '../../../src/operator/kube-errors.js';
import { waitFor } from '../../env/wait.js';
import { column, dataSource, inNamespace, withColumns, withSortingKey } from '../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { condition, createNamespace, createResource, getResource, testKubeConfig } from '../../fixtures/kube.js';
import { operatorArgs, startWeir, type WeirProcess } from '../../fixtures/processes.js';

let kc: KubeConfig;
let server: TestClickHouse;
const operators: WeirProcess[] = [];

/** Chunks of 200 rows, a lock that a dead holder keeps 3 s, and a lease a standby takes within seconds. */
const ENV = { WEIR_BACKFILL_CHUNK_ROWS: '200', WEIR_TABLE_LOCK_TTL_MS: '3000' };
const operator = (ns: string, ...extra: string[]) => {
  const p = startWeir(
    operatorArgs(
      ns,
      '--clickhouse-url',
      server.url,
      '--resync',
      '3000',
      '--lease-duration',
      '3000',
      '--renew-deadline',
      '2000',
      '--retry-period',
      '300',
      ...extra,
    ),
    ENV,
  );
  operators.push(p);
  return p;
};

beforeAll(async () => {
  kc = testKubeConfig();
  server = await startTestClickHouse();
});
afterAll(async () => {
  await Promise.all(operators.map((o) => o.kill('SIGKILL')));
  await server?.stop();
});

const table = (name: string, ns: string) =>
  dataSource(name, inNamespace(ns), withColumns(column('ts', 'DateTime'), column('user', 'String'), column('n', 'UInt64')), withSortingKey('ts'));
const identityOf = (p: WeirProcess) => p.logs.find((l) => l.message === 'operator started')?.identity as string;
const phaseOf = async (ns: string, name: string) => (await getResource<DataSource>(kc, 'DataSource', ns, name)).status;
const readyAt = (ns: string, name: string, version: number) =>
  waitFor(
    `${ns}/${name} Ready at v${version}`,
    async () => {
      const s = await phaseOf(ns, name);
      return s?.version === version && condition({ status: s }, 'Ready')?.status === 'True' ? s : undefined;
    },
    { timeoutMs: 180_000, intervalMs: 250 },
  );
/** `rows` rows in ten inserts (ten blocks, so chunks of 200 can cut them). */
async function fill(db: string, t: string, rows: number) {
  for (let i = 0; i < 10; i++) {
    const per = rows / 10;
    await server.ch.command(`INSERT INTO ${db}.${t} SELECT toDateTime('2026-01-01') + number, toString(number), number + ${i * per} FROM numbers(${per})`);
  }
}
/** The sorting key changed and the backfill throttled: a copy-and-swap of about rows / rate seconds. */
const migrate = (ns: string, name: string, rowsPerSecond: number) =>
  kc.makeApiClient(CustomObjectsApi).patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: 'datasources',
      name,
      body: { spec: { engine: { sortingKey: ['user', 'ts'] }, migration: { backfill: { maxRowsPerSecond: rowsPerSecond } } } },
    },
    mergePatch(),
  );
const exact = async (db: string, t: string, rows: number) =>
  expect(await server.ch.query(`SELECT count() AS c, uniqExact(n) AS d, sum(n) AS total FROM ${db}.${t}`)).toEqual([
    { c: String(rows), d: String(rows), total: String((rows * (rows - 1)) / 2) },
  ]);

describe('migrations in the background', () => {
  it('a long migration blocks nothing: 100 DataSources Ready and one finalized meanwhile; a second migration waits for the slot', async () => {
    const ns = await createNamespace(kc, 'bgmig');
    const db = ns.replace(/-/g, '_');
    const op = operator(ns, '--max-concurrent-migrations', '1');
    await op.waitForLog('controllers started', (l) => l.message === 'controllers started', 60_000);
    for (const name of ['big', 'second', 'doomed']) await createResource(kc, table(name, ns));
    for (const name of ['big', 'second', 'doomed']) await readyAt(ns, name, 1);
    await fill(db, 'big', 2000);
    await fill(db, 'second', 400);

    await migrate(ns, 'big', 30); // about 67 s
    await waitFor('big migrating in the background', async () => ((await phaseOf(ns, 'big'))?.phase === 'Migrating' ? true : undefined));
    await migrate(ns, 'second', 1000);
    const queued = await waitFor('the second migration queued', async () => {
      const s = await phaseOf(ns, 'second');
      return condition({ status: s }, 'Reconciling')?.reason === 'MigrationQueued' ? s : undefined;
    });
    expect(condition({ status: queued }, 'Reconciling')?.message).toContain(`1 of 1 migrations run on this ClickHouse connection (${ns}/big)`);

    const others = Array.from({ length: 100 }, (_, i) => `other-${i}`);
    for (const name of others) await createResource(kc, table(name, ns));
    await kc
      .makeApiClient(CustomObjectsApi)
      .deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'datasources', name: 'doomed' });
    for (const name of others) await readyAt(ns, name, 1);
    await waitFor('doomed finalized', async () => {
      try {
        await getResource(kc, 'DataSource', ns, 'doomed');
        return undefined;
      } catch (e) {
        if (isNotFound(e)) return true;
        throw e;
      }
    });
    // All of that while the migration still runs, and the second one still waits.
    const big = await phaseOf(ns, 'big');
    expect(big?.phase).toBe('Migrating');
    expect(condition({ status: await phaseOf(ns, 'second') }, 'Reconciling')?.reason).toBe('MigrationQueued');

    await readyAt(ns, 'big', 2);
    await readyAt(ns, 'second', 2);
    await exact(db, 'big', 2000);
    await exact(db, 'second', 400);
  }, 240_000);

  it('a leader SIGKILLed mid-migration: the next one takes its table lock and finishes the migration once, exactly', async () => {
    const ns = await createNamespace(kc, 'bgfail');
    const db = ns.replace(/-/g, '_');
    const first = operator(ns);
    await first.waitForLog('controllers started', (l) => l.message === 'controllers started', 60_000);
    await createResource(kc, table('big', ns));
    await readyAt(ns, 'big', 1);
    await fill(db, 'big', 2000);
    await migrate(ns, 'big', 200); // about 10 s
    await waitFor('a third of the backfill copied', async () => (((await phaseOf(ns, 'big'))?.migration?.progress?.percent ?? 0) >= 30 ? true : undefined), {
      timeoutMs: 60_000,
    });
    await first.kill('SIGKILL');
    const next = operator(ns);
    await next.waitForLog('controllers started', (l) => l.message === 'controllers started', 60_000);
    await readyAt(ns, 'big', 2);
    await exact(db, 'big', 2000);
    const migrations = await server.ch.query<{ id: string; state: string }>(
      `SELECT id, argMax(state, seq) AS state FROM weir.migrations WHERE database = '${db}' AND table = 'big' GROUP BY id`,
    );
    expect(migrations).toEqual([{ id: expect.any(String) as unknown, state: 'Done' }]);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.big__v1`)).toBe(2000);
    // Two holders, one after the other: the killed leader's job, then the next leader's (it released the dead process's claim, on this host).
    const claims = await server.ch.query<{ holder: string }>(
      `SELECT holder, min(claimed_at) AS first FROM weir.table_locks
       WHERE database = '${db}' AND table = 'big' AND holder LIKE '% migration %' GROUP BY holder ORDER BY first`,
    );
    expect(claims.map((c) => c.holder)).toEqual([expect.stringContaining(identityOf(first)), expect.stringContaining(identityOf(next))]);
  }, 240_000);
});
