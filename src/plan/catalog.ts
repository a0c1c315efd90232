// observe: read what exists in ClickHouse into one value the planner can compare against.
import type { TableShape } from '../plan/sql.js';
import { findTableReferences } from '../plan/sql-scan.js';
import type { ClickHouse } from './connection.js';

/** What weir writes into a table's COMMENT: the table describes its own version and shape. */
export interface TableMarker {
  weir: 1;
  version: number;
  specHash: string;
  shape: TableShape;
}

export const MARKER_PREFIX = 'weir:';
export const encodeMarker = (m: Omit<TableMarker, 'weir'>): string => `${MARKER_PREFIX}${JSON.stringify({ weir: 1, ...m })}`;

export function decodeMarker(comment: string): TableMarker | undefined {
  if (!comment.startsWith(MARKER_PREFIX)) return undefined;
  try {
    const m = JSON.parse(comment.slice(MARKER_PREFIX.length)) as TableMarker;
    return m.weir === 1 && typeof m.version === 'number' ? m : undefined;
  } catch {
    return undefined;
  }
}

export interface TableRef {
  database: string;
  table: string;
}

export interface ObservedColumn {
  name: string;
  type: string;
}

export interface ObservedTable {
  database: string;
  name: string;
  engine: string;
  columns: ObservedColumn[];
  comment: string;
  marker?: TableMarker;
  totalRows: number;
}

export interface ObservedView {
  database: string;
  name: string;
  /** database.table the view writes to (TO …), if any. */
  target?: string;
  query: string;
  comment: string;
}

export interface Catalog {
  databases: string[];
  tables: ObservedTable[];
  views: ObservedView[];
}

export const emptyCatalog = (): Catalog => ({ databases: [], tables: [], views: [] });

export const findTable = (c: Catalog, database: string, name: string): ObservedTable | undefined =>
  c.tables.find((t) => t.database === database && t.name === name);

/** Read the catalog of the given databases (system tables only; no data is read). */
export async function observeCatalog(ch: ClickHouse, databases: string[]): Promise<Catalog> {
  if (databases.length === 0) return emptyCatalog();
  const params = { dbs: databases };
  const [dbs, tables, columns] = await Promise.all([
    ch.query<{ name: string }>('SELECT name FROM system.databases WHERE name IN {dbs:Array(String)}', { params }),
    ch.query<{ database: string; name: string; engine: string; comment: string; total_rows: string | null; as_select: string; create_table_query: string }>(
      'SELECT database, name, engine, comment, total_rows, as_select, create_table_query FROM system.tables WHERE database IN {dbs:Array(String)} AND NOT is_temporary',
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
    });
  }
  return catalog;
}

/** Tables whose inserts reach `t` through materialized views (transitively): their writers are fenced with t's. */
export function upstreamTables(catalog: Catalog, t: TableRef): TableRef[] {
  const found: TableRef[] = [];
  const visit = (target: TableRef) => {
    for (const v of catalog.views) {
      if (v.target !== `${target.database}.${target.table}`) continue;
      for (const ref of findTableReferences(v.query)) {
        const [database, table] = ref.includes('.') ? (ref.split('.') as [string, string]) : [v.database, ref];
        if (found.some((f) => f.database === database && f.table === table)) continue;
        found.push({ database, table });
        visit({ database, table });
      }
    }
  };
  visit(t);
  return found;
}
