// decide for a Pipe: a pure function of (Pipe, world, now). The world is what gatherPipeWorld
// read: the namespace's DataSources, whether a ClickHouse is connected, the first node that
// did not compile, and the catalog. The policies run in order; the first verdict decides.
import type { DataSource } from '../api/datasource.js';
import type { Pipe, PipeStatus } from '../api/pipe.js';
import type { Catalog } from '../plan/catalog.js';
import { dependencies } from '../plan/graph.js';
import { planPipe, type PipePlan } from '../plan/pipe-plan.js';
import { pipeSqlProblems } from '../plan/project-checks.js';
import { stableHash } from '../runtime/hash.js';
import type { ConditionReason, Health } from './conditions.js';
import { healthStatus } from './status.js';
import type { ReconcileDecision } from './types.js';

export interface PipeWorld {
  /** The DataSources of the Pipe's namespace, as the informer cache holds them. */
  dataSources: readonly DataSource[];
  connected: boolean;
  /** The DataSource spec.materialize.into resolves to (the lookup's name rules), if it exists. */
  into?: DataSource;
  /** The DataSources it reads (namespace/name) whose tables do not exist yet (no version in status). */
  missingReads: string[];
  /** The first node ClickHouse refused to compile (only read once every table it reads exists). */
  compileProblem?: { node: string; message: string };
  /** Read once every node compiles. */
  catalog?: Catalog;
}

export type PipeDecision =
  { reason: ConditionReason; decision: ReconcileDecision<PipeStatus>; plan?: PipePlan } | { reason?: undefined; plan: PipePlan; reads: string[] };

type Policy = (pipe: Pipe, world: PipeWorld, reads: string[]) => Health | undefined;

/** The DataSources the Pipe's nodes read, as namespace/name. */
export function pipeReads(pipe: Pipe, world: Pick<PipeWorld, 'dataSources'>): string[] {
  return dependencies([pipe, ...world.dataSources])
    .edges.filter((e) => e.from.startsWith('Pipe/') && !e.why.startsWith('materializes'))
    .map((e) => e.to.split('/').slice(1).join('/'));
}

// Reconciling, not Stalled: in a GitOps sync the DataSource may simply not have arrived yet.
const intoMissing: Policy = (pipe, world) => {
  const ns = pipe.metadata.namespace ?? 'default';
  const into = pipe.spec.materialize?.into;
  if (into === undefined || world.into) return undefined;
  return {
    state: 'Reconciling',
    reason: 'WaitingForDataSource',
    message: `spec.materialize.into names DataSource ${ns}/${into}, which does not exist (yet); create it or fix the name.`,
  };
};

// SQL weir cannot splice into its own statements is refused before anything runs.
const invalidSql: Policy = (pipe) => {
  const problems = pipeSqlProblems(pipe);
  return problems.length > 0 ? { state: 'Stalled', reason: 'InvalidSql', message: problems.map((p) => p.message).join('; ') } : undefined;
};

const noConnection: Policy = (_pipe, world) =>
  world.connected
    ? undefined
    : {
        state: 'Reconciling',
        reason: 'NoClickHouseConnection',
        message: 'References resolve; the SQL is not compiled because the operator has no ClickHouse connection.',
      };

// Read tables must exist before the SQL can compile against them.
const readsMissing: Policy = (_pipe, world) =>
  world.missingReads.length > 0
    ? { state: 'Reconciling', reason: 'WaitingForDataSource', message: `Waiting for ${world.missingReads.join(', ')} to be created.` }
    : undefined;

const doesNotCompile: Policy = (_pipe, world) =>
  world.compileProblem
    ? { state: 'Stalled', reason: 'SqlDoesNotCompile', message: `node ${world.compileProblem.node}: ${world.compileProblem.message}` }
    : undefined;

const POLICIES: readonly Policy[] = [intoMissing, invalidSql, noConnection, readsMissing, doesNotCompile];

/** The status a health gives. */
export function pipeStatusFor(pipe: Pipe, health: Health, now: Date, extra: Partial<PipeStatus> = {}): ReconcileDecision<PipeStatus> {
  const phase = health.state === 'Ready' ? 'Ready' : health.state === 'Stalled' ? 'Failed' : 'Pending';
  const { status, events } = healthStatus(pipe.status, pipe.metadata.generation ?? 0, health, phase, now);
  return { status: { ...pipe.status, ...status, specHash: stableHash(pipe.spec), ...extra }, events };
}

export function decidePipe(pipe: Pipe, world: PipeWorld, now: Date): PipeDecision {
  const reads = pipeReads(pipe, world);
  for (const policy of POLICIES) {
    const health = policy(pipe, world, reads);
    // A missing target is found before the reads are worked out, so its status has none.
    if (!health) continue;
    const decision = pipeStatusFor(pipe, health, now, policy === intoMissing ? {} : { reads });
    // Tables being created show up soon: look again in 2 s.
    return { reason: health.reason, decision: policy === readsMissing ? { ...decision, requeueAfterMs: 2000 } : decision };
  }
  const plan = planPipe(pipe, [...world.dataSources], world.catalog ?? { databases: [], tables: [], views: [] });
  if (plan.refusals.length > 0)
    return {
      reason: 'PlanRefused',
      plan,
      decision: pipeStatusFor(pipe, { state: 'Stalled', reason: 'PlanRefused', message: plan.refusals.join('; ') }, now, { reads }),
    };
  if (plan.steps.length === 0) return { reason: 'UpToDate', plan, decision: upToDate(pipe, plan, reads, now) };
  return { plan, reads };
}

/** Ready: nothing to run (or the plan's steps ran). */
export const upToDate = (pipe: Pipe, plan: PipePlan, reads: string[], now: Date): ReconcileDecision<PipeStatus> =>
  pipeStatusFor(
    pipe,
    { state: 'Ready', reason: 'UpToDate', message: plan.view ? `Materialized view ${plan.view} is up to date.` : 'Every node compiles.' },
    now,
    { reads, ...(plan.view ? { view: plan.view } : {}) },
  );
