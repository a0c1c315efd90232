// observe → plan → execute for a whole project, against one ClickHouse. Used by `weir apply`,
// `weir dev` and (per resource) the operator.
import type { DataSource } from '../api/datasource.js';
import { databaseOf } from '../api/names.js';
import type { ProjectResource } from '../plan/graph.js';
import { planProject, type ProjectPlan } from '../plan/project-plan.js';
import type { Logger } from '../runtime/log.js';
import { observeCatalog, type Catalog } from './catalog.js';
import type { ClickHouse } from './connection.js';
import { Executor, type ExecutionHooks } from './executor.js';
import type { FenceTiming } from './fence.js';

export const databasesOf = (resources: ProjectResource[]): string[] => [
  ...new Set(
    resources
      .filter((r): r is DataSource => r.kind === 'DataSource')
      .map(databaseOf),
  ),
];

export async function observeProject(ch: ClickHouse, resources: ProjectResource[]): Promise<Catalog> {
  return observeCatalog(ch, databasesOf(resources));
}

export class PlanRefusedError extends Error {
  readonly retriable = false;
}

export interface ApplyOptions {
  log: Logger;
  hooks?: ExecutionHooks;
  fenceTiming?: FenceTiming;
}

/** Converge ClickHouse to the resources. Refuses as a whole (changing nothing) when any resource's plan is refused. */
export async function applyProject(ch: ClickHouse, resources: ProjectResource[], opts: ApplyOptions): Promise<{ plan: ProjectPlan; executor: Executor }> {
  const catalog = await observeProject(ch, resources);
  const plan = planProject(resources, catalog);
  if (plan.cycle) throw new PlanRefusedError(`dependency cycle: ${plan.cycle.join(' -> ')}`);
  const refusals = plan.resources.flatMap((r) => r.refusals.map((why) => `${r.key}: ${why}`));
  if (refusals.length > 0) throw new PlanRefusedError(refusals.join('\n'));
  const executor = new Executor(ch, {
    log: opts.log,
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
    ...(opts.fenceTiming ? { fenceTiming: opts.fenceTiming } : {}),
  });
  for (const r of plan.resources) await executor.run(r.steps);
  return { plan, executor };
}
