import { loadResources } from './load.js';
import { formatValidationError } from '../api/validate.js';
import { applyProject, gatherProject } from '../execute/apply.js';
import { emptyCatalog } from '../plan/catalog.js';
import { connectClickHouse, type ClickHouse } from '../clickhouse/connection.js';
import type { ProjectResource } from '../plan/graph.js';
import { describeAnyStep, isPipeStep, pendingChanges, planProject, type ProjectPlan, type ResourcePlan, type Step } from '../plan/project-plan.js';
import { planHash, type MigrationStep } from '../plan/datasource-plan.js';
import { stepStatements } from '../plan/step-sql.js';
import { DEFAULT_FENCE_TIMING } from '../execute/fence.js';
import { createLogger, errorMessage } from '../runtime/log.js';

/** Exit codes, as `terraform plan -detailed-exitcode`: 0 nothing to do, 1 error, 2 changes pending. */
export const PLAN_EXIT = { noChanges: 0, error: 1, changes: 2 } as const;

export interface ProjectFlags {
  filename: string;
  namespace: string;
  clickhouse?: string;
  user?: string;
  password?: string;
  /** Longest a fence may hold writers before it expires on its own (ms). */
  fenceTtl?: number;
  /** `weir plan -o json`: one JSON document for CI instead of lines. */
  output?: 'text' | 'json';
  /** `weir plan --sql`: the statements each step runs, under it. */
  sql?: boolean;
}

function load(flags: ProjectFlags): ProjectResource[] | undefined {
  const loaded = loadResources(flags.filename, { defaultNamespace: flags.namespace });
  for (const e of loaded.errors) console.error(formatValidationError(e));
  return loaded.errors.length > 0 ? undefined : loaded.resources.map((r) => r.object as unknown as ProjectResource);
}

const connect = (flags: ProjectFlags): ClickHouse =>
  connectClickHouse({ url: flags.clickhouse ?? 'http://127.0.0.1:8123', ...(flags.user ? { username: flags.user, password: flags.password ?? '' } : {}) });

const stepLabel = (s: Step): string => `${s.kind} ${s.database}.${'table' in s ? s.table : 'view' in s ? s.view : ''}`.replace(/\.$/, '');

/** A DataSource's steps carry the hash its approval names (weir.dev/approve-plan), as the operator's status.pendingPlan.hash. */
const hashOf = (r: ResourcePlan): string | undefined =>
  r.key.startsWith('DataSource/') && r.steps.length > 0 ? planHash(r.steps.filter((s): s is MigrationStep => !isPipeStep(s))) : undefined;

/** The plan as `weir plan -o json` prints it: per resource its steps (description, and the statements with --sql), hash and refusals. */
export function planDocument(plan: ProjectPlan, against: string, withSql: boolean) {
  const resources = plan.resources.map((r) => {
    const hash = hashOf(r);
    return {
      key: r.key,
      steps: r.steps.map((s) => ({ kind: s.kind, description: describeAnyStep(s), ...(withSql ? { sql: stepStatements(s) } : {}) })),
      ...(hash ? { planHash: hash } : {}),
      refusals: r.refusals,
    };
  });
  const refused = plan.resources.reduce((n, r) => n + r.refusals.length, 0);
  return { against, ...(plan.cycle ? { cycle: plan.cycle } : {}), resources, pending: pendingChanges(plan), refused };
}

/** Print a plan; returns the number of refusals. */
export function printPlan(plan: ProjectPlan, against: string, withSql = false): number {
  if (plan.cycle) {
    console.error(`dependency cycle: ${plan.cycle.join(' -> ')}`);
    return 1;
  }
  console.log(`Plan (against ${against}):`);
  let refusals = 0;
  for (const r of plan.resources) {
    if (r.steps.length === 0 && r.refusals.length === 0) {
      console.log(`  ${r.key}: up to date`);
      continue;
    }
    for (const s of r.steps) {
      console.log(`  ${r.key}: ${describeAnyStep(s)}`);
      if (withSql) for (const sql of stepStatements(s)) console.log(`      ${sql.replace(/\n/g, '\n      ')}${sql.startsWith('--') ? '' : ';'}`);
    }
    const hash = hashOf(r);
    if (hash) console.log(`  ${r.key}: plan hash ${hash}`);
    for (const why of r.refusals) {
      console.log(`  ${r.key}: REFUSED: ${why}`);
      refusals++;
    }
  }
  console.log(`${pendingChanges(plan)} change(s) pending${refusals ? `, ${refusals} refused` : ''}.`);
  return refusals;
}

function printJson(plan: ProjectPlan, against: string, withSql: boolean): number {
  const doc = planDocument(plan, against, withSql);
  console.log(JSON.stringify(doc, null, 2));
  return plan.cycle ? 1 : doc.refused;
}

/** `weir plan -f DIR [--clickhouse URL]`: what would change, without changing anything. */
export async function runPlan(flags: ProjectFlags): Promise<number> {
  const resources = load(flags);
  if (!resources) return PLAN_EXIT.error;
  let ch: ClickHouse | undefined;
  try {
    ch = flags.clickhouse ? connect(flags) : undefined;
    const world = ch ? await gatherProject(ch, resources) : { catalog: emptyCatalog(), preflight: {} };
    const plan = planProject(resources, world.catalog, world.preflight);
    const against = flags.clickhouse ?? 'an empty ClickHouse; pass --clickhouse URL to compare with a live one';
    const refused = flags.output === 'json' ? printJson(plan, against, flags.sql === true) : printPlan(plan, against, flags.sql === true);
    if (plan.cycle || refused > 0) return PLAN_EXIT.error;
    return pendingChanges(plan) > 0 ? PLAN_EXIT.changes : PLAN_EXIT.noChanges;
  } catch (e) {
    console.error(`weir plan: ${errorMessage(e)}`);
    return PLAN_EXIT.error;
  } finally {
    await ch?.close();
  }
}

/** `weir apply -f DIR --clickhouse URL`: converge ClickHouse to the folder once, printing each step. */
export async function runApply(flags: ProjectFlags): Promise<number> {
  const resources = load(flags);
  if (!resources) return 1;
  const ch = connect(flags);
  const log = createLogger({ component: 'apply' });
  try {
    const { plan, executor } = await applyProject(ch, resources, {
      log,
      hooks: { onProgress: (step, state, detail) => console.log(`${stepLabel(step)}: ${state}${detail ? ` ${JSON.stringify(detail)}` : ''}`) },
      ...(flags.fenceTtl ? { fenceTiming: { ...DEFAULT_FENCE_TIMING, fenceTtlMs: flags.fenceTtl } } : {}),
    });
    const longest = Math.max(0, ...executor.fenceReports.map((r) => r.heldMs));
    console.log(`applied ${pendingChanges(plan)} change(s)${executor.fenceReports.length ? `; longest fence ${longest} ms` : ''}.`);
    return 0;
  } catch (e) {
    console.error(`weir apply: ${errorMessage(e)}`);
    return 1;
  } finally {
    await ch.close();
  }
}
