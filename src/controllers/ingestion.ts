// The ingestion half of a DataSource: the Deployment that runs `weir ingest` for it (with its
// ConfigMap and optional HPA), its replica count capped at the topic's partitions, and the
// status the workers report through weir.ingest_progress (lag, rows, quarantined).
import { stringify } from 'yaml';
import type { DataSource, DataSourceStatus } from '../api/datasource.js';
import { groupIdOf } from '../api/names.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import { CONFIG_DIR, clickhouseEnv, workerName, workerObjects, type WorkerObjects, type WorkerSettings } from './workloads.js';
import type { ConditionInput } from './conditions.js';

export const INGESTION_READY = 'IngestionReady';
export const INGEST_CONFIG_FILE = 'datasource.yaml';

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
  if (!ingestion) throw new Error('no spec.ingestion');
  const creds = ingestion.kafka.credentialsSecretRef?.name;
  const autoscaling = ingestion.autoscaling
    ? {
        ...ingestion.autoscaling,
        maxReplicas: partitions !== undefined ? Math.min(ingestion.autoscaling.maxReplicas, partitions) : ingestion.autoscaling.maxReplicas,
      }
    : undefined;
  const resource = {
    apiVersion: ds.apiVersion,
    kind: ds.kind,
    metadata: { name: ds.metadata.name, namespace: ds.metadata.namespace ?? 'default' },
    spec: ds.spec,
  };
  return workerObjects(
    {
      owner: { kind: 'DataSource', metadata: ds.metadata },
      component: 'ingest',
      config: { [INGEST_CONFIG_FILE]: stringify(resource) },
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

/** Lag, rows and quarantined messages over the group's partitions, as the workers last reported them. */
export async function ingestionProgress(ch: ClickHouse, ds: DataSource): Promise<{ lag: number; rowsIngested: number; quarantinedRows: number } | undefined> {
  const rows = await ch.query<{ lag: string; rows: string; quarantined: string; partitions: string }>(
    `SELECT sum(greatest(high_watermark - committed_offset, 0)) AS lag, sum(rows) AS rows, sum(quarantined) AS quarantined, count() AS partitions
     FROM (SELECT partition, argMax(high_watermark, updated_at) AS high_watermark, argMax(committed_offset, updated_at) AS committed_offset,
                  argMax(rows, updated_at) AS rows, argMax(quarantined, updated_at) AS quarantined
           FROM weir.ingest_progress WHERE group_id = {g:String} AND topic = {t:String} GROUP BY partition)`,
    { params: { g: groupIdOf(ds), t: ds.spec.ingestion?.kafka.topic ?? '' } },
  );
  const r = rows[0];
  if (!r || Number(r.partitions) === 0) return undefined;
  return { lag: Number(r.lag), rowsIngested: Number(r.rows), quarantinedRows: Number(r.quarantined) };
}

export interface IngestionOutcome {
  ingestion?: DataSourceStatus['ingestion'];
  condition?: ConditionInput;
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
  const cap = capped ? `; replicas capped at ${replicas}: topic ${ds.spec.ingestion?.kafka.topic ?? ''} has ${partitions} partitions` : '';
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

/** Converge the ingestion Deployment to the spec and say how it is doing. */
export async function reconcileIngestion(ds: DataSource, workloads: Workloads, ch: ClickHouse | undefined): Promise<IngestionOutcome> {
  const namespace = ds.metadata.namespace ?? 'default';
  if (!ds.spec.ingestion) {
    if (ds.status?.ingestion) await workloads.remove(namespace, workerName({ kind: 'DataSource', metadata: ds.metadata }, 'ingest'));
    return {};
  }
  const partitions = await workloads.partitions(ds);
  const { replicas } = ingestionReplicas(ds, partitions);
  await workloads.apply(ingestionObjects(ds, replicas, workloads.settings, partitions));
  const name = workerName({ kind: 'DataSource', metadata: ds.metadata }, 'ingest');
  const deployment = await workloads.deployment(namespace, name);
  const progress = ch ? await ingestionProgress(ch, ds).catch(() => undefined) : undefined;
  const { desired, ready, condition } = ingestionCondition(ds, partitions, deployment);
  const ingestion = { replicas: desired, readyReplicas: ready, ...(progress ?? {}) };
  return { ingestion, condition, requeueAfterMs: 15_000 };
}
