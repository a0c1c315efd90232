// plan for a whole project: every DataSource and Pipe, in dependency order, against one
// observed catalog. This is what `weir plan` prints and what `weir apply`, `weir dev` and
// the operator execute. Name clashes between resources (project-checks.ts) are refused here
// as in `weir validate`, so every path refuses them with the same message.
import type { DataSource } from '../api/datasource.js';
import type { Pipe } from '../api/pipe.js';
import type { Catalog } from './catalog.js';
import type { Capacity, Preflight } from './preflight.js';
import { describeStep, planDataSource, type MigrationStep } from './datasource-plan.js';
import { applyOrder, resourceKey, type ProjectResource } from './graph.js';
import { describePipeStep, planPipe, type PipeStep } from './pipe-plan.js';

export type Step = MigrationStep | PipeStep;

export interface ResourcePlan {
  key: string;
  steps: Step[];
  refusals: string[];
  /** A DataSource's copy-and-swap: the table, its rows and bytes, and the room on its disk. */
  capacity?: Capacity & { table: string };
  /** How a DataSource's live table differs from the shape weir built it with (ALTERs by hand). */
  drift?: string[];
}

export interface ProjectPlan {
  resources: ResourcePlan[];
  /** A dependency cycle, named; nothing is planned when there is one. */
  cycle?: string[];
}

export const isPipeStep = (s: Step): s is PipeStep => ['CreateView', 'ModifyViewQuery', 'RecomputeView', 'FinishRecompute'].includes(s.kind);
export const describeAnyStep = (s: Step): string => (isPipeStep(s) ? describePipeStep(s) : describeStep(s));

/** `preflight`: what execute/preflight.ts read for the copies a first plan had (refused here, as the executor would). */
export function planProject(resources: ProjectResource[], catalog: Catalog, preflight: Preflight = {}): ProjectPlan {
  const ordered = applyOrder(resources);
  if ('cycle' in ordered) return { resources: [], cycle: ordered.cycle };
  const byKey = new Map(resources.map((r) => [resourceKey(r), r]));
  const dataSources = resources.filter((r): r is DataSource => r.kind === 'DataSource');
  const out: ProjectPlan = { resources: [] };
  // Databases created by an earlier resource's steps exist for the later ones.
  const planned: Catalog = { ...catalog, databases: [...catalog.databases] };
  for (const key of ordered.order) {
    const r = byKey.get(key);
    if (!r || r.kind === 'Endpoint') continue;
    if (r.kind === 'DataSource') {
      const p = planDataSource(r as DataSource, planned, resources, preflight);
      for (const s of p.steps) if (s.kind === 'CreateDatabase') planned.databases.push(s.database);
      out.resources.push({
        key,
        steps: p.steps,
        refusals: [...p.refusals, ...p.preflightRefusals],
        ...(p.capacity ? { capacity: { table: p.table, ...p.capacity } } : {}),
        ...(p.drift.length > 0 ? { drift: p.drift } : {}),
      });
    } else {
      const p = planPipe(r as Pipe, dataSources, planned, resources);
      out.resources.push({ key, steps: p.steps, refusals: p.refusals });
    }
  }
  return out;
}

export const pendingChanges = (plan: ProjectPlan): number => plan.resources.reduce((n, r) => n + r.steps.length, 0);
