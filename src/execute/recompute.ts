// Materialized Pipes: a new view over tables that already hold rows (backfilled exactly once),
// a recompute of the target when the query changed with backfill: Full, and the finish of a
// recompute interrupted after its swap. Resumable state machines whose progress is kept in
// weir.migrations under the view's name.
import { deduplicationOff } from '../clickhouse/dedup.js';
import { chunkWhere, stagedResume } from '../plan/chunks.js';
import { decodeMarker, encodeMarker, type TableRef } from '../plan/catalog.js';
import { RECOMPUTE_TABLE_SUFFIX, VIEW_MARKER_PREFIX, viewMarker, type PipeStep } from '../plan/pipe-plan.js';
import { embedSql, qualified, quoteIdentifier, quoteString } from '../plan/sql.js';
import { faultPoint } from '../runtime/fault.js';
import { BACKFILL_SETTINGS, type StepContext } from './context.js';
import { withFence } from './fence.js';
import { activeMigration, chunkPlan, newMigration, record, recordChunkDone, recordChunkPlan, type MigrationRow } from './ledger.js';
import { activeParts, assertCreated, comment, exists, markerVersion, maxBlock, planBackfill } from './probes.js';
import { settleOrphans } from './orphans.js';
import { ensureSystemTables } from './system-tables.js';
import { retain } from './versions.js';

type CreateViewStep = Extract<PipeStep, { kind: 'CreateView' }>;
type RecomputeViewStep = Extract<PipeStep, { kind: 'RecomputeView' }>;

/** backfill: None: the view takes the new query for rows from now on. */
export async function modifyViewQuery({ ch }: StepContext, step: Extract<PipeStep, { kind: 'ModifyViewQuery' }>): Promise<void> {
  const view = qualified(step.database, step.view);
  // Unqualified names in Pipe SQL mean tables of the Pipe's own database.
  await ch.command(`ALTER TABLE ${view} MODIFY QUERY ${embedSql(step.query)}`, { database: step.database });
  await ch.command(`ALTER TABLE ${view} MODIFY COMMENT ${quoteString(viewMarker(step.specHash))}`);
}

/**
 * A materialized view over tables that already hold rows and keep receiving them: with
 * the sources' writers fenced, create the view and record each source's block number N;
 * the view then sees every row after N, and the backfill exactly the rows up to N. The
 * backfill goes to a staging table (redone from scratch after a crash) and then moves
 * into the target partition by partition (each move atomic), so it lands exactly once.
 */
export async function createView(cx: StepContext, step: CreateViewStep): Promise<void> {
  const { ch } = cx;
  await ensureSystemTables(ch);
  const view = qualified(step.database, step.view);
  const target = qualified(step.target.database, step.target.table);
  const key = { database: step.database, table: step.view };
  const finalComment = `ALTER TABLE ${view} MODIFY COMMENT ${quoteString(viewMarker(step.specHash))}`;
  let m = await activeMigration(ch, key.database, key.table);
  if (!m) {
    if (await exists(ch, step.database, step.view)) {
      await assertOwnView(cx, step.database, step.view);
      return ch.command(finalComment); // backfilled; only the marker was left
    }
    m = await record(ch, newMigration({ ...key, kind: 'Materialize', from_version: 0, to_version: 1 }));
  }
  const backfills = step.backfill === 'Full' && step.sources.length > 0;
  const create = `CREATE MATERIALIZED VIEW IF NOT EXISTS ${view} TO ${target} AS ${embedSql(step.query)} COMMENT ${quoteString(viewMarker(step.specHash, backfills))}`;
  const inDb = { database: step.database };
  if (!backfills) {
    await ch.command(create, inDb);
    await assertOwnView(cx, step.database, step.view, m);
    await record(ch, { ...m, state: 'Done' });
    return;
  }
  if (m.state === 'Started' && m.detail !== '' && (await exists(ch, step.database, step.view))) {
    // An earlier attempt recorded the blocks and then created the view under the same fence, and
    // died before it said so: the view has pushed every row after those blocks (also the rows
    // written since the attempt died), so the backfill is the rows up to them.
    await assertOwnView(cx, step.database, step.view, m);
    m = await record(ch, { ...m, state: 'ViewCreated' });
  }
  if (m.state === 'Started') {
    const started: MigrationRow = m;
    const { result, report } = await withFence(
      ch,
      step.sources,
      async () => {
        // The blocks first: a view created after them (in this fence) sees exactly the rows after them.
        const blocks = await Promise.all(step.sources.map((s) => maxBlock(ch, s)));
        const noted = await record(ch, { ...started, detail: JSON.stringify(blocks) });
        await ch.command(create, inDb);
        await assertOwnView(cx, step.database, step.view, noted);
        faultPoint('ViewCreated');
        return record(ch, { ...noted, state: 'ViewCreated' });
      },
      cx.timing,
    );
    cx.fenceReports.push(report);
    m = result;
  }
  if (m.state === 'ViewCreated') {
    m = await stageBackfill(cx, step, step.target, JSON.parse(m.detail) as string[], m);
    faultPoint('Staged');
    m = await record(ch, { ...m, state: 'Staged' });
  }
  if (m.state === 'Staged') {
    await moveStaged(cx, step.target);
    await ch.command(finalComment);
    await record(ch, { ...m, state: 'Done' });
  }
}

/**
 * A materialized Pipe whose query changed, with backfill: Full: the target is recomputed
 * into its next version by a second view with the new query (created under a fence, with
 * a staged backfill of the rows before it, as for a new view); then, with the sources'
 * writers fenced, the versions are exchanged under the stable name, the Pipe's view takes
 * the new query and the second view goes.
 */
export async function recomputeView(cx: StepContext, step: RecomputeViewStep): Promise<void> {
  const { ch } = cx;
  await ensureSystemTables(ch);
  const { database } = step;
  const target = qualified(step.target.database, step.target.table);
  const tmpRef = { database: step.target.database, table: `${step.target.table}${RECOMPUTE_TABLE_SUFFIX}` };
  const tmp = qualified(tmpRef.database, tmpRef.table);
  const view = qualified(database, step.view);
  const nextView = qualified(database, `${step.view}__weir_next`);
  const inDb = { database };
  let m = await activeMigration(ch, database, step.view);
  if (m && m.to_version !== step.targetVersion + 1) {
    // An earlier recompute's row left open: it swapped (its target is live) or it is superseded.
    await record(ch, { ...m, state: m.state === 'Swapped' ? 'Done' : 'Abandoned' });
    m = undefined;
  }
  if (!m) {
    m = await record(ch, newMigration({ database, table: step.view, kind: 'Recompute', from_version: step.targetVersion, to_version: step.targetVersion + 1 }));
  }
  if (m.state === 'Started') {
    const started: MigrationRow = m;
    await ch.command(`DROP VIEW IF EXISTS ${nextView}`);
    await ch.command(`DROP TABLE IF EXISTS ${tmp}`);
    await ch.command(`CREATE TABLE ${tmp} AS ${target}`);
    const marker = decodeMarker(await comment(ch, step.target.database, step.target.table));
    if (marker) await ch.command(`ALTER TABLE ${tmp} MODIFY COMMENT ${quoteString(encodeMarker({ ...marker, version: step.targetVersion + 1 }))}`);
    const { result, report } = await withFence(
      ch,
      step.sources,
      async () => {
        await ch.command(`CREATE MATERIALIZED VIEW ${nextView} TO ${tmp} AS ${embedSql(step.query)}`, inDb);
        const blocks = await Promise.all(step.sources.map((s) => maxBlock(ch, s)));
        faultPoint('ViewCreated');
        return record(ch, { ...started, state: 'ViewCreated', detail: JSON.stringify(blocks) });
      },
      cx.timing,
    );
    cx.fenceReports.push(report);
    m = result;
  }
  if (m.state === 'ViewCreated') {
    m = await stageBackfill(cx, step, tmpRef, JSON.parse(m.detail) as string[], m);
    faultPoint('Staged');
    m = await record(ch, { ...m, state: 'Staged' });
  }
  if (m.state === 'Staged') {
    await moveStaged(cx, tmpRef);
    faultPoint('Backfilled');
    m = await record(ch, { ...m, state: 'Backfilled' });
  }
  if (m.state === 'Backfilled') {
    const backfilled: MigrationRow = m;
    const { result, report } = await withFence(
      ch,
      [...step.sources, step.target],
      async (assertHeld) => {
        await assertHeld();
        if ((await markerVersion(ch, step.target.database, step.target.table)) !== backfilled.to_version) {
          await ch.command(`EXCHANGE TABLES ${target} AND ${tmp}`);
          faultPoint('Exchanged');
        }
        await ch.command(`ALTER TABLE ${view} MODIFY QUERY ${embedSql(step.query)}`, inDb);
        await ch.command(`DROP VIEW IF EXISTS ${nextView}`);
        await ch.command(`ALTER TABLE ${view} MODIFY COMMENT ${quoteString(viewMarker(step.specHash))}`);
        return record(ch, { ...backfilled, state: 'Swapped' });
      },
      cx.timing,
    );
    cx.fenceReports.push(report);
    m = result;
  }
  if (m.state === 'Swapped') {
    faultPoint('Swapped');
    if (await exists(ch, tmpRef.database, tmpRef.table))
      await retain(ch, step.target.database, step.target.table, tmpRef.table, m.from_version, step.keepPreviousVersions);
    faultPoint('Retained');
    await record(ch, { ...m, state: 'Done' });
  }
}

/**
 * Put away the previous version a recompute killed after its swap left under the recompute
 * name (the planner saw it), and close the recompute's ledger row. Each part is idempotent.
 */
export async function finishRecompute({ ch }: StepContext, step: Extract<PipeStep, { kind: 'FinishRecompute' }>): Promise<void> {
  await ensureSystemTables(ch);
  const { database, table } = step.target;
  if (await exists(ch, database, step.leftover)) await retain(ch, database, table, step.leftover, step.version, step.keepPreviousVersions);
  faultPoint('Retained');
  const m = await activeMigration(ch, step.database, step.view);
  if (m?.kind === 'Recompute' && m.state === 'Swapped') await record(ch, { ...m, state: 'Done' });
}

/** The query_id of a view backfill's chunk: deterministic, so a resumed executor finds an orphan by it. */
export const viewChunkQueryId = (m: Pick<MigrationRow, 'id'>, index: number): string => `${m.id}-v${index}`;

/**
 * Backfill `into` from the view query over the sources' rows up to the recorded blocks, into a
 * staging copy. The first source (the table a `FROM … JOIN` view is triggered by) is read in
 * chunks planned from its active parts, as a copy-and-swap backfill is: one INSERT per chunk, the
 * chunk's predicate added to that source's `additional_table_filters`. A materialized view sees
 * each insert block on its own too, so an aggregate target stays exact, and a GROUP BY holds one
 * chunk's groups, not the whole source's.
 *
 * The plan is kept in weir.migration_chunks and each chunk recorded with the staging table's
 * highest block once it landed; merges of the staging table are stopped, so after a crash the
 * parts the chunk in flight left are exactly those above that block: they are dropped and the
 * backfill goes on from that chunk (stagedResume). When that cannot be told apart (a merge after
 * a server restart), the staging table starts again empty.
 */
async function stageBackfill(
  cx: StepContext,
  step: CreateViewStep | RecomputeViewStep,
  into: TableRef,
  blocks: string[],
  m: MigrationRow,
): Promise<MigrationRow> {
  const { ch } = cx;
  const stagingRef = { database: into.database, table: `${into.table}__weir_backfill` };
  const staging = qualified(stagingRef.database, stagingRef.table);
  const inDb = { database: step.database };
  const filter = (s: TableRef, where: string) => `${quoteString(`${s.database}.${s.table}`)}: ${quoteString(where)}`;
  const upTo = (i: number) => `_block_number <= ${blocks[i] ?? '0'}`;
  // Statements an earlier attempt left running on the server would race the staging table.
  const prefix = `${m.id}-v`;
  const orphans = await ch.query<{ query_id: string }>('SELECT query_id FROM system.processes WHERE startsWith(query_id, {p:String})', {
    params: { p: prefix },
  });
  if (orphans.length > 0)
    await settleOrphans(
      ch,
      orphans.map((o) => o.query_id),
      cx.log,
    );
  const [first, ...rest] = step.sources;
  let ledger = m.chunk_plan !== '' && (await exists(ch, stagingRef.database, stagingRef.table)) ? await chunkPlan(ch, m.id, m.chunk_plan) : [];
  if (ledger.length > 0) await ch.command(`SYSTEM STOP MERGES ${staging}`);
  const resume = stagedResume(ledger, ledger.length > 0 ? await activeParts(ch, stagingRef) : []);
  if (resume) {
    for (const part of resume.drop) await ch.command(`ALTER TABLE ${staging} DROP PART ${quoteString(part.name)}`);
    cx.log.info('view backfill resumed', {
      view: `${step.database}.${step.view}`,
      migration: m.id,
      chunk: resume.from + 1,
      chunks: ledger.length,
      dropped: resume.drop.length,
    });
  } else {
    await ch.command(`DROP TABLE IF EXISTS ${staging}`);
    await ch.command(`CREATE TABLE ${staging} AS ${qualified(into.database, into.table)}`);
    await ch.command(`SYSTEM STOP MERGES ${staging}`);
    const chunks = first ? await planBackfill(ch, first, Number(blocks[0] ?? '0'), cx.backfill.chunkRows) : [];
    m = await record(ch, { ...m, chunk_plan: await recordChunkPlan(ch, m.id, chunks) });
    ledger = chunks.map((chunk) => ({ chunk, done: false, nextBlock: '0' }));
  }
  const cols = (await ch.query<{ name: string }>(`DESCRIBE TABLE (${embedSql(step.query)})`, inDb)).map((c) => quoteIdentifier(c.name)).join(', ');
  const rowsTotal = ledger.reduce((s, c) => s + c.chunk.rows, 0);
  cx.hooks?.onProgress?.(step, 'Backfilling', { chunks: ledger.length, rowsTotal });
  cx.log.info('view backfill planned', { view: `${step.database}.${step.view}`, migration: m.id, chunks: ledger.length, rowsTotal });
  const settings = { ...BACKFILL_SETTINGS, ...(await groupBySpill(ch)), ...(await deduplicationOff(ch)) };
  const others = rest.map((s, i) => filter(s, upTo(i + 1)));
  let rowsRead = ledger.filter((c) => c.done).reduce((s, c) => s + c.chunk.rows, 0);
  let lastQuarter = Math.floor((rowsTotal > 0 ? (100 * rowsRead) / rowsTotal : 100) / 25);
  for (const { chunk } of ledger.filter((c) => !c.done)) {
    const filters = [filter(first as TableRef, `${upTo(0)} AND ${chunkWhere(chunk)}`), ...others];
    await ch.command(
      `INSERT INTO ${staging} (${cols}) SELECT ${cols} FROM (${embedSql(step.query)}) SETTINGS additional_table_filters = {${filters.join(', ')}}`,
      {
        ...inDb,
        queryId: viewChunkQueryId(m, chunk.index),
        settings,
      },
    );
    faultPoint('ViewChunkStaged');
    faultPoint(`ViewChunkStaged@${chunk.index + 1}`);
    await recordChunkDone(ch, m.id, m.chunk_plan, chunk, ledger.length, await maxBlock(ch, stagingRef), 0);
    rowsRead += chunk.rows;
    // A milestone (an Event) at every quarter, not at every chunk.
    const percent = rowsTotal > 0 ? (100 * rowsRead) / rowsTotal : 100;
    const quarter = Math.floor(percent / 25);
    if (quarter > lastQuarter && chunk.index + 1 < ledger.length)
      cx.hooks?.onProgress?.(step, 'Backfilling', { percent: quarter * 25, chunk: chunk.index + 1, chunks: ledger.length, rowsRead, rowsTotal });
    lastQuarter = Math.max(lastQuarter, quarter);
  }
  return m;
}

/**
 * A GROUP BY of a backfill spills to disk past half of the session's max_memory_usage instead of
 * failing; with no limit set (0), ClickHouse's own default stands.
 */
async function groupBySpill(ch: StepContext['ch']): Promise<Record<string, number>> {
  const [row] = await ch.query<{ value: string }>("SELECT value FROM system.settings WHERE name = 'max_memory_usage'");
  const memory = Number(row?.value ?? 0);
  return memory > 0 ? { max_bytes_before_external_group_by: Math.floor(memory / 2) } : {};
}

/** Move a staged backfill into its table a partition at a time (each move atomic), then drop the staging table. */
async function moveStaged({ ch }: StepContext, into: TableRef): Promise<void> {
  const stagingName = `${into.table}__weir_backfill`;
  if (!(await exists(ch, into.database, stagingName))) return;
  const parts = await ch.query<{ partition_id: string }>(
    'SELECT DISTINCT partition_id FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active ORDER BY partition_id',
    { params: { db: into.database, t: stagingName } },
  );
  const staging = qualified(into.database, stagingName);
  for (const p of parts) {
    await ch.command(`ALTER TABLE ${staging} MOVE PARTITION ID ${quoteString(p.partition_id)} TO TABLE ${qualified(into.database, into.table)}`, {
      settings: { alter_sync: 2 },
    });
    faultPoint('PartitionMoved');
  }
  await ch.command(`DROP TABLE IF EXISTS ${staging}`);
}

/** The view at the Pipe's name is a materialized view weir made; otherwise the migration row is refused and nothing else runs. */
async function assertOwnView({ ch }: StepContext, database: string, view: string, m?: MigrationRow): Promise<void> {
  try {
    await assertCreated(ch, database, view, (o) => o.engine === 'MaterializedView' && o.comment.startsWith(VIEW_MARKER_PREFIX), "a materialized Pipe's view");
  } catch (e) {
    if (m) await record(ch, { ...m, state: 'Refused', detail: 'name taken' });
    throw e;
  }
}
