// decide for an Endpoint: pure functions of (Endpoint, world, now). decideEndpoint says what
// to do before any call: a verdict to write, or the query Deployment to apply; rolloutStatus
// then reads the owned Deployment as it is after the apply. The policies run in order.
import type { DataSource } from '../api/datasource.js';
import type { Endpoint, EndpointStatus } from '../api/endpoint.js';
import type { Pipe } from '../api/pipe.js';
import { compileEndpoint, compileParams, type CompiledEndpoint, type CompiledParam } from '../plan/endpoint/compile.js';
import { queryDatabaseIn } from '../plan/project-checks.js';
import { stableHash } from '../runtime/hash.js';
import type { ConditionReason, Health } from './conditions.js';
import { healthStatus } from './status.js';
import type { ReconcileDecision } from './types.js';

export interface EndpointWorld {
  /** The Pipe spec.pipe names, if it exists. */
  pipe?: Pipe;
  dataSources: readonly DataSource[];
  /** ClickHouse's first line for the composed query, when it does not compile (read only when the parameters compile). */
  queryProblem?: string;
  /** The operator runs workers (query Deployments). */
  runsWorkers: boolean;
}

/** The owned query Deployment's replica counts, as the API server reports them. */
export interface DeploymentState {
  name: string;
  replicas?: number;
  readyReplicas?: number;
  updatedReplicas?: number;
}

export type EndpointDecision =
  { reason: ConditionReason; decision: ReconcileDecision<EndpointStatus> } | { reason?: undefined; compiled: CompiledEndpoint; params: CompiledParam[] };

export function endpointStatusFor(
  ep: Endpoint,
  world: Pick<EndpointWorld, 'pipe'>,
  health: Health,
  now: Date,
  extra: Partial<EndpointStatus> = {},
  params?: CompiledParam[],
): ReconcileDecision<EndpointStatus> {
  const phase = health.state === 'Stalled' ? 'Failed' : health.state === 'Ready' ? 'Ready' : 'Pending';
  const { status, events } = healthStatus(ep.status, ep.metadata.generation ?? 0, health, phase, now);
  const next: EndpointStatus = { ...ep.status, ...status, specHash: stableHash({ spec: ep.spec, pipe: world.pipe?.spec }), ...extra };
  if (params) next.params = params;
  else delete next.params;
  return { status: next, events };
}

/** Before any call: the Pipe exists, the parameters and the query compile, and workers run. */
export function decideEndpoint(ep: Endpoint, world: EndpointWorld, now: Date): EndpointDecision {
  const ns = ep.metadata.namespace ?? 'default';
  const verdict = (health: Health, params?: CompiledParam[]): EndpointDecision => ({
    reason: health.reason,
    decision: endpointStatusFor(ep, world, health, now, {}, params),
  });
  // Reconciling, not Stalled: in a GitOps sync the Pipe may simply not have arrived yet.
  if (!world.pipe)
    return verdict({
      state: 'Reconciling',
      reason: 'WaitingForPipe',
      message: `spec.pipe names Pipe ${ns}/${ep.spec.pipe}, which does not exist (yet); create it or fix the name.`,
    });
  const checked = compileParams(ep, world.pipe);
  if ('problem' in checked) return verdict({ state: 'Stalled', ...checked.problem });
  const compiled = compileEndpoint(ep, world.pipe, queryDatabaseIn(world.pipe, [...world.dataSources]));
  if ('problem' in compiled) return verdict({ state: 'Stalled', reason: 'InvalidEndpoint', message: compiled.problem });
  // The running pods keep serving the last version that compiled: a broken one is never rolled out.
  if (world.queryProblem !== undefined)
    return verdict({
      state: 'Stalled',
      reason: 'SqlDoesNotCompile',
      message: `The endpoint's query does not compile against ClickHouse: ${world.queryProblem}`,
    });
  if (!world.runsWorkers) {
    return verdict(
      {
        state: 'Reconciling',
        reason: 'QueryServerUnavailable',
        message: 'Parameters compile; no query Deployment is run because this operator runs no workers (--no-workers).',
      },
      checked.params,
    );
  }
  return { compiled, params: checked.params };
}

/**
 * The hash of the definition query pods serve (the compiled endpoint in their ConfigMap), as
 * status.servedHash shows it; `weir plan` prints the same for a folder, so a different one means a rollout.
 */
export const servedHash = (compiled: CompiledEndpoint): string => stableHash(compiled);

/** After the apply: Serving, ScaledToZero or RollingOut from the Deployment's replica counts. */
export function rolloutStatus(
  ep: Endpoint,
  world: Pick<EndpointWorld, 'pipe'>,
  compiled: CompiledEndpoint,
  params: CompiledParam[],
  deployment: DeploymentState,
  now: Date,
): ReconcileDecision<EndpointStatus> {
  const ns = ep.metadata.namespace ?? 'default';
  const desired = ep.spec.autoscaling ? (deployment.replicas ?? ep.spec.autoscaling.minReplicas ?? 1) : (ep.spec.replicas ?? 1);
  const ready = deployment.readyReplicas ?? 0;
  const updated = deployment.updatedReplicas ?? 0;
  const url = `http://${deployment.name}.${ns}.svc/v0/pipes/${compiled.name}.json`;
  const extra = { url, replicas: desired, readyReplicas: ready, replicasSummary: `${ready}/${desired}`, servedHash: servedHash(compiled) };
  let health: Health;
  if (desired === 0) health = { state: 'Ready', reason: 'ScaledToZero', message: `Endpoint ${compiled.name} is scaled to 0 replicas; ${url} answers nothing.` };
  else if (ready >= desired && updated >= desired) health = { state: 'Ready', reason: 'Serving', message: `${ready}/${desired} query pods serve ${url}` };
  else
    health = {
      state: 'Reconciling',
      reason: 'RollingOut',
      message: `${ready}/${desired} query pods ready (${updated} updated to this version); serving ${url} as pods become ready`,
    };
  const decision = endpointStatusFor(ep, world, health, now, extra, params);
  return health.reason === 'RollingOut' ? { ...decision, requeueAfterMs: 5_000 } : decision;
}
