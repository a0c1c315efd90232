import { loadResources } from './load.js';
import { formatValidationError } from '../api/validate.js';
import { applyProject, gatherProject } from '../execute/apply.js';
import { emptyCatalog } from '../plan/catalog.js';
import { connectClickHouse, type ClickHouse } from '../clickhouse/connection.js';
import type { ProjectResource } from '../plan/graph.js';
import { describeAnyStep, isPipeStep, pendingChanges, planProject, type ProjectPlan, type ResourcePlan, type Step } from '../plan/project-plan.js';
import { planHash, type MigrationStep } from '../plan/datasource-plan.js';
import { stepStatements } from '../plan/step-sql.js';
import { describeCapacity } from '../plan/preflight.js';
import { DEFAULT_FENCE_TIMING } from '../execute/fence.js';
import { createLogger, errorMessage } from '../runtime/log.js';
import type { DataSource } from '../api/datasource.js';
import type { Condition } from '../api/common.js';
import type { Endpoint } from '../api/endpoint.js';
import { findCondition } from '../controllers/conditions.js';
import { decideTable } from '../controllers/datasource-decide.js';
import { gatherTableWorld } from '../controllers/datasource.js';
import { gatherEndpointWorld } from '../controllers/endpoint.js';
import { decideEndpoint, servedHash } from '../controllers/endpoint-decide.js';
import { listLookup } from '../controllers/lookup.js';
import type { ReconcileContext } from '../controllers/types.js';
import { workerName } from '../controllers/workloads.js';
import { resourceKey } from '../plan/graph.js';

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

/** What the operator's decide says of a resource beyond its steps: an approval it waits for, an Endpoint's rollout or refusal. */
export interface Decided {
  key: string;
  /** migration.approval: Manual and no matching annotation: the command that approves. */
  awaitingApproval?: string;
  /** An Endpoint the operator would roll out: what it serves, from which Deployment, and the hash status.servedHash will show. */
  serve?: { path: string; params: string[]; deployment: string; servedHash: string; queryChecked: boolean };
  /** A verdict that stops the resource: Stalled is refused (exit 1), Reconciling waits. */
  refusal?: string;
  waiting?: string;
}

const verdictOf = (conditions: Condition[] | undefined) => {
  const stalled = findCondition(conditions, 'Stalled');
  if (stalled?.status === 'True') return { refusal: `${stalled.message ?? ''} (${stalled.reason ?? ''})` };
  const reconciling = findCondition(conditions, 'Reconciling');
  return { waiting: `${reconciling?.message ?? ''} (${reconciling?.reason ?? ''})` };
};

/**
 * The operator's gather and decide for each resource of the folder, as its informer caches would
 * hold them: the approval a Manual migration waits for, and each Endpoint's rollout. An Endpoint's
 * query is compiled against ClickHouse only when nothing is pending (before, its tables may not exist yet).
 */
export async function decideProject(resources: ProjectResource[], plan: ProjectPlan, ch: ClickHouse | undefined): Promise<Decided[]> {
  const now = new Date();
  const settled = pendingChanges(plan) === 0;
  const ctx = (withClickHouse: boolean): ReconcileContext => ({ now, lookup: listLookup(resources), ...(ch && withClickHouse ? { clickhouse: ch } : {}) });
  const out: Decided[] = [];
  for (const r of resources) {
    const key = resourceKey(r);
    if (r.kind === 'DataSource' && ch && plan.resources.find((p) => p.key === key)?.steps.length) {
      const ds = r as DataSource;
      const decided = decideTable(ds, await gatherTableWorld(ds, ctx(true)), now);
      if (decided.reason === 'AwaitingApproval')
        out.push({ key, awaitingApproval: findCondition(decided.decision.status.conditions, 'Reconciling')?.message ?? '' });
    } else if (r.kind === 'Endpoint') {
      const ep = r as Endpoint;
      const world = await gatherEndpointWorld(ep, ctx(settled));
      const decided = decideEndpoint(ep, { ...world, runsWorkers: true }, now);
      if ('decision' in decided) {
        out.push({ key, ...verdictOf(decided.decision.status.conditions) });
        continue;
      }
      const params = decided.params.map((p) => `${p.name} ${p.type}${p.required ? ' required' : p.default !== undefined ? ` = ${p.default}` : ''}`);
      out.push({
        key,
        serve: {
          path: `/v0/pipes/${decided.compiled.name}.json`,
          params,
          deployment: workerName({ kind: 'Endpoint', metadata: ep.metadata }, 'serve'),
          servedHash: servedHash(decided.compiled),
          queryChecked: ch !== undefined && settled,
        },
      });
    }
  }
  return out;
}

const serveLine = (s: NonNullable<Decided['serve']>): string =>
  `serve ${s.path} (${s.params.join(', ') || 'no parameters'}) from Deployment ${s.deployment}, served hash ${s.servedHash}` +
  (s.queryChecked ? '' : '; its query is compiled against ClickHouse once nothing is pending');

/** The plan as `weir plan -o json` prints it: per resource its steps (description, and the statements with --sql), hash and refusals. */
export function planDocument(plan: ProjectPlan, decided: Decided[], against: string, withSql: boolean) {
  const resources = plan.resources.map((r) => {
    const hash = hashOf(r);
    const approval = decided.find((d) => d.key === r.key)?.awaitingApproval;
    return {
      key: r.key,
      steps: r.steps.map((s) => ({ kind: s.kind, description: describeAnyStep(s), ...(withSql ? { sql: stepStatements(s) } : {}) })),
      ...(hash ? { planHash: hash } : {}),
      ...(r.capacity ? { copy: r.capacity } : {}),
      ...(r.drift ? { drift: r.drift } : {}),
      ...(approval ? { awaitingApproval: approval } : {}),
      refusals: r.refusals,
    };
  });
  const endpoints = decided
    .filter((d) => d.serve || d.refusal || d.waiting)
    .map((d) => ({ key: d.key, ...(d.serve ? { serve: d.serve } : {}), refusals: d.refusal ? [d.refusal] : [], ...(d.waiting ? { waiting: d.waiting } : {}) }));
  const refused = plan.resources.reduce((n, r) => n + r.refusals.length, 0) + endpoints.reduce((n, e) => n + e.refusals.length, 0);
  return { against, ...(plan.cycle ? { cycle: plan.cycle } : {}), resources, endpoints, pending: pendingChanges(plan), refused };
}

/** Print a plan; returns the number of refusals. */
export function printPlan(plan: ProjectPlan, decided: Decided[], against: string, withSql = false): number {
  if (plan.cycle) {
    console.error(`dependency cycle: ${plan.cycle.join(' -> ')}`);
    return 1;
  }
  console.log(`Plan (against ${against}):`);
  let refusals = 0;
  for (const r of plan.resources) {
    for (const d of r.drift ?? []) console.log(`  ${r.key}: drift: ${d}`);
    if (r.steps.length === 0 && r.refusals.length === 0) {
      console.log(`  ${r.key}: up to date`);
      continue;
    }
    for (const s of r.steps) {
      console.log(`  ${r.key}: ${describeAnyStep(s)}`);
      if (withSql) for (const sql of stepStatements(s)) console.log(`      ${sql.replace(/\n/g, '\n      ')}${sql.startsWith('--') ? '' : ';'}`);
    }
    if (r.capacity) console.log(`  ${r.key}: ${describeCapacity(r.capacity.table, r.capacity)}`);
    const hash = hashOf(r);
    if (hash) console.log(`  ${r.key}: plan hash ${hash}`);
    const approval = decided.find((d) => d.key === r.key)?.awaitingApproval;
    if (approval) console.log(`  ${r.key}: awaiting approval: ${approval}`);
    for (const why of r.refusals) {
      console.log(`  ${r.key}: REFUSED: ${why}`);
      refusals++;
    }
  }
  for (const d of decided) {
    if (d.serve) console.log(`  ${d.key}: ${serveLine(d.serve)}`);
    if (d.waiting) console.log(`  ${d.key}: waiting: ${d.waiting}`);
    if (d.refusal) {
      console.log(`  ${d.key}: REFUSED: ${d.refusal}`);
      refusals++;
    }
  }
  console.log(`${pendingChanges(plan)} change(s) pending${refusals ? `, ${refusals} refused` : ''}.`);
  return refusals;
}

function printJson(plan: ProjectPlan, decided: Decided[], against: string, withSql: boolean): number {
  const doc = planDocument(plan, decided, against, withSql);
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
    const decided = plan.cycle ? [] : await decideProject(resources, plan, ch);
    const against = flags.clickhouse ?? 'an empty ClickHouse; pass --clickhouse URL to compare with a live one';
    const refused = flags.output === 'json' ? printJson(plan, decided, against, flags.sql === true) : printPlan(plan, decided, against, flags.sql === true);
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
