// The ingestion half of a DataSource: the Deployment that runs `weir ingest` for it (with its
// ConfigMap and optional HPA), its replica count capped at the topic's partitions, and the
// status the workers report through weir.ingest_progress (lag, rows, quarantined); and the events
// API Deployment `<name>-events` running `weir events` (spec.ingestion.http: Service, PDB above
// one replica, HPA with autoscaling), with the rows its pods report through weir.events_progress.
import { stringify } from 'yaml';
import type { DataSource, DataSourceStatus, HttpIngestionStatus } from '../api/datasource.js';
import { groupIdOf } from '../api/names.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import { CONFIG_DIR, clickhouseEnv, workerName, workerObjects, type WorkerObjects, type WorkerSettings } from './workloads.js';
import type { ConditionInput } from './conditions.js';

export const INGESTION_READY = 'IngestionReady';
export const EVENTS_READY = 'EventsReady';
export const INGEST_CONFIG_FILE = 'datasource.yaml';
/** The port `weir events` listens on in events pods; the Service maps port 80 to it. */
export const EVENTS_PORT = 8000;
export const EVENTS_TOKENS_DIR = '/etc/weir/tokens';

/** What the controllers need from the cluster to run workers (the operator's KubeWorkloads). */
export interface Workloads {
  settings: WorkerSettings;
  /** Server-side apply the objects; delete the optional ones not given (HPA, Service, PDB). */
  apply(objects: WorkerObjects): Promise<void>;
  /** Delete every object of the owner's component. */
  remove(namespace: string, name: string): Promise<void>;
  deployment(namespace: string, name: string): Promise<{ replicas: number; readyReplicas: number; updatedReplicas: number } | undefined>;
  /** The topic's partition count, or undefined when Kafka cannot be asked now. */
  partitions(ds: DataSource): Promise<number | undefined>;
}

/** The replica count weir runs: the spec's, at most one per partition (more would sit idle). */
export function ingestionReplicas(ds: DataSource, partitions: number | undefined): { replicas: number; capped: boolean } {
  const wanted = ds.spec.ingestion?.replicas ?? 1;
  if (partitions !== undefined && wanted > partitions) return { replicas: partitions, capped: true };
  return { replicas: wanted, capped: false };
}

/** The ingestion Deployment, ConfigMap and HPA of a DataSource, as applied. */
export function ingestionObjects(ds: DataSource, replicas: number, settings: WorkerSettings, partitions?: number): WorkerObjects {
  const ingestion = ds.spec.ingestion;
  if (!ingestion?.kafka) throw new Error('no spec.ingestion.kafka');
  const creds = ingestion.kafka.credentialsSecretRef?.name;
  const autoscaling = ingestion.autoscaling
    ? {
        ...ingestion.autoscaling,
        maxReplicas: partitions !== undefined ? Math.min(ingestion.autoscaling.maxReplicas, partitions) : ingestion.autoscaling.maxReplicas,
      }
    : undefined;
  return workerObjects(
    {
      owner: { kind: 'DataSource', metadata: ds.metadata },
      component: 'ingest',
      config: { [INGEST_CONFIG_FILE]: stringify(workerResource(ds)) },
      args: ['--config', `${CONFIG_DIR}/${INGEST_CONFIG_FILE}`],
      env: [
        ...clickhouseEnv(settings, ds.spec.connectionRef?.name),
        ...(creds
          ? [
              { name: 'WEIR_KAFKA_SASL_MECHANISM', valueFrom: { secretKeyRef: { name: creds, key: 'mechanism' } } },
              { name: 'WEIR_KAFKA_USERNAME', valueFrom: { secretKeyRef: { name: creds, key: 'username' } } },
              { name: 'WEIR_KAFKA_PASSWORD', valueFrom: { secretKeyRef: { name: creds, key: 'password' } } },
            ]
          : []),
      ],
      replicas,
      ...(autoscaling ? { autoscaling } : {}),
      ...(ingestion.resources ? { resources: ingestion.resources } : {}),
      // A worker flushes, commits and leaves the group on SIGTERM.
      terminationGracePeriodSeconds: 60,
    },
    settings,
  );
}

/** The DataSource as a worker reads it from its ConfigMap. */
const workerResource = (ds: DataSource) => ({
  apiVersion: ds.apiVersion,
  kind: ds.kind,
  metadata: { name: ds.metadata.name, namespace: ds.metadata.namespace ?? 'default' },
  spec: ds.spec,
});

/** The events API Deployment, ConfigMap, Service, PDB and HPA of a DataSource with spec.ingestion.http, as applied. */
export function eventsObjects(ds: DataSource, settings: WorkerSettings): WorkerObjects {
  const http = ds.spec.ingestion?.http;
  if (!http) throw new Error('no spec.ingestion.http');
  const tokens = http.auth?.tokensSecretRef.name;
  return workerObjects(
    {
      owner: { kind: 'DataSource', metadata: ds.metadata },
      component: 'events',
      config: { [INGEST_CONFIG_FILE]: stringify(workerResource(ds)) },
      args: [
        '--config',
        `${CONFIG_DIR}/${INGEST_CONFIG_FILE}`,
        '--port',
        String(EVENTS_PORT),
        // Kube-proxy and ingresses learn of a terminating pod a moment late: keep answering meanwhile.
        '--shutdown-delay',
        '5000',
        ...(tokens ? ['--tokens-dir', EVENTS_TOKENS_DIR] : []),
      ],
      env: clickhouseEnv(settings, ds.spec.connectionRef?.name),
      replicas: http.replicas ?? 2,
      ...(http.autoscaling ? { autoscaling: http.autoscaling } : {}),
      ...(http.resources ? { resources: http.resources } : {}),
      servicePort: EVENTS_PORT,
      ...(tokens ? { secretMounts: [{ secret: tokens, path: `${EVENTS_TOKENS_DIR}/${tokens}` }] } : {}),
      // The shutdown delay, then the requests in flight (bounded by the fence wait and the insert).
      terminationGracePeriodSeconds: 60,
    },
    settings,
  );
}

/** The in-cluster URL clients POST events to. */
export const eventsUrl = (ds: DataSource): string =>
  `http://${workerName({ kind: 'DataSource', metadata: ds.metadata }, 'events')}.${ds.metadata.namespace ?? 'default'}.svc/v0/events?name=${ds.metadata.name}`;

/** Rows accepted and quarantined over the events pods, as they last reported them. */
export async function eventsProgress(ch: ClickHouse, ds: DataSource): Promise<{ rowsAccepted: number; quarantinedRows: number } | undefined> {
  const rows = await ch.query<{ rows: string; quarantined: string; writers: string }>(
    `SELECT sum(rows) AS rows, sum(quarantined) AS quarantined, count() AS writers
     FROM (SELECT writer_id, argMax(rows, updated_at) AS rows, argMax(quarantined, updated_at) AS quarantined
           FROM weir.events_progress WHERE namespace = {ns:String} AND datasource = {n:String} GROUP BY writer_id)`,
    { params: { ns: ds.metadata.namespace ?? 'default', n: ds.metadata.name } },
  );
  const r = rows[0];
  if (!r || Number(r.writers) === 0) return undefined;
  return { rowsAccepted: Number(r.rows), quarantinedRows: Number(r.quarantined) };
}

/** EventsReady from the events Deployment as it is after the apply. Pure. */
export function eventsCondition(
  ds: DataSource,
  deployment: { replicas: number; readyReplicas: number } | undefined,
): { desired: number; ready: number; condition: ConditionInput } {
  const http = ds.spec.ingestion?.http;
  const desired = http?.autoscaling ? (deployment?.replicas ?? http.autoscaling.minReplicas ?? 1) : (http?.replicas ?? 2);
  const ready = deployment?.readyReplicas ?? 0;
  const counts = `${ready}/${desired} events pods ready`;
  if (desired === 0)
    return { desired, ready, condition: { type: EVENTS_READY, status: 'True', reason: 'ScaledToZero', message: 'The events API is scaled to 0 replicas' } };
  if (ready >= desired) return { desired, ready, condition: { type: EVENTS_READY, status: 'True', reason: 'AllReplicasReady', message: counts } };
  return { desired, ready, condition: { type: EVENTS_READY, status: 'False', reason: ready > 0 ? 'ReplicasNotAllReady' : 'NoReplicaReady', message: counts } };
}

/** Lag, rows and quarantined messages over the group's partitions, as the workers last reported them. */
export async function ingestionProgress(ch: ClickHouse, ds: DataSource): Promise<{ lag: number; rowsIngested: number; quarantinedRows: number } | undefined> {
  const rows = await ch.query<{ lag: string; rows: string; quarantined: string; partitions: string }>(
    `SELECT sum(greatest(high_watermark - committed_offset, 0)) AS lag, sum(rows) AS rows, sum(quarantined) AS quarantined, count() AS partitions
     FROM (SELECT partition, argMax(high_watermark, updated_at) AS high_watermark, argMax(committed_offset, updated_at) AS committed_offset,
                  argMax(rows, updated_at) AS rows, argMax(quarantined, updated_at) AS quarantined
           FROM weir.ingest_progress WHERE group_id = {g:String} AND topic = {t:String} GROUP BY partition)`,
    { params: { g: groupIdOf(ds), t: ds.spec.ingestion?.kafka?.topic ?? '' } },
  );
  const r = rows[0];
  if (!r || Number(r.partitions) === 0) return undefined;
  return { lag: Number(r.lag), rowsIngested: Number(r.rows), quarantinedRows: Number(r.quarantined) };
}

export interface IngestionOutcome {
  ingestion?: DataSourceStatus['ingestion'];
  condition?: ConditionInput;
  /** EventsReady, when spec.ingestion.http is set. */
  eventsCondition?: ConditionInput;
  /** Look again this soon, to refresh lag and ready replicas. */
  requeueAfterMs?: number;
}

/**
 * IngestionReady, decided from the topic's partition count and the owned Deployment as it is
 * after the apply. Pure: the reasons' decide-level tests call it with fixtures.
 */
export function ingestionCondition(
  ds: DataSource,
  partitions: number | undefined,
  deployment: { replicas: number; readyReplicas: number } | undefined,
): { desired: number; ready: number; condition: ConditionInput } {
  const { replicas, capped } = ingestionReplicas(ds, partitions);
  const desired = ds.spec.ingestion?.autoscaling ? (deployment?.replicas ?? replicas) : replicas;
  const ready = deployment?.readyReplicas ?? 0;
  const cap = capped ? `; replicas capped at ${replicas}: topic ${ds.spec.ingestion?.kafka?.topic ?? ''} has ${partitions} partitions` : '';
  const unknown = partitions === undefined ? '; the topic partition count is unknown (Kafka unreachable from the operator), replicas not capped' : '';
  const counts = `${ready}/${desired} ingestion pods ready${cap}${unknown}`;
  if (desired === 0)
    return { desired, ready, condition: { type: INGESTION_READY, status: 'True', reason: 'ScaledToZero', message: `Ingestion is scaled to 0 replicas${cap}` } };
  if (ready >= desired)
    return {
      desired,
      ready,
      condition: { type: INGESTION_READY, status: 'True', reason: capped ? 'ReplicasCappedAtPartitions' : 'AllReplicasReady', message: counts },
    };
  return {
    desired,
    ready,
    condition: { type: INGESTION_READY, status: 'False', reason: ready > 0 ? 'ReplicasNotAllReady' : 'NoReplicaReady', message: counts },
  };
}

/** Converge the ingestion Deployments (Kafka, HTTP) to the spec and say how they are doing. */
export async function reconcileIngestion(ds: DataSource, workloads: Workloads, ch: ClickHouse | undefined): Promise<IngestionOutcome> {
  const kafka = await reconcileKafkaIngestion(ds, workloads, ch);
  const http = await reconcileEventsDeployment(ds, workloads, ch);
  if (!kafka.ingestion && !http) return {};
  return {
    ingestion: { ...kafka.ingestion, ...(http ? { http: http.status } : {}) },
    ...(kafka.condition ? { condition: kafka.condition } : {}),
    ...(http ? { eventsCondition: http.condition } : {}),
    requeueAfterMs: 15_000,
  };
}

async function reconcileKafkaIngestion(ds: DataSource, workloads: Workloads, ch: ClickHouse | undefined): Promise<IngestionOutcome> {
  const namespace = ds.metadata.namespace ?? 'default';
  const name = workerName({ kind: 'DataSource', metadata: ds.metadata }, 'ingest');
  if (!ds.spec.ingestion?.kafka) {
    if (ds.status?.ingestion?.replicas !== undefined) await workloads.remove(namespace, name);
    return {};
  }
  const partitions = await workloads.partitions(ds);
  const { replicas } = ingestionReplicas(ds, partitions);
  await workloads.apply(ingestionObjects(ds, replicas, workloads.settings, partitions));
  const deployment = await workloads.deployment(namespace, name);
  const progress = ch ? await ingestionProgress(ch, ds).catch(() => undefined) : undefined;
  const { desired, ready, condition } = ingestionCondition(ds, partitions, deployment);
  return { ingestion: { replicas: desired, readyReplicas: ready, ...(progress ?? {}) }, condition };
}

async function reconcileEventsDeployment(
  ds: DataSource,
  workloads: Workloads,
  ch: ClickHouse | undefined,
): Promise<{ status: HttpIngestionStatus; condition: ConditionInput } | undefined> {
  const namespace = ds.metadata.namespace ?? 'default';
  const name = workerName({ kind: 'DataSource', metadata: ds.metadata }, 'events');
  if (!ds.spec.ingestion?.http) {
    if (ds.status?.ingestion?.http) await workloads.remove(namespace, name);
    return undefined;
  }
  await workloads.apply(eventsObjects(ds, workloads.settings));
  const deployment = await workloads.deployment(namespace, name);
  const progress = ch ? await eventsProgress(ch, ds).catch(() => undefined) : undefined;
  const { desired, ready, condition } = eventsCondition(ds, deployment);
  return { status: { url: eventsUrl(ds), replicas: desired, readyReplicas: ready, ...(progress ?? {}) }, condition };
}
