// IngestionReady decided from (DataSource, the topic's partition count, the owned Deployment): one test per reason.
import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { CONDITION_REASONS, type ConditionReason } from '../../../src/controllers/conditions.js';
import { ingestionCondition } from '../../../src/controllers/ingestion.js';
import { dataSource, inNamespace, withSpec } from '../../fixtures/builders.js';

const clicks = (replicas: number) =>
  dataSource('clicks', inNamespace('web'), withSpec<DataSource>({ ingestion: { kafka: { bootstrapServers: ['kafka:9092'], topic: 'clicks' }, replicas } }));
const tested = new Set<ConditionReason>();
const decide = (...args: Parameters<typeof ingestionCondition>) => {
  const r = ingestionCondition(...args);
  tested.add(r.condition.reason);
  return r;
};

describe('IngestionReady', () => {
  it('AllReplicasReady: every desired pod is ready', () => {
    expect(decide(clicks(2), 4, { replicas: 2, readyReplicas: 2 })).toEqual({
      desired: 2,
      ready: 2,
      condition: { type: 'IngestionReady', status: 'True', reason: 'AllReplicasReady', message: '2/2 ingestion pods ready' },
    });
  });

  it('ReplicasCappedAtPartitions: ready, with replicas lowered to the partition count', () => {
    expect(decide(clicks(5), 3, { replicas: 3, readyReplicas: 3 }).condition).toEqual({
      type: 'IngestionReady',
      status: 'True',
      reason: 'ReplicasCappedAtPartitions',
      message: '3/3 ingestion pods ready; replicas capped at 3: topic clicks has 3 partitions',
    });
  });

  it('ScaledToZero: replicas: 0', () => {
    expect(decide(clicks(0), 3, undefined).condition).toMatchObject({ status: 'True', reason: 'ScaledToZero', message: 'Ingestion is scaled to 0 replicas' });
  });

  it('ReplicasNotAllReady and NoReplicaReady, with ready/desired; an unknown partition count is said', () => {
    expect(decide(clicks(2), 4, { replicas: 2, readyReplicas: 1 }).condition).toMatchObject({
      status: 'False',
      reason: 'ReplicasNotAllReady',
      message: '1/2 ingestion pods ready',
    });
    expect(decide(clicks(2), undefined, undefined).condition).toMatchObject({
      status: 'False',
      reason: 'NoReplicaReady',
      message: '0/2 ingestion pods ready; the topic partition count is unknown (Kafka unreachable from the operator), replicas not capped',
    });
  });

  it('every IngestionReady reason has a test above', () => {
    expect([...tested].sort()).toEqual([...CONDITION_REASONS.IngestionReady].sort());
  });
});
