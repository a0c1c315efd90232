// SwapBack: roll a DataSource back to a retained version, copying only the rows written since
// it was replaced (under a fence), then exchanging it in; the version rolled back from is kept.
import { deduplicationOff } from '../clickhouse/dedup.js';
import { decodeMarker } from '../plan/catalog.js';
import { versionTableName, type MigrationStep } from '../plan/datasource-plan.js';
import { qualified, quoteIdentifier, quoteString } from '../plan/sql.js';
import { faultPoint } from '../runtime/fault.js';
import type { StepContext } from './context.js';
import { MigrationRefusedError } from './errors.js';
import { withFence } from './fence.js';
import { activeMigration, newMigration, record, swapBlockOf, type MigrationRow } from './ledger.js';
import { comment, exists, fencedTables, markerVersion, maxBlock } from './probes.js';
import { ensureSystemTables } from './system-tables.js';
import { dropBeyond, dropRowsAfter } from './versions.js';

type SwapBackStep = Extract<MigrationStep, { kind: 'SwapBack' }>;

/** Roll back to a retained version: copy only the rows written since it was replaced. */
export async function swapBack(cx: StepContext, step: SwapBackStep): Promise<void> {
  const { ch } = cx;
  await ensureSystemTables(ch);
  const { database, table } = step;
  const live = qualified(database, table);
  const retained = qualified(database, step.retainedTable);
  if ((await markerVersion(ch, database, table)) !== step.toVersion) {
    const marker = decodeMarker(await comment(ch, database, table));
    const swapBlock = marker ? await swapBlockOf(ch, database, table, step.fromVersion) : undefined;
    if (swapBlock === undefined) throw new MigrationRefusedError(`no record of when v${step.fromVersion} went live; roll forward instead`);
    const retainedShape = decodeMarker(await comment(ch, database, step.retainedTable))?.shape;
    if (!retainedShape) throw new MigrationRefusedError(`${database}.${step.retainedTable} has no weir marker`);
    const m = await swapBackRecord(cx, step);
    // Rows an interrupted attempt already copied into the retained version would count twice:
    // dropped before the fence (nobody else writes the retained version).
    await dropRowsAfter(ch, retained, m.next_block);
    const { report } = await withFence(
      ch,
      await fencedTables(ch, { database, table }),
      async (assertHeld) => {
        const cols = retainedShape.columns.map((c) => quoteIdentifier(c.name)).join(', ');
        const liveCols = new Set((await ch.query<{ name: string }>(`DESCRIBE TABLE ${live}`)).map((c) => c.name));
        const select = retainedShape.columns
          .map((c) => (liveCols.has(c.name) ? `CAST(${quoteIdentifier(c.name)} AS ${c.type})` : `defaultValueOfTypeName(${quoteString(c.type)})`))
          .join(', ');
        await ch.command(`INSERT INTO ${retained} (${cols}) SELECT ${select} FROM ${live} WHERE _block_number > ${swapBlock}`, {
          settings: await deduplicationOff(ch),
        });
        faultPoint('DeltaCopied');
        await assertHeld();
        // The block at which this version goes live again: what a later rollback copies after.
        const exchanging = await record(ch, { ...m, state: 'Exchanging', swap_block: String(await maxBlock(ch, { database, table: step.retainedTable })) });
        await ch.command(`EXCHANGE TABLES ${live} AND ${retained}`);
        faultPoint('Exchanged');
        await record(ch, { ...exchanging, state: 'Done' });
      },
      cx.timing,
    );
    cx.fenceReports.push(report);
  }
  // Interrupted right after the exchange: its ledger row already holds the swap block.
  const open = await activeMigration(ch, database, table);
  if (open?.kind === 'SwapBack' && open.state === 'Exchanging') await record(ch, { ...open, state: 'Done' });
  // The version rolled back from now sits under the retained name: keep it as its own version.
  if (await exists(ch, database, step.retainedTable)) {
    const from = versionTableName(table, step.fromVersion);
    await ch.command(`RENAME TABLE ${retained} TO ${qualified(database, from)}`);
    faultPoint('Retained');
    await dropBeyond(ch, database, table, step.keepPreviousVersions);
  }
}

/**
 * The ledger row of a rollback, made before its first attempt: it keeps the retained
 * version's highest block then, so a resumed attempt knows which rows it copied before.
 */
async function swapBackRecord({ ch }: StepContext, step: SwapBackStep): Promise<MigrationRow> {
  const m = await activeMigration(ch, step.database, step.table);
  if (m && m.kind === 'SwapBack' && m.to_version === step.toVersion) return m;
  const block = await maxBlock(ch, { database: step.database, table: step.retainedTable });
  return record(
    ch,
    newMigration({
      database: step.database,
      table: step.table,
      kind: 'SwapBack',
      from_version: step.fromVersion,
      to_version: step.toVersion,
      next_block: block,
      detail: `roll back to ${step.retainedTable}`,
    }),
  );
}
