// Read-only questions the state machines ask ClickHouse: does a table exist, what does its
// comment say, how many rows, the highest block, which tables feed it.
import { observeCatalog } from '../clickhouse/catalog.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import { decodeMarker, upstreamTables, type TableRef } from '../plan/catalog.js';
import { keyLiteral, planChunks, rangeKeyType, type BackfillChunk, type PartInfo, type PartMarks } from '../plan/chunks.js';
import { quoteIdentifier, quoteString } from '../plan/sql.js';
import { MigrationRefusedError } from './errors.js';

/**
 * The highest block number in a table, from its parts (milliseconds at any size, where a
 * scan of _block_number takes seconds on a large table under writes). Rows keep their
 * block numbers through merges (enable_block_number_column) and new inserts take higher
 * ones, so `_block_number <= this` is exactly the rows committed before it was read.
 */
export async function maxBlock(ch: ClickHouse, t: TableRef): Promise<string> {
  const [row] = await ch.query<{ b: string | null }>(
    'SELECT toString(max(max_block_number)) AS b FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active',
    { params: { db: t.database, t: t.table } },
  );
  return row?.b ?? '0';
}

/** The table's active parts (metadata only): what backfill chunks are planned from and catch-up rounds estimated by. */
export async function activeParts(ch: ClickHouse, t: TableRef): Promise<(PartInfo & { name: string })[]> {
  const rows = await ch.query<{ name: string; partition_id: string; min_block_number: string; max_block_number: string; rows: string; deletes: number }>(
    `SELECT name, partition_id, min_block_number, max_block_number, rows, has_lightweight_delete AS deletes FROM system.parts
     WHERE database = {db:String} AND table = {t:String} AND active ORDER BY partition_id, min_block_number`,
    { params: { db: t.database, t: t.table } },
  );
  return rows.map((r) => ({
    name: r.name,
    partitionId: r.partition_id,
    minBlock: Number(r.min_block_number),
    maxBlock: Number(r.max_block_number),
    rows: Number(r.rows),
    hasDeletes: Number(r.deletes) === 1,
  }));
}

/** The chunks of a backfill of `t` up to `upToBlock` (planChunks), with the indexes of the parts too large for one chunk, so those are cut by key. */
export async function planBackfill(ch: ClickHouse, t: TableRef, upToBlock: number, chunkRows: number): Promise<BackfillChunk[]> {
  const parts = await activeParts(ch, t);
  const large = parts.filter((p) => p.rows > chunkRows && p.minBlock <= upToBlock).map((p) => p.name);
  return planChunks(parts, upToBlock, chunkRows, await partMarks(ch, t, large));
}

/**
 * The primary key indexes of the named parts (mergeTreeIndex), for cutting them by key ranges;
 * empty when the key cannot bound ranges: an expression rather than columns, a type that does
 * not compare as it sorts (Float, Nullable, …), or a server without mergeTreeIndex.
 */
export async function partMarks(ch: ClickHouse, t: TableRef, partNames: readonly string[]): Promise<Map<string, PartMarks>> {
  const out = new Map<string, PartMarks>();
  if (partNames.length === 0) return out;
  const [table] = await ch.query<{ key: string }>('SELECT primary_key AS key FROM system.tables WHERE database = {db:String} AND name = {t:String}', {
    params: { db: t.database, t: t.table },
  });
  const columns = new Map(
    (
      await ch.query<{ name: string; type: string }>('SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}', {
        params: { db: t.database, t: t.table },
      })
    ).map((c) => [c.name, c.type]),
  );
  const names = splitKey(table?.key ?? '');
  const types = names.map((n) => columns.get(n));
  if (names.length === 0 || !types.every((type): type is string => type !== undefined && rangeKeyType(type))) return out;
  const keys = names.map(quoteIdentifier);
  let rows: { part: string; rows: string; key: string[] }[];
  try {
    rows = await ch.query(
      `SELECT part_name AS part, rows_in_granule AS rows, [${keys.map((k) => `hex(toString(${k}))`).join(', ')}] AS key
       FROM mergeTreeIndex(${quoteString(t.database)}, ${quoteString(t.table)}) WHERE part_name IN {parts:Array(String)} ORDER BY part_name, mark_number`,
      { params: { parts: partNames } },
    );
  } catch {
    return out; // no mergeTreeIndex here: block ranges then
  }
  for (const r of rows) {
    const marks = out.get(r.part) ?? { keys, granules: [] };
    marks.granules.push({ key: r.key.map((h, i) => keyLiteral(h, types[i] as string)), rows: Number(r.rows) });
    out.set(r.part, marks);
  }
  return out;
}

/** The column names of a key as system.tables prints it ("a, `b c`"), or [] when any item is an expression. */
function splitKey(key: string): string[] {
  if (key.trim() === '') return [];
  const items = key.split(',').map((s) => s.trim());
  const names: string[] = [];
  for (const item of items) {
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(item)) names.push(item);
    else if (/^`([^`\\]|\\.)*`$/.test(item)) names.push(item.slice(1, -1).replace(/\\(.)/g, '$1'));
    else return [];
  }
  return names;
}

/** The table's partition key as ClickHouse prints it ('' when unpartitioned). */
export async function partitionKey(ch: ClickHouse, t: TableRef): Promise<string> {
  const rows = await ch.query<{ k: string }>('SELECT partition_key AS k FROM system.tables WHERE database = {db:String} AND name = {t:String}', {
    params: { db: t.database, t: t.table },
  });
  return rows[0]?.k ?? '';
}

/** Rows per partition id, of the rows `where` selects. */
export async function countByPartition(ch: ClickHouse, table: string, where = '1'): Promise<Map<string, number>> {
  const rows = await ch.query<{ p: string; n: string }>(`SELECT _partition_id AS p, count() AS n FROM ${table} WHERE ${where} GROUP BY p`);
  return new Map(rows.map((r) => [r.p, Number(r.n)]));
}

export async function count(ch: ClickHouse, table: string, where = '1'): Promise<number> {
  const [row] = await ch.query<{ n: string }>(`SELECT count() AS n FROM ${table} WHERE ${where}`);
  return Number(row?.n ?? 0);
}

export async function exists(ch: ClickHouse, database: string, name: string): Promise<boolean> {
  const rows = await ch.query<{ n: string }>('SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {n:String}', {
    params: { db: database, n: name },
  });
  return Number(rows[0]?.n ?? 0) > 0;
}

/** The engine and comment of a table or view, or undefined when there is none of that name. */
async function objectAt(ch: ClickHouse, database: string, name: string): Promise<{ engine: string; comment: string } | undefined> {
  const rows = await ch.query<{ engine: string; comment: string }>(
    'SELECT engine, comment FROM system.tables WHERE database = {db:String} AND name = {n:String}',
    {
      params: { db: database, n: name },
    },
  );
  return rows[0];
}

export async function comment(ch: ClickHouse, database: string, name: string): Promise<string> {
  const rows = await ch.query<{ comment: string }>('SELECT comment FROM system.tables WHERE database = {db:String} AND name = {n:String}', {
    params: { db: database, n: name },
  });
  return rows[0]?.comment ?? '';
}

export async function markerVersion(ch: ClickHouse, database: string, name: string): Promise<number | undefined> {
  return decodeMarker(await comment(ch, database, name))?.version;
}

/** The table and every table feeding it through materialized views: all their writers pause together. */
export async function fencedTables(ch: ClickHouse, t: TableRef): Promise<TableRef[]> {
  return [t, ...upstreamTables(await observeCatalog(ch, [t.database]), t)];
}

export const isView = (engine: string): boolean => engine === 'MaterializedView' || engine === 'View';

/**
 * CREATE … IF NOT EXISTS (kept so a resumed step is harmless) does nothing when the name is
 * taken: say so, rather than report created what was not.
 */
export async function assertCreated(
  ch: ClickHouse,
  database: string,
  name: string,
  ours: (o: { engine: string; comment: string }) => boolean,
  what: string,
): Promise<void> {
  const found = await objectAt(ch, database, name);
  if (found && ours(found)) return;
  throw new MigrationRefusedError(
    found
      ? `${database}.${name} already exists as a ${found.engine} (comment ${JSON.stringify(found.comment.slice(0, 60))}), which is not ${what}: nothing was created; rename the resource or drop that object`
      : `${database}.${name} is missing right after it was created`,
  );
}
