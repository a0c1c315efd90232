// The catalog model: what exists in ClickHouse, as one value the planner compares against, and
// the marker weir writes into each table's COMMENT. Pure; clickhouse/catalog.ts reads it from a server.
import type { TableShape } from './sql.js';
import { findTableReferences } from './sql-scan.js';

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
  /** Decoded from `comment`; undefined when the comment holds no marker. */
  marker?: TableMarker | undefined;
  totalRows: number;
  /** As system.tables prints them ('' when none); undefined where not observed. */
  sortingKey?: string;
  partitionKey?: string;
}

export interface ObservedView {
  database: string;
  name: string;
  /** database.table the view writes to (TO …), if any. */
  target?: string | undefined;
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
