import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { ingestionObjects, ingestionReplicas } from '../../../src/controllers/ingestion.js';
import { CONFIG_HASH_ANNOTATION, clickhouseEnv, workerObjects, type WorkerSettings } from '../../../src/controllers/workloads.js';
import { dataSource, withSpec } from '../../fixtures/builders.js';

const settings: WorkerSettings = { image: 'weir:1', clickhouseUrl: 'http://ch:8123' };
const ingested = (extra: Partial<NonNullable<DataSource['spec']['ingestion']>> = {}) =>
  dataSource('clicks', withSpec<DataSource>({ ingestion: { kafka: { bootstrapServers: ['k:9092'], topic: 'clicks' }, ...extra } }));

describe('ingestionReplicas', () => {
  it('honours the spec up to the partition count, and says when it capped', () => {
    expect(ingestionReplicas(ingested({ replicas: 3 }), 8)).toEqual({ replicas: 3, capped: false });
    expect(ingestionReplicas(ingested({ replicas: 3 }), 2)).toEqual({ replicas: 2, capped: true });
    expect(ingestionReplicas(ingested(), 4)).toEqual({ replicas: 1, capped: false });
    expect(ingestionReplicas(ingested({ replicas: 5 }), undefined)).toEqual({ replicas: 5, capped: false });
    expect(ingestionReplicas(ingested({ replicas: 0 }), 2)).toEqual({ replicas: 0, capped: false });
  });
});

describe('ingestionObjects', () => {
  it('changes the pod template hash when, and only when, the worker config changes', () => {
    const hash = (ds: DataSource) => ingestionObjects(ds, 1, settings).deployment.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
    expect(hash(ingested())).toBe(hash(ingested()));
    expect(hash(ingested({ batch: { maxRows: 10 } }))).not.toBe(hash(ingested()));
    // Replicas are not config: scaling must not roll the pods.
    expect(ingestionObjects(ingested(), 1, settings).deployment.spec?.template).toEqual(ingestionObjects(ingested(), 2, settings).deployment.spec?.template);
  });

  it('leaves the replica count to the HPA under autoscaling, capping maxReplicas at the partitions', () => {
    const objects = ingestionObjects(ingested({ autoscaling: { minReplicas: 2, maxReplicas: 10 } }), 1, settings, 4);
    expect(objects.deployment.spec?.replicas).toBeUndefined();
    expect(objects.hpa?.spec).toMatchObject({ minReplicas: 2, maxReplicas: 4 });
    expect(ingestionObjects(ingested(), 1, settings).hpa).toBeUndefined();
  });

  it('passes Kafka credentials from the referenced Secret, never as literals', () => {
    const objects = ingestionObjects(
      ingested({ kafka: { bootstrapServers: ['k:9092'], topic: 'clicks', credentialsSecretRef: { name: 'kafka-creds' } } }),
      1,
      settings,
    );
    const env = objects.deployment.spec?.template.spec?.containers[0]?.env ?? [];
    for (const name of ['WEIR_KAFKA_SASL_MECHANISM', 'WEIR_KAFKA_USERNAME', 'WEIR_KAFKA_PASSWORD']) {
      expect(env.find((e) => e.name === name)).toEqual({ name, valueFrom: { secretKeyRef: { name: 'kafka-creds', key: expect.any(String) } } });
    }
  });

  it('creates no Service or PodDisruptionBudget for ingestion (nothing calls it)', () => {
    const objects = ingestionObjects(ingested({ replicas: 3 }), 3, settings);
    expect(objects.service).toBeUndefined();
    expect(objects.pdb).toBeUndefined();
  });
});

describe('clickhouseEnv', () => {
  it('takes the whole connection from a connectionRef Secret, else the operator settings', () => {
    expect(clickhouseEnv(settings, 'ch-conn').find((e) => e.name === 'WEIR_CLICKHOUSE_URL')).toEqual({
      name: 'WEIR_CLICKHOUSE_URL',
      valueFrom: { secretKeyRef: { name: 'ch-conn', key: 'url' } },
    });
    expect(clickhouseEnv({ ...settings, clickhousePasswordSecret: 'pw' }, undefined)).toEqual([
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'WEIR_CLICKHOUSE_URL', value: 'http://ch:8123' },
      { name: 'WEIR_CLICKHOUSE_PASSWORD', valueFrom: { secretKeyRef: { name: 'pw', key: 'password', optional: true } } },
    ]);
  });
});

describe('workerObjects', () => {
  const owner = { kind: 'Endpoint' as const, metadata: { name: 'top-pages', namespace: 'web', uid: 'u1' } };
  it('adds a Service for a served port, and a PodDisruptionBudget only with more than one replica', () => {
    const one = workerObjects({ owner, component: 'serve', config: {}, args: [], replicas: 1, servicePort: 8000 }, settings);
    expect(one.service?.spec?.ports?.[0]).toEqual({ name: 'http', port: 80, targetPort: 'http' });
    expect(one.pdb).toBeUndefined();
    const two = workerObjects({ owner, component: 'serve', config: {}, args: [], replicas: 2, servicePort: 8000 }, settings);
    expect(two.pdb?.spec).toEqual({ selector: { matchLabels: { 'weir.dev/serve': 'top-pages' } }, maxUnavailable: 1 });
  });
});
