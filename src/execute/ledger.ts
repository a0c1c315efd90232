// weir.migrations: one row per migration, rewritten at every state it reaches, so an executor
// killed at any point finds where the migration stood (the row with the highest seq wins).
import { randomBytes } from 'node:crypto';
import type { ClickHouse } from '../clickhouse/connection.js';
import type { BackfillChunk } from '../plan/chunks.js';

export interface MigrationRow {
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
  /** The backfill's chunk plan in weir.migration_chunks ('' before one is made). */
  chunk_plan: string;
  /** Increments with every recorded state: orders states written within one millisecond. */
  seq: number;
}

/** A migration's first row, in state Started, under a fresh id; blocks start at 0 unless given. */
export function newMigration(
  m: Pick<MigrationRow, 'database' | 'table' | 'kind' | 'from_version' | 'to_version'> & Partial<Pick<MigrationRow, 'next_block' | 'detail'>>,
): MigrationRow {
  return {
    id: `mig-${randomBytes(6).toString('hex')}`,
    state: 'Started',
    source_block: '0',
    next_block: '0',
    verify_block: '0',
    swap_block: '0',
    detail: '',
    chunk_plan: '',
    seq: 0,
    ...m,
  };
}

/** Write the row's next state (seq + 1) and return it as written. */
export async function record(ch: ClickHouse, m: MigrationRow): Promise<MigrationRow> {
  const next = { ...m, seq: Number(m.seq) + 1 };
  await ch.insert('weir.migrations', [next]);
  return next;
}

/** The latest unfinished migration of a table (or a Pipe's view), if any. */
export async function activeMigration(ch: ClickHouse, database: string, table: string): Promise<MigrationRow | undefined> {
  const rows = await ch.query<MigrationRow>(
    `SELECT * FROM weir.migrations FINAL WHERE database = {db:String} AND table = {t:String}
     AND state NOT IN ('Done', 'Abandoned', 'Refused') ORDER BY seq DESC, updated_at DESC LIMIT 1`,
    { params: { db: database, t: table } },
  );
  return rows[0];
}

/** The block at which `version` of a table went live, from the migration that made it so. */
export async function swapBlockOf(ch: ClickHouse, database: string, table: string, version: number): Promise<string | undefined> {
  const rows = await ch.query<{ swap_block: string }>(
    `SELECT swap_block FROM weir.migrations FINAL WHERE database = {db:String} AND table = {t:String} AND to_version = {v:UInt32}
     AND state = 'Done' ORDER BY updated_at DESC LIMIT 1`,
    { params: { db: database, t: table, v: version } },
  );
  return rows[0]?.swap_block;
}

/** A planned chunk of a backfill, with whether it has landed and the next table's highest block once it had. */
export interface LedgerChunk {
  chunk: BackfillChunk;
  done: boolean;
  /** max_block_number of the next table right after this chunk landed ('0' while not done). */
  nextBlock: string;
}

interface ChunkRow {
  migration_id: string;
  plan_id: string;
  chunk: number;
  chunks: number;
  partition_ids: string[];
  from_block: string | number;
  to_block: string | number;
  rows: string | number;
  key_columns: string[];
  key_from: string[];
  key_to: string[];
  done: number;
  next_block: string | number;
  copied_rows: string | number;
}

const chunkRow = (migrationId: string, planId: string, c: BackfillChunk, chunks: number, done: boolean, nextBlock = '0', copiedRows = 0): ChunkRow => ({
  migration_id: migrationId,
  plan_id: planId,
  chunk: c.index,
  chunks,
  partition_ids: c.partitionIds,
  from_block: c.fromBlock,
  to_block: c.toBlock,
  rows: c.rows,
  key_columns: c.keyRange?.keys ?? [],
  key_from: c.keyRange?.from ?? [],
  key_to: c.keyRange?.to ?? [],
  done: done ? 1 : 0,
  next_block: nextBlock,
  copied_rows: copiedRows,
});

/** Write a backfill's chunk plan (every chunk not done) under a fresh plan id, and return the id. */
export async function recordChunkPlan(ch: ClickHouse, migrationId: string, chunks: BackfillChunk[]): Promise<string> {
  const planId = `plan-${randomBytes(4).toString('hex')}`;
  if (chunks.length > 0)
    await ch.insert(
      'weir.migration_chunks',
      chunks.map((c) => chunkRow(migrationId, planId, c, chunks.length, false)),
    );
  return planId;
}

/** A chunk has landed: after it, the next table's highest block is `nextBlock`. */
export async function recordChunkDone(
  ch: ClickHouse,
  migrationId: string,
  planId: string,
  c: BackfillChunk,
  chunks: number,
  nextBlock: string,
  copiedRows: number,
) {
  await ch.insert('weir.migration_chunks', [chunkRow(migrationId, planId, c, chunks, true, nextBlock, copiedRows)]);
}

/** The chunks of a plan in order, each with its latest state. */
export async function chunkPlan(ch: ClickHouse, migrationId: string, planId: string): Promise<LedgerChunk[]> {
  const rows = await ch.query<ChunkRow>(
    `SELECT * EXCEPT updated_at FROM weir.migration_chunks FINAL WHERE migration_id = {m:String} AND plan_id = {p:String} ORDER BY chunk`,
    { params: { m: migrationId, p: planId } },
  );
  return rows.map((r) => ({
    chunk: {
      index: Number(r.chunk),
      partitionIds: r.partition_ids,
      fromBlock: Number(r.from_block),
      toBlock: Number(r.to_block),
      rows: Number(r.rows),
      ...(r.key_columns.length > 0
        ? {
            keyRange: {
              keys: r.key_columns,
              ...(r.key_from.length > 0 ? { from: r.key_from } : {}),
              ...(r.key_to.length > 0 ? { to: r.key_to } : {}),
            },
          }
        : {}),
    },
    done: Number(r.done) === 1,
    nextBlock: String(r.next_block),
  }));
}
