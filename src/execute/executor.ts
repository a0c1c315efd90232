// execute: run the planner's steps against ClickHouse. Copy-and-swap migrations are a small
// state machine whose progress is kept in weir.migrations (and in each table's own marker),
// so an executor killed at any point resumes where it was, with nothing lost or doubled.
import { randomBytes } from 'node:crypto';
import { NEXT_TABLE_SUFFIX, versionTableName, type MigrationStep } from '../plan/datasource-plan.js';
import { RECOMPUTE_TABLE_SUFFIX, VIEW_MARKER_PREFIX, viewMarker, type PipeStep } from '../plan/pipe-plan.js';
import { describeAnyStep, isPipeStep, type Step } from '../plan/project-plan.js';
import { createQuarantineSql, createTableSql, embedSql, qualified, quarantineComment, quarantineTableName, quoteIdentifier, quoteString, type TableShape } from '../plan/sql.js';
import { retry } from '../runtime/backoff.js';
import { createLogger, errorMessage, type Logger } from '../runtime/log.js';
import { observeCatalog } from '../clickhouse/catalog.js';
import { decodeMarker, encodeMarker, upstreamTables, type TableRef } from '../plan/catalog.js';
import { findTableReferences, retargetTable } from '../plan/sql-scan.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import { DEFAULT_FENCE_TIMING, FenceTimeoutError, withFence, type FenceReport, type FenceTiming } from './fence.js';
import { WeirError } from '../runtime/errors.js';
import { faultPoint } from '../runtime/fault.js';
import { deduplicationOff } from '../clickhouse/dedup.js';
import { ensureSystemTables } from './system-tables.js';

/** A migration that must not go on: the plan was wrong for the data (e.g. rows that would not convert). */
export class MigrationRefusedError extends WeirError {
  constructor(message: string) {
    super(message, { retriable: false, reason: 'MigrationRefused' });
  }
}

export interface ExecutionHooks {
  /** A named point of a step was reached: for status, Events and progress lines. */
  onProgress?(step: Step, state: string, detail?: Record<string, unknown>): void;
}

export interface ExecutorOptions {
  log?: Logger;
  fenceTiming?: FenceTiming;
  hooks?: ExecutionHooks;

}

interface MigrationRow {
  id: string;
  database: string;
  table: string;
  kind: string;
  from_version: number;
  to_version: number;
  state: string;
  source_block: string;
  next_block: string;
  verify_block: string;
  swap_block: string;
  detail: string;
  /** Increments with every recorded state: orders states written within one millisecond. */
  seq: number;
}

/** Backfills are the long part of a migration; measured in bench/copy-and-swap.ts. */
const BACKFILL_SETTINGS = { max_insert_threads: 2 };

/** Attempts of a step whose fence timed out (writers slow to pause, a critical section too long). */
const FENCE_ATTEMPTS = 3;


export class Executor {
  private readonly timing: FenceTiming;
  private readonly log: Logger;
  readonly fenceReports: FenceReport[] = [];

  constructor(
    private readonly ch: ClickHouse,
    private readonly opts: ExecutorOptions = {},
  ) {
    this.timing = opts.fenceTiming ?? DEFAULT_FENCE_TIMING;
    this.log = opts.log ?? createLogger({ level: 'warn' });
  }

  async run(steps: Step[]): Promise<void> {
    for (const step of steps) {
      this.log.info('step started', { step: describeAnyStep(step) });
      await this.runWithFenceRetries(step);
      this.opts.hooks?.onProgress?.(step, 'Done');
    }
  }

  /**
   * A fence that timed out changed nothing irreversible and every step resumes from its
   * ledger, so the step is simply run again a few times (with backoff), as the error message
   * promises; past them, a RetriesExhaustedError has the last timeout as its cause.
   */
  private runWithFenceRetries(step: Step): Promise<void> {
    return retry(() => (isPipeStep(step) ? this.runPipeStep(step) : this.runStep(step)), {
      retries: FENCE_ATTEMPTS - 1,
      retriable: (e) => e instanceof FenceTimeoutError,
      onRetry: (e, attempt, delayMs) =>
        this.log.warn('fence timed out; running the step again', { step: describeAnyStep(step), attempt: attempt + 1, error: errorMessage(e), retryInMs: delayMs }),
    });
  }

  // ---- materialized views --------------------------------------------------------------

  private async runPipeStep(step: PipeStep): Promise<void> {
    const view = qualified(step.database, step.view);
    switch (step.kind) {
      case 'DropView':
        return this.ch.command(`DROP VIEW IF EXISTS ${view}`);
      case 'ModifyViewQuery':
        // Unqualified names in Pipe SQL mean tables of the Pipe's own database.
        await this.ch.command(`ALTER TABLE ${view} MODIFY QUERY ${embedSql(step.query)}`, { database: step.database });
        return this.ch.command(`ALTER TABLE ${view} MODIFY COMMENT ${quoteString(viewMarker(step.specHash))}`);
      case 'CreateView':
        return this.createView(step);
      case 'RecomputeView':
        return this.recomputeView(step);
      case 'FinishRecompute':
        return this.finishRecompute(step);
    }
  }

  /**
   * A materialized view over tables that already hold rows and keep receiving them: with
   * the sources' writers fenced, create the view and record each source's block number N;
   * the view then sees every row after N, and the backfill exactly the rows up to N. The
   * backfill goes to a staging table (redone from scratch after a crash) and then moves
   * into the target partition by partition (each move atomic), so it lands exactly once.
   */
  private async createView(step: Extract<PipeStep, { kind: 'CreateView' }>): Promise<void> {
    await ensureSystemTables(this.ch);
    const view = qualified(step.database, step.view);
    const target = qualified(step.target.database, step.target.table);
    const key = { database: step.database, table: step.view };
    const finalComment = `ALTER TABLE ${view} MODIFY COMMENT ${quoteString(viewMarker(step.specHash))}`;
    let m = await this.activeMigration(key.database, key.table);
    if (!m) {
      if (await this.exists(step.database, step.view)) {
        await this.assertOwnView(step.database, step.view);
        return this.ch.command(finalComment); // backfilled; only the marker was left
      }
      m = await this.record({
        id: `mig-${randomBytes(6).toString('hex')}`, database: key.database, table: key.table, kind: 'Materialize',
        from_version: 0, to_version: 1, state: 'Started', source_block: '0', next_block: '0', verify_block: '0', swap_block: '0', detail: '', seq: 0,
      });
    }
    const backfills = step.backfill === 'Full' && step.sources.length > 0;
    const create = `CREATE MATERIALIZED VIEW IF NOT EXISTS ${view} TO ${target} AS ${embedSql(step.query)} COMMENT ${quoteString(viewMarker(step.specHash, backfills))}`;
    const inDb = { database: step.database };
    if (!backfills) {
      await this.ch.command(create, inDb);
      await this.assertOwnView(step.database, step.view, m);
      await this.record({ ...m, state: 'Done' });
      return;
    }
    if (m.state === 'Started') {
      const started: MigrationRow = m;
      const { result, report } = await withFence(this.ch, step.sources, async () => {
        await this.ch.command(create, inDb);
        await this.assertOwnView(step.database, step.view, started);
        const blocks = await Promise.all(step.sources.map((s) => this.maxBlock(s)));
        faultPoint('ViewCreated');
        return this.record({ ...started, state: 'ViewCreated', detail: JSON.stringify(blocks) });
      }, this.timing);
      this.fenceReports.push(report);
      m = result;
    }
    if (m.state === 'ViewCreated') {
      await this.stageBackfill(step, step.target, JSON.parse(m.detail) as string[]);
      faultPoint('Staged');
      m = await this.record({ ...m, state: 'Staged' });
    }
    if (m.state === 'Staged') {
      await this.moveStaged(step.target);
      await this.ch.command(finalComment);
      await this.record({ ...m, state: 'Done' });
    }
  }

  /** Backfill `into` from the view query over the sources' rows up to the recorded blocks, into a fresh staging copy. */
  private async stageBackfill(step: Extract<PipeStep, { kind: 'CreateView' | 'RecomputeView' }>, into: TableRef, blocks: string[]): Promise<void> {
    const staging = qualified(into.database, `${into.table}__weir_backfill`);
    const inDb = { database: step.database };
    const filters = step.sources.map((s, i) => `${quoteString(`${s.database}.${s.table}`)}: ${quoteString(`_block_number <= ${blocks[i] ?? '0'}`)}`);
    await this.ch.command(`DROP TABLE IF EXISTS ${staging}`);
    await this.ch.command(`CREATE TABLE ${staging} AS ${qualified(into.database, into.table)}`);
    const cols = (await this.ch.query<{ name: string }>(`DESCRIBE TABLE (${embedSql(step.query)})`, inDb)).map((c) => quoteIdentifier(c.name)).join(', ');
    this.opts.hooks?.onProgress?.(step, 'Backfilling');
    await this.ch.command(`INSERT INTO ${staging} (${cols}) SELECT ${cols} FROM (${embedSql(step.query)}) SETTINGS additional_table_filters = {${filters.join(', ')}}`, { ...inDb, settings: { ...BACKFILL_SETTINGS, ...(await deduplicationOff(this.ch)) } });
  }

  /** Move a staged backfill into its table a partition at a time (each move atomic), then drop the staging table. */
  private async moveStaged(into: TableRef): Promise<void> {
    const stagingName = `${into.table}__weir_backfill`;
    if (!(await this.exists(into.database, stagingName))) return;
    const parts = await this.ch.query<{ partition_id: string }>(
      'SELECT DISTINCT partition_id FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active ORDER BY partition_id',
      { params: { db: into.database, t: stagingName } },
    );
    const staging = qualified(into.database, stagingName);
    for (const p of parts) {
      await this.ch.command(`ALTER TABLE ${staging} MOVE PARTITION ID ${quoteString(p.partition_id)} TO TABLE ${qualified(into.database, into.table)}`, { settings: { alter_sync: 2 } });
      faultPoint('PartitionMoved');
    }
    await this.ch.command(`DROP TABLE IF EXISTS ${staging}`);
  }

  /**
   * A materialized Pipe whose query changed, with backfill: Full: the target is recomputed
   * into its next version by a second view with the new query (created under a fence, with
   * a staged backfill of the rows before it, as for a new view); then, with the sources'
   * writers fenced, the versions are exchanged under the stable name, the Pipe's view takes
   * the new query and the second view goes.
   */
  private async recomputeView(step: Extract<PipeStep, { kind: 'RecomputeView' }>): Promise<void> {
    await ensureSystemTables(this.ch);
    const { database } = step;
    const target = qualified(step.target.database, step.target.table);
    const tmpRef = { database: step.target.database, table: `${step.target.table}${RECOMPUTE_TABLE_SUFFIX}` };
    const tmp = qualified(tmpRef.database, tmpRef.table);
    const view = qualified(database, step.view);
    const nextView = qualified(database, `${step.view}__weir_next`);
    const inDb = { database };
    let m = await this.activeMigration(database, step.view);
    if (m && m.to_version !== step.targetVersion + 1) {
      // An earlier recompute's row left open: it swapped (its target is live) or it is superseded.
      await this.record({ ...m, state: m.state === 'Swapped' ? 'Done' : 'Abandoned' });
      m = undefined;
    }
    if (!m) {
      m = await this.record({
        id: `mig-${randomBytes(6).toString('hex')}`, database, table: step.view, kind: 'Recompute',
        from_version: step.targetVersion, to_version: step.targetVersion + 1, state: 'Started',
        source_block: '0', next_block: '0', verify_block: '0', swap_block: '0', detail: '', seq: 0,
      });
    }
    if (m.state === 'Started') {
      const started: MigrationRow = m;
      await this.ch.command(`DROP VIEW IF EXISTS ${nextView}`);
      await this.ch.command(`DROP TABLE IF EXISTS ${tmp}`);
      await this.ch.command(`CREATE TABLE ${tmp} AS ${target}`);
      const marker = decodeMarker(await this.comment(step.target.database, step.target.table));
      if (marker) await this.ch.command(`ALTER TABLE ${tmp} MODIFY COMMENT ${quoteString(encodeMarker({ ...marker, version: step.targetVersion + 1 }))}`);
      const { result, report } = await withFence(this.ch, step.sources, async () => {
        await this.ch.command(`CREATE MATERIALIZED VIEW ${nextView} TO ${tmp} AS ${embedSql(step.query)}`, inDb);
        const blocks = await Promise.all(step.sources.map((s) => this.maxBlock(s)));
        faultPoint('ViewCreated');
        return this.record({ ...started, state: 'ViewCreated', detail: JSON.stringify(blocks) });
      }, this.timing);
      this.fenceReports.push(report);
      m = result;
    }
    if (m.state === 'ViewCreated') {
      await this.stageBackfill(step, tmpRef, JSON.parse(m.detail) as string[]);
      faultPoint('Staged');
      m = await this.record({ ...m, state: 'Staged' });
    }
    if (m.state === 'Staged') {
      await this.moveStaged(tmpRef);
      faultPoint('Backfilled');
      m = await this.record({ ...m, state: 'Backfilled' });
    }
    if (m.state === 'Backfilled') {
      const backfilled: MigrationRow = m;
      const { result, report } = await withFence(this.ch, [...step.sources, step.target], async (assertHeld) => {
        await assertHeld();
        if ((await this.markerVersion(step.target.database, step.target.table)) !== backfilled.to_version) {
          await this.ch.command(`EXCHANGE TABLES ${target} AND ${tmp}`);
          faultPoint('Exchanged');
        }
        await this.ch.command(`ALTER TABLE ${view} MODIFY QUERY ${embedSql(step.query)}`, inDb);
        await this.ch.command(`DROP VIEW IF EXISTS ${nextView}`);
        await this.ch.command(`ALTER TABLE ${view} MODIFY COMMENT ${quoteString(viewMarker(step.specHash))}`);
        return this.record({ ...backfilled, state: 'Swapped' });
      }, this.timing);
      this.fenceReports.push(report);
      m = result;
    }
    if (m.state === 'Swapped') {
      faultPoint('Swapped');
      if (await this.exists(tmpRef.database, tmpRef.table)) await this.retain(step.target.database, step.target.table, tmpRef.table, m.from_version, step.keepPreviousVersions);
      faultPoint('Retained');
      await this.record({ ...m, state: 'Done' });
    }
  }

  /**
   * Put away the previous version a recompute killed after its swap left under the recompute
   * name (the planner saw it), and close the recompute's ledger row. Each part is idempotent.
   */
  private async finishRecompute(step: Extract<PipeStep, { kind: 'FinishRecompute' }>): Promise<void> {
    await ensureSystemTables(this.ch);
    const { database, table } = step.target;
    if (await this.exists(database, step.leftover)) await this.retain(database, table, step.leftover, step.version, step.keepPreviousVersions);
    faultPoint('Retained');
    const m = await this.activeMigration(step.database, step.view);
    if (m?.kind === 'Recompute' && m.state === 'Swapped') await this.record({ ...m, state: 'Done' });
  }

  private async runStep(step: MigrationStep): Promise<void> {
    switch (step.kind) {
      case 'CreateDatabase':
        return this.ch.command(`CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(step.database)}`);
      case 'CreateTable': {
        const sql = createTableSql(step.database, step.table, step.shape, encodeMarker({ version: step.version, specHash: step.specHash, shape: step.shape }));
        await this.ch.command(sql.replace(/^CREATE TABLE/, 'CREATE TABLE IF NOT EXISTS'));
        return this.assertCreated(step.database, step.table, (o) => !isView(o.engine) && decodeMarker(o.comment) !== undefined, 'a table weir made for a DataSource');
      }
      case 'CreateQuarantine': {
        await this.ch.command(createQuarantineSql(step.database, step.table).replace(/^CREATE TABLE/, 'CREATE TABLE IF NOT EXISTS'));
        const comment = quarantineComment(step.database, step.table);
        return this.assertCreated(step.database, quarantineTableName(step.table), (o) => !isView(o.engine) && o.comment === comment, 'this DataSource\'s quarantine table');
      }
      case 'AlterTable': {
        const table = qualified(step.database, step.table);
        const marker = encodeMarker({ version: step.version, specHash: step.specHash, shape: step.shape });
        // TTL and SETTING take comma lists that would swallow a following action, so actions run
        // one ALTER each, except new columns and the ORDER BY that uses them (ClickHouse wants
        // those together). Every action is idempotent (IF [NOT] EXISTS, MODIFY) and the marker
        // moves last: after a crash the same plan is made again and re-running it is harmless.
        const sync = { settings: { alter_sync: 2, mutations_sync: 2 } };
        const orderBy = step.actions.find((a) => a.startsWith('MODIFY ORDER BY'));
        const together = orderBy ? [...step.actions.filter((a) => a.startsWith('ADD COLUMN')), orderBy] : [];
        if (together.length > 0) await this.ch.command(`ALTER TABLE ${table} ${together.join(', ')}`, sync);
        if (together.length > 0) faultPoint('AlterApplied');
        for (const a of step.actions.filter((x) => !together.includes(x))) {
          await this.ch.command(`ALTER TABLE ${table} ${a}`, sync);
          faultPoint('AlterApplied');
        }
        faultPoint('Altered');
        await this.ch.command(`ALTER TABLE ${table} MODIFY COMMENT ${quoteString(marker)}`, sync);
        return faultPoint('MarkerMoved');
      }
      case 'CopyAndSwap':
        return this.copyAndSwap(step);
      case 'SwapBack':
        return this.swapBack(step);
    }
  }

  // ---- copy-and-swap -------------------------------------------------------------------

  private async copyAndSwap(step: Extract<MigrationStep, { kind: 'CopyAndSwap' }>): Promise<void> {
    await ensureSystemTables(this.ch);
    const { database, table } = step;
    const live = qualified(database, table);
    const nextName = `${table}${NEXT_TABLE_SUFFIX}`;
    const next = qualified(database, nextName);
    let m = await this.activeMigration(database, table);
    if (m && m.to_version !== step.toVersion) {
      // A migration for another target was interrupted: it never swapped, so drop its work.
      await this.ch.command(`DROP TABLE IF EXISTS ${next}`);
      await this.record({ ...m, state: 'Abandoned', detail: `superseded by a plan for v${step.toVersion}` });
      m = undefined;
    }
    if (!m) {
      m = {
        id: `mig-${randomBytes(6).toString('hex')}`,
        database,
        table,
        kind: 'CopyAndSwap',
        from_version: step.fromVersion,
        to_version: step.toVersion,
        state: 'Started',
        source_block: '0',
        next_block: '0',
        verify_block: '0',
        swap_block: '0',
        detail: step.reasons.join('; '),
        seq: 0,
      };
      await this.record(m);
    }
    const progress = (state: string, detail?: Record<string, unknown>) => {
      this.log.info('migration progress', { table: `${database}.${table}`, migration: m?.id, state, ...detail });
      this.opts.hooks?.onProgress?.(step, state, detail);
    };

    // The live table's marker tells whether the swap already happened (the crash may have come right after it).
    const liveVersion = await this.markerVersion(database, table);
    if (liveVersion === step.toVersion && m.state !== 'Swapped') m = await this.record({ ...m, state: 'Swapped' });

    if (m.state === 'Started') {
      await this.ch.command(`DROP TABLE IF EXISTS ${next}`);
      await this.ch.command(createTableSql(database, nextName, step.shape, encodeMarker({ version: step.toVersion, specHash: step.specHash, shape: step.shape })));
      await this.checkConvertible(live, step);
      await this.checkDependentViews(step, nextName);
      faultPoint('Created');
      m = await this.record({ ...m, state: 'Created' });
      progress('Created', { next: `${database}.${nextName}` });
    }

    const mapping = await this.mapping(live, step);
    if (m.state === 'Created') {
      const n = await this.maxBlock({ database, table });
      await this.ch.command(`TRUNCATE TABLE ${next}`);
      progress('Backfilling', { upToBlock: n });
      // The insert side is single-threaded by default: two threads nearly halve a large backfill.
      await this.ch.command(`INSERT INTO ${next} (${mapping.columns}) ${mapping.select(`_block_number <= ${n}`)}`, { settings: { ...BACKFILL_SETTINGS, ...(await deduplicationOff(this.ch)) } });
      faultPoint('Backfilled');
      const b = await this.maxBlock({ database, table: nextName });
      m = await this.record({ ...m, state: 'Backfilled', source_block: String(n), next_block: String(b) });
      progress('Backfilled', { rows: await this.count(next) });
    }

    // Verified but not swapped: the critical section is redone from the backfill point.
    if (m.state === 'Backfilled' || m.state === 'Verified') {
      const current: MigrationRow = m;
      // Rows a previous, interrupted attempt copied after the backfill are dropped first, before
      // the fence: only the executor writes the next version, and the DELETE is too slow to hold writers for.
      await this.dropRowsAfter(next, current.next_block);
      const fenced = await this.fencedTables({ database, table });
      const { result, report } = await withFence(
        this.ch,
        fenced,
        async (assertHeld) => {
          progress('Fenced', { writersOf: fenced.map((t) => `${t.database}.${t.table}`) });
          await this.ch.command(`INSERT INTO ${next} (${mapping.columns}) ${mapping.select(`_block_number > ${current.source_block}`)}`, { settings: await deduplicationOff(this.ch) });
          faultPoint('DeltaCopied');
          const [liveRows, nextRows, verifyBlock, swapBlock] = await Promise.all([this.count(live), this.count(next), this.maxBlock({ database, table }), this.maxBlock({ database, table: nextName })]);
          if (step.oneToOne && liveRows !== nextRows) {
            throw new MigrationRefusedError(`verification failed: ${database}.${table} has ${liveRows} rows but the new version has ${nextRows}; nothing was swapped`);
          }
          const verified = await this.record({ ...current, state: 'Verified', verify_block: String(verifyBlock), swap_block: String(swapBlock) });
          progress('Verified', { rows: nextRows });
          await assertHeld();
          faultPoint('Verified');
          await this.ch.command(`EXCHANGE TABLES ${live} AND ${next}`);
          faultPoint('Exchanged');
          return this.record({ ...verified, state: 'Swapped' });
        },
        this.timing,
      );
      this.fenceReports.push(report);
      m = result;
      progress('Swapped', { fenceHeldMs: report.heldMs, writers: report.writers.length });
    }

    if (m.state === 'Swapped') {
      // The previous version now sits under the temporary name. Rows that unmanaged writers
      // put into it between verification and the swap are found by block number and moved.
      if (await this.exists(database, nextName)) {
        const gap = await this.count(next, `_block_number > ${m.verify_block}`);
        if (gap > 0) {
          const reverse = await this.mapping(next, step);
          await this.ch.command(`INSERT INTO ${live} (${reverse.columns}) ${reverse.select(`_block_number > ${m.verify_block}`)}`, { settings: await deduplicationOff(this.ch) });
          this.log.warn('rows written by writers weir does not fence arrived during the swap; copied them over', { table: `${database}.${table}`, rows: gap });
        }
        faultPoint('GapChecked');
        await this.retain(database, table, nextName, step.fromVersion, step.keepPreviousVersions);
      }
      m = await this.record({ ...m, state: 'Done' });
      progress('Completed', { version: step.toVersion });
    }
  }

  /** Roll back to a retained version: copy only the rows written since it was replaced. */
  private async swapBack(step: Extract<MigrationStep, { kind: 'SwapBack' }>): Promise<void> {
    await ensureSystemTables(this.ch);
    const { database, table } = step;
    const live = qualified(database, table);
    const retained = qualified(database, step.retainedTable);
    if ((await this.markerVersion(database, table)) !== step.toVersion) {
      const marker = decodeMarker(await this.comment(database, table));
      const swapBlock = marker ? await this.swapBlockOf(database, table, step.fromVersion) : undefined;
      if (swapBlock === undefined) throw new MigrationRefusedError(`no record of when v${step.fromVersion} went live; roll forward instead`);
      const retainedShape = decodeMarker(await this.comment(database, step.retainedTable))?.shape;
      if (!retainedShape) throw new MigrationRefusedError(`${database}.${step.retainedTable} has no weir marker`);
      const m = await this.swapBackRecord(step);
      // Rows an interrupted attempt already copied into the retained version would count twice:
      // dropped before the fence (nobody else writes the retained version).
      await this.dropRowsAfter(retained, m.next_block);
      const { report } = await withFence(
        this.ch,
        await this.fencedTables({ database, table }),
        async (assertHeld) => {
          const cols = retainedShape.columns.map((c) => quoteIdentifier(c.name)).join(', ');
          const liveCols = new Set((await this.ch.query<{ name: string }>(`DESCRIBE TABLE ${live}`)).map((c) => c.name));
          const select = retainedShape.columns
            .map((c) => (liveCols.has(c.name) ? `CAST(${quoteIdentifier(c.name)} AS ${c.type})` : `defaultValueOfTypeName(${quoteString(c.type)})`))
            .join(', ');
          await this.ch.command(`INSERT INTO ${retained} (${cols}) SELECT ${select} FROM ${live} WHERE _block_number > ${swapBlock}`, { settings: await deduplicationOff(this.ch) });
          faultPoint('DeltaCopied');
          await assertHeld();
          // The block at which this version goes live again: what a later rollback copies after.
          const exchanging = await this.record({ ...m, state: 'Exchanging', swap_block: String(await this.maxBlock({ database, table: step.retainedTable })) });
          await this.ch.command(`EXCHANGE TABLES ${live} AND ${retained}`);
          faultPoint('Exchanged');
          await this.record({ ...exchanging, state: 'Done' });
        },
        this.timing,
      );
      this.fenceReports.push(report);
    }
    // Interrupted right after the exchange: its ledger row already holds the swap block.
    const open = await this.activeMigration(database, table);
    if (open?.kind === 'SwapBack' && open.state === 'Exchanging') await this.record({ ...open, state: 'Done' });
    // The version rolled back from now sits under the retained name: keep it as its own version.
    if (await this.exists(database, step.retainedTable)) {
      const from = versionTableName(table, step.fromVersion);
      await this.ch.command(`RENAME TABLE ${retained} TO ${qualified(database, from)}`);
      faultPoint('Retained');
      await this.dropBeyond(database, table, step.keepPreviousVersions);
    }
  }

  /** Delete the rows of `table` past `block` (an interrupted attempt's copy), if there are any. */
  private async dropRowsAfter(table: string, block: string): Promise<void> {
    if ((await this.count(table, `_block_number > ${block}`)) === 0) return;
    await this.ch.command(`DELETE FROM ${table} WHERE _block_number > ${block}`, { settings: { mutations_sync: 2, lightweight_deletes_sync: 2 } });
  }

  /**
   * The ledger row of a rollback, made before its first attempt: it keeps the retained
   * version's highest block then, so a resumed attempt knows which rows it copied before.
   */
  private async swapBackRecord(step: Extract<MigrationStep, { kind: 'SwapBack' }>): Promise<MigrationRow> {
    const m = await this.activeMigration(step.database, step.table);
    if (m && m.kind === 'SwapBack' && m.to_version === step.toVersion) return m;
    const block = await this.maxBlock({ database: step.database, table: step.retainedTable });
    return this.record({
      id: `mig-${randomBytes(6).toString('hex')}`, database: step.database, table: step.table, kind: 'SwapBack',
      from_version: step.fromVersion, to_version: step.toVersion, state: 'Started',
      source_block: '0', next_block: block, verify_block: '0', swap_block: '0', detail: `roll back to ${step.retainedTable}`, seq: 0,
    });
  }

  // ---- helpers -------------------------------------------------------------------------

  private async retain(database: string, table: string, tempName: string, version: number, keep: number): Promise<void> {
    if (keep <= 0) {
      await this.ch.command(`DROP TABLE IF EXISTS ${qualified(database, tempName)}`);
      return;
    }
    const target = versionTableName(table, version);
    await this.ch.command(`DROP TABLE IF EXISTS ${qualified(database, target)}`);
    await this.ch.command(`RENAME TABLE ${qualified(database, tempName)} TO ${qualified(database, target)}`);
    await this.dropBeyond(database, table, keep);
  }

  private async dropBeyond(database: string, table: string, keep: number): Promise<void> {
    const prefix = `${table}__v`;
    const rows = await this.ch.query<{ name: string }>('SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {p:String})', {
      params: { db: database, p: prefix },
    });
    const versions = rows
      .map((r) => ({ name: r.name, v: Number(r.name.slice(prefix.length)) }))
      .filter((x) => Number.isInteger(x.v))
      .sort((a, b) => b.v - a.v);
    for (const old of versions.slice(keep)) await this.ch.command(`DROP TABLE IF EXISTS ${qualified(database, old.name)}`);
  }

  /** Column list and SELECT that map rows of `source` to the new shape (a forward query or by name). */
  private async mapping(source: string, step: Extract<MigrationStep, { kind: 'CopyAndSwap' }>): Promise<{ columns: string; select: (where: string) => string }> {
    if (step.forwardQuery) {
      const query = (where: string) => step.forwardQuery?.replace(/\{source\}/g, `(SELECT * FROM ${source} WHERE ${where})`) ?? '';
      const out = await this.ch.query<{ name: string }>(`DESCRIBE TABLE (${embedSql(query('0'))})`);
      const cols = out.map((c) => quoteIdentifier(c.name)).join(', ');
      return { columns: cols, select: (where) => `SELECT ${cols} FROM (${embedSql(query(where))})` };
    }
    const sourceCols = new Set((await this.ch.query<{ name: string }>(`DESCRIBE TABLE ${source}`)).map((c) => c.name));
    const shared = step.shape.columns.filter((c) => sourceCols.has(c.name));
    const columns = shared.map((c) => quoteIdentifier(c.name)).join(', ');
    const exprs = shared.map((c) => `CAST(${quoteIdentifier(c.name)} AS ${c.type})`).join(', ');
    return { columns, select: (where) => `SELECT ${exprs} FROM ${source} WHERE ${where}` };
  }

  /** Refuse a type change that would lose values, with the count and samples. */
  private async checkConvertible(live: string, step: Extract<MigrationStep, { kind: 'CopyAndSwap' }>): Promise<void> {
    if (step.forwardQuery) return; // the forward query owns the conversion
    for (const change of step.typeChanges) {
      const col = quoteIdentifier(change.column);
      const bad = `isNotNull(${col}) AND isNull(accurateCastOrNull(${col}, ${quoteString(change.to)}))`;
      const [row] = await this.ch.query<{ n: string; samples: string[] }>(
        `SELECT count() AS n, groupArray(5)(toString(${col})) AS samples FROM ${live} WHERE ${bad}`,
      );
      const n = Number(row?.n ?? 0);
      if (n > 0) {
        await this.ch.command(`DROP TABLE IF EXISTS ${qualified(step.database, `${step.table}${NEXT_TABLE_SUFFIX}`)}`);
        const m = await this.activeMigration(step.database, step.table);
        if (m) await this.record({ ...m, state: 'Refused', detail: `unconvertible ${change.column}` });
        throw new MigrationRefusedError(
          `${n} row(s) of ${step.database}.${step.table} have a ${change.column} that does not convert from ${change.from} to ${change.to} ` +
            `(e.g. ${(row?.samples ?? []).map((s) => JSON.stringify(s)).join(', ')}); handle them with spec.migration.forwardQuery. Nothing was changed.`,
        );
      }
    }
  }

  /**
   * Every materialized view reading the table must compile against the next version before
   * anything is swapped: its query is compiled with the table pointed at the next version.
   */
  private async checkDependentViews(step: Extract<MigrationStep, { kind: 'CopyAndSwap' }>, nextName: string): Promise<void> {
    const catalog = await observeCatalog(this.ch, [step.database]);
    for (const view of catalog.views) {
      if (!findTableReferences(view.query).includes(`${step.database}.${step.table}`)) continue;
      try {
        await this.ch.query(`DESCRIBE TABLE (${embedSql(retargetTable(view.query, step.database, step.table, nextName))})`);
      } catch (e) {
        await this.ch.command(`DROP TABLE IF EXISTS ${qualified(step.database, nextName)}`);
        const m = await this.activeMigration(step.database, step.table);
        if (m) await this.record({ ...m, state: 'Refused', detail: `breaks view ${view.name}` });
        throw new MigrationRefusedError(
          `materialized view ${view.database}.${view.name} would break on the new version of ${step.database}.${step.table}: ${e instanceof Error ? e.message : String(e)}. Change its Pipe together with the table, or keep the columns it reads. Nothing was changed.`,
        );
      }
    }
  }

  /** The table and every table feeding it through materialized views: all their writers pause together. */
  private async fencedTables(t: TableRef): Promise<TableRef[]> {
    return [t, ...upstreamTables(await observeCatalog(this.ch, [t.database]), t)];
  }

  private async activeMigration(database: string, table: string): Promise<MigrationRow | undefined> {
    const rows = await this.ch.query<MigrationRow>(
      `SELECT * FROM weir.migrations FINAL WHERE database = {db:String} AND table = {t:String}
       AND state NOT IN ('Done', 'Abandoned', 'Refused') ORDER BY seq DESC, updated_at DESC LIMIT 1`,
      { params: { db: database, t: table } },
    );
    return rows[0];
  }

  private async swapBlockOf(database: string, table: string, version: number): Promise<string | undefined> {
    const rows = await this.ch.query<{ swap_block: string }>(
      `SELECT swap_block FROM weir.migrations FINAL WHERE database = {db:String} AND table = {t:String} AND to_version = {v:UInt32}
       AND state = 'Done' ORDER BY updated_at DESC LIMIT 1`,
      { params: { db: database, t: table, v: version } },
    );
    return rows[0]?.swap_block;
  }

  private async record(m: MigrationRow): Promise<MigrationRow> {
    const next = { ...m, seq: Number(m.seq) + 1 };
    await this.ch.insert('weir.migrations', [next]);
    return next;
  }

  /**
   * The highest block number in a table, from its parts (milliseconds at any size, where a
   * scan of _block_number takes seconds on a large table under writes). Rows keep their
   * block numbers through merges (enable_block_number_column) and new inserts take higher
   * ones, so `_block_number <= this` is exactly the rows committed before it was read.
   */
  private async maxBlock(t: TableRef): Promise<string> {
    const [row] = await this.ch.query<{ b: string | null }>(
      'SELECT toString(max(max_block_number)) AS b FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active',
      { params: { db: t.database, t: t.table } },
    );
    return row?.b ?? '0';
  }

  private async count(table: string, where = '1'): Promise<number> {
    const [row] = await this.ch.query<{ n: string }>(`SELECT count() AS n FROM ${table} WHERE ${where}`);
    return Number(row?.n ?? 0);
  }

  private async exists(database: string, name: string): Promise<boolean> {
    const rows = await this.ch.query<{ n: string }>('SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {n:String}', {
      params: { db: database, n: name },
    });
    return Number(rows[0]?.n ?? 0) > 0;
  }

  /** The engine and comment of a table or view, or undefined when there is none of that name. */
  private async objectAt(database: string, name: string): Promise<{ engine: string; comment: string } | undefined> {
    const rows = await this.ch.query<{ engine: string; comment: string }>('SELECT engine, comment FROM system.tables WHERE database = {db:String} AND name = {n:String}', {
      params: { db: database, n: name },
    });
    return rows[0];
  }

  /**
   * CREATE … IF NOT EXISTS (kept so a resumed step is harmless) does nothing when the name is
   * taken: say so, rather than report created what was not.
   */
  private async assertCreated(database: string, name: string, ours: (o: { engine: string; comment: string }) => boolean, what: string): Promise<void> {
    const found = await this.objectAt(database, name);
    if (found && ours(found)) return;
    throw new MigrationRefusedError(
      found
        ? `${database}.${name} already exists as a ${found.engine} (comment ${JSON.stringify(found.comment.slice(0, 60))}), which is not ${what}: nothing was created; rename the resource or drop that object`
        : `${database}.${name} is missing right after it was created`,
    );
  }

  /** The view at the Pipe's name is a materialized view weir made; otherwise the migration row is refused and nothing else runs. */
  private async assertOwnView(database: string, view: string, m?: MigrationRow): Promise<void> {
    try {
      await this.assertCreated(database, view, (o) => o.engine === 'MaterializedView' && o.comment.startsWith(VIEW_MARKER_PREFIX), 'a materialized Pipe\'s view');
    } catch (e) {
      if (m) await this.record({ ...m, state: 'Refused', detail: 'name taken' });
      throw e;
    }
  }

  private async comment(database: string, name: string): Promise<string> {
    const rows = await this.ch.query<{ comment: string }>('SELECT comment FROM system.tables WHERE database = {db:String} AND name = {n:String}', {
      params: { db: database, n: name },
    });
    return rows[0]?.comment ?? '';
  }

  private async markerVersion(database: string, name: string): Promise<number | undefined> {
    return decodeMarker(await this.comment(database, name))?.version;
  }
}

const isView = (engine: string): boolean => engine === 'MaterializedView' || engine === 'View';

export type { TableShape };
