// The operator converging the real ClickHouse engine from resources in the real API server:
// creation, a copy-and-swap migration visible in status and Events, manual approval, and
// deletionPolicy.
import { CoreV1Api, CustomObjectsApi, Watch, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP, VERSION } from '../../../src/api/common.js';
import type { DataSource, DataSourceStatus } from '../../../src/api/datasource.js';
import type { Pipe } from '../../../src/api/pipe.js';
import { APPROVE_ANNOTATION } from '../../../src/controllers/datasource.js';
import { mergePatch } from '../../../src/operator/events.js';
import { waitFor } from '../../env/wait.js';
import { column, dataSource, inNamespace, withColumns, withSortingKey, withSpec } from '../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { createNamespace, createResource, exampleResources, getResource, testKubeConfig } from '../../fixtures/kube.js';
import { operatorArgs, startWeir, type WeirProcess } from '../../fixtures/processes.js';

let kc: KubeConfig;
let ns: string;
let db: string;
let server: TestClickHouse;
let operator: WeirProcess;

const patchSpec = (plural: string, name: string, body: object) =>
  kc.makeApiClient(CustomObjectsApi).patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural, name, body }, mergePatch());

const ready = <T extends { metadata: { generation?: number }; status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] } }>(
  kind: 'DataSource' | 'Pipe',
  name: string,
  extra: (o: T) => boolean = () => true,
) =>
  waitFor(
    `${kind} ${name} Ready`,
    async () => {
      const o = await getResource<T>(kc, kind, ns, name);
      const isReady = o.status?.observedGeneration === o.metadata.generation && o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      return isReady && extra(o) ? o : undefined;
    },
    { timeoutMs: 60_000 },
  );

beforeAll(async () => {
  kc = testKubeConfig();
  ns = await createNamespace(kc, 'converge');
  db = ns.replace(/-/g, '_');
  server = await startTestClickHouse();
  // Small backfill chunks, so the migration below copies in several and reports its progress.
  operator = startWeir(operatorArgs(ns, '--clickhouse-url', server.url, '--resync', '3000'), { WEIR_BACKFILL_CHUNK_ROWS: '100' });
  await operator.waitForLog('controllers started', (l) => l.message === 'controllers started');
});

afterAll(async () => {
  await operator?.kill('SIGTERM');
  await server?.stop();
});

describe('operator with ClickHouse', () => {
  it('creates the example tables and the materialized view, and reports Ready with version 1', async () => {
    for (const obj of exampleResources(ns)) await createResource(kc, obj);
    const pv = await ready<DataSource>('DataSource', 'page-views');
    expect(pv.status).toMatchObject({ version: 1, phase: 'Ready', table: `${db}.page_views` });
    const rollup = await ready<Pipe>('Pipe', 'daily-rollup');
    expect(rollup.status?.view).toBe(`${db}.daily_rollup`);
    expect(rollup.status?.reads).toEqual([`${ns}/page-views`]);
    // Five inserts, five blocks: the backfill can cut them into chunks of 100 rows.
    for (let i = 0; i < 5; i++) {
      await server.ch.command(
        `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname) SELECT now64(3) - number, toString(number + ${i * 100}), 't1', '/a' FROM numbers(100)`,
      );
    }
    expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(500);
  });

  it('migrates page_views to a new sorting key, recording version, history, its progress in status and every step as an Event', async () => {
    // Every status the API server holds during the migration, from a watch (a poll could miss them).
    const progress: NonNullable<NonNullable<DataSourceStatus['migration']>['progress']>[] = [];
    const watching = await new Watch(kc).watch(
      `/apis/${GROUP}/${VERSION}/namespaces/${ns}/datasources`,
      { fieldSelector: 'metadata.name=page-views' },
      (_type, obj: DataSource) => {
        const p = obj.status?.migration?.progress;
        if (p) progress.push(p);
      },
      () => undefined,
    );
    await patchSpec('datasources', 'page-views', { spec: { engine: { sortingKey: ['tenant_id', 'pathname', 'timestamp'] } } });
    const pv = await ready<DataSource>('DataSource', 'page-views', (o) => o.status?.version === 2);
    // The watch may deliver the last progress patch after the poll above saw the end.
    await waitFor('the watch to see the backfill at 100%', () => (progress.some((p) => p.percent === 100) ? true : undefined));
    watching.abort();
    const backfill = progress.filter((p) => p.phase === 'Backfilling');
    expect(backfill.length).toBeGreaterThan(1);
    expect(backfill.map((p) => p.percent)).toEqual([...backfill.map((p) => p.percent)].sort((a, b) => a - b));
    expect(backfill.at(-1)).toMatchObject({ rowsCopied: 500, rowsTotal: 500, percent: 100, chunk: 5, chunks: 5 });
    expect(pv.status?.history?.map((h) => h.version)).toEqual([1, 2]);
    expect(pv.status?.history?.[0]?.plan?.join('\n')).toMatch(/create table .*page_views .* as version 1/);
    expect(pv.status?.history?.[1]?.plan?.[0]).toMatch(/^migrate .*page_views v1 → v2 by copy-and-swap/);
    expect(pv.status?.migration).toBeUndefined();
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.page_views`)).toBe(500);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.page_views__v1`)).toBe(500);
    const steps = [
      'MigrationStarted',
      'MigrationCreated',
      'MigrationBackfilled',
      'MigrationFenced',
      'MigrationVerified',
      'MigrationSwapped',
      'MigrationCompleted',
    ];
    // The last Event is recorded right after the status write: wait for it rather than race it.
    const reasons = await waitFor('migration events', async () => {
      const events = await kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=page-views' });
      const seen = events.items.map((e) => e.reason ?? '');
      return steps.every((r) => seen.includes(r)) ? seen : undefined;
    });
    expect(reasons).toEqual(expect.arrayContaining(steps));
  });

  it('waits for approval when migration.approval is Manual, and migrates once the plan hash is annotated', async () => {
    await createResource(
      kc,
      dataSource(
        'audited',
        inNamespace(ns),
        withColumns(column('ts', 'DateTime'), column('k', 'String')),
        withSortingKey('k'),
        withSpec({ migration: { approval: 'Manual' } }),
      ),
    );
    await ready<DataSource>('DataSource', 'audited');
    await patchSpec('datasources', 'audited', { spec: { engine: { sortingKey: ['ts'] } } });
    const waiting = await waitFor('AwaitingApproval', async () => {
      const o = await getResource<DataSource>(kc, 'DataSource', ns, 'audited');
      return o.status?.phase === 'AwaitingApproval' && o.status.observedGeneration === o.metadata.generation ? o : undefined;
    });
    const hash = waiting.status?.pendingPlan?.hash ?? '';
    expect(waiting.status?.pendingPlan?.steps[0]).toMatch(/by copy-and-swap/);
    expect(waiting.status?.conditions?.find((c) => c.type === 'Reconciling')).toMatchObject({ status: 'True', reason: 'AwaitingApproval' });
    expect(
      (await server.ch.query<{ sorting_key: string }>(`SELECT sorting_key FROM system.tables WHERE database = '${db}' AND name = 'audited'`))[0]?.sorting_key,
    ).toBe('k');
    await kc.makeApiClient(CustomObjectsApi).patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: 'datasources',
        name: 'audited',
        body: { metadata: { annotations: { [APPROVE_ANNOTATION]: hash } } },
      },
      mergePatch(),
    );
    const done = await ready<DataSource>('DataSource', 'audited', (o) => o.status?.version === 2);
    expect(done.status?.pendingPlan).toBeUndefined();
  });

  it("marks a Pipe whose SQL does not compile Stalled with ClickHouse's message, creating nothing", async () => {
    await createResource(kc, {
      apiVersion: 'weir.dev/v1alpha1',
      kind: 'Pipe',
      metadata: { name: 'broken', namespace: ns },
      spec: { nodes: [{ name: 'n', sql: 'SELECT no_such_column FROM page_views' }], materialize: { into: 'page-views-daily' } },
    });
    const p = await waitFor('broken stalled', async () => {
      const o = await getResource<Pipe>(kc, 'Pipe', ns, 'broken');
      return o.status?.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True') ? o : undefined;
    });
    expect(p.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      reason: 'SqlDoesNotCompile',
      message: expect.stringMatching(/no_such_column/),
    });
    expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND name = 'broken'`)).toBe(0);
  });

  it('drops the tables on delete with deletionPolicy: Delete, and keeps them with Retain', async () => {
    await createResource(kc, dataSource('scratch', inNamespace(ns), withSpec({ deletionPolicy: 'Delete' })));
    await createResource(kc, dataSource('keeper', inNamespace(ns)));
    await ready('DataSource', 'scratch');
    await ready('DataSource', 'keeper');
    const api = kc.makeApiClient(CustomObjectsApi);
    for (const name of ['scratch', 'keeper'])
      await api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'datasources', name });
    await waitFor('scratch tables dropped', async () =>
      (await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND startsWith(name, 'scratch')`)) === 0 ? true : undefined,
    );
    expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND startsWith(name, 'keeper')`)).toBe(2);
  });
});
