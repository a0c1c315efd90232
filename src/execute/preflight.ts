// Gather the preflight facts of the copy-and-swaps a plan holds: the rows that would not
// convert (count and samples) and the dependent views that would not compile against the
// next shape. Read-only: nothing is created; the planner refuses with them (plan/preflight.ts).
import type { ClickHouse } from '../clickhouse/connection.js';
import { activeMigration } from './ledger.js';
import { isMissingDependency, toClickHouseError } from '../clickhouse/errors.js';
import type { Catalog } from '../plan/catalog.js';
import type { MigrationStep } from '../plan/datasource-plan.js';
import {
  tablePartsSql,
  checkedTypeChanges,
  type Capacity,
  dependentViews,
  unconvertibleSql,
  viewAgainstNextShapeSql,
  type CopyStep,
  type Preflight,
  type TablePreflight,
} from '../plan/preflight.js';

/** The open migration of a table in weir.migrations (the ledger's), if any; none before weir's tables exist. */
async function activeMigrationState(ch: ClickHouse, database: string, table: string): Promise<string | undefined> {
  try {
    return (await activeMigration(ch, database, table))?.state;
  } catch (e) {
    if (isMissingDependency(toClickHouseError(e))) return undefined;
    throw e;
  }
}

async function unconvertible(ch: ClickHouse, step: CopyStep): Promise<TablePreflight['unconvertible']> {
  const out: TablePreflight['unconvertible'] = [];
  for (const change of checkedTypeChanges(step)) {
    const [row] = await ch.query<{ n: string; samples: string[] }>(unconvertibleSql(step, change));
    const rows = Number(row?.n ?? 0);
    if (rows > 0) out.push({ ...change, rows, samples: row?.samples ?? [] });
  }
  return out;
}

async function brokenViews(ch: ClickHouse, catalog: Catalog, step: CopyStep): Promise<TablePreflight['brokenViews']> {
  const out: TablePreflight['brokenViews'] = [];
  for (const view of dependentViews(catalog.views, step)) {
    try {
      await ch.query(viewAgainstNextShapeSql(view, step), { settings: { readonly: 2 } });
    } catch (e) {
      const error = toClickHouseError(e);
      if (error.retriable) throw e; // the server's trouble, not the view's
      out.push({ view: `${view.database}.${view.name}`, error: error.message });
    }
  }
  return out;
}

/** Rows and bytes of the table's active parts, and the free space of the disk holding most of them. */
async function capacity(ch: ClickHouse, step: CopyStep): Promise<Capacity | undefined> {
  const parts = await ch.query<{ disk: string; rows: string; bytes: string }>(tablePartsSql(), { params: { db: step.database, t: step.table } });
  const rows = parts.reduce((n, p) => n + Number(p.rows), 0);
  const bytes = parts.reduce((n, p) => n + Number(p.bytes), 0);
  const disk = parts[0]?.disk ?? 'default';
  const [free] = await ch.query<{ free: string }>('SELECT toString(free_space) AS free FROM system.disks WHERE name = {d:String}', { params: { d: disk } });
  return free ? { rows, bytes, disk, freeBytes: Number(free.free) } : undefined;
}

/**
 * The facts for every new copy-and-swap among the steps. A copy already under way (its row in
 * weir.migrations past Started) was checked when it began and is left to finish.
 */
export async function gatherPreflight(ch: ClickHouse, catalog: Catalog, steps: readonly MigrationStep[]): Promise<Preflight> {
  const out: Record<string, TablePreflight> = {};
  for (const step of steps) {
    if (step.kind !== 'CopyAndSwap') continue;
    const state = await activeMigrationState(ch, step.database, step.table);
    if (state !== undefined && state !== 'Started') continue;
    const room = await capacity(ch, step);
    out[`${step.database}.${step.table}`] = {
      unconvertible: await unconvertible(ch, step),
      brokenViews: await brokenViews(ch, catalog, step),
      ...(room ? { capacity: room } : {}),
    };
  }
  return out;
}
