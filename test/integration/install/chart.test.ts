// The Helm chart and the plain manifests: helm lint and template with default and non-default
// values, values.schema.json refusing bad values, every rendered object accepted by the real API
// server (apply --dry-run=server), and manifests/install.yaml and argocd-cm.yaml not stale.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, kubectl, testKubeConfig } from '../../fixtures/kube.js';
import { CHART, helm, parseObjects, renderChart, run, toYaml, type K8sObject } from './helpers.js';

// A stand-in for the Prometheus operator's CRD, so a ServiceMonitor can be dry-run applied.
const SERVICE_MONITOR_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'servicemonitors.monitoring.coreos.com' },
  spec: {
    group: 'monitoring.coreos.com',
    names: { kind: 'ServiceMonitor', plural: 'servicemonitors', singular: 'servicemonitor', listKind: 'ServiceMonitorList' },
    scope: 'Namespaced',
    versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
  },
};

const NON_DEFAULT = (watched: string) => ({
  replicas: 1,
  'leaderElection.enabled': false,
  watchNamespace: watched,
  'image.repository': 'registry.example/weir',
  'image.tag': '1.2.3',
  'image.pullPolicy': 'Always',
  'clickhouse.url': 'http://clickhouse.db.svc:8123',
  'clickhouse.secretName': 'ch-credentials',
  'workers.clickhousePasswordSecret': 'ch-worker',
  'workers.serviceAccountName': 'weir-worker',
  'metrics.serviceMonitor.enabled': true,
  'metrics.serviceMonitor.labels.release': 'prom',
  logFormat: 'pretty',
  heapMiB: 0,
  maxConcurrentReconciles: 8,
  'kubeApi.qps': 50,
  'kubeApi.burst': 80,
});

const one = (objects: K8sObject[], kind: string) => {
  const found = objects.filter((o) => o.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0] as K8sObject & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
};
const kinds = (objects: K8sObject[]) => objects.map((o) => o.kind).sort();

let kc: KubeConfig;
let ns: string;
let watched: string;

beforeAll(async () => {
  kc = testKubeConfig();
  [ns, watched] = [await createNamespace(kc, 'chart'), await createNamespace(kc, 'watched')];
  const crd = await kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify(SERVICE_MONITOR_CRD));
  expect(crd.stderr).toBe('');
  await kubectl(['wait', '--for=condition=Established', 'crd/servicemonitors.monitoring.coreos.com', '--timeout=30s']);
});

describe('helm lint and template', () => {
  it('lints cleanly with default and non-default values', async () => {
    const plain = await helm(['lint', '--strict', CHART]);
    expect(plain.code, plain.stdout + plain.stderr).toBe(0);
    const custom = await helm(['lint', '--strict', CHART, ...Object.entries(NON_DEFAULT('web')).flatMap(([k, v]) => ['--set', `${k}=${v}`])]);
    expect(custom.code, custom.stdout + custom.stderr).toBe(0);
  });

  it('renders the default install: 2 replicas with leader election, a ClusterRole, the metrics Service, ClickHouse from the Secret', async () => {
    const objects = await renderChart('weir', 'weir-system');
    expect(kinds(objects)).toEqual(['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
    const d = one(objects, 'Deployment');
    expect(d.spec.replicas).toBe(2);
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    expect(c.image).toBe('ghcr.io/weir-dev/weir:0.1.0');
    expect(c.args).toEqual([
      'operator',
      '--metrics-port=8080',
      '--log-format=json',
      '--max-concurrent-reconciles=4',
      '--kube-api-qps=100',
      '--kube-api-burst=200',
      '--lease-namespace=weir-system',
      '--worker-image=ghcr.io/weir-dev/weir:0.1.0',
      '--worker-image-pull-policy=IfNotPresent',
    ]);
    expect(c.env).toContainEqual({ name: 'WEIR_CLICKHOUSE_URL', valueFrom: { secretKeyRef: { name: 'weir-clickhouse', key: 'url', optional: true } } });
    // The heap cap of docs/operations.md's sizing, for up to 10,000 resources within the 512Mi limit.
    expect(c.env).toContainEqual({ name: 'NODE_OPTIONS', value: '--max-old-space-size=320 --max-semi-space-size=4' });
    expect(c.env).toContainEqual({
      name: 'WEIR_CLICKHOUSE_PASSWORD',
      valueFrom: { secretKeyRef: { name: 'weir-clickhouse', key: 'password', optional: true } },
    });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    expect(c.resources.limits.memory).toBe('512Mi');
    expect(one(objects, 'Role').rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }]);
    expect(one(objects, 'Service').spec.ports).toEqual([{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
  });

  it('renders non-default values: one namespace (a Role there, no ClusterRole), no Lease, image, URL, ServiceMonitor, worker settings', async () => {
    const objects = await renderChart('weir', 'ops', NON_DEFAULT('web'));
    expect(kinds(objects)).toEqual(['Deployment', 'Role', 'RoleBinding', 'Service', 'ServiceAccount', 'ServiceMonitor']);
    expect(one(objects, 'Role').metadata.namespace).toBe('web');
    expect(one(objects, 'RoleBinding').subjects).toEqual([{ kind: 'ServiceAccount', name: 'weir-operator', namespace: 'ops' }]);
    const c = one(objects, 'Deployment').spec.template.spec.containers[0];
    expect(c.image).toBe('registry.example/weir:1.2.3');
    expect(c.imagePullPolicy).toBe('Always');
    expect(c.args).toEqual([
      'operator',
      '--metrics-port=8080',
      '--log-format=pretty',
      '--max-concurrent-reconciles=8',
      '--kube-api-qps=50',
      '--kube-api-burst=80',
      '--no-leader-election',
      '--namespace=web',
      '--worker-image=registry.example/weir:1.2.3',
      '--worker-image-pull-policy=Always',
      '--worker-clickhouse-password-secret=ch-worker',
      '--worker-service-account=weir-worker',
    ]);
    expect(c.env).toContainEqual({ name: 'WEIR_CLICKHOUSE_URL', value: 'http://clickhouse.db.svc:8123' });
    expect(c.env.map((e: { name: string }) => e.name)).not.toContain('NODE_OPTIONS'); // heapMiB: 0 leaves the heap to Node
    expect(c.env).toContainEqual({ name: 'WEIR_CLICKHOUSE_USER', valueFrom: { secretKeyRef: { name: 'ch-credentials', key: 'username', optional: true } } });
    expect(one(objects, 'ServiceMonitor').metadata.labels?.release).toBe('prom');
    const noWorkers = await renderChart('weir', 'ops', { 'workers.enabled': false });
    expect(one(noWorkers, 'Deployment').spec.template.spec.containers[0].args).toContain('--no-workers');
    expect(one(noWorkers, 'ClusterRole').rules.flatMap((r: { resources: string[] }) => r.resources)).not.toContain('deployments');
  });

  it('refuses bad values, naming the field', async () => {
    const refusals: [Record<string, string>, RegExp][] = [
      [{ replicas: 'two' }, /\/replicas.*got string, want integer/],
      [{ 'image.pullPolicy': 'Sometimes' }, /\/image\/pullPolicy.*must be one of/],
      [{ 'clickhouse.url': 'clickhouse:8123' }, /\/clickhouse\/url.*does not match pattern/],
      [{ watchNamespace: 'Web_Prod' }, /\/watchNamespace.*does not match pattern/],
      [{ 'metrics.port': '70000' }, /\/metrics\/port.*maximum/],
      [{ logFormat: 'xml' }, /\/logFormat.*must be one of/],
      [{ 'metrics.serviceMonitor.interval': 'often' }, /\/metrics\/serviceMonitor\/interval/],
      [{ replicaCount: '3' }, /additional properties 'replicaCount' not allowed/],
      [{ 'leaderElection.enabled': 'false' }, /replicas > 1 needs leaderElection.enabled/],
    ];
    for (const [set, message] of refusals) {
      const r = await helm(['template', 'weir', CHART, ...Object.entries(set).flatMap(([k, v]) => ['--set', `${k}=${v}`])]);
      expect(r.code, JSON.stringify(set)).not.toBe(0);
      expect(r.stderr, JSON.stringify(set)).toMatch(message);
    }
  });

  it('prints NOTES that say where ClickHouse comes from', async () => {
    const r = await helm(['install', 'weir', CHART, '--dry-run=client', '--namespace', 'weir-system']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('ClickHouse: from Secret weir-clickhouse (keys url, username, password)');
    expect(r.stdout).toContain('kubectl get weir -n web');
  });
});

describe('the API server accepts every rendered object', () => {
  const dryRun = async (objects: K8sObject[]) => {
    const r = await kubectl(['apply', '--server-side', '--field-manager=weir-install-test', '--dry-run=server', '-f', '-'], toYaml(objects));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return r.stdout.trim().split('\n');
  };

  it('default values, CRDs included', async () => {
    const r = await helm(['template', ns, CHART, '--namespace', ns, '--include-crds']);
    expect(r.code, r.stderr).toBe(0);
    const lines = await dryRun(parseObjects(r.stdout));
    expect(lines).toHaveLength(10);
    expect(lines.every((l) => l.endsWith('(server dry run)'))).toBe(true);
  });

  it('non-default values (Role in the watched namespace, ServiceMonitor)', async () => {
    const lines = await dryRun(await renderChart(ns, ns, NON_DEFAULT(watched)));
    expect(lines).toContainEqual(expect.stringMatching(/^servicemonitor.monitoring.coreos.com\/\S+ serverside-applied \(server dry run\)$/));
    expect(lines).toHaveLength(6);
  });
});

describe('manifests/', () => {
  it('install.yaml and argocd/argocd-cm.yaml are what scripts/render-install.sh renders now', async () => {
    const out = mkdtempSync(join(tmpdir(), 'weir-render-'));
    const r = await run('bash', ['scripts/render-install.sh', out], { env: { HELM: join(process.env.WEIR_TEST_BIN ?? '', 'helm') } });
    expect(r.code, r.stderr).toBe(0);
    for (const file of ['install.yaml', 'argocd/argocd-cm.yaml']) {
      expect(readFileSync(join('manifests', file), 'utf8'), `manifests/${file} is stale: run scripts/render-install.sh`).toBe(
        readFileSync(join(out, file), 'utf8'),
      );
    }
  });

  it('install.yaml, through the kustomization, is accepted by the API server', async () => {
    await kubectl(['create', 'namespace', 'weir-system']); // AlreadyExists on a rerun is fine
    const r = await kubectl(['apply', '--server-side', '--field-manager=weir-install-test', '--dry-run=server', '-k', 'manifests/']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/deployment.apps\/weir-operator serverside-applied \(server dry run\)/);
    expect(r.stdout.trim().split('\n')).toHaveLength(11);
  });
});
