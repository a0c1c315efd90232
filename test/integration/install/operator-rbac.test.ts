// The operator under the chart's RBAC: the chart applied to the test API server, a token for its
// ServiceAccount from the TokenRequest API, and `weir operator` run with the chart's own args
// through a proxy that records every call. The example project is applied in reverse order
// (Endpoint, Pipes, DataSources) and converges; ingestion and endpoint Deployments are created;
// no call is forbidden, and every permission the chart grants is one the operator used. The
// statuses the operator wrote along the way feed the Argo CD health checks.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoscalingV2Api, CoreV1Api, CustomObjectsApi, Watch, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP, VERSION, type Condition } from '../../../src/api/common.js';
import { mergePatch } from '../../../src/operator/events.js';
import { waitFor } from '../../env/wait.js';
import { startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { apps, condition, createNamespace, createResource, exampleResources, kubectl, patchResource, testKubeConfig } from '../../fixtures/kube.js';
import { startWeir, type WeirProcess } from '../../fixtures/processes.js';
import { argocdHealth, granted, recordingProxy, renderChart, tokenKubeconfig, toYaml, type K8sObject, type RecordingProxy } from './helpers.js';

type Resource = {
  kind: string;
  metadata: { name: string; generation?: number };
  spec: Record<string, unknown>;
  status?: { observedGeneration?: number; phase?: string; conditions?: Condition[]; version?: number };
};
type Rules = { apiGroups: string[]; resources: string[]; verbs: string[] }[];

let kc: KubeConfig;
let release: string; // the release namespace: ServiceAccount, Lease
let ns: string; // the watched namespace: the example project
let server: TestClickHouse;
let proxy: RecordingProxy;
let operator: WeirProcess;
let rendered: K8sObject[];
let watching = true;
const watches: AbortController[] = [];
/** Every version of every weir object the operator wrote, in order. */
const seen: Resource[] = [];

const custom = () => kc.makeApiClient(CustomObjectsApi);
const plural = (kind: string) => `${kind.toLowerCase()}s`;
const latest = (kind: string, name: string) => seen.filter((o) => o.kind === kind && o.metadata.name === name).at(-1);
const seenWhere = (what: string, kind: string, name: string, ok: (o: Resource) => boolean, timeoutMs = 60_000) =>
  waitFor(what, () => seen.find((o) => o.kind === kind && o.metadata.name === name && ok(o)), { timeoutMs }).catch((e: Error) => {
    throw new Error(`${e.message}; last seen: ${JSON.stringify(latest(kind, name)?.status)}`);
  });
const reason = (type: string, r: string) => (o: Resource) => condition(o, type)?.status === 'True' && condition(o, type)?.reason === r;
const current = (o: Resource) => o.status?.observedGeneration === o.metadata.generation;

/** Record every version of `kind` in the namespace; a watch refused or ended (a fresh API server answers 429 at first) starts again. */
async function record(kind: string, resourceVersion?: string): Promise<void> {
  let last = resourceVersion;
  const again = () => setTimeout(() => watching && void record(kind, last), 200);
  try {
    const w = await new Watch(kc).watch(
      `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${plural(kind)}`,
      last ? { resourceVersion: last } : {},
      (_phase, obj: Resource & { metadata: { resourceVersion?: string } }) => {
        last = obj.metadata.resourceVersion;
        seen.push({ ...obj, kind });
      },
      () => again(),
    );
    watches.push(w);
  } catch {
    again();
  }
}

beforeAll(async () => {
  kc = testKubeConfig();
  [release, ns, server] = await Promise.all([createNamespace(kc, 'weir-system'), createNamespace(kc, 'web'), startTestClickHouse()]);
  for (const kind of ['DataSource', 'Pipe', 'Endpoint']) await record(kind);

  // The chart, as a platform team would install it for one namespace, ClickHouse by URL.
  rendered = await renderChart(release, release, { watchNamespace: ns, 'clickhouse.url': server.url, 'clickhouse.secretName': '' });
  const applied = await kubectl(['apply', '--server-side', '--field-manager=helm', '-f', '-'], toYaml(rendered));
  expect(applied.stderr).toBe('');

  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'top-pages-readers' }, stringData: { dashboard: 'reader-token-1' } } });
  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'kafka-credentials' }, stringData: { mechanism: 'plain', username: 'weir', password: 'secret' } },
  });
  const sa = rendered.find((o) => o.kind === 'ServiceAccount')!.metadata.name;
  const { status } = await core.createNamespacedServiceAccountToken({
    name: sa,
    namespace: release,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  proxy = await recordingProxy(kc);
  const kubeconfig = join(mkdtempSync(join(tmpdir(), 'weir-sa-')), 'kubeconfig');
  writeFileSync(kubeconfig, tokenKubeconfig(proxy.url, status!.token), { mode: 0o600 });

  // The container's args and env from the chart; only ports, resync and the kubeconfig differ here.
  const container = (
    rendered.find((o) => o.kind === 'Deployment') as unknown as {
      spec: { template: { spec: { containers: { args: string[]; env: { name: string; value?: string }[] }[] } } };
    }
  ).spec.template.spec.containers[0]!;
  const env = Object.fromEntries(container.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  operator = startWeir([...container.args, '--kubeconfig', kubeconfig, '--metrics-port=0', '--metrics-host=127.0.0.1', '--resync=2000'], {
    ...env,
    POD_NAMESPACE: release,
  });
  await operator
    .waitForLog('controllers started', (l) => l.message === 'controllers started', 60_000)
    .catch((e: Error) => {
      const calls = proxy.calls.slice(-10).map((c) => `${c.status} ${c.method} ${c.path}`);
      throw new Error(
        `${e.message}\nlast calls:\n${calls.join('\n')}\nlogs:\n${operator.logs
          .slice(-10)
          .map((l) => JSON.stringify(l))
          .join('\n')}`,
      );
    });
}, 180_000);

afterAll(async () => {
  watching = false;
  for (const w of watches) w.abort();
  await operator?.kill('SIGTERM');
  await proxy?.close();
  await server?.stop();
});

describe('the example project under the chart RBAC', () => {
  it('converges whatever order it is applied in', { timeout: 180_000 }, async () => {
    const byKind = (kind: string) => exampleResources(ns).filter((o) => o.kind === kind);
    for (const ep of byKind('Endpoint')) await createResource(kc, ep);
    const orphan = await seenWhere('the Endpoint without its Pipe', 'Endpoint', 'top-pages', (o) => current(o));
    expect(condition(orphan, 'Reconciling')).toMatchObject({ status: 'True', reason: 'WaitingForPipe' });
    expect(condition(orphan, 'Stalled')?.status).toBe('False');
    for (const p of byKind('Pipe')) await createResource(kc, p);
    await seenWhere('daily-rollup waiting for its missing target', 'Pipe', 'daily-rollup', reason('Reconciling', 'WaitingForDataSource'));
    for (const ds of byKind('DataSource')) await createResource(kc, ds);
    for (const [kind, name] of [
      ['DataSource', 'page-views'],
      ['DataSource', 'page-views-daily'],
      ['Pipe', 'daily-rollup'],
      ['Pipe', 'top-pages'],
    ] as const) {
      await seenWhere(`${kind} ${name} Ready`, kind, name, (o) => current(o) && condition(o, 'Ready')?.status === 'True');
    }
    // The endpoint's query Deployment exists; once its pods are ready (the kubelet's part here) the Endpoint is Ready.
    await seenWhere('the Endpoint rolling out', 'Endpoint', 'top-pages', (o) => current(o) && condition(o, 'Ready')?.reason === 'RollingOut');
    const deployments = apps(kc);
    const serve = await deployments.readNamespacedDeployment({ name: 'top-pages-serve', namespace: ns });
    expect(serve.spec?.template.spec?.containers[0]?.args?.[0]).toBe('serve');
    await deployments.patchNamespacedDeploymentStatus(
      { name: 'top-pages-serve', namespace: ns, body: { status: { replicas: 2, readyReplicas: 2, updatedReplicas: 2 } } },
      mergePatch(),
    );
    await seenWhere('the Endpoint Ready', 'Endpoint', 'top-pages', (o) => condition(o, 'Ready')?.status === 'True');
    const ingest = await deployments.readNamespacedDeployment({ name: 'page-views-ingest', namespace: ns });
    expect(ingest.spec?.template.spec?.containers[0]?.args?.[0]).toBe('ingest');
    expect(ingest.spec?.template.spec?.containers[0]?.image).toBe('ghcr.io/weir-dev/weir:0.1.0'); // --worker-image from the chart
  });

  it('runs a DataSource with SASL credentials and an HPA, drops the HPA, then removes it all', async () => {
    const [pageViews] = exampleResources(ns) as unknown as Resource[];
    const clicks = {
      ...pageViews!,
      metadata: { name: 'clicks', namespace: ns },
      spec: {
        ...pageViews!.spec,
        ingestion: {
          kafka: { bootstrapServers: ['127.0.0.1:9'], topic: 'clicks', credentialsSecretRef: { name: 'kafka-credentials' } },
          autoscaling: { maxReplicas: 3 },
        },
      },
    };
    await createResource(kc, clicks as never);
    const autoscaling = kc.makeApiClient(AutoscalingV2Api);
    await waitFor('the HPA', () => autoscaling.readNamespacedHorizontalPodAutoscaler({ name: 'clicks-ingest', namespace: ns }));
    await patchResource(kc, 'DataSource', ns, 'clicks', { spec: { ingestion: { autoscaling: null } } });
    await waitFor('the HPA gone', () =>
      autoscaling.readNamespacedHorizontalPodAutoscaler({ name: 'clicks-ingest', namespace: ns }).then(
        () => undefined,
        () => true,
      ),
    );
    await custom().deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'datasources', name: 'clicks' });
    await waitFor('the ingestion Deployment gone', () =>
      apps(kc)
        .readNamespacedDeployment({ name: 'clicks-ingest', namespace: ns })
        .then(
          () => undefined,
          () => true,
        ),
    );
  });

  it('reports a copy-and-swap migration as it runs, and a refused change as Stalled', async () => {
    const db = ns.replace(/-/g, '_');
    await server.ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname) SELECT now64(3) - number, toString(number), 't1', '/p' FROM numbers(50000)`,
    );
    await patchResource(kc, 'DataSource', ns, 'page-views', { spec: { engine: { sortingKey: ['tenant_id', 'pathname', 'timestamp'] } } });
    await seenWhere('phase Migrating', 'DataSource', 'page-views', (o) => o.status?.phase === 'Migrating');
    await seenWhere('version 2, Ready', 'DataSource', 'page-views', (o) => current(o) && o.status?.version === 2 && condition(o, 'Ready')?.status === 'True');
    const columns = (exampleResources(ns)[0] as unknown as Resource).spec.columns as { name: string }[];
    await patchResource(kc, 'DataSource', ns, 'page-views', { spec: { columns: columns.filter((c) => c.name !== 'duration_ms') } });
    const refused = await seenWhere('the dropped column refused', 'DataSource', 'page-views', reason('Stalled', 'PlanRefused'));
    expect(condition(refused, 'Stalled')?.message).toMatch(/duration_ms/);
  });
});

describe('RBAC', () => {
  it('no call was forbidden, and nothing in the logs says so', () => {
    expect(proxy.calls.filter((c) => c.status === 403)).toEqual([]);
    expect(operator.logs.filter((l) => /forbidden/i.test(JSON.stringify(l)))).toEqual([]);
    expect(operator.output.filter((l) => /forbidden/i.test(l))).toEqual([]);
  });

  it('grants exactly what the operator used', () => {
    const rules = rendered.filter((o) => o.kind === 'Role').flatMap((o) => (o as unknown as { rules: Rules }).rules);
    const used = [...new Set(proxy.calls.map((c) => c.permission))].sort();
    expect(used).toEqual([...new Set(granted(rules))].sort());
  });

  it('the ClusterRole of the default install has the same rules as the namespaced Role', async () => {
    const cluster = (await renderChart('weir', 'weir-system')).find((o) => o.kind === 'ClusterRole') as unknown as { rules: Rules };
    const namespaced = rendered.find((o) => o.kind === 'Role' && o.metadata.namespace === ns) as unknown as { rules: Rules };
    expect(cluster.rules).toEqual(namespaced.rules);
  });
});

describe('Argo CD health checks on the statuses the operator wrote', () => {
  const verdict = async (o: Resource) => (await argocdHealth(o.kind, [o]))[0]!;
  const first = (kind: string, name: string, ok: (o: Resource) => boolean) => {
    const o = seen.find((s) => s.kind === kind && s.metadata.name === name && ok(s));
    expect(o, `${kind} ${name}`).toBeDefined();
    return o!;
  };

  it('DataSource: Healthy when Ready, Progressing while migrating, Degraded when the plan is refused', async () => {
    expect(await verdict(first('DataSource', 'page-views-daily', (o) => current(o) && condition(o, 'Ready')?.status === 'True'))).toMatchObject({
      status: 'Healthy',
      message: expect.stringMatching(/^UpToDate/),
    });
    expect(await verdict(first('DataSource', 'page-views', (o) => o.status?.phase === 'Migrating'))).toMatchObject({
      status: 'Progressing',
      message: expect.stringMatching(/^Migrating \(v2-/),
    });
    expect(await verdict(latest('DataSource', 'page-views')!)).toMatchObject({
      status: 'Degraded',
      message: expect.stringMatching(/^PlanRefused: .*duration_ms/),
    });
  });

  it('Pipe: Progressing while its target does not exist, then Healthy', async () => {
    expect(await verdict(first('Pipe', 'daily-rollup', reason('Reconciling', 'WaitingForDataSource')))).toMatchObject({
      status: 'Progressing',
      message: expect.stringMatching(/^WaitingForDataSource/),
    });
    expect(await verdict(first('Pipe', 'top-pages', (o) => current(o) && condition(o, 'Ready')?.status === 'True'))).toMatchObject({ status: 'Healthy' });
  });

  it('Endpoint: Progressing without its Pipe and while rolling out, Healthy when serving', async () => {
    expect(await verdict(first('Endpoint', 'top-pages', reason('Reconciling', 'WaitingForPipe')))).toMatchObject({ status: 'Progressing' });
    expect(await verdict(first('Endpoint', 'top-pages', (o) => current(o) && condition(o, 'Ready')?.reason === 'RollingOut'))).toMatchObject({
      status: 'Progressing',
      message: expect.stringMatching(/^RollingOut/),
    });
    expect(await verdict(first('Endpoint', 'top-pages', (o) => condition(o, 'Ready')?.status === 'True'))).toMatchObject({
      status: 'Healthy',
      message: expect.stringMatching(/^Serving/),
    });
  });

  it('a spec weir has not observed yet is Progressing, and no status at all too', async () => {
    const ready = first('Pipe', 'top-pages', (o) => current(o) && condition(o, 'Ready')?.status === 'True');
    const edited = { ...ready, metadata: { ...ready.metadata, generation: (ready.metadata.generation ?? 1) + 1 } };
    expect(await argocdHealth('Pipe', [edited, { ...ready, status: undefined }])).toEqual([
      { status: 'Progressing', message: `Waiting for weir to observe generation ${edited.metadata.generation}` },
      { status: 'Progressing', message: 'Waiting for weir to report status' },
    ]);
  });
});
