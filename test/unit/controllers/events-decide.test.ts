// The events API Deployment of spec.ingestion.http, as built (pure) and EventsReady: one test per reason.
import { describe, expect, it } from 'vitest';
import type { DataSource, HttpIngestion } from '../../../src/api/datasource.js';
import { CONDITION_REASONS, type ConditionReason } from '../../../src/controllers/conditions.js';
import { eventsCondition, eventsObjects, eventsUrl, ingestionObjects } from '../../../src/controllers/ingestion.js';
import { CONFIG_HASH_ANNOTATION } from '../../../src/controllers/workloads.js';
import { validateResource } from '../../../src/api/validate.js';
import { dataSource, inNamespace, withSpec } from '../../fixtures/builders.js';

const settings = { image: 'weir:1', clickhouseUrl: 'http://ch:8123' };
const clicks = (http: HttpIngestion, kafka = false) =>
  dataSource(
    'clicks',
    inNamespace('web'),
    withSpec<DataSource>({ ingestion: { http, ...(kafka ? { kafka: { bootstrapServers: ['kafka:9092'], topic: 'clicks' } } : {}) } }),
  );
const tested = new Set<ConditionReason>();
const decide = (...args: Parameters<typeof eventsCondition>) => {
  const r = eventsCondition(...args);
  tested.add(r.condition.reason);
  return r;
};

describe('eventsObjects', () => {
  it('runs weir events on port 8000 behind a Service, with a PDB above one replica and the token Secret mounted', () => {
    const o = eventsObjects(clicks({ replicas: 3, auth: { tokensSecretRef: { name: 'writers' } } }), settings);
    expect(o.deployment.metadata?.name).toBe('clicks-events');
    expect(o.deployment.spec?.replicas).toBe(3);
    const c = o.deployment.spec?.template.spec?.containers[0];
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
    expect(c?.volumeMounts).toContainEqual({ name: 'secret-0', mountPath: '/etc/weir/tokens/writers', readOnly: true });
    expect(o.service?.spec?.selector).toEqual({ 'weir.dev/events': 'clicks' });
    expect(o.pdb?.spec?.maxUnavailable).toBe(1);
    expect(o.hpa).toBeUndefined();
    expect(eventsUrl(clicks({}))).toBe('http://clicks-events.web.svc/v0/events?name=clicks');
  });

  it('has no PDB with one replica, an HPA with autoscaling, and a new config hash when the spec changes', () => {
    const one = eventsObjects(clicks({ replicas: 1 }), settings);
    expect(one.pdb).toBeUndefined();
    expect(one.deployment.spec?.template.spec?.containers[0]?.args).not.toContain('--tokens-dir');
    const scaled = eventsObjects(clicks({ autoscaling: { minReplicas: 2, maxReplicas: 6 } }), settings);
    expect(scaled.deployment.spec?.replicas).toBeUndefined();
    expect(scaled.hpa?.spec).toMatchObject({ minReplicas: 2, maxReplicas: 6 });
    expect(scaled.pdb).toBeDefined();
    const hash = (ds: DataSource) => eventsObjects(ds, settings).deployment.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
    expect(hash(clicks({ limits: { requestsPerSecond: 10 } }))).not.toBe(hash(clicks({ limits: { requestsPerSecond: 20 } })));
  });

  it('keeps the Kafka Deployment of a DataSource with both, and refuses to build one without its block', () => {
    const both = clicks({ replicas: 2 }, true);
    expect(ingestionObjects(both, 1, settings).deployment.metadata?.name).toBe('clicks-ingest');
    expect(eventsObjects(both, settings).deployment.metadata?.name).toBe('clicks-events');
    expect(() => ingestionObjects(clicks({}), 1, settings)).toThrow('no spec.ingestion.kafka');
    expect(() => eventsObjects(dataSource('x'), settings)).toThrow('no spec.ingestion.http');
  });
});

describe('spec.ingestion.http validation', () => {
  const doc = (ingestion: object) => ({ ...structuredClone(dataSource('clicks', inNamespace('web'))), spec: { ...dataSource('clicks').spec, ingestion } });
  it('takes kafka, http or both, and refuses neither', () => {
    expect(validateResource(doc({ http: {} }))).toEqual([]);
    expect(validateResource(doc({ http: { limits: { requestsPerSecond: 5 } }, kafka: { bootstrapServers: ['k:9092'], topic: 't' } }))).toEqual([]);
    expect(validateResource(doc({})).map((e) => [e.path, e.message])).toContainEqual(['.spec.ingestion', 'spec.ingestion needs kafka, http or both']);
  });
  it('fills the defaults and refuses values out of range, naming the field', () => {
    const d = doc({ http: {} });
    validateResource(d);
    expect(d.spec.ingestion).toMatchObject({ http: { replicas: 2 } });
    const bad = validateResource(doc({ http: { limits: { maxBodyBytes: 10 }, auth: {} } })).map((e) => e.path);
    expect(bad).toEqual(expect.arrayContaining(['.spec.ingestion.http.limits.maxBodyBytes', '.spec.ingestion.http.auth.tokensSecretRef']));
  });
});

describe('EventsReady', () => {
  it('AllReplicasReady: every desired pod is ready (default 2)', () => {
    expect(decide(clicks({}), { replicas: 2, readyReplicas: 2 })).toEqual({
      desired: 2,
      ready: 2,
      condition: { type: 'EventsReady', status: 'True', reason: 'AllReplicasReady', message: '2/2 events pods ready' },
    });
  });
  it('NoReplicaReady, ReplicasNotAllReady', () => {
    expect(decide(clicks({ replicas: 3 }), undefined).condition).toMatchObject({ status: 'False', reason: 'NoReplicaReady', message: '0/3 events pods ready' });
    expect(decide(clicks({ replicas: 3 }), { replicas: 3, readyReplicas: 1 }).condition).toMatchObject({ status: 'False', reason: 'ReplicasNotAllReady' });
  });
  it('ScaledToZero; with autoscaling the HPA-set count is the desired one', () => {
    expect(decide(clicks({ replicas: 0 }), { replicas: 0, readyReplicas: 0 }).condition).toMatchObject({ status: 'True', reason: 'ScaledToZero' });
    expect(decide(clicks({ autoscaling: { maxReplicas: 9 } }), { replicas: 4, readyReplicas: 4 }).desired).toBe(4);
  });
  it('covers every EventsReady reason', () => {
    expect([...tested].sort()).toEqual([...CONDITION_REASONS.EventsReady].sort());
  });
});
