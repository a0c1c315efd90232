// Copy-and-swap: a DataSource's next table version is built beside the live one, backfilled up
// to a recorded block, and, with the writers fenced, given the rows written since, verified and
// exchanged in; the previous version is kept. A state machine whose progress is kept in
// weir.migrations (and in each table's own marker), so an executor killed at any point resumes
// where it was, with nothing lost or doubled.
import { observeCatalog } from '../clickhouse/catalog.js';
import { deduplicationOff } from '../clickhouse/dedup.js';
import { encodeMarker } from '../plan/catalog.js';
import { NEXT_TABLE_SUFFIX, type MigrationStep } from '../plan/datasource-plan.js';
import { findTableReferences, retargetTable } from '../plan/sql-scan.js';
import { createTableSql, embedSql, qualified, quoteIdentifier, quoteString } from '../plan/sql.js';
import { faultPoint } from '../runtime/fault.js';
import { BACKFILL_SETTINGS, type StepContext } from './context.js';
import { MigrationRefusedError } from './errors.js';
import { withFence } from './fence.js';
import { activeMigration, newMigration, record, type MigrationRow } from './ledger.js';
import { count, exists, fencedTables, markerVersion, maxBlock } from './probes.js';
import { ensureSystemTables } from './system-tables.js';
import { dropRowsAfter, retain } from './versions.js';

type CopyAndSwapStep = Extract<MigrationStep, { kind: 'CopyAndSwap' }>;

export async function copyAndSwap(cx: StepContext, step: CopyAndSwapStep): Promise<void> {
  const { ch } = cx;
  await ensureSystemTables(ch);
  const { database, table } = step;
  const live = qualified(database, table);
  const nextName = `${table}${NEXT_TABLE_SUFFIX}`;
  const next = qualified(database, nextName);
  let m = await activeMigration(ch, database, table);
  if (m && m.to_version !== step.toVersion) {
    // A migration for another target was interrupted: it never swapped, so drop its work.
    await ch.command(`DROP TABLE IF EXISTS ${next}`);
    await record(ch, { ...m, state: 'Abandoned', detail: `superseded by a plan for v${step.toVersion}` });
    m = undefined;
  }
  if (!m) {
    m = newMigration({ database, table, kind: 'CopyAndSwap', from_version: step.fromVersion, to_version: step.toVersion, detail: step.reasons.join('; ') });
    await record(ch, m);
  }
  const progress = (state: string, detail?: Record<string, unknown>) => {
    cx.log.info('migration progress', { table: `${database}.${table}`, migration: m?.id, state, ...detail });
    cx.hooks?.onProgress?.(step, state, detail);
  };

  // The live table's marker tells whether the swap already happened (the crash may have come right after it).
  const liveVersion = await markerVersion(ch, database, table);
  if (liveVersion === step.toVersion && m.state !== 'Swapped') m = await record(ch, { ...m, state: 'Swapped' });

  if (m.state === 'Started') {
    await ch.command(`DROP TABLE IF EXISTS ${next}`);
    await ch.command(createTableSql(database, nextName, step.shape, encodeMarker({ version: step.toVersion, specHash: step.specHash, shape: step.shape })));
    await checkConvertible(cx, live, step);
    await checkDependentViews(cx, step, nextName);
    faultPoint('Created');
    m = await record(ch, { ...m, state: 'Created' });
    progress('Created', { next: `${database}.${nextName}` });
  }

  const map = await mapping(cx, live, step);
  if (m.state === 'Created') {
    const n = await maxBlock(ch, { database, table });
    await ch.command(`TRUNCATE TABLE ${next}`);
    progress('Backfilling', { upToBlock: n });
    // The insert side is single-threaded by default: two threads nearly halve a large backfill.
    await ch.command(`INSERT INTO ${next} (${map.columns}) ${map.select(`_block_number <= ${n}`)}`, {
      settings: { ...BACKFILL_SETTINGS, ...(await deduplicationOff(ch)) },
    });
    faultPoint('Backfilled');
    const b = await maxBlock(ch, { database, table: nextName });
    m = await record(ch, { ...m, state: 'Backfilled', source_block: String(n), next_block: String(b) });
    progress('Backfilled', { rows: await count(ch, next) });
  }

  // Verified but not swapped: the critical section is redone from the backfill point.
  if (m.state === 'Backfilled' || m.state === 'Verified') {
    const current: MigrationRow = m;
    // Rows a previous, interrupted attempt copied after the backfill are dropped first, before
    // the fence: only the executor writes the next version, and the DELETE is too slow to hold writers for.
    await dropRowsAfter(ch, next, current.next_block);
    const fenced = await fencedTables(ch, { database, table });
    const { result, report } = await withFence(
      ch,
      fenced,
      async (assertHeld) => {
        progress('Fenced', { writersOf: fenced.map((t) => `${t.database}.${t.table}`) });
        await ch.command(`INSERT INTO ${next} (${map.columns}) ${map.select(`_block_number > ${current.source_block}`)}`, {
          settings: await deduplicationOff(ch),
        });
        faultPoint('DeltaCopied');
        const [liveRows, nextRows, verifyBlock, swapBlock] = await Promise.all([
          count(ch, live),
          count(ch, next),
          maxBlock(ch, { database, table }),
          maxBlock(ch, { database, table: nextName }),
        ]);
        if (step.oneToOne && liveRows !== nextRows) {
          throw new MigrationRefusedError(
            `verification failed: ${database}.${table} has ${liveRows} rows but the new version has ${nextRows}; nothing was swapped`,
          );
        }
        const verified = await record(ch, { ...current, state: 'Verified', verify_block: String(verifyBlock), swap_block: String(swapBlock) });
        progress('Verified', { rows: nextRows });
        await assertHeld();
        faultPoint('Verified');
        await ch.command(`EXCHANGE TABLES ${live} AND ${next}`);
        faultPoint('Exchanged');
        return record(ch, { ...verified, state: 'Swapped' });
      },
      cx.timing,
    );
    cx.fenceReports.push(report);
    m = result;
    progress('Swapped', { fenceHeldMs: report.heldMs, writers: report.writers.length });
  }

  if (m.state === 'Swapped') {
    // The previous version now sits under the temporary name. Rows that unmanaged writers
    // put into it between verification and the swap are found by block number and moved.
    if (await exists(ch, database, nextName)) {
      const gap = await count(ch, next, `_block_number > ${m.verify_block}`);
      if (gap > 0) {
        const reverse = await mapping(cx, next, step);
        await ch.command(`INSERT INTO ${live} (${reverse.columns}) ${reverse.select(`_block_number > ${m.verify_block}`)}`, {
          settings: await deduplicationOff(ch),
        });
        cx.log.warn('rows written by writers weir does not fence arrived during the swap; copied them over', { table: `${database}.${table}`, rows: gap });
      }
      faultPoint('GapChecked');
      await retain(ch, database, table, nextName, step.fromVersion, step.keepPreviousVersions);
    }
    m = await record(ch, { ...m, state: 'Done' });
    progress('Completed', { version: step.toVersion });
  }
}

/** Column list and SELECT that map rows of `source` to the new shape (a forward query or by name). */
async function mapping({ ch }: StepContext, source: string, step: CopyAndSwapStep): Promise<{ columns: string; select: (where: string) => string }> {
  if (step.forwardQuery) {
    const query = (where: string) => step.forwardQuery?.replace(/\{source\}/g, `(SELECT * FROM ${source} WHERE ${where})`) ?? '';
    const out = await ch.query<{ name: string }>(`DESCRIBE TABLE (${embedSql(query('0'))})`);
    const cols = out.map((c) => quoteIdentifier(c.name)).join(', ');
    return { columns: cols, select: (where) => `SELECT ${cols} FROM (${embedSql(query(where))})` };
  }
  const sourceCols = new Set((await ch.query<{ name: string }>(`DESCRIBE TABLE ${source}`)).map((c) => c.name));
  const shared = step.shape.columns.filter((c) => sourceCols.has(c.name));
  const columns = shared.map((c) => quoteIdentifier(c.name)).join(', ');
  const exprs = shared.map((c) => `CAST(${quoteIdentifier(c.name)} AS ${c.type})`).join(', ');
  return { columns, select: (where) => `SELECT ${exprs} FROM ${source} WHERE ${where}` };
}

/** Refuse a type change that would lose values, with the count and samples. */
async function checkConvertible({ ch }: StepContext, live: string, step: CopyAndSwapStep): Promise<void> {
  if (step.forwardQuery) return; // the forward query owns the conversion
  for (const change of step.typeChanges) {
    const col = quoteIdentifier(change.column);
    const bad = `isNotNull(${col}) AND isNull(accurateCastOrNull(${col}, ${quoteString(change.to)}))`;
    const [row] = await ch.query<{ n: string; samples: string[] }>(`SELECT count() AS n, groupArray(5)(toString(${col})) AS samples FROM ${live} WHERE ${bad}`);
    const n = Number(row?.n ?? 0);
    if (n > 0) {
      await ch.command(`DROP TABLE IF EXISTS ${qualified(step.database, `${step.table}${NEXT_TABLE_SUFFIX}`)}`);
      const m = await activeMigration(ch, step.database, step.table);
      if (m) await record(ch, { ...m, state: 'Refused', detail: `unconvertible ${change.column}` });
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
async function checkDependentViews({ ch }: StepContext, step: CopyAndSwapStep, nextName: string): Promise<void> {
  const catalog = await observeCatalog(ch, [step.database]);
  for (const view of catalog.views) {
    if (!findTableReferences(view.query).includes(`${step.database}.${step.table}`)) continue;
    try {
      await ch.query(`DESCRIBE TABLE (${embedSql(retargetTable(view.query, step.database, step.table, nextName))})`);
    } catch (e) {
      await ch.command(`DROP TABLE IF EXISTS ${qualified(step.database, nextName)}`);
      const m = await activeMigration(ch, step.database, step.table);
      if (m) await record(ch, { ...m, state: 'Refused', detail: `breaks view ${view.name}` });
      throw new MigrationRefusedError(
        `materialized view ${view.database}.${view.name} would break on the new version of ${step.database}.${step.table}: ${e instanceof Error ? e.message : String(e)}. Change its Pipe together with the table, or keep the columns it reads. Nothing was changed.`,
      );
    }
  }
}
