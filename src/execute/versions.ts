// Previous table versions: the one a swap replaced is kept as <table>__v<N>, and only the
// newest keepPreviousVersions of them stay.
import type { ClickHouse } from '../clickhouse/connection.js';
import { versionTableName } from '../plan/datasource-plan.js';
import { qualified, quoteString } from '../plan/sql.js';
import type { TableRef } from '../plan/catalog.js';
import { activeParts, count } from './probes.js';

/** Keep the table at `tempName` as version `version` of `table` (or drop it when keep is 0), then prune. */
export async function retain(ch: ClickHouse, database: string, table: string, tempName: string, version: number, keep: number): Promise<void> {
  if (keep <= 0) {
    await ch.command(`DROP TABLE IF EXISTS ${qualified(database, tempName)}`);
    return;
  }
  const target = versionTableName(table, version);
  await ch.command(`DROP TABLE IF EXISTS ${qualified(database, target)}`);
  await ch.command(`RENAME TABLE ${qualified(database, tempName)} TO ${qualified(database, target)}`);
  await dropBeyond(ch, database, table, keep);
}

/** Drop the retained versions of `table` past the newest `keep`. */
export async function dropBeyond(ch: ClickHouse, database: string, table: string, keep: number): Promise<void> {
  const prefix = `${table}__v`;
  const rows = await ch.query<{ name: string }>('SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {p:String})', {
    params: { db: database, p: prefix },
  });
  const versions = rows
    .map((r) => ({ name: r.name, v: Number(r.name.slice(prefix.length)) }))
    .filter((x) => Number.isInteger(x.v))
    .sort((a, b) => b.v - a.v);
  for (const old of versions.slice(keep)) await ch.command(`DROP TABLE IF EXISTS ${qualified(database, old.name)}`);
}

/**
 * Remove the rows of `table` past `block` (an interrupted attempt's copy), if there are any. With
 * `ref`, from its parts first: when no part holds rows of both sides (the usual case: the next
 * version does not merge while it is built), the parts past the block are dropped, metadata only.
 * Else a lightweight DELETE, which reads the table and is a mutation: it runs on the table's
 * background executor, so merges stopped for a backfill are started first (a DELETE would wait
 * for them forever). Returns the parts dropped, -1 for the DELETE, 0 when nothing was there.
 */
export async function dropRowsAfter(ch: ClickHouse, table: string, block: string, ref?: TableRef): Promise<number> {
  const b = Number(block);
  if (ref) {
    const parts = await activeParts(ch, ref);
    if (!parts.some((p) => p.maxBlock > b)) return 0;
    const after = parts.filter((p) => p.minBlock > b);
    if (!parts.some((p) => p.minBlock <= b && p.maxBlock > b)) {
      try {
        for (const p of after) await ch.command(`ALTER TABLE ${table} DROP PART ${quoteString(p.name)}`);
        return after.length;
      } catch {
        // A part merging right now cannot be dropped: the DELETE below handles it.
      }
    }
    await ch.command(`SYSTEM START MERGES ${table}`);
  }
  if ((await count(ch, table, `_block_number > ${block}`)) === 0) return 0;
  await ch.command(`DELETE FROM ${table} WHERE _block_number > ${block}`, { settings: { mutations_sync: 2, lightweight_deletes_sync: 2 } });
  return -1;
}
