import type { DataSource, DataSourceStatus, TableVersionRecord } from '../api/datasource.js';
import type { Pipe } from '../api/pipe.js';
import type { ProjectResource } from '../plan/graph.js';
import { databaseOf, tableOf } from '../api/names.js';
import { observeCatalog } from '../clickhouse/catalog.js';
import { MigrationRefusedError, Executor } from '../execute/executor.js';
import { gatherPreflight } from '../execute/preflight.js';
import { describeStep, planDataSource, type DataSourcePlan } from '../plan/datasource-plan.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import { decideTable, jobVerdict, lockedVerdict, observed, statusFor, type TableDecision, type TableWorld } from './datasource-decide.js';
import { holderName, TableLockedError, withTableLock } from '../execute/table-lock.js';
import { progressWorthReporting, statusProgress, type StatusProgress } from './progress.js';
import { workerName } from './workloads.js';
import { quarantineTableName } from '../plan/sql.js';
import { errorMessage } from '../runtime/log.js';
import { setCondition } from './conditions.js';
import { EVENTS_READY, INGESTION_READY, reconcileIngestion } from './ingestion.js';
import type { EventRecord, ReconcileContext, ReconcileDecision } from './types.js';

export { APPROVE_ANNOTATION } from './datasource-decide.js';

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
  let conditions = status.conditions;
  for (const [type, input] of [
    [INGESTION_READY, outcome.condition],
    [EVENTS_READY, outcome.eventsCondition],
  ] as const) {
    conditions = input ? setCondition(conditions, input, ds.metadata.generation ?? 0, ctx.now) : conditions?.filter((c) => c.type !== type);
  }
  if (conditions) status.conditions = conditions;
  const requeues = [decision.requeueAfterMs, outcome.requeueAfterMs].filter((n): n is number => n !== undefined);
  return { ...decision, status, ...(requeues.length > 0 ? { requeueAfterMs: Math.min(...requeues) } : {}) };
}

/** Read what the table's decision needs: the catalog, and the preflight facts of the copy a first plan holds. */
export async function gatherTableWorld(ds: DataSource, ctx: ReconcileContext): Promise<TableWorld> {
  const near = neighbours(ds, ctx);
  const ch = ctx.clickhouse;
  if (!ch) return { preflight: {}, neighbours: near };
  const catalog = await (ctx.catalog ?? ((dbs) => observeCatalog(ch, dbs)))([databaseOf(ds)]);
  const preflight = await gatherPreflight(ch, catalog, planDataSource(ds, catalog, near).steps);
  return { catalog, preflight, neighbours: near };
}

/**
 * The table: gather, decide, and execute what was decided (or write the status of waiting for
 * approval, or of a refusal). Long steps report progress as Events and status while they run.
 */
async function reconcileTable(ds: DataSource, ctx: ReconcileContext): Promise<ReconcileDecision<DataSourceStatus>> {
  const jobs = ctx.migrations;
  const key = `${ds.metadata.namespace ?? 'default'}/${ds.metadata.name}`;
  const job = (state: 'running' | 'queued', catalog: TableWorld['catalog'], migrationId?: string) =>
    statusFor(
      ds,
      jobVerdict(
        ds,
        catalog,
        { state, running: jobs?.runningKeys() ?? [], maxConcurrent: jobs?.maxConcurrent ?? 0, ...(migrationId ? { migrationId } : {}) },
        ctx.now,
      ),
      ctx.now,
    );
  if (jobs) {
    // A job that ended: write what it decided (or retry what failed). One running: say so, touching nothing.
    const outcome = jobs.take(key);
    if (outcome) {
      if ('error' in outcome) throw outcome.error;
      return outcome.decision;
    }
    // While its job runs, the job alone writes the migration's status (progress patches): a write from here,
    // made from this reconcile's cached copy, could put an older progress back. Unchanged status is not written.
    if (jobs.state(key) === 'running') return { status: ds.status ?? {}, events: [], requeueAfterMs: 30_000 };
  }
  const world = await gatherTableWorld(ds, ctx);
  const decided = decideTable(ds, world, ctx.now);
  if ('decision' in decided) return decided.decision;
  const ch = ctx.clickhouse;
  // Only a world with a catalog decides to execute, and only a connection reads one.
  if (!ch) throw new Error('a plan to execute needs a ClickHouse connection');
  // A migration runs as a job and this reconcile returns at once; other steps are quick and run here.
  if (jobs && decided.execute.migrating) {
    const state = jobs.submit(key, () => executeTable(ds, ctx, ch, decided.plan, decided.execute));
    return state === 'running' ? { ...job('running', world.catalog, decided.execute.migrationId), requeueAfterMs: 30_000 } : job('queued', world.catalog);
  }
  return executeTable(ds, ctx, ch, decided.plan, decided.execute);
}

/** Run the decided steps, reporting progress; a refusal the executor still finds stalls with MigrationRefused. */
async function executeTable(
  ds: DataSource,
  ctx: ReconcileContext,
  ch: ClickHouse,
  plan: DataSourcePlan,
  run: Extract<TableDecision, { execute: unknown }>['execute'],
): Promise<ReconcileDecision<DataSourceStatus>> {
  const { steps, migrating, migrationId: id } = run;
  const startedAt = ctx.now.toISOString();
  if (migrating) {
    await ctx.report?.(
      { type: 'Normal', reason: 'MigrationStarted', message: describeStep(migrating) },
      { phase: 'Migrating', migration: { id, state: 'Started', startedAt } },
    );
  }
  let reports: Promise<void> = Promise.resolve();
  let progress: StatusProgress | undefined;
  const executor = new Executor(ch, {
    ...(ctx.log ? { log: ctx.log } : {}),
    ...(ctx.fenceTiming ? { fenceTiming: ctx.fenceTiming } : {}),
    hooks: {
      onProgress: (step, state, detail) => {
        if (step.kind !== 'CopyAndSwap' && step.kind !== 'SwapBack') return;
        const event: EventRecord = {
          type: 'Normal',
          reason: `Migration${state}`,
          message: `${plan.table} v${step.fromVersion} → v${step.toVersion}: ${state}${detail ? ` ${JSON.stringify(detail)}` : ''}`,
        };
        // Chained, so reports land in order and all before the final status is written.
        reports = reports.then(() => ctx.report?.(event, { migration: { id, state, step: state, startedAt, ...(progress ? { progress } : {}) } }));
      },
      onMigrationProgress: (step, p) => {
        if (step.kind !== 'CopyAndSwap') return;
        const next = statusProgress(p, Date.now());
        if (!progressWorthReporting(progress, next)) return;
        progress = next;
        reports = reports.then(() => ctx.report?.(undefined, { migration: { id, state: p.phase, step: p.phase, startedAt, progress: next } }));
      },
    },
  });
  const database = databaseOf(ds);
  const holder = `${ctx.lockHolder ?? holderName('weir')}${migrating ? ` migration ${id}` : ''}`;
  try {
    // One executor per table: another (a weir apply by hand, the previous leader) holds it until it ends or its lease expires.
    await withTableLock(ch, { database, table: tableOf(ds) }, holder, () => executor.run(plan.steps), ctx.log ? { log: ctx.log } : {});
  } catch (e) {
    await reports;
    if (e instanceof TableLockedError) {
      return { ...statusFor(ds, lockedVerdict(ds, await observeCatalog(ch, [database]), e.message), new Date()), requeueAfterMs: 5_000 };
    }
    if (e instanceof MigrationRefusedError) {
      return statusFor(
        ds,
        {
          health: { state: 'Stalled', reason: 'MigrationRefused', message: errorMessage(e) },
          phase: 'Failed',
          extra: observed(ds, await observeCatalog(ch, [database])),
        },
        new Date(),
      );
    }
    throw e;
  }
  await reports;
  const now = observed(ds, await observeCatalog(ch, [database]));
  const history =
    now.version !== undefined
      ? withHistory(ds, {
          version: now.version,
          specHash: now.specHash ?? '',
          appliedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          table: plan.table,
          plan: steps,
        })
      : ds.status?.history;
  const fence = executor.fenceReports.at(-1);
  return {
    ...statusFor(
      ds,
      {
        health: { state: 'Ready', reason: 'UpToDate', message: `Applied: ${steps.join('; ')}` },
        phase: 'Ready',
        extra: { ...now, ...(history ? { history } : {}) },
      },
      new Date(),
    ),
    events: [
      {
        type: 'Normal',
        reason: migrating ? 'MigrationCompleted' : 'Applied',
        message: `${steps.join('; ')}${fence ? ` (fence held ${fence.heldMs} ms)` : ''}`,
      },
    ],
  };
}

/** Drop what the DataSource owns in ClickHouse when deletionPolicy is Delete; keep it otherwise. */
export async function finalizeDataSource(ds: DataSource, ctx: ReconcileContext): Promise<void> {
  // Owner references would let the garbage collector do it; deleting first stops the writers before their table goes.
  for (const component of ['ingest', 'events'] as const)
    if (ctx.workloads) await ctx.workloads.remove(ds.metadata.namespace ?? 'default', workerName({ kind: 'DataSource', metadata: ds.metadata }, component));
  const ch = ctx.clickhouse;
  if (!ch || (ds.spec.deletionPolicy ?? 'Retain') !== 'Delete') return;
  const database = databaseOf(ds);
  const table = tableOf(ds);
  const catalog = await observeCatalog(ch, [database]);
  const owned = catalog.tables.filter(
    (t) => t.database === database && (t.name === table || t.name === quarantineTableName(table) || t.name.startsWith(`${table}__`)),
  );
  for (const t of owned) await ch.command(`DROP TABLE IF EXISTS \`${database}\`.\`${t.name}\``);
  ctx.log?.info('dropped tables (deletionPolicy: Delete)', { tables: owned.map((t) => t.name) });
}
