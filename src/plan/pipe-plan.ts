// plan for one Pipe: a materialized Pipe is a ClickHouse materialized view TO its target
// DataSource's table; a plain Pipe has nothing to create (Endpoints run its SQL).
import type { DataSource } from '../api/datasource.js';
import { clickhouseName, databaseOf, qualifiedTableOf, resourceName, tableOf } from '../api/names.js';
import type { Pipe, PipeNode } from '../api/pipe.js';
import { findTable, type Catalog, type TableRef } from './catalog.js';
import { stableHash } from '../runtime/hash.js';
import type { ProjectResource } from './graph.js';
import { materializeTarget, nameRefusals, pipeSqlProblems } from './project-checks.js';
import { withoutTrailingSemicolons } from './sql.js';
import { findTableReferences } from './sql-scan.js';

export type PipeStep =
  | { kind: 'CreateView'; database: string; view: string; target: TableRef; query: string; sources: TableRef[]; backfill: 'Full' | 'None'; specHash: string }
  | { kind: 'ModifyViewQuery'; database: string; view: string; query: string; specHash: string }
  | {
      kind: 'RecomputeView';
      database: string;
      view: string;
      target: TableRef;
      query: string;
      sources: TableRef[];
      specHash: string;
      targetVersion: number;
      keepPreviousVersions: number;
    }
  /** A recompute interrupted after its swap: the previous version still sits under the recompute name. */
  | { kind: 'FinishRecompute'; database: string; view: string; target: TableRef; leftover: string; version: number; keepPreviousVersions: number };

export interface PipePlan {
  view?: string;
  steps: PipeStep[];
  refusals: string[];
}

export const VIEW_MARKER_PREFIX = 'weir-pipe:';
/** Where a recompute builds the target's next version, and where the previous one sits right after the swap. */
export const RECOMPUTE_TABLE_SUFFIX = '__weir_recompute';
/** The view's COMMENT: its spec hash, and `:backfilling` until its backfill has landed. */
export const viewMarker = (specHash: string, backfilling = false): string => `${VIEW_MARKER_PREFIX}${specHash}${backfilling ? ':backfilling' : ''}`;

/**
 * Nodes up to `upTo` as one query: earlier nodes become CTEs readable by name. Each node ends
 * on a new line inside its CTE; the result may end in a comment, so it is spliced into other
 * SQL only through embedSql.
 */
export function composeQuery(nodes: PipeNode[], upTo?: string): string {
  const end = upTo === undefined ? nodes.length - 1 : nodes.findIndex((n) => n.name === upTo);
  const used = nodes.slice(0, end + 1);
  const last = used[used.length - 1];
  if (!last) throw new Error(`node ${upTo ?? ''} not found`);
  const strip = withoutTrailingSemicolons;
  if (used.length === 1) return strip(last.sql);
  const ctes = used.slice(0, -1).map((n) => `${n.name} AS (\n${strip(n.sql)}\n)`);
  return `WITH ${ctes.join(',\n')}\n${strip(last.sql)}`;
}

/**
 * Plan one Pipe against the catalog. `project` is what is known of the other resources (by
 * default the DataSources given): a name clash with one of them is refused.
 */
export function planPipe(pipe: Pipe, dataSources: DataSource[], catalog: Catalog, project: readonly ProjectResource[] = dataSources): PipePlan {
  const ns = pipe.metadata.namespace ?? 'default';
  const m = pipe.spec.materialize;
  const plan: PipePlan = { steps: [], refusals: pipeSqlProblems(pipe).map((p) => p.message) };
  if (!m || plan.refusals.length > 0) return plan;
  const target = materializeTarget(pipe, dataSources);
  if (!target) {
    plan.refusals.push(`materialize.into names DataSource ${ns}/${m.into}, which does not exist`);
    return plan;
  }
  const database = databaseOf(target);
  const view = clickhouseName(pipe.metadata.name);
  plan.view = `${database}.${view}`;
  // A clash with a known resource says more than what the catalog shows of it.
  const names = nameRefusals(pipe, [...project, ...dataSources]);
  plan.refusals.push(...(names.length > 0 ? names : viewNameTaken(catalog, database, view, qualifiedTableOf(target))));
  if (plan.refusals.length > 0) return plan;
  const query = composeQuery(pipe.spec.nodes, m.node);
  const nodeNames = new Set(pipe.spec.nodes.map((n) => n.name));
  const sources: TableRef[] = [];
  for (const ref of pipe.spec.nodes.flatMap((n) => findTableReferences(n.sql))) {
    if (nodeNames.has(ref)) continue;
    const [db, table] = ref.includes('.') ? (ref.split('.') as [string, string]) : [undefined, ref];
    const ds = dataSources.find((d) => d.metadata.name === resourceName(table) && (db === undefined || databaseOf(d) === db));
    if (ds && !sources.some((s) => s.database === databaseOf(ds) && s.table === tableOf(ds))) {
      sources.push({ database: databaseOf(ds), table: tableOf(ds) });
    }
  }
  const specHash = stableHash({ query, target: m.into, backfill: m.backfill ?? 'Full' });
  const keepPreviousVersions = target.spec.migration?.keepPreviousVersions ?? 1;
  const finish = interruptedRecompute(catalog, database, view, tableOf(target), keepPreviousVersions);
  if (finish) plan.steps.push(finish);
  const existing = catalog.views.find((v) => v.database === database && v.name === view);
  if (existing?.comment === viewMarker(specHash)) return plan;
  // Missing, or created with its backfill interrupted: the executor resumes it from its recorded state.
  if (!existing || existing.comment === viewMarker(specHash, true)) {
    plan.steps.push({
      kind: 'CreateView',
      database,
      view,
      target: { database, table: tableOf(target) },
      query,
      sources,
      backfill: m.backfill ?? 'Full',
      specHash,
    });
    return plan;
  }
  if (!existing.comment.startsWith(VIEW_MARKER_PREFIX)) {
    plan.refusals.push(`view ${database}.${view} exists but was not created by weir; rename or drop it`);
  } else if ((m.backfill ?? 'Full') === 'None') {
    plan.steps.push({ kind: 'ModifyViewQuery', database, view, query, specHash });
  } else {
    const targetTable = findTable(catalog, database, tableOf(target));
    if (!targetTable?.marker) plan.refusals.push(`target table ${qualifiedTableOf(target)} has no weir marker; cannot recompute it`);
    else {
      plan.steps.push({
        kind: 'RecomputeView',
        database,
        view,
        target: { database, table: tableOf(target) },
        query,
        sources,
        specHash,
        targetVersion: targetTable.marker.version,
        keepPreviousVersions,
      });
    }
  }
  return plan;
}

/**
 * A recompute killed after its fenced swap but before the previous version was put away: the
 * Pipe's view already carries its new marker, and the previous version sits under the recompute
 * name with a lower version than the live target. Finishing it retains that version (or drops
 * it with keepPreviousVersions: 0) and closes its ledger row. A leftover with a higher version
 * is a recompute interrupted before its swap, which RecomputeView resumes.
 */
function interruptedRecompute(catalog: Catalog, database: string, view: string, table: string, keepPreviousVersions: number): PipeStep | undefined {
  const live = findTable(catalog, database, table);
  const leftover = findTable(catalog, database, `${table}${RECOMPUTE_TABLE_SUFFIX}`);
  if (!live?.marker || !leftover?.marker || leftover.marker.version >= live.marker.version) return undefined;
  return {
    kind: 'FinishRecompute',
    database,
    view,
    target: { database, table },
    leftover: leftover.name,
    version: leftover.marker.version,
    keepPreviousVersions,
  };
}

/**
 * Why the view's name is taken in ClickHouse by something that is not this Pipe's view: a
 * table (CREATE MATERIALIZED VIEW IF NOT EXISTS would do nothing, and the backfill and the
 * view's marker would land on that table), or a view writing to another table.
 */
function viewNameTaken(catalog: Catalog, database: string, view: string, target: string): string[] {
  const table = findTable(catalog, database, view);
  if (table) {
    const whose = table.marker ? "a DataSource's table" : 'a table weir did not create';
    return [`${database}.${view} exists as ${whose}, so the materialized view cannot be created; rename the Pipe (or the table)`];
  }
  const existing = catalog.views.find((v) => v.database === database && v.name === view);
  if (existing?.target !== undefined && existing.target !== target && existing.comment.startsWith(VIEW_MARKER_PREFIX)) {
    return [
      `view ${database}.${view} writes to ${existing.target}, not to ${target}: it is another Pipe's, or this Pipe's before materialize.into changed, and weir does not move a view to another table; rename the Pipe, or drop the view`,
    ];
  }
  return [];
}

export function describePipeStep(s: PipeStep): string {
  switch (s.kind) {
    case 'CreateView':
      return `create materialized view ${s.database}.${s.view} TO ${s.target.database}.${s.target.table}${s.backfill === 'Full' ? `, backfilling rows already in ${s.sources.map((x) => `${x.database}.${x.table}`).join(', ') || 'its sources'} exactly once` : ''}`;
    case 'ModifyViewQuery':
      return `change the query of ${s.database}.${s.view} for new rows (backfill: None)`;
    case 'RecomputeView':
      return `recompute ${s.target.database}.${s.target.table} with the new query of ${s.database}.${s.view}: build v${s.targetVersion + 1} from a second view and an exactly-once backfill, then swap it in under a fence`;
    case 'FinishRecompute':
      return `finish the interrupted recompute of ${s.target.database}.${s.target.table}: ${s.keepPreviousVersions > 0 ? `keep v${s.version} (left as ${s.leftover}) as ${s.target.table}__v${s.version}` : `drop v${s.version} (left as ${s.leftover}; keepPreviousVersions: 0)`}`;
  }
}
