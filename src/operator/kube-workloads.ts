// Workloads against the API server: server-side apply of the objects workloads.ts builds, the
// Deployment's observed state, and the Kafka topic's partition count (cached for a minute).
import { AppsV1Api, CoreV1Api, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import type { DataSource } from '../api/datasource.js';
import type { Workloads } from '../controllers/ingestion.js';
import { errorMessage, type Logger } from '../runtime/log.js';
import { isNotFound, kubeErrorMessage } from './kube-errors.js';
import type { WorkerObjects, WorkerSettings } from '../controllers/workloads.js';

export const FIELD_MANAGER = 'weir';
const keyOf = (obj: KubernetesObject): string => `${obj.kind}/${obj.metadata?.namespace}/${obj.metadata?.name}`;
const PARTITIONS_TTL_MS = 60_000;

const OPTIONAL: { apiVersion: string; kind: string; key: keyof WorkerObjects }[] = [
  { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', key: 'hpa' },
  { apiVersion: 'v1', kind: 'Service', key: 'service' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', key: 'pdb' },
];

export class KubeWorkloads implements Workloads {
  private readonly objects: KubernetesObjectApi;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly partitionCache = new Map<string, { at: number; count: number | undefined }>();
  /** Optional objects known not to exist (kind/namespace/name): not deleted again on every reconcile. */
  private readonly absent = new Set<string>();

  constructor(
    kc: KubeConfig,
    readonly settings: WorkerSettings,
    private readonly log: Logger,
  ) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async apply(objects: WorkerObjects): Promise<void> {
    // The ConfigMap first: pods of the new template must find their config.
    await this.ssa(objects.configMap);
    for (const o of OPTIONAL) {
      const desired = objects[o.key];
      if (desired && o.key !== 'pdb') await this.ssa(desired);
    }
    await this.ssa(objects.deployment);
    if (objects.pdb) await this.ssa(objects.pdb);
    const { name, namespace } = objects.deployment.metadata as { name: string; namespace: string };
    for (const o of OPTIONAL) if (!objects[o.key]) await this.deleteIfPresent({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name, namespace } });
  }

  async remove(namespace: string, name: string): Promise<void> {
    const kinds = [{ apiVersion: 'apps/v1', kind: 'Deployment' }, { apiVersion: 'v1', kind: 'ConfigMap' }, ...OPTIONAL];
    for (const k of kinds) await this.deleteIfPresent({ apiVersion: k.apiVersion, kind: k.kind, metadata: { name, namespace } });
  }

  async deployment(namespace: string, name: string) {
    try {
      const d = await this.apps.readNamespacedDeployment({ name, namespace });
      return { replicas: d.spec?.replicas ?? 0, readyReplicas: d.status?.readyReplicas ?? 0, updatedReplicas: d.status?.updatedReplicas ?? 0 };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async partitions(ds: DataSource): Promise<number | undefined> {
    const kafka = ds.spec.ingestion?.kafka;
    if (!kafka) return undefined;
    const key = `${ds.metadata.namespace ?? 'default'}|${kafka.bootstrapServers.join(',')}|${kafka.topic}`;
    const cached = this.partitionCache.get(key);
    if (cached && Date.now() - cached.at < PARTITIONS_TTL_MS) return cached.count;
    let count: number | undefined;
    const client = new Kafka({
      clientId: 'weir-operator',
      brokers: kafka.bootstrapServers,
      ...(kafka.tls ? { ssl: true } : {}),
      ...(kafka.credentialsSecretRef ? { sasl: await this.sasl(ds.metadata.namespace ?? 'default', kafka.credentialsSecretRef.name) } : {}),
      logLevel: logLevel.NOTHING,
      connectionTimeout: 3_000,
      retry: { retries: 1 },
    });
    const admin = client.admin();
    try {
      await admin.connect();
      const meta = await admin.fetchTopicMetadata({ topics: [kafka.topic] });
      count = meta.topics[0]?.partitions.length;
    } catch (e) {
      this.log.warn('could not read the topic partition count', { topic: kafka.topic, error: errorMessage(e) });
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    this.partitionCache.set(key, { at: Date.now(), count });
    return count;
  }

  private async sasl(namespace: string, name: string): Promise<SASLOptions> {
    const secret = await this.core.readNamespacedSecret({ name, namespace });
    const get = (k: string) => Buffer.from(secret.data?.[k] ?? '', 'base64').toString('utf8');
    const mechanism = get('mechanism').toLowerCase();
    if (mechanism !== 'plain' && mechanism !== 'scram-sha-256' && mechanism !== 'scram-sha-512') {
      throw new Error(`Secret ${namespace}/${name}: mechanism must be plain, scram-sha-256 or scram-sha-512`);
    }
    return { mechanism, username: get('username'), password: get('password') };
  }

  private async ssa(obj: KubernetesObject): Promise<void> {
    this.absent.delete(keyOf(obj));
    try {
      await this.objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (e) {
      throw new Error(`applying ${obj.kind} ${obj.metadata?.namespace}/${obj.metadata?.name}: ${kubeErrorMessage(e)}`, { cause: e });
    }
  }

  private async deleteIfPresent(obj: KubernetesObject): Promise<void> {
    const key = keyOf(obj);
    if (this.absent.has(key)) return;
    try {
      await this.objects.delete(obj, undefined, undefined, undefined, undefined, 'Background');
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    this.absent.add(key);
  }
}
