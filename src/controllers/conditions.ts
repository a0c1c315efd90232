import type { Condition } from '../api/common.js';

export type ConditionStatus = Condition['status'];

/** Every condition reason weir sets, per kind (docs/api.md, "Condition reasons in use", lists each). */
export const CONDITION_REASONS = {
  DataSource: ['NoClickHouseConnection', 'UpToDate', 'AwaitingApproval', 'PlanRefused', 'MigrationRefused', 'Migrating', 'MigrationQueued', 'TableLocked'],
  Pipe: ['WaitingForDataSource', 'InvalidSql', 'NoClickHouseConnection', 'SqlDoesNotCompile', 'PlanRefused', 'UpToDate'],
  Endpoint: [
    'WaitingForPipe',
    'InvalidEndpoint',
    'UnknownNode',
    'UnknownParameter',
    'ConflictingParameterTypes',
    'SqlDoesNotCompile',
    'QueryServerUnavailable',
    'RollingOut',
    'Serving',
    'ScaledToZero',
  ],
  /** DataSource: the live table against the shape in its marker (ALTERs by hand). */
  Drifted: ['Drifted', 'NoDrift'],
  IngestionReady: ['AllReplicasReady', 'ReplicasCappedAtPartitions', 'ScaledToZero', 'NoReplicaReady', 'ReplicasNotAllReady'],
  /** DataSource with spec.ingestion.http: its <name>-events Deployment. */
  EventsReady: ['AllReplicasReady', 'ScaledToZero', 'NoReplicaReady', 'ReplicasNotAllReady'],
  /** Reconciling=False and Stalled=False, on every kind. */
  Idle: ['Idle', 'Progressing'],
} as const;

export type ConditionReason = (typeof CONDITION_REASONS)[keyof typeof CONDITION_REASONS][number];

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: ConditionReason;
  message: string;
}

/**
 * Set a condition, keeping lastTransitionTime when the status did not change, so an
 * unchanged reconcile produces an identical status (and writes nothing).
 */
export function setCondition(existing: Condition[] | undefined, next: ConditionInput, generation: number, now: Date): Condition[] {
  const list = [...(existing ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i >= 0 ? list[i] : undefined;
  const condition: Condition = {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: next.message,
    lastTransitionTime: prev && prev.status === next.status ? prev.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, 'Z'),
    observedGeneration: generation,
  };
  if (i >= 0) list[i] = condition;
  else list.push(condition);
  return list;
}

export const findCondition = (conditions: Condition[] | undefined, type: string): Condition | undefined => conditions?.find((c) => c.type === type);

/** The resource's overall state in kstatus terms; each maps to the three standard conditions. */
export type Health =
  | { state: 'Ready'; reason: ConditionReason; message: string }
  /** Work is under way or waiting on something expected to resolve (e.g. approval, a dependency). */
  | { state: 'Reconciling'; reason: ConditionReason; message: string }
  /** Cannot progress without a change to the spec or the world. */
  | { state: 'Stalled'; reason: ConditionReason; message: string };

/** Ready, Reconciling and Stalled as kstatus (Flux, Argo CD) expect them: abnormal-true polarity for the last two. */
export function healthConditions(existing: Condition[] | undefined, health: Health, generation: number, now: Date): Condition[] {
  let c = setCondition(
    existing,
    { type: 'Ready', status: health.state === 'Ready' ? 'True' : 'False', reason: health.reason, message: health.message },
    generation,
    now,
  );
  c = setCondition(
    c,
    health.state === 'Reconciling'
      ? { type: 'Reconciling', status: 'True', reason: health.reason, message: health.message }
      : { type: 'Reconciling', status: 'False', reason: 'Idle', message: 'No work in progress.' },
    generation,
    now,
  );
  c = setCondition(
    c,
    health.state === 'Stalled'
      ? { type: 'Stalled', status: 'True', reason: health.reason, message: health.message }
      : { type: 'Stalled', status: 'False', reason: 'Progressing', message: 'Not stalled.' },
    generation,
    now,
  );
  return c;
}
