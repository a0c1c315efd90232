import type { Pipe, PipeStatus } from '../api/pipe.js';
import { clickhouseName } from '../api/names.js';
import { observeCatalog } from '../clickhouse/catalog.js';
import { Executor } from '../execute/executor.js';
import { composeQuery, describePipeStep } from '../plan/pipe-plan.js';
import { pipeSqlProblems, queryDatabaseIn } from '../plan/project-checks.js';
import { embedSql } from '../plan/sql.js';
import { findPlaceholders } from '../plan/sql-scan.js';
import { errorMessage } from '../runtime/log.js';
import { decidePipe, pipeReads, upToDate, type PipeWorld } from './pipe-decide.js';
import type { ReconcileContext, ReconcileDecision } from './types.js';

/** Read what the Pipe's decision needs: its namespace's DataSources, the first node that does not compile, the catalog. */
export async function gatherPipeWorld(pipe: Pipe, ctx: ReconcileContext): Promise<PipeWorld> {
  const dataSources = ctx.lookup.dataSourcesIn(pipe.metadata.namespace ?? 'default');
  const ch = ctx.clickhouse;
  const ns = pipe.metadata.namespace ?? 'default';
  const missing = pipeReads(pipe, { dataSources }).filter((r) => ctx.lookup.dataSource(ns, r.split('/')[1] ?? '')?.status?.version === undefined);
  const into = pipe.spec.materialize ? ctx.lookup.dataSource(ns, pipe.spec.materialize.into) : undefined;
  const world: PipeWorld = { dataSources, connected: ch !== undefined, missingReads: missing, ...(into ? { into } : {}) };
  // SQL runs only once the tables it reads exist and weir can embed it.
  if (!ch || pipeSqlProblems(pipe).length > 0 || missing.length > 0) return world;
  const queryDb = queryDatabaseIn(pipe, dataSources);
  for (const node of pipe.spec.nodes) {
    const query = composeQuery(pipe.spec.nodes, node.name);
    // Nodes with {name:Type} placeholders compile with their Endpoint, which has the values.
    if (findPlaceholders(query).length > 0) continue;
    try {
      await ch.query(`DESCRIBE TABLE (${embedSql(query)})`, { database: queryDb });
    } catch (e) {
      return { ...world, compileProblem: { node: node.name, message: errorMessage(e) } };
    }
  }
  return { ...world, catalog: await (ctx.catalog ?? ((dbs) => observeCatalog(ch, dbs)))([queryDb]) };
}

/**
 * Pipe reconcile: gather, decide (references resolve, every node compiles in ClickHouse,
 * nothing is created otherwise), and execute a materialized Pipe's steps.
 */
export async function reconcilePipe(pipe: Pipe, ctx: ReconcileContext): Promise<ReconcileDecision<PipeStatus>> {
  const decided = decidePipe(pipe, await gatherPipeWorld(pipe, ctx), ctx.now);
  if ('decision' in decided) return decided.decision;
  const { plan, reads } = decided;
  // Only a connected world decides to run steps.
  const ch = ctx.clickhouse;
  if (!ch) throw new Error('a plan to execute needs a ClickHouse connection');
  const executor = new Executor(ch, {
    ...(ctx.log ? { log: ctx.log } : {}),
    ...(ctx.fenceTiming ? { fenceTiming: ctx.fenceTiming } : {}),
  });
  for (const step of plan.steps) await ctx.report?.({ type: 'Normal', reason: 'Applying', message: describePipeStep(step) });
  await executor.run(plan.steps);
  const ready = upToDate(pipe, plan, reads, ctx.now);
  ready.events.push({ type: 'Normal', reason: 'Applied', message: plan.steps.map(describePipeStep).join('; ') });
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
