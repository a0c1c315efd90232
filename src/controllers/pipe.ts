import type { Pipe, PipeStatus } from '../api/pipe.js';
import { clickhouseName } from '../api/names.js';
import { observeCatalog } from '../clickhouse/catalog.js';
import { Executor } from '../execute/executor.js';
import { dependencies } from '../plan/graph.js';
import { composeQuery, describePipeStep, planPipe } from '../plan/pipe-plan.js';
import { pipeSqlProblems, queryDatabaseIn } from '../plan/project-checks.js';
import { embedSql } from '../plan/sql.js';
import { findPlaceholders } from '../plan/sql-scan.js';
import { stableHash } from '../runtime/hash.js';
import { errorMessage } from '../runtime/log.js';
import type { Health } from './conditions.js';
import { healthStatus } from './status.js';
import type { ReconcileContext, ReconcileDecision } from './types.js';

/** Problems with a Pipe's references to other resources, or undefined when they resolve. */
export function pipeReferenceProblem(pipe: Pipe, ctx: ReconcileContext): Health | undefined {
  const ns = pipe.metadata.namespace ?? 'default';
  const into = pipe.spec.materialize?.into;
  if (into !== undefined && !ctx.lookup.dataSource(ns, into)) {
    // Reconciling, not Stalled: in a GitOps sync the DataSource may simply not have arrived yet.
    return {
      state: 'Reconciling',
      reason: 'WaitingForDataSource',
      message: `spec.materialize.into names DataSource ${ns}/${into}, which does not exist (yet); create it or fix the name.`,
    };
  }
  return undefined;
}

function decide(pipe: Pipe, ctx: ReconcileContext, health: Health, extra: Partial<PipeStatus> = {}, requeueAfterMs?: number): ReconcileDecision<PipeStatus> {
  const phase = health.state === 'Ready' ? 'Ready' : health.state === 'Stalled' ? 'Failed' : 'Pending';
  const { status, events } = healthStatus(pipe.status, pipe.metadata.generation ?? 0, health, phase, ctx.now);
  return { status: { ...pipe.status, ...status, specHash: stableHash(pipe.spec), ...extra }, events, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
}

/**
 * Pipe reconcile: references resolve, every node compiles in ClickHouse (nothing is created
 * otherwise), and a materialized Pipe's view exists with its backfill landed.
 */
export async function reconcilePipe(pipe: Pipe, ctx: ReconcileContext): Promise<ReconcileDecision<PipeStatus>> {
  const problem = pipeReferenceProblem(pipe, ctx);
  if (problem) return decide(pipe, ctx, problem);
  const ns = pipe.metadata.namespace ?? 'default';
  const dataSources = ctx.lookup.dataSourcesIn(ns);
  const reads = dependencies([pipe, ...dataSources])
    .edges.filter((e) => e.from.startsWith('Pipe/') && !e.why.startsWith('materializes'))
    .map((e) => e.to.split('/').slice(1).join('/'));
  // SQL weir cannot splice into its own statements is refused before anything runs.
  const sqlProblems = pipeSqlProblems(pipe);
  if (sqlProblems.length > 0) return decide(pipe, ctx, { state: 'Stalled', reason: 'InvalidSql', message: sqlProblems.map((p) => p.message).join('; ') }, { reads });
  const ch = ctx.clickhouse;
  if (!ch) {
    return decide(pipe, ctx, { state: 'Reconciling', reason: 'NoClickHouseConnection', message: 'References resolve; the SQL is not compiled because the operator has no ClickHouse connection.' }, { reads });
  }
  // Read tables must exist before the SQL can compile against them.
  const missing = reads.filter((r) => ctx.lookup.dataSource(ns, r.split('/')[1] ?? '')?.status?.version === undefined);
  if (missing.length > 0) {
    return decide(pipe, ctx, { state: 'Reconciling', reason: 'WaitingForDataSource', message: `Waiting for ${missing.join(', ')} to be created.` }, { reads }, 2000);
  }
  const queryDb = queryDatabaseIn(pipe, dataSources);
  for (const node of pipe.spec.nodes) {
    const query = composeQuery(pipe.spec.nodes, node.name);
    // Nodes with {name:Type} placeholders compile with their Endpoint, which has the values.
    if (findPlaceholders(query).length > 0) continue;
    try {
      await ch.query(`DESCRIBE TABLE (${embedSql(query)})`, { database: queryDb });
    } catch (e) {
      return decide(pipe, ctx, { state: 'Stalled', reason: 'SqlDoesNotCompile', message: `node ${node.name}: ${errorMessage(e)}` }, { reads });
    }
  }
  const catalog = await observeCatalog(ch, [queryDb]);
  const plan = planPipe(pipe, dataSources, catalog);
  if (plan.refusals.length > 0) return decide(pipe, ctx, { state: 'Stalled', reason: 'PlanRefused', message: plan.refusals.join('; ') }, { reads });
  if (plan.steps.length > 0) {
    const executor = new Executor(ch, {
      ...(ctx.log ? { log: ctx.log } : {}),
      ...(ctx.fenceTiming ? { fenceTiming: ctx.fenceTiming } : {}),
      });
    for (const step of plan.steps) await ctx.report?.({ type: 'Normal', reason: 'Applying', message: describePipeStep(step) });
    await executor.run(plan.steps);
  }
  const ready = decide(
    pipe,
    ctx,
    { state: 'Ready', reason: 'UpToDate', message: plan.view ? `Materialized view ${plan.view} is up to date.` : 'Every node compiles.' },
    { reads, ...(plan.view ? { view: plan.view } : {}) },
  );
  if (plan.steps.length > 0) ready.events.push({ type: 'Normal', reason: 'Applied', message: plan.steps.map(describePipeStep).join('; ') });
  return ready;
}

/** A deleted materialized Pipe stops feeding its target: the view is dropped (the target's data stays). */
export async function finalizePipe(pipe: Pipe, ctx: ReconcileContext): Promise<void> {
  const ch = ctx.clickhouse;
  const m = pipe.spec.materialize;
  if (!ch || !m) return;
  const database = queryDatabaseIn(pipe, ctx.lookup.dataSourcesIn(pipe.metadata.namespace ?? 'default'));
  await ch.command(`DROP VIEW IF EXISTS \`${database}\`.\`${clickhouseName(pipe.metadata.name)}\``);
}
