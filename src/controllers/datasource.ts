import type { DataSource, DataSourceStatus, TableVersionRecord } from '../api/datasource.js';
import type { Pipe } from '../api/pipe.js';
import type { ProjectResource } from '../plan/graph.js';
import { databaseOf, qualifiedTableOf, tableOf } from '../api/names.js';
import { observeCatalog } from '../clickhouse/catalog.js';
import { findTable, type Catalog } from '../plan/catalog.js';
import { MigrationRefusedError, Executor } from '../execute/executor.js';
import { gatherPreflight } from '../execute/preflight.js';
import { describeStep, planDataSource, type MigrationStep } from '../plan/datasource-plan.js';
import { workerName } from './workloads.js';
import { quarantineTableName } from '../plan/sql.js';
import { stableHash } from '../runtime/hash.js';
import { errorMessage } from '../runtime/log.js';
import { setCondition, type Health } from './conditions.js';
import { INGESTION_READY, reconcileIngestion } from './ingestion.js';
import { healthStatus } from './status.js';
import type { EventRecord, ReconcileContext, ReconcileDecision } from './types.js';

/** The annotation that approves a pending plan (migration.approval: Manual): its value is the plan hash. */
export const APPROVE_ANNOTATION = 'weir.dev/approve-plan';

const needsApproval = (ds: DataSource, steps: MigrationStep[]) =>
  ds.spec.migration?.approval === 'Manual' && steps.some((s) => s.kind === 'CopyAndSwap' || s.kind === 'SwapBack');

function decide(ds: DataSource, ctx: ReconcileContext, health: Health, phase: string, extra: Partial<DataSourceStatus>, requeueAfterMs?: number): ReconcileDecision<DataSourceStatus> {
  const { status, events } = healthStatus(ds.status, ds.metadata.generation ?? 0, health, phase, ctx.now);
  const database = databaseOf(ds);
  const next: DataSourceStatus = { ...ds.status, ...status, database, table: qualifiedTableOf(ds), ...extra };
  if (!('pendingPlan' in extra)) delete next.pendingPlan;
  if (!('migration' in extra)) delete next.migration;
  return { status: next, events, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
}

/** The live table's version, spec hash and row count, as status shows them. */
function observed(ds: DataSource, catalog: Catalog): Partial<DataSourceStatus> {
  const live = findTable(catalog, databaseOf(ds), tableOf(ds));
  if (!live?.marker) return {};
  return { version: live.marker.version, specHash: live.marker.specHash, rows: live.totalRows };
}

function withHistory(ds: DataSource, record: TableVersionRecord): TableVersionRecord[] {
  const history = [...(ds.status?.history ?? []).filter((h) => h.version !== record.version), record];
  return history.sort((a, b) => a.version - b.version).slice(-20);
}

/** The resources whose ClickHouse names could clash with the DataSource's: its namespace's DataSources, and the Pipes named like its table or quarantine table. */
function neighbours(ds: DataSource, ctx: ReconcileContext): ProjectResource[] {
  const ns = ds.metadata.namespace ?? 'default';
  const pipes = [ds.metadata.name, `${ds.metadata.name}-quarantine`].map((name) => ctx.lookup.pipe(ns, name)).filter((p): p is Pipe => p !== undefined);
  return [...ctx.lookup.dataSourcesIn(ns), ...pipes];
}

/**
 * DataSource reconcile: the table (reconcileTable), then the ingestion Deployment when the
 * operator runs workers. IngestionReady is its own condition: a table that is up to date is
 * Ready even while its ingestion pods start.
 */
export async function reconcileDataSource(ds: DataSource, ctx: ReconcileContext): Promise<ReconcileDecision<DataSourceStatus>> {
  const decision = await reconcileTable(ds, ctx);
  if (!ctx.workloads) return decision;
  const outcome = await reconcileIngestion(ds, ctx.workloads, ctx.clickhouse);
  const status: DataSourceStatus = { ...decision.status };
  if (outcome.ingestion) status.ingestion = outcome.ingestion;
  else delete status.ingestion;
  // Without conditions before, and none to set, there stay none.
  const conditions = outcome.condition
    ? setCondition(status.conditions, outcome.condition, ds.metadata.generation ?? 0, ctx.now)
    : status.conditions?.filter((c) => c.type !== INGESTION_READY);
  if (conditions) status.conditions = conditions;
  const requeues = [decision.requeueAfterMs, outcome.requeueAfterMs].filter((n): n is number => n !== undefined);
  return { ...decision, status, ...(requeues.length > 0 ? { requeueAfterMs: Math.min(...requeues) } : {}) };
}

/**
 * The table: observe the catalog, plan, and execute (or wait for approval, or refuse). Long
 * steps report progress as Events and status while they run.
 */
async function reconcileTable(ds: DataSource, ctx: ReconcileContext): Promise<ReconcileDecision<DataSourceStatus>> {
  const ch = ctx.clickhouse;
  if (!ch) {
    return decide(ds, ctx, {
      state: 'Reconciling',
      reason: 'NoClickHouseConnection',
      message: `Spec is valid; table ${qualifiedTableOf(ds)} is not converged because the operator has no ClickHouse connection (--clickhouse-url).`,
    }, 'Pending', { specHash: stableHash(ds.spec) });
  }
  const database = databaseOf(ds);
  const catalog = await observeCatalog(ch, [database]);
  const preflight = await gatherPreflight(ch, catalog, planDataSource(ds, catalog, neighbours(ds, ctx)).steps);
  const plan = planDataSource(ds, catalog, neighbours(ds, ctx), preflight);
  if (plan.refusals.length > 0) {
    return decide(ds, ctx, { state: 'Stalled', reason: 'PlanRefused', message: plan.refusals.join('; ') }, 'Failed', observed(ds, catalog));
  }
  if (plan.preflightRefusals.length > 0) {
    return decide(ds, ctx, { state: 'Stalled', reason: 'MigrationRefused', message: plan.preflightRefusals.join('; ') }, 'Failed', observed(ds, catalog));
  }
  if (plan.steps.length === 0) {
    return decide(ds, ctx, { state: 'Ready', reason: 'UpToDate', message: `Table ${plan.table} matches the spec.` }, 'Ready', observed(ds, catalog));
  }
  const steps = plan.steps.map(describeStep);
  const planHash = stableHash(steps);
  if (needsApproval(ds, plan.steps) && ds.metadata.annotations?.[APPROVE_ANNOTATION] !== planHash) {
    return decide(
      ds,
      ctx,
      { state: 'Reconciling', reason: 'AwaitingApproval', message: `A migration is planned; approve it with: kubectl annotate datasource ${ds.metadata.name} ${APPROVE_ANNOTATION}=${planHash} --overwrite` },
      'AwaitingApproval',
      { ...observed(ds, catalog), pendingPlan: { hash: planHash, steps } },
    );
  }

  const migrating = plan.steps.find((s): s is Extract<MigrationStep, { kind: 'CopyAndSwap' | 'SwapBack' }> => s.kind === 'CopyAndSwap' || s.kind === 'SwapBack');
  const startedAt = ctx.now.toISOString();
  const id = `v${migrating?.toVersion ?? 1}-${planHash.slice(0, 8)}`;
  if (migrating) {
    await ctx.report?.({ type: 'Normal', reason: 'MigrationStarted', message: describeStep(migrating) }, { phase: 'Migrating', migration: { id, state: 'Started', startedAt } });
  }
  let reports: Promise<void> = Promise.resolve();
  const executor = new Executor(ch, {
    ...(ctx.log ? { log: ctx.log } : {}),
    ...(ctx.fenceTiming ? { fenceTiming: ctx.fenceTiming } : {}),
    hooks: {
      onProgress: (step, state, detail) => {
        if (step.kind !== 'CopyAndSwap' && step.kind !== 'SwapBack') return;
        const event: EventRecord = { type: 'Normal', reason: `Migration${state}`, message: `${plan.table} v${step.fromVersion} → v${step.toVersion}: ${state}${detail ? ` ${JSON.stringify(detail)}` : ''}` };
        // Chained, so reports land in order and all before the final status is written.
        reports = reports.then(() => ctx.report?.(event, { migration: { id, state, step: state, startedAt } }));
      },
    },
  });
  try {
    await executor.run(plan.steps);
  } catch (e) {
    await reports;
    if (e instanceof MigrationRefusedError) {
      return decide(ds, ctx, { state: 'Stalled', reason: 'MigrationRefused', message: errorMessage(e) }, 'Failed', observed(ds, catalog));
    }
    throw e;
  }
  await reports;
  const after = await observeCatalog(ch, [database]);
  const now = observed(ds, after);
  const history = now.version !== undefined
    ? withHistory(ds, { version: now.version, specHash: now.specHash ?? '', appliedAt: ctx.now.toISOString().replace(/\.\d+Z$/, 'Z'), table: plan.table, plan: steps })
    : ds.status?.history;
  const fence = executor.fenceReports.at(-1);
  return {
    ...decide(ds, ctx, { state: 'Ready', reason: 'UpToDate', message: `Applied: ${steps.join('; ')}` }, 'Ready', { ...now, ...(history ? { history } : {}) }),
    events: [
      { type: 'Normal', reason: migrating ? 'MigrationCompleted' : 'Applied', message: `${steps.join('; ')}${fence ? ` (fence held ${fence.heldMs} ms)` : ''}` },
    ],
  };
}

/** Drop what the DataSource owns in ClickHouse when deletionPolicy is Delete; keep it otherwise. */
export async function finalizeDataSource(ds: DataSource, ctx: ReconcileContext): Promise<void> {
  // Owner references would let the garbage collector do it; deleting first stops the writers before their table goes.
  if (ctx.workloads) await ctx.workloads.remove(ds.metadata.namespace ?? 'default', workerName({ kind: 'DataSource', metadata: ds.metadata }, 'ingest'));
  const ch = ctx.clickhouse;
  if (!ch || (ds.spec.deletionPolicy ?? 'Retain') !== 'Delete') return;
  const database = databaseOf(ds);
  const table = tableOf(ds);
  const catalog = await observeCatalog(ch, [database]);
  const owned = catalog.tables.filter((t) => t.database === database && (t.name === table || t.name === quarantineTableName(table) || t.name.startsWith(`${table}__`)));
  for (const t of owned) await ch.command(`DROP TABLE IF EXISTS \`${database}\`.\`${t.name}\``);
  ctx.log?.info('dropped tables (deletionPolicy: Delete)', { tables: owned.map((t) => t.name) });
}
