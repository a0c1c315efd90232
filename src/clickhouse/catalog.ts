// observe: read what exists in ClickHouse into the catalog model (plan/catalog.ts) the planner compares against.
import { decodeMarker, emptyCatalog, type Catalog } from '../plan/catalog.js';
import type { ClickHouse } from './connection.js';

interface CatalogRow {
  database: string;
  /** '' for a database without tables (the row of the database alone). */
  name: string;
  engine: string;
  comment: string;
  total_rows: string | null;
  as_select: string;
  create_table_query: string;
  sorting_key: string;
  partition_key: string;
  /** [name, type] in position order. */
  columns: [string, string][];
}

/**
 * The catalog in one round trip: each database with its tables, each table with its columns in
 * order (system.databases ⟕ system.tables ⟕ system.columns, the columns grouped per table).
 */
const CATALOG_SQL = `SELECT d.name AS database, t.name AS name, t.engine AS engine, t.comment AS comment, t.total_rows AS total_rows,
  t.as_select AS as_select, t.create_table_query AS create_table_query, t.sorting_key AS sorting_key, t.partition_key AS partition_key,
  c.columns AS columns
FROM (SELECT name FROM system.databases WHERE name IN {dbs:Array(String)}) AS d
LEFT JOIN (
  SELECT database, name, engine, comment, total_rows, as_select, create_table_query, sorting_key, partition_key
  FROM system.tables WHERE database IN {dbs:Array(String)} AND NOT is_temporary
) AS t ON t.database = d.name
LEFT JOIN (
  SELECT database, table, arrayMap(x -> [x.2, x.3], arraySort(x -> x.1, groupArray((position, name, type)))) AS columns
  FROM system.columns WHERE database IN {dbs:Array(String)} GROUP BY database, table
) AS c ON c.database = t.database AND c.table = t.name
ORDER BY database, name
SETTINGS join_use_nulls = 0`;

/** Read the catalog of the given databases (system tables only; no data is read), in one query. */
export async function observeCatalog(ch: ClickHouse, databases: string[]): Promise<Catalog> {
  if (databases.length === 0) return emptyCatalog();
  const rows = await ch.query<CatalogRow>(CATALOG_SQL, { params: { dbs: databases } });
  const catalog: Catalog = { databases: [...new Set(rows.map((r) => r.database))], tables: [], views: [] };
  for (const t of rows) {
    if (t.name === '') continue; // a database without tables
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
      columns: (t.columns ?? []).map(([name, type]) => ({ name, type })),
      comment: t.comment,
      ...(marker ? { marker } : {}),
      totalRows: Number(t.total_rows ?? 0),
      sortingKey: t.sorting_key,
      partitionKey: t.partition_key,
    });
  }
  return catalog;
}
