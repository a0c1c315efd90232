// observe → plan → execute for a whole project, against one ClickHouse. Used by `weir apply`,
// `weir dev` and (per resource) the operator.
import type { DataSource } from '../api/datasource.js';
import { databaseOf, tableOf } from '../api/names.js';
import type { Pipe } from '../api/pipe.js';
import { resourceKey, type ProjectResource } from '../plan/graph.js';
import { composeQuery } from '../plan/pipe-plan.js';
import { describeAnyStep, isPipeStep, planProject, type ProjectPlan, type Step } from '../plan/project-plan.js';
import { findPlaceholders } from '../plan/sql-scan.js';
import { embedSql } from '../plan/sql.js';
import { isRetriable, WeirError } from '../runtime/errors.js';
import { errorMessage, type Logger } from '../runtime/log.js';
import { observeCatalog } from '../clickhouse/catalog.js';
import type { Catalog } from '../plan/catalog.js';
import type { MigrationStep } from '../plan/datasource-plan.js';
import type { Preflight } from '../plan/preflight.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import { ErrorCode, toClickHouseError } from '../clickhouse/errors.js';
import { Executor, type BackfillOptions, type ExecutionHooks } from './executor.js';
import type { FenceTiming } from './fence.js';
import { gatherPreflight } from './preflight.js';
import { holderName, withTableLock } from './table-lock.js';

const databasesOf = (resources: ProjectResource[]): string[] => [...new Set(resources.filter((r): r is DataSource => r.kind === 'DataSource').map(databaseOf))];

async function observeProject(ch: ClickHouse, resources: ProjectResource[]): Promise<Catalog> {
  return observeCatalog(ch, databasesOf(resources));
}

/** What a project's plan is decided on: the catalog, and the preflight facts of the copies a first plan holds. */
export interface ProjectWorld {
  catalog: Catalog;
  preflight: Preflight;
}

export async function gatherProject(ch: ClickHouse, resources: ProjectResource[]): Promise<ProjectWorld> {
  const catalog = await observeProject(ch, resources);
  const draft = planProject(resources, catalog);
  const steps = draft.resources.flatMap((r) => r.steps).filter((s): s is MigrationStep => !isPipeStep(s));
  return { catalog, preflight: await gatherPreflight(ch, catalog, steps) };
}

/** The project's plan cannot be run as it is (a cycle, a refusal): fix the resources. */
export class PlanRefusedError extends WeirError {
  constructor(message: string) {
    super(message, { retriable: false, reason: 'PlanRefused' });
  }
}

/**
 * An apply that stopped at one resource's step: the resource, the problem (for a Pipe, the node
 * whose SQL does not compile), and which steps of the save were applied before it and which were
 * not. Retriable when the step's own failure is.
 */
export class ApplyFailedError extends WeirError {
  constructor(
    readonly resource: string,
    readonly problem: string,
    readonly applied: string[],
    readonly notApplied: string[],
    cause: unknown,
  ) {
    super(`${resource}: ${problem}\napplied: ${applied.join('; ') || 'nothing'}\nnot applied: ${notApplied.join('; ')}`, {
      // A fence that timed out says so itself; a raw client error needs reading.
      retriable: isRetriable(cause) || toClickHouseError(cause).retriable,
      reason: 'ApplyFailed',
      cause,
    });
  }
}

class NodeDoesNotCompile extends Error {}

/**
 * Compile a materialized Pipe's nodes, up to the one it materializes, before its view is made:
 * ClickHouse's error then names the user's SQL and the node, not weir's CREATE … COMMENT around it.
 */
async function compilePipeNodes(ch: ClickHouse, pipe: Pipe, database: string): Promise<void> {
  const upTo = pipe.spec.materialize?.node;
  const last = upTo === undefined ? pipe.spec.nodes.length - 1 : pipe.spec.nodes.findIndex((n) => n.name === upTo);
  for (const node of pipe.spec.nodes.slice(0, last + 1)) {
    const query = composeQuery(pipe.spec.nodes, node.name);
    // Nodes with {name:Type} placeholders compile with their Endpoint, which has the values.
    if (findPlaceholders(query).length > 0) continue;
    try {
      await ch.query(`DESCRIBE TABLE (${embedSql(query)})`, { database, settings: { readonly: 2 } });
    } catch (e) {
      const error = toClickHouseError(e);
      const reason = error.code === ErrorCode.SYNTAX_ERROR ? await syntaxProblem(ch, query, database, error) : error.message;
      throw new NodeDoesNotCompile(`node ${node.name}: the SQL does not compile: ${reason.split('\n')[0] ?? ''}`, { cause: e });
    }
  }
}

/** A syntax error as the query alone has it (the DESCRIBE around it would point at weir's closing parenthesis). */
async function syntaxProblem(ch: ClickHouse, query: string, database: string, fallback: Error): Promise<string> {
  try {
    // Last in the statement, so nothing of weir's follows it; command() adds no FORMAT either.
    await ch.command(`EXPLAIN SYNTAX ${query}`, { database, settings: { readonly: 2 } });
    return fallback.message;
  } catch (e) {
    // The position counts EXPLAIN's own words; the line and column are the query's.
    return toClickHouseError(e).message.replace(/failed at position \d+ \((.*?)\) \(line/, 'failed at $1 (line');
  }
}

export interface ApplyOptions {
  log: Logger;
  /** Who holds the tables while this applies (default "weir apply on <host> (pid N)"). */
  holder?: string;
  hooks?: ExecutionHooks;
  fenceTiming?: FenceTiming;
  backfill?: Partial<BackfillOptions>;
}

/**
 * Converge ClickHouse to the resources. Refuses as a whole (changing nothing) when any resource's
 * plan is refused; a step that fails stops the apply with an ApplyFailedError saying what was applied.
 */
export async function applyProject(ch: ClickHouse, resources: ProjectResource[], opts: ApplyOptions): Promise<{ plan: ProjectPlan; executor: Executor }> {
  const world = await gatherProject(ch, resources);
  const plan = planProject(resources, world.catalog, world.preflight);
  if (plan.cycle) throw new PlanRefusedError(`dependency cycle: ${plan.cycle.join(' -> ')}`);
  const refusals = plan.resources.flatMap((r) => r.refusals.map((why) => `${r.key}: ${why}`));
  if (refusals.length > 0) throw new PlanRefusedError(refusals.join('\n'));
  const done = new Set<Step>();
  const hooks: ExecutionHooks = {
    onProgress: (step, state, detail) => {
      if (state === 'Done') done.add(step);
      opts.hooks?.onProgress?.(step, state, detail);
    },
    onMigrationProgress: (step, progress) => opts.hooks?.onMigrationProgress?.(step, progress),
  };
  const executor = new Executor(ch, {
    log: opts.log,
    hooks,
    ...(opts.fenceTiming ? { fenceTiming: opts.fenceTiming } : {}),
    ...(opts.backfill ? { backfill: opts.backfill } : {}),
  });
  const byKey = new Map(resources.map((r) => [resourceKey(r), r]));
  for (const [i, r] of plan.resources.entries()) {
    try {
      const resource = byKey.get(r.key);
      const pipeStep = r.steps.find(isPipeStep);
      if (resource?.kind === 'Pipe' && pipeStep) await compilePipeNodes(ch, resource as Pipe, pipeStep.database);
      // A DataSource's table has one executor at a time: an operator migrating it refuses this apply, by name.
      if (resource?.kind === 'DataSource' && r.steps.length > 0) {
        const ds = resource as DataSource;
        await withTableLock(ch, { database: databaseOf(ds), table: tableOf(ds) }, opts.holder ?? holderName('weir apply'), () => executor.run(r.steps), {
          log: opts.log,
        });
      } else await executor.run(r.steps);
    } catch (e) {
      const steps = plan.resources.flatMap((x) => x.steps);
      const reason = e instanceof NodeDoesNotCompile ? e.message : errorMessage(e);
      const notApplied = plan.resources
        .slice(i)
        .flatMap((x) => x.steps)
        .filter((s) => !done.has(s));
      throw new ApplyFailedError(
        r.key.replace('/', ' '),
        reason,
        steps.filter((s) => done.has(s)).map(describeAnyStep),
        notApplied.map(describeAnyStep),
        e instanceof NodeDoesNotCompile ? e.cause : e,
      );
    }
  }
  return { plan, executor };
}
