// observe: read what exists in ClickHouse into the catalog model (plan/catalog.ts) the planner compares against.
import { decodeMarker, emptyCatalog, type Catalog, type ObservedColumn } from '../plan/catalog.js';
import type { ClickHouse } from './connection.js';

/** Read the catalog of the given databases (system tables only; no data is read). */
export async function observeCatalog(ch: ClickHouse, databases: string[]): Promise<Catalog> {
  if (databases.length === 0) return emptyCatalog();
  const params = { dbs: databases };
  const [dbs, tables, columns] = await Promise.all([
    ch.query<{ name: string }>('SELECT name FROM system.databases WHERE name IN {dbs:Array(String)}', { params }),
    ch.query<{
      database: string;
      name: string;
      engine: string;
      comment: string;
      total_rows: string | null;
      as_select: string;
      create_table_query: string;
      sorting_key: string;
      partition_key: string;
    }>(
      'SELECT database, name, engine, comment, total_rows, as_select, create_table_query, sorting_key, partition_key FROM system.tables WHERE database IN {dbs:Array(String)} AND NOT is_temporary',
      { params },
    ),
    ch.query<{ database: string; table: string; name: string; type: string }>(
      'SELECT database, table, name, type FROM system.columns WHERE database IN {dbs:Array(String)} ORDER BY database, table, position',
      { params },
    ),
  ]);
  const columnsOf = new Map<string, ObservedColumn[]>();
  for (const c of columns) {
    const key = `${c.database}.${c.table}`;
    columnsOf.set(key, [...(columnsOf.get(key) ?? []), { name: c.name, type: c.type }]);
  }
  const catalog: Catalog = { databases: dbs.map((d) => d.name), tables: [], views: [] };
  for (const t of tables) {
    if (t.engine === 'MaterializedView' || t.engine === 'View') {
      const to = /\bTO\s+((?:`[^`]+`|[\w]+)\.(?:`[^`]+`|[\w]+))/.exec(t.create_table_query)?.[1]?.replace(/`/g, '');
      catalog.views.push({ database: t.database, name: t.name, target: to, query: t.as_select, comment: t.comment });
      continue;
    }
    const marker = decodeMarker(t.comment);
    catalog.tables.push({
      database: t.database,
      name: t.name,
      engine: t.engine,
      columns: columnsOf.get(`${t.database}.${t.name}`) ?? [],
      comment: t.comment,
      ...(marker ? { marker } : {}),
      totalRows: Number(t.total_rows ?? 0),
      sortingKey: t.sorting_key,
      partitionKey: t.partition_key,
    });
  }
  return catalog;
}
