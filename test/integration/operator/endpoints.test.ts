// The operator running Endpoints in the real API server: the query Deployment, Service, PDB and
// HPA with the right specs, status (url, replicas, Ready), a broken query never rolled out, and
// a rollout of a changed Endpoint under a looping client that loses no request. Pods are started
// from what the operator wrote (test/fixtures/kubelet.ts); a small balancer stands in for the
// Service, sending traffic only to pods whose /readyz says so, as kube-proxy does.
import { AutoscalingV2Api, CoreV1Api, CustomObjectsApi, PolicyV1Api, type KubeConfig } from '@kubernetes/client-node';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP, VERSION } from '../../../src/api/common.js';
import type { Endpoint } from '../../../src/api/endpoint.js';
import type { Pipe } from '../../../src/api/pipe.js';
import { mergePatch } from '../../../src/operator/events.js';
import { isNotFound } from '../../../src/operator/kube-errors.js';
import { CONFIG_HASH_ANNOTATION } from '../../../src/controllers/workloads.js';
import { waitFor } from '../../env/wait.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { apps, condition, createNamespace, createResource, exampleResources, getResource, patchResource, testKubeConfig } from '../../fixtures/kube.js';
import { Kubelet, podReady, running, type Pod } from '../../fixtures/kubelet.js';
import { operatorArgs, startWeir, type WeirProcess } from '../../fixtures/processes.js';

const DEPLOYMENT = 'top-pages-serve';
const TOKEN = 'reader-token-1';

let kc: KubeConfig;
let ns: string;
let db: string;
let server: TestClickHouse;
let operator: WeirProcess;
let kubelet: Kubelet;

const endpointWhere = (what: string, ok: (ep: Endpoint) => boolean) =>
  waitFor(
    what,
    async () => {
      const ep = await getResource<Endpoint>(kc, 'Endpoint', ns, 'top-pages');
      return ok(ep) ? ep : undefined;
    },
    { timeoutMs: 60_000 },
  );
const deployment = () => apps(kc).readNamespacedDeployment({ name: DEPLOYMENT, namespace: ns });
const startPod = () => kubelet.startPod(DEPLOYMENT, { ready: true });
const call = (pod: Pod, query = 'tenant=t1') =>
  fetch(`http://127.0.0.1:${pod.httpPort}/v0/pipes/top_pages.json?${query}`, { headers: { authorization: `Bearer ${TOKEN}` } });

beforeAll(async () => {
  kc = testKubeConfig();
  ns = await createNamespace(kc, 'endpoints');
  kubelet = new Kubelet(kc, ns);
  db = ns.replace(/-/g, '_');
  server = await startTestClickHouse();
  operator = startWeir(operatorArgs(ns, '--clickhouse-url', server.url, '--resync', '2000', '--worker-image', 'weir:test'));
  await operator.waitForLog('controllers started', (l) => l.message === 'controllers started');
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'top-pages-readers' }, stringData: { dashboard: TOKEN } } });
  for (const obj of exampleResources(ns)) await createResource(kc, obj);
}, 120_000);

afterAll(async () => {
  await kubelet?.killAll();
  await operator?.kill('SIGTERM');
  await server?.stop();
});

describe('query Deployments', () => {
  it('creates the Deployment, Service and PodDisruptionBudget from the Endpoint, and reports the URL', async () => {
    const ep = await endpointWhere('url in status', (o) => o.status?.url !== undefined);
    expect(ep.status).toMatchObject({ url: `http://${DEPLOYMENT}.${ns}.svc/v0/pipes/top_pages.json`, replicas: 2, readyReplicas: 0, replicasSummary: '0/2' });
    expect(condition(ep, 'Ready')).toMatchObject({ status: 'False', reason: 'RollingOut' });
    const d = await deployment();
    expect(d.spec?.replicas).toBe(2);
    expect(d.spec?.strategy?.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    const c = d.spec?.template.spec?.containers[0];
    expect(c?.args).toEqual([
      'serve',
      '--config',
      '/etc/weir/config/endpoints.json',
      '--port',
      '8000',
      '--shutdown-delay',
      '5000',
      '--tokens-dir',
      '/etc/weir/tokens',
      '--metrics-port',
      '9090',
    ]);
    expect(c?.ports).toEqual([
      expect.objectContaining({ name: 'http', containerPort: 8000 }),
      expect.objectContaining({ name: 'metrics', containerPort: 9090 }),
    ]);
    expect(c?.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(c?.volumeMounts).toEqual(expect.arrayContaining([expect.objectContaining({ mountPath: '/etc/weir/tokens/top-pages-readers', readOnly: true })]));
    const svc = await kc.makeApiClient(CoreV1Api).readNamespacedService({ name: DEPLOYMENT, namespace: ns });
    expect(svc.spec?.selector).toEqual({ 'weir.dev/serve': 'top-pages' });
    expect(svc.spec?.ports?.map((p) => [p.name, p.port, p.targetPort])).toEqual([
      ['http', 80, 'http'],
      ['metrics', 9090, 'metrics'],
    ]);
    const pdb = await kc.makeApiClient(PolicyV1Api).readNamespacedPodDisruptionBudget({ name: DEPLOYMENT, namespace: ns });
    expect(pdb.spec).toMatchObject({ maxUnavailable: 1, selector: { matchLabels: { 'weir.dev/serve': 'top-pages' } } });
    const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: DEPLOYMENT, namespace: ns });
    const config = JSON.parse(cm.data?.['endpoints.json'] ?? '{}') as { endpoints: { name: string; sql: string; auth?: object }[] };
    expect(config.endpoints.map((e) => e.name)).toEqual(['top_pages']);
    expect(config.endpoints[0]?.auth).toEqual({ tokensSecret: 'top-pages-readers' });
    expect(config.endpoints[0]?.sql).toContain('{tenant:String}');
  });

  it('serves from pods started as the Deployment says, and is Ready once they are', async () => {
    // The rows reach the rollup the endpoint reads only through the Pipe's view: wait for it to exist.
    await waitFor(
      'the daily-rollup view',
      async () => {
        const p = await getResource<Pipe>(kc, 'Pipe', ns, 'daily-rollup');
        return condition(p, 'Ready')?.status === 'True' ? p : undefined;
      },
      { timeoutMs: 60_000 },
    );
    await server.ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname) SELECT now64(3) - number, toString(number), 't1', concat('/p', toString(number % 3)) FROM numbers(300)`,
    );
    const a = await startPod();
    const res = await call(a);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: { pathname: string; views: string }[] };
    expect(body.data.map((r) => [r.pathname, Number(r.views)]).sort()).toEqual([
      ['/p0', 100],
      ['/p1', 100],
      ['/p2', 100],
    ]);
    expect((await fetch(`http://127.0.0.1:${a.httpPort}/v0/pipes/top_pages.json?tenant=t1`)).status).toBe(401);
    await apps(kc).patchNamespacedDeploymentStatus(
      { name: DEPLOYMENT, namespace: ns, body: { status: { replicas: 2, readyReplicas: 2, updatedReplicas: 2 } } },
      mergePatch(),
    );
    const ep = await endpointWhere('Ready', (o) => condition(o, 'Ready')?.status === 'True');
    expect(condition(ep, 'Ready')).toMatchObject({ reason: 'Serving' });
    expect(ep.status?.replicasSummary).toBe('2/2');
  });

  it('shows in status.servedHash the hash weir plan prints for the same resources, and weir plan finds nothing pending', async () => {
    const ep = await endpointWhere('servedHash in status', (o) => o.status?.servedHash !== undefined);
    const dir = mkdtempSync(join(tmpdir(), 'weir-served-'));
    writeFileSync(
      join(dir, 'project.yaml'),
      exampleResources(ns)
        .map((o) => stringify(o))
        .join('---\n'),
    );
    const plan = startWeir(['plan', '-f', dir, '--clickhouse', server.url]);
    const code = await plan.exited;
    expect(code, plan.output.join('\n')).toBe(0);
    expect(plan.output).toContain(
      `  Endpoint/${ns}/top-pages: serve /v0/pipes/top_pages.json (tenant String required, date_from Date = 2020-01-01, date_to Date = 2100-01-01, limit UInt32 = 10) from Deployment ${DEPLOYMENT}, served hash ${ep.status?.servedHash ?? ''}`,
    );
  });

  it('rolls a changed Endpoint out under a looping client without one failed request', async () => {
    const old = kubelet.pods().find(running) ?? (await startPod());
    const before = (await deployment()).spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
    // A balancer over the pods whose /readyz is 200, refreshed every 100 ms (kube-proxy's role).
    let serving: Pod[] = [old];
    let balancing = true;
    const refresher = (async () => {
      while (balancing) {
        const live = kubelet.pods().filter(running);
        const ready = await Promise.all(live.map(async (p) => ((await podReady(p)) ? p : undefined)));
        serving = ready.filter((p): p is Pod => p !== undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    let i = 0;
    let looping = true;
    const client = (async () => {
      while (looping) {
        const pod = serving[i++ % Math.max(1, serving.length)];
        if (!pod) continue;
        const status = await call(pod, 'tenant=t1&limit=2').then(
          (r) => r.status,
          (e: unknown) => {
            const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : '';
            failures.push(`${pod === old ? 'old' : 'new'} pod (${running(pod) ? 'running' : 'exited'}): ${String(e)}${cause}`);
            return -1;
          },
        );
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    })();
    await patchResource(kc, 'Endpoint', ns, 'top-pages', { spec: { limits: { maxExecutionTimeMs: 3000 } } });
    await waitFor(
      'a new pod template',
      async () => ((await deployment()).spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION] !== before ? true : undefined),
      { timeoutMs: 30_000 },
    );
    const fresh = await startPod(); // the surge pod, of the new version
    expect(
      JSON.parse((await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: DEPLOYMENT, namespace: ns })).data?.['endpoints.json'] ?? '{}').endpoints[0]
        .limits.maxExecutionTimeMs,
    ).toBe(3000);
    await waitFor('the new pod in rotation', () => (serving.includes(fresh) ? true : undefined));
    await old.kill('SIGTERM'); // unready at once, still answering for --shutdown-delay, then gone
    expect(await old.exited).toBe(0);
    const answered = () => [...statuses.values()].reduce((a, b) => a + b, 0);
    const atExit = answered();
    await waitFor('20 more answers from the new pod alone', () => (!serving.includes(old) && answered() >= atExit + 20 ? true : undefined));
    looping = false;
    balancing = false;
    await Promise.all([client, refresher]);
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(50);
    expect(failures).toEqual([]);
    expect(Object.fromEntries(statuses)).toEqual({ 200: total });
  });

  it('keeps the running version when a change breaks the query, with Ready=False and the reason', async () => {
    const before = (await deployment()).spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
    await patchResource(kc, 'Pipe', ns, 'top-pages', {
      spec: {
        nodes: [
          {
            name: 'scoped',
            sql: 'SELECT day, pathname, countMerge(views) AS views, uniqMerge(visitors) AS visitors FROM page_views_daily WHERE tenant_id = {tenant:String} AND day BETWEEN {date_from:Date} AND {date_to:Date} GROUP BY day, pathname',
          },
          { name: 'ranked', sql: 'SELECT pathname, sum(no_such_column) AS views FROM scoped GROUP BY pathname ORDER BY views DESC LIMIT {limit:UInt32}' },
        ],
      },
    });
    const ep = await endpointWhere('SqlDoesNotCompile', (o) => condition(o, 'Ready')?.reason === 'SqlDoesNotCompile');
    expect(condition(ep, 'Ready')?.message).toMatch(/no_such_column/);
    expect(condition(ep, 'Stalled')?.status).toBe('True');
    expect((await deployment()).spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION]).toBe(before);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.page_views`)).toBe(300);
  });

  it('mounts the signing Secret of spec.auth.jwt into the pods, which then take a customer token fixing the tenant', async () => {
    const name = 'signed-pages';
    const signingSecret = 'analytics-signing';
    const hs = 'an-hs256-secret-shared-with-the-product-backend-01';
    await kc.makeApiClient(CoreV1Api).createNamespacedSecret({ namespace: ns, body: { metadata: { name: signingSecret }, stringData: { secret: hs } } });
    await server.ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname) SELECT now64(3) - number, toString(number), 't2', '/other' FROM numbers(20)`,
    );
    const jwt = { secretRef: { name: signingSecret }, issuer: 'https://app.example', audience: 'weir' };
    // The test before left the Pipe's query broken: put the example's back.
    await patchResource(kc, 'Pipe', ns, 'top-pages', {
      spec: { nodes: exampleResources(ns).find((o) => o.kind === 'Pipe' && o.metadata.name === 'top-pages')?.['spec' as never]?.['nodes' as never] },
    });
    await createResource(kc, {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Endpoint',
      metadata: { name, namespace: ns },
      spec: {
        pipe: 'top-pages',
        node: 'ranked',
        params: [
          { name: 'date_from', default: '2020-01-01' },
          { name: 'date_to', default: '2100-01-01' },
          { name: 'limit', default: 10 },
        ],
        auth: { jwt },
      },
    });
    const d = await waitFor(
      'the signed Deployment',
      () =>
        apps(kc)
          .readNamespacedDeployment({ name: `${name}-serve`, namespace: ns })
          .catch(() => undefined),
      {
        timeoutMs: 60_000,
      },
    );
    const container = d.spec?.template.spec?.containers[0];
    expect(container?.args).toEqual(expect.arrayContaining(['--tokens-dir', '/etc/weir/tokens']));
    expect(container?.volumeMounts).toEqual(
      expect.arrayContaining([expect.objectContaining({ mountPath: `/etc/weir/tokens/${signingSecret}`, readOnly: true })]),
    );
    const pod = await kubelet.startPod(`${name}-serve`, { ready: true });
    const mint = (params: Record<string, string>) =>
      new SignJWT({ 'weir.dev/endpoints': ['signed_pages'], 'weir.dev/params': params })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('customer-t2')
        .setIssuer(jwt.issuer)
        .setAudience(jwt.audience)
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode(hs));
    const token = await mint({ tenant: 't2' });
    const get = (query: string, t = token) =>
      fetch(`http://127.0.0.1:${pod.httpPort}/v0/pipes/signed_pages.json?${query}`, { headers: { authorization: `Bearer ${t}` } });
    const res = await get('');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: unknown[] }).data).toEqual([{ pathname: '/other', views: '20', visitors: '20' }]);
    expect((await get('tenant=t1')).status).toBe(403);
    expect((await get('', TOKEN)).status).toBe(401);
    await kc.makeApiClient(CustomObjectsApi).deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'endpoints', name });
    await waitFor(
      'the signed Endpoint finalized',
      async () => {
        const selector = { namespace: ns, labelSelector: `weir.dev/owner-name=${name}` };
        const left =
          (await apps(kc).listNamespacedDeployment(selector)).items.length + (await kc.makeApiClient(CoreV1Api).listNamespacedService(selector)).items.length;
        return left === 0 ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );
    await pod.kill('SIGTERM');
  });

  it('hands the count to an HPA with autoscaling, and removes everything with the Endpoint', async () => {
    await patchResource(kc, 'Endpoint', ns, 'top-pages', { spec: { autoscaling: { minReplicas: 2, maxReplicas: 6 } } });
    await patchResource(kc, 'Pipe', ns, 'top-pages', {
      spec: { nodes: exampleResources(ns).find((o) => o.kind === 'Pipe' && o.metadata.name === 'top-pages')?.['spec' as never]?.['nodes' as never] },
    });
    const hpa = await waitFor('the HPA', () => kc.makeApiClient(AutoscalingV2Api).readNamespacedHorizontalPodAutoscaler({ name: DEPLOYMENT, namespace: ns }), {
      timeoutMs: 60_000,
    });
    expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 6, scaleTargetRef: { name: DEPLOYMENT } });
    await kc
      .makeApiClient(CustomObjectsApi)
      .deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'endpoints', name: 'top-pages' });
    // The finalizer comes off once every owned object is deleted: then nothing of it is left.
    await waitFor(
      'the Endpoint finalized',
      async () => {
        try {
          await getResource<Endpoint>(kc, 'Endpoint', ns, 'top-pages');
          return undefined;
        } catch (e) {
          if (isNotFound(e)) return true;
          throw e;
        }
      },
      { timeoutMs: 30_000 },
    );
    expect((await apps(kc).listNamespacedDeployment({ namespace: ns, labelSelector: 'weir.dev/owner-kind=Endpoint' })).items).toEqual([]);
    expect((await kc.makeApiClient(CoreV1Api).listNamespacedService({ namespace: ns })).items).toEqual([]);
    expect((await kc.makeApiClient(PolicyV1Api).listNamespacedPodDisruptionBudget({ namespace: ns })).items).toEqual([]);
    expect((await kc.makeApiClient(AutoscalingV2Api).listNamespacedHorizontalPodAutoscaler({ namespace: ns })).items).toEqual([]);
  });
});
