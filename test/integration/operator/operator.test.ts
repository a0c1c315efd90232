// The operator process against the real API server: status, idempotence, finalizers,
// events, metrics, and graceful shutdown.
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP, VERSION } from '../../../src/api/common.js';
import type { DataSource } from '../../../src/api/datasource.js';
import type { Endpoint } from '../../../src/api/endpoint.js';
import type { Pipe } from '../../../src/api/pipe.js';
import { mergePatch } from '../../../src/operator/events.js';
import { FINALIZER } from '../../../src/operator/controller.js';
import { ownerLabels } from '../../../src/controllers/workloads.js';
import { dataSource, endpoint, inNamespace, materializedInto, pipe, withParams } from '../../fixtures/builders.js';
import { apps, condition, createNamespace, createResource, exampleResources, getResource, testKubeConfig } from '../../fixtures/kube.js';
import { operatorArgs, startWeir, type WeirProcess } from '../../fixtures/processes.js';
import { waitFor } from '../../env/wait.js';

let kc: KubeConfig;
let ns: string;
let operator: WeirProcess;
let metricsPort: number;

async function statusOf<T extends { metadata: { generation?: number }; status?: { observedGeneration?: number } }>(
  kind: 'DataSource' | 'Pipe' | 'Endpoint',
  name: string,
): Promise<T> {
  return waitFor(`${kind} ${name} status for its generation`, async () => {
    const obj = await getResource<T>(kc, kind, ns, name);
    return obj.status?.observedGeneration === obj.metadata.generation ? obj : undefined;
  });
}

beforeAll(async () => {
  kc = testKubeConfig();
  ns = await createNamespace(kc, 'operator');
  operator = startWeir(operatorArgs(ns, '--lease-duration', '4000', '--renew-deadline', '3000', '--retry-period', '500', '--resync', '2000'), {
    WEIR_LOG_LEVEL: 'debug',
  });
  const started = await operator.waitForLog('operator started', (l) => l.message === 'operator started');
  metricsPort = started.metricsPort as number;
  await operator.waitForLog('controllers started', (l) => l.message === 'controllers started');
  for (const obj of exampleResources(ns)) await createResource(kc, obj);
});

afterAll(async () => {
  await operator?.kill('SIGTERM');
});

describe('weir operator', () => {
  it('sets observedGeneration and kstatus conditions without claiming Ready for work it does not do', async () => {
    const ds = await statusOf<DataSource>('DataSource', 'page-views');
    expect(ds.metadata.finalizers).toContain(FINALIZER);
    expect(ds.status?.table).toBe(`${ns.replace(/-/g, '_')}.page_views`);
    expect(ds.status?.phase).toBe('Pending');
    expect(condition(ds, 'Ready')).toMatchObject({ status: 'False', reason: 'NoClickHouseConnection' });
    expect(condition(ds, 'Reconciling')).toMatchObject({ status: 'True', reason: 'NoClickHouseConnection' });
    expect(condition(ds, 'Stalled')).toMatchObject({ status: 'False' });

    // The Endpoint may be reconciled before its Pipe is in the operator's cache: wait for the compiled params.
    const ep = await waitFor('top-pages params', async () => {
      const e = await statusOf<Endpoint>('Endpoint', 'top-pages');
      return e.status?.params ? e : undefined;
    });
    expect(ep.status?.params).toEqual([
      { name: 'tenant', type: 'String', required: true },
      { name: 'date_from', type: 'Date', required: false, default: '2020-01-01' },
      { name: 'date_to', type: 'Date', required: false, default: '2100-01-01' },
      { name: 'limit', type: 'UInt32', required: false, default: '10' },
    ]);
  });

  it('does not write status again when nothing changed (idempotent across resyncs)', async () => {
    const before = await statusOf<DataSource>('DataSource', 'page-views');
    const reconciles = async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const m = text.match(/weir_reconcile_total\{kind="DataSource",result="success"\} (\d+)/);
      return Number(m?.[1] ?? 0);
    };
    const n = await reconciles();
    // Resync is 2 s: wait until DataSources were reconciled at least twice more.
    await waitFor('two more resyncs', async () => ((await reconciles()) >= n + 4 ? true : undefined), { timeoutMs: 20_000 });
    const after = await getResource<DataSource>(kc, 'DataSource', ns, 'page-views');
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(after.spec).toEqual(before.spec);
  });

  it('keeps a Pipe Reconciling while the DataSource it materializes into does not exist, and goes on when it appears', async () => {
    await createResource(kc, pipe('orphan', inNamespace(ns), materializedInto('later_table')));
    const waiting = await waitFor('orphan waiting', async () => {
      const p = await getResource<Pipe>(kc, 'Pipe', ns, 'orphan');
      return condition(p, 'Reconciling')?.reason === 'WaitingForDataSource' ? p : undefined;
    });
    expect(condition(waiting, 'Stalled')?.status).toBe('False');
    expect(waiting.status?.phase).toBe('Pending');

    await createResource(kc, dataSource('later-table', inNamespace(ns)));
    const recovered = await waitFor('orphan no longer waiting', async () => {
      const p = await getResource<Pipe>(kc, 'Pipe', ns, 'orphan');
      return condition(p, 'Reconciling')?.reason === 'NoClickHouseConnection' ? p : undefined;
    });
    expect(condition(recovered, 'Stalled')?.status).toBe('False');

    // Events are recorded right after the status write: wait for them rather than race it.
    await waitFor('orphan events', async () => {
      const events = await kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=orphan' });
      const seen = events.items.map((e) => `${e.type}/${e.reason}`);
      return seen.includes('Normal/WaitingForDataSource') && seen.includes('Normal/NoClickHouseConnection') ? true : undefined;
    });
  });

  it('marks an Endpoint Stalled when it declares a parameter its SQL does not use', async () => {
    await createResource(kc, endpoint('typo', 'top-pages', inNamespace(ns), withParams({ name: 'tennant', default: 'x' })));
    const ep = await waitFor('typo stalled', async () => {
      const e = await getResource<Endpoint>(kc, 'Endpoint', ns, 'typo');
      return condition(e, 'Stalled')?.status === 'True' ? e : undefined;
    });
    expect(condition(ep, 'Stalled')?.reason).toBe('UnknownParameter');
    expect(condition(ep, 'Ready')?.message).toContain('tennant');
  });

  it('reconciles a spec change into a new observedGeneration', async () => {
    const api = kc.makeApiClient(CustomObjectsApi);
    await api.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: 'datasources',
        name: 'page-views',
        body: { spec: { engine: { sortingKey: ['tenant_id', 'pathname', 'timestamp'] } } },
      },
      mergePatch(),
    );
    const ds = await statusOf<DataSource>('DataSource', 'page-views');
    expect(ds.metadata.generation).toBe(2);
    expect(ds.status?.observedGeneration).toBe(2);
  });

  it('removes its finalizer on delete so the resource goes away', async () => {
    await createResource(kc, dataSource('short-lived', inNamespace(ns)));
    await waitFor('finalizer added', async () => {
      const ds = await getResource<DataSource>(kc, 'DataSource', ns, 'short-lived');
      return ds.metadata.finalizers?.includes(FINALIZER) ? true : undefined;
    });
    const api = kc.makeApiClient(CustomObjectsApi);
    await api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'datasources', name: 'short-lived' });
    await waitFor('short-lived gone', async () => {
      try {
        await getResource(kc, 'DataSource', ns, 'short-lived');
        return undefined;
      } catch (e) {
        return (e as { code?: number }).code === 404 ? true : undefined;
      }
    });
  });

  it('reconciles the owner when a Deployment it owns changes, and puts back what weir decides', async () => {
    const deployments = apps(kc);
    const name = 'page-views-ingest';
    const created = await waitFor('the ingestion Deployment', () => deployments.readNamespacedDeployment({ name, namespace: ns }));
    expect(created.metadata?.labels).toMatchObject(ownerLabels('DataSource', 'page-views'));
    // Scaled by hand: weir notices through its Deployment watch and applies the spec's count again.
    await deployments.patchNamespacedDeployment({ name, namespace: ns, body: { spec: { replicas: 5 } } }, mergePatch());
    const line = await operator.waitForLog('owned Deployment noticed', (l) => l.message === 'owned object changed' && l.owned === name);
    expect(line).toMatchObject({ kind: 'DataSource', namespace: ns, name: 'page-views' });
    const restored = await waitFor('replicas back to the spec', async () => {
      const d = await deployments.readNamespacedDeployment({ name, namespace: ns });
      return d.spec?.replicas === 2 ? d : undefined;
    });
    expect(restored.spec?.replicas).toBe(2); // the example's ingestion.replicas
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(200);
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(text).toMatch(/weir_reconcile_duration_seconds_count\{kind="Endpoint"\} [1-9]/);
    expect(text).toMatch(/weir_workqueue_depth\{kind="DataSource"\} 0/);
    expect(text).toContain('weir_leader 1');
  });

  it('logs JSON lines that carry kind, namespace and name', () => {
    const line = operator.logs.find((l) => l.message === 'status updated');
    expect(line).toMatchObject({ kind: expect.any(String), namespace: ns, name: expect.any(String), level: 'info' });
  });

  it('shuts down on SIGTERM and releases its lease', async () => {
    const code = await operator.kill('SIGTERM');
    expect(code).toBe(0);
    const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'weir-operator', namespace: ns });
    expect(lease.spec?.holderIdentity ?? '').toBe('');
  });
});
