// decide for a DataSource's table: a pure function of (resource, world, now). The world is
// what gatherTableWorld read (the catalog, the preflight facts, the neighbours); the answer
// is the plan, and either the status and Events to write now, or the steps to execute. The
// policies run in order and the first that has something to say decides (cert-manager's shape).
import type { DataSource, DataSourceStatus } from '../api/datasource.js';
import { databaseOf, qualifiedTableOf, tableOf } from '../api/names.js';
import { findTable, type Catalog } from '../plan/catalog.js';
import { describeStep, planDataSource, planHash, type DataSourcePlan, type MigrationStep } from '../plan/datasource-plan.js';
import { tableDrift } from '../plan/drift.js';
import type { ProjectResource } from '../plan/graph.js';
import type { Preflight } from '../plan/preflight.js';
import { stableHash } from '../runtime/hash.js';
import { setCondition, type ConditionReason, type Health } from './conditions.js';
import { healthStatus } from './status.js';
import type { ReconcileDecision } from './types.js';

/** The annotation that approves a pending plan (migration.approval: Manual): its value is the plan hash. */
export const APPROVE_ANNOTATION = 'weir.dev/approve-plan';

/** Everything the table's decision reads; `catalog` is undefined without a ClickHouse connection. */
export interface TableWorld {
  catalog?: Catalog;
  preflight: Preflight;
  /** The resources whose ClickHouse names could clash with the DataSource's. */
  neighbours: readonly ProjectResource[];
}

/** What one policy says: the health it sets, the phase and the status fields that go with it. */
export interface Verdict {
  health: Health;
  phase: string;
  extra: Partial<DataSourceStatus>;
}

type Policy = (ds: DataSource, world: TableWorld, plan: DataSourcePlan) => Verdict | undefined;

export type TableDecision =
  /** Nothing to run: write this status and these Events. */
  | { plan?: DataSourcePlan; reason: ConditionReason; decision: ReconcileDecision<DataSourceStatus> }
  /** Run the plan's steps; the status is written after them. */
  | { plan: DataSourcePlan; reason?: undefined; execute: { steps: string[]; planHash: string; migrating?: MigrationOf; migrationId: string } };

type MigrationOf = Extract<MigrationStep, { kind: 'CopyAndSwap' | 'SwapBack' }>;

const isMigration = (s: MigrationStep): s is MigrationOf => s.kind === 'CopyAndSwap' || s.kind === 'SwapBack';

export { planHash };

/** The live table's version, spec hash and row count, as status shows them. */
export function observed(ds: DataSource, catalog: Catalog | undefined): Partial<DataSourceStatus> {
  const live = catalog && findTable(catalog, databaseOf(ds), tableOf(ds));
  if (!live?.marker) return {};
  return { version: live.marker.version, specHash: live.marker.specHash, rows: live.totalRows, drift: tableDrift(live) };
}

/** The condition type saying whether the live table still has the shape weir built it with. */
export const DRIFTED = 'Drifted';

const needsApproval = (ds: DataSource, steps: MigrationStep[]) => ds.spec.migration?.approval === 'Manual' && steps.some(isMigration);

/** Without a catalog there is nothing to plan against. */
const noConnection = (ds: DataSource): Verdict => ({
  health: {
    state: 'Reconciling',
    reason: 'NoClickHouseConnection',
    message: `Spec is valid; table ${qualifiedTableOf(ds)} is not converged because the operator has no ClickHouse connection (--clickhouse-url).`,
  },
  phase: 'Pending',
  extra: { specHash: stableHash(ds.spec) },
});

const planRefused: Policy = (ds, world, plan) =>
  plan.refusals.length > 0
    ? { health: { state: 'Stalled', reason: 'PlanRefused', message: plan.refusals.join('; ') }, phase: 'Failed', extra: observed(ds, world.catalog) }
    : undefined;

/** What the copy-and-swap would refuse once it ran, found by the preflight. */
const migrationRefused: Policy = (ds, world, plan) =>
  plan.preflightRefusals.length > 0
    ? {
        health: { state: 'Stalled', reason: 'MigrationRefused', message: plan.preflightRefusals.join('; ') },
        phase: 'Failed',
        extra: observed(ds, world.catalog),
      }
    : undefined;

const upToDate: Policy = (ds, world, plan) =>
  plan.steps.length === 0
    ? { health: { state: 'Ready', reason: 'UpToDate', message: `Table ${plan.table} matches the spec.` }, phase: 'Ready', extra: observed(ds, world.catalog) }
    : undefined;

const awaitingApproval: Policy = (ds, world, plan) => {
  if (!needsApproval(ds, plan.steps)) return undefined;
  const hash = planHash(plan.steps);
  if (ds.metadata.annotations?.[APPROVE_ANNOTATION] === hash) return undefined;
  return {
    health: {
      state: 'Reconciling',
      reason: 'AwaitingApproval',
      message: `A migration is planned; approve it with: kubectl annotate datasource ${ds.metadata.name} ${APPROVE_ANNOTATION}=${hash} --overwrite`,
    },
    phase: 'AwaitingApproval',
    extra: { ...observed(ds, world.catalog), pendingPlan: { hash, steps: plan.steps.map(describeStep), ...(plan.capacity ? { copy: plan.capacity } : {}) } },
  };
};

/** A migration handed to a job (the operator's MigrationJobs): where it stands, for the status a reconcile writes meanwhile. */
export interface JobState {
  state: 'running' | 'queued';
  /** The keys (namespace/name) of the migrations running on this connection, and how many may. */
  running: string[];
  maxConcurrent: number;
  /** The migration the job runs (status.migration.id until the job reports). */
  migrationId?: string;
}

/** Migrating while the job runs (its progress is patched in by the job), MigrationQueued while it waits for a slot. */
export function jobVerdict(ds: DataSource, catalog: Catalog | undefined, job: JobState, now: Date): Verdict {
  const table = qualifiedTableOf(ds);
  if (job.state === 'queued')
    return {
      health: {
        state: 'Reconciling',
        reason: 'MigrationQueued',
        message:
          `A migration of ${table} waits for a slot: ${job.running.length} of ${job.maxConcurrent} migrations run on this ClickHouse connection ` +
          `(${job.running.join(', ')}); it starts when one ends (--max-concurrent-migrations sets how many run at once).`,
      },
      phase: 'Pending',
      extra: observed(ds, catalog),
    };
  const migration = ds.status?.migration ?? { id: job.migrationId ?? 'pending', state: 'Started', startedAt: now.toISOString() };
  const p = migration.progress;
  return {
    health: {
      state: 'Reconciling',
      reason: 'Migrating',
      message: `Migrating ${table} in the background: ${p ? `${p.phase} ${p.percent}% (${p.rowsCopied} of ${p.rowsTotal} rows, chunk ${p.chunk} of ${p.chunks})` : migration.state}.`,
    },
    phase: 'Migrating',
    extra: { ...observed(ds, catalog), migration },
  };
}

/** Another executor holds the table (TableLockedError's message names it): wait, changing nothing. */
export const lockedVerdict = (ds: DataSource, catalog: Catalog | undefined, message: string): Verdict => ({
  health: { state: 'Reconciling', reason: 'TableLocked', message },
  phase: 'Pending',
  extra: observed(ds, catalog),
});

/** In order: the first policy with a verdict decides; none means the plan runs. */
const POLICIES: readonly Policy[] = [planRefused, migrationRefused, upToDate, awaitingApproval];

/** The status a verdict gives: the common conditions, the table's names, and pendingPlan/migration only when the verdict sets them. */
export function statusFor(ds: DataSource, verdict: Verdict, now: Date): ReconcileDecision<DataSourceStatus> {
  const { status, events } = healthStatus(ds.status, ds.metadata.generation ?? 0, verdict.health, verdict.phase, now);
  const next: DataSourceStatus = { ...ds.status, ...status, database: databaseOf(ds), table: qualifiedTableOf(ds), ...verdict.extra };
  if (!('pendingPlan' in verdict.extra)) delete next.pendingPlan;
  // Only a verdict that observed the table knows its drift; otherwise the last condition stands.
  const drift = verdict.extra.drift;
  if (drift) {
    next.conditions = setCondition(
      next.conditions,
      drift.length > 0
        ? { type: DRIFTED, status: 'True', reason: 'Drifted', message: `${qualifiedTableOf(ds)} was changed outside weir: ${drift.join('; ')}` }
        : { type: DRIFTED, status: 'False', reason: 'NoDrift', message: 'The table has the shape weir built it with.' },
      ds.metadata.generation ?? 0,
      now,
    );
  }
  if (!('migration' in verdict.extra)) delete next.migration;
  return { status: next, events };
}

export function decideTable(ds: DataSource, world: TableWorld, now: Date): TableDecision {
  if (!world.catalog) return { reason: 'NoClickHouseConnection', decision: statusFor(ds, noConnection(ds), now) };
  const plan = planDataSource(ds, world.catalog, world.neighbours, world.preflight);
  for (const policy of POLICIES) {
    const verdict = policy(ds, world, plan);
    if (verdict) return { plan, reason: verdict.health.reason, decision: statusFor(ds, verdict, now) };
  }
  const hash = planHash(plan.steps);
  const migrating = plan.steps.find(isMigration);
  return {
    plan,
    execute: {
      steps: plan.steps.map(describeStep),
      planHash: hash,
      ...(migrating ? { migrating } : {}),
      migrationId: `v${migrating?.toVersion ?? 1}-${hash.slice(0, 8)}`,
    },
  };
}
