// The operator running a DataSource's events API (spec.ingestion.http) in the real API server:
// the <name>-events Deployment (probes, non-root, read-only root filesystem, the config hash),
// its Service, PDB and HPA, status with the URL and EventsReady, a pod started from what the
// operator wrote taking events with the token from the Secret (and refusing others), the rows
// it accepted in status, and everything removed with spec.ingestion.http.
import { AutoscalingV2Api, CoreV1Api, PolicyV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { CONFIG_HASH_ANNOTATION } from '../../../src/controllers/workloads.js';
import { isNotFound } from '../../../src/operator/kube-errors.js';
import { waitFor } from '../../env/wait.js';
import { column, dataSource, inNamespace, withColumns, withSortingKey, withSpec } from '../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { apps, condition, createNamespace, createResource, getResource, patchResource, testKubeConfig } from '../../fixtures/kube.js';
import { Kubelet, type Pod } from '../../fixtures/kubelet.js';
import { operatorArgs, startWeir, type WeirProcess } from '../../fixtures/processes.js';

const NAME = 'clicks';
const DEPLOYMENT = `${NAME}-events`;
const TOKEN = 'events-writer-token';

let kc: KubeConfig;
let ns: string;
let db: string;
let server: TestClickHouse;
let operator: WeirProcess;
let kubelet: Kubelet;

const dataSourceWhere = (what: string, ok: (ds: DataSource) => boolean) =>
  waitFor(
    what,
    async () => {
      const ds = await getResource<DataSource>(kc, 'DataSource', ns, NAME);
      return ok(ds) ? ds : undefined;
    },
    { timeoutMs: 60_000 },
  );
const deployment = () => apps(kc).readNamespacedDeployment({ name: DEPLOYMENT, namespace: ns });
const post = (pod: Pod, body: string, headers: Record<string, string> = {}) =>
  fetch(`http://127.0.0.1:${pod.httpPort}/v0/events?name=${NAME}`, { method: 'POST', body, headers });
const events = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${JSON.stringify({ id: `${prefix}-${i}`, page: `/p${i % 3}` })}\n`).join('');

beforeAll(async () => {
  kc = testKubeConfig();
  ns = await createNamespace(kc, 'events');
  db = ns.replace(/-/g, '_');
  kubelet = new Kubelet(kc, ns);
  server = await startTestClickHouse();
  operator = startWeir(operatorArgs(ns, '--clickhouse-url', server.url, '--resync', '2000', '--worker-image', 'registry.example/weir:1.2.3'));
  await operator.waitForLog('controllers started', (l) => l.message === 'controllers started');
  await kc.makeApiClient(CoreV1Api).createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'clicks-writers' }, stringData: { app: TOKEN } } });
  await createResource(
    kc,
    dataSource(
      NAME,
      inNamespace(ns),
      withColumns(column('id', 'String', { jsonPath: '$.id' }), column('page', 'LowCardinality(String)', { jsonPath: '$.page' })),
      withSortingKey('page', 'id'),
      withSpec<DataSource>({
        ingestion: { http: { replicas: 2, auth: { tokensSecretRef: { name: 'clicks-writers' } }, limits: { requestsPerSecond: 500 } } },
      }),
    ),
  );
}, 120_000);

afterAll(async () => {
  await kubelet?.killAll();
  await operator?.kill('SIGTERM');
  await server?.stop();
});

describe('events Deployments', () => {
  it('creates the Deployment, Service and PodDisruptionBudget from spec.ingestion.http, and reports the URL', async () => {
    const ds = await dataSourceWhere('status.ingestion.http', (o) => o.status?.ingestion?.http?.url !== undefined);
    expect(ds.status?.ingestion?.http).toMatchObject({ url: `http://${DEPLOYMENT}.${ns}.svc/v0/events?name=${NAME}`, replicas: 2, readyReplicas: 0 });
    expect(condition(ds, 'EventsReady')).toMatchObject({ status: 'False', reason: 'NoReplicaReady', message: '0/2 events pods ready' });
    expect(condition(ds, 'IngestionReady')).toBeUndefined();
    const d = await deployment();
    expect(d.spec?.replicas).toBe(2);
    expect(d.spec?.strategy?.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    expect(d.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION]).toMatch(/^[0-9a-f]+$/);
    const pod = d.spec?.template.spec;
    expect(pod?.securityContext).toMatchObject({ runAsNonRoot: true });
    const c = pod?.containers[0];
    expect(c?.image).toBe('registry.example/weir:1.2.3');
    expect(c?.args).toEqual([
      'events',
      '--config',
      '/etc/weir/config/datasource.yaml',
      '--port',
      '8000',
      '--shutdown-delay',
      '5000',
      '--tokens-dir',
      '/etc/weir/tokens',
      '--metrics-port',
      '9090',
    ]);
    expect(c?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(c?.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'metrics' });
    expect(c?.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'metrics' });
    expect(c?.volumeMounts).toEqual(expect.arrayContaining([expect.objectContaining({ mountPath: '/etc/weir/tokens/clicks-writers', readOnly: true })]));
    const svc = await kc.makeApiClient(CoreV1Api).readNamespacedService({ name: DEPLOYMENT, namespace: ns });
    expect(svc.spec?.selector).toEqual({ 'weir.dev/events': NAME });
    expect(svc.spec?.ports?.map((p) => [p.name, p.port, p.targetPort])).toEqual([
      ['http', 80, 'http'],
      ['metrics', 9090, 'metrics'],
    ]);
    const pdb = await kc.makeApiClient(PolicyV1Api).readNamespacedPodDisruptionBudget({ name: DEPLOYMENT, namespace: ns });
    expect(pdb.spec).toMatchObject({ maxUnavailable: 1, selector: { matchLabels: { 'weir.dev/events': NAME } } });
  });

  it('runs a pod as the Deployment says that takes events with the Secret token only, and status counts its rows', async () => {
    await dataSourceWhere('the table created', (o) => condition(o, 'Ready')?.status === 'True');
    const pod = await kubelet.startPod(DEPLOYMENT, { ready: true });
    expect((await post(pod, events('anon', 2))).status).toBe(401);
    expect((await post(pod, events('wrong', 2), { authorization: 'Bearer nope' })).status).toBe(403);
    const res = await post(pod, `${events('ok', 30)}{not json\n`, { authorization: `Bearer ${TOKEN}`, 'idempotency-key': 'batch-1' });
    expect([res.status, await res.json()]).toEqual([200, { successful_rows: 30, quarantined_rows: 1 }]);
    const retry = await post(pod, `${events('ok', 30)}{not json\n`, { authorization: `Bearer ${TOKEN}`, 'idempotency-key': 'batch-1' });
    expect([retry.status, await retry.json()]).toEqual([200, { successful_rows: 30, quarantined_rows: 1 }]);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.clicks`)).toBe(30);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.clicks_quarantine`)).toBe(1);
    const ds = await dataSourceWhere('rows accepted in status', (o) => o.status?.ingestion?.http?.rowsAccepted === 30);
    expect(ds.status?.ingestion?.http).toMatchObject({ rowsAccepted: 30, quarantinedRows: 1 });
  });

  it('rolls the pods on a spec change and runs an HPA with autoscaling', async () => {
    const before = (await deployment()).spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
    await patchResource(kc, 'DataSource', ns, NAME, { spec: { ingestion: { http: { autoscaling: { minReplicas: 2, maxReplicas: 5 } } } } });
    const hpa = await waitFor(
      'the HPA',
      async () =>
        kc
          .makeApiClient(AutoscalingV2Api)
          .readNamespacedHorizontalPodAutoscaler({ name: DEPLOYMENT, namespace: ns })
          .catch(() => undefined),
      { timeoutMs: 60_000 },
    );
    expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 5, scaleTargetRef: { kind: 'Deployment', name: DEPLOYMENT } });
    const after = (await deployment()).spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
    expect(after).not.toBe(before);
  });

  it('removes the Deployment, Service, PDB and HPA with spec.ingestion.http', async () => {
    await patchResource(kc, 'DataSource', ns, NAME, { spec: { ingestion: null } });
    // The controller deletes the Deployment first, then the Service and the PDB: each is waited for, not read once.
    const gone = (what: string, read: () => Promise<unknown>) =>
      waitFor(
        `the events ${what} gone`,
        async () =>
          read().then(
            () => undefined,
            (e: unknown) => (isNotFound(e) ? true : undefined),
          ),
        { timeoutMs: 60_000 },
      );
    await gone('Deployment', deployment);
    await gone('Service', () => kc.makeApiClient(CoreV1Api).readNamespacedService({ name: DEPLOYMENT, namespace: ns }));
    await gone('PodDisruptionBudget', () => kc.makeApiClient(PolicyV1Api).readNamespacedPodDisruptionBudget({ name: DEPLOYMENT, namespace: ns }));
    await gone('HorizontalPodAutoscaler', () => kc.makeApiClient(AutoscalingV2Api).readNamespacedHorizontalPodAutoscaler({ name: DEPLOYMENT, namespace: ns }));
    const ds = await dataSourceWhere('no ingestion status', (o) => o.status?.ingestion === undefined);
    expect(condition(ds, 'EventsReady')).toBeUndefined();
  });
});
