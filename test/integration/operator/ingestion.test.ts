// The operator running a DataSource's ingestion in the real API server: the Deployment, its
// ConfigMap and HPA with the right specs, replicas capped at the topic's partitions, a spec
// change rolling the pods, status fed by a worker launched from what the operator wrote, and
// everything removed with spec.ingestion.
import { type AppsV1Api, AutoscalingV2Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { mergePatch } from '../../../src/operator/events.js';
import { CONFIG_HASH_ANNOTATION } from '../../../src/controllers/workloads.js';
import { waitFor } from '../../env/wait.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { createTopic, EventProducer, ingestedProject, kafkaClient } from '../../fixtures/ingest.js';
import { startKafka, type TestKafka } from '../../fixtures/kafka.js';
import { uniqueName } from '../../fixtures/builders.js';
import { apps, condition, createNamespace, createResource, getResource, patchResource, testKubeConfig } from '../../fixtures/kube.js';
import { Kubelet } from '../../fixtures/kubelet.js';
import { operatorArgs, startWeir, type WeirProcess } from '../../fixtures/processes.js';

const NAME = 'clicks';
const TOPIC = uniqueName('clicks');
const DEPLOYMENT = `${NAME}-ingest`;

let kc: KubeConfig;
let ns: string;
let server: TestClickHouse;
let kafka: TestKafka;
let operator: WeirProcess;
let kubelet: Kubelet;

const patchSpec = (body: object) => patchResource(kc, 'DataSource', ns, NAME, body);
const dataSourceWhere = (what: string, ok: (ds: DataSource) => boolean) =>
  waitFor(
    what,
    async () => {
      const ds = await getResource<DataSource>(kc, 'DataSource', ns, NAME);
      return ok(ds) ? ds : undefined;
    },
    { timeoutMs: 60_000 },
  );
const deploymentWhere = (what: string, ok: (d: Awaited<ReturnType<AppsV1Api['readNamespacedDeployment']>>) => boolean) =>
  waitFor(
    what,
    async () => {
      const d = await apps(kc).readNamespacedDeployment({ name: DEPLOYMENT, namespace: ns });
      return ok(d) ? d : undefined;
    },
    { timeoutMs: 60_000 },
  );

beforeAll(async () => {
  kc = testKubeConfig();
  ns = await createNamespace(kc, 'ingestion');
  kubelet = new Kubelet(kc, ns);
  [server, kafka] = await Promise.all([startTestClickHouse(), startKafka()]);
  operator = startWeir(
    operatorArgs(
      ns,
      '--clickhouse-url',
      server.url,
      '--resync',
      '2000',
      '--worker-image',
      'registry.example/weir:1.2.3',
      '--worker-image-pull-policy',
      'IfNotPresent',
    ),
  );
  await operator.waitForLog('controllers started', (l) => l.message === 'controllers started');
}, 180_000);

afterAll(async () => {
  await kubelet?.killAll();
  await operator?.kill('SIGTERM');
  await server?.stop();
  await kafka?.stop();
});

describe('ingestion Deployments', () => {
  it('creates the Deployment and ConfigMap from the spec, with replicas capped at the partition count', async () => {
    const admin = kafkaClient(kafka.bootstrap).admin();
    await admin.connect();
    await createTopic(admin, TOPIC, 2);
    await admin.disconnect();
    const { ds } = ingestedProject(NAME, ns, kafka.bootstrap, TOPIC);
    ds.spec.ingestion = { ...ds.spec.ingestion!, replicas: 3, resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } } };
    await createResource(kc, ds);
    const d = await deploymentWhere('the ingestion Deployment', () => true);
    const created = await getResource<DataSource>(kc, 'DataSource', ns, NAME);
    expect(d.metadata?.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'weir',
      'weir.dev/owner-kind': 'DataSource',
      'weir.dev/owner-name': NAME,
      'app.kubernetes.io/component': 'ingest',
    });
    expect(d.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'DataSource', name: NAME, uid: created.metadata.uid, controller: true })]);
    expect(d.spec?.replicas).toBe(2); // 3 asked, 2 partitions
    expect(d.spec?.strategy?.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    const pod = d.spec?.template.spec;
    const c = pod?.containers[0];
    expect(c?.image).toBe('registry.example/weir:1.2.3');
    expect(c?.args).toEqual(['ingest', '--config', '/etc/weir/config/datasource.yaml', '--metrics-port', '9090']);
    expect(c?.env).toEqual(expect.arrayContaining([{ name: 'WEIR_CLICKHOUSE_URL', value: server.url }, expect.objectContaining({ name: 'POD_NAME' })]));
    expect(c?.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
    expect(c?.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(c?.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(c?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(pod?.securityContext?.runAsNonRoot).toBe(true);
    expect(pod?.terminationGracePeriodSeconds).toBe(60);
    expect(d.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{16}$/);
    const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: DEPLOYMENT, namespace: ns });
    expect(cm.data?.['datasource.yaml']).toContain(`topic: ${TOPIC}`);
    const status = await dataSourceWhere('IngestionReady=False while no pod is ready', (o) => condition(o, 'IngestionReady')?.status === 'False');
    expect(condition(status, 'IngestionReady')).toMatchObject({
      reason: 'NoReplicaReady',
      message: expect.stringContaining(`0/2 ingestion pods ready; replicas capped at 2: topic ${TOPIC} has 2 partitions`),
    });
    expect(status.status?.ingestion).toMatchObject({ replicas: 2, readyReplicas: 0 });
  });

  it('reports rows, lag and ready replicas from a worker started exactly as the Deployment says', async () => {
    const worker = await kubelet.startPod(DEPLOYMENT);
    await worker.waitForLog('joined the group', (l) => l.message === 'joined consumer group', 60_000);
    const producer = new EventProducer(kafkaClient(kafka.bootstrap), TOPIC);
    await producer.connect();
    await producer.send(500, 100);
    await producer.disconnect();
    const table = `${ns.replace(/-/g, '_')}.${NAME}`;
    await waitFor('495 rows', async () => ((await count(server.ch, `SELECT count() AS n FROM ${table}`)) === 495 ? true : undefined), { timeoutMs: 60_000 });
    // The kubelet's part: the pod is ready (the test API server runs no controller-manager).
    await apps(kc).patchNamespacedDeploymentStatus(
      { name: DEPLOYMENT, namespace: ns, body: { status: { replicas: 2, readyReplicas: 2, updatedReplicas: 2 } } },
      mergePatch(),
    );
    const ds = await dataSourceWhere(
      'status with rows and lag',
      (o) => o.status?.ingestion?.rowsIngested === 495 && condition(o, 'IngestionReady')?.status === 'True',
    );
    expect(ds.status?.ingestion).toEqual({ replicas: 2, readyReplicas: 2, lag: 0, rowsIngested: 495, quarantinedRows: 5 });
    expect(condition(ds, 'IngestionReady')).toMatchObject({ reason: 'ReplicasCappedAtPartitions' });
    expect(condition(ds, 'Ready')?.status).toBe('True');
  });

  it('rolls the pods when the spec changes, and hands the count to an HPA with autoscaling', async () => {
    const before = (await apps(kc).readNamespacedDeployment({ name: DEPLOYMENT, namespace: ns })).spec?.template.metadata?.annotations?.[
      CONFIG_HASH_ANNOTATION
    ];
    await patchSpec({ spec: { ingestion: { batch: { maxRows: 1000 } } } });
    const rolled = await deploymentWhere('a new config hash', (d) => d.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION] !== before);
    expect(rolled.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{16}$/);
    const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: DEPLOYMENT, namespace: ns });
    expect(cm.data?.['datasource.yaml']).toContain('maxRows: 1000');

    await patchSpec({ spec: { ingestion: { autoscaling: { minReplicas: 1, maxReplicas: 8 } } } });
    const hpa = await waitFor('the HPA', () => kc.makeApiClient(AutoscalingV2Api).readNamespacedHorizontalPodAutoscaler({ name: DEPLOYMENT, namespace: ns }), {
      timeoutMs: 60_000,
    });
    expect(hpa.spec).toMatchObject({ minReplicas: 1, maxReplicas: 2, scaleTargetRef: { kind: 'Deployment', name: DEPLOYMENT } });
    expect(hpa.spec?.metrics?.[0]?.resource).toMatchObject({ name: 'cpu', target: { averageUtilization: 70 } });

    await patchSpec({ spec: { ingestion: { autoscaling: null } } });
    await waitFor(
      'the HPA gone',
      async () => {
        try {
          await kc.makeApiClient(AutoscalingV2Api).readNamespacedHorizontalPodAutoscaler({ name: DEPLOYMENT, namespace: ns });
          return undefined;
        } catch {
          return true;
        }
      },
      { timeoutMs: 60_000 },
    );
    expect((await deploymentWhere('replicas from the spec again', (d) => d.spec?.replicas === 2)).spec?.replicas).toBe(2);
  });

  it('removes the Deployment, ConfigMap and IngestionReady when spec.ingestion goes', async () => {
    await patchSpec({ spec: { ingestion: null } });
    await waitFor(
      'the Deployment gone',
      async () => {
        const list = await apps(kc).listNamespacedDeployment({ namespace: ns });
        return list.items.length === 0 ? true : undefined;
      },
      { timeoutMs: 60_000 },
    );
    // The controller deletes the Deployment first, then the ConfigMap: waited for, not read once.
    await waitFor(
      'the ConfigMap gone',
      async () => {
        const cms = await kc.makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: ns, labelSelector: 'app.kubernetes.io/managed-by=weir' });
        return cms.items.length === 0 ? true : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const ds = await dataSourceWhere('no ingestion status', (o) => o.status?.ingestion === undefined);
    expect(condition(ds, 'IngestionReady')).toBeUndefined();
    expect(condition(ds, 'Ready')?.status).toBe('True');
  });
});
