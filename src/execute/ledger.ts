// weir.migrations: one row per migration, rewritten at every state it reaches, so an executor
// killed at any point finds where the migration stood (the row with the highest seq wins).
import { randomBytes } from 'node:crypto';
import type { ClickHouse } from '../clickhouse/connection.js';

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
