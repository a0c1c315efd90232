import type { Pipe, PipeStatus } from '../api/pipe.js';
import { stableHash } from '../runtime/hash.js';
import type { Health } from './conditions.js';
import { healthStatus } from './status.js';
import type { ReconcileContext, ReconcileDecision } from './types.js';

/** Problems with a Pipe's references to other resources, or undefined when they resolve. */
export function pipeReferenceProblem(pipe: Pipe, ctx: ReconcileContext): Health | undefined {
  const ns = pipe.metadata.namespace ?? 'default';
  const into = pipe.spec.materialize?.into;
  if (into !== undefined && !ctx.lookup.dataSource(ns, into)) {
    return {
      state: 'Stalled',
      reason: 'UnknownDataSource',
      message: `spec.materialize.into names DataSource ${ns}/${into}, which does not exist; create it or fix the name.`,
    };
  }
  return undefined;
}

export function reconcilePipe(pipe: Pipe, ctx: ReconcileContext): ReconcileDecision<PipeStatus> {
  const generation = pipe.metadata.generation ?? 0;
  const health: Health = pipeReferenceProblem(pipe, ctx) ?? {
    state: 'Reconciling',
    reason: 'ConvergenceEngineUnavailable',
    message: 'References resolve; the SQL is not compiled against ClickHouse because this operator build has no convergence engine.',
  };
  const { status, events } = healthStatus(pipe.status, generation, health, health.state === 'Stalled' ? 'Failed' : 'Pending', ctx.now);
  return { status: { ...pipe.status, ...status, specHash: stableHash(pipe.spec) }, events };
}
