// plan for one DataSource: desired spec + observed catalog → ordered, printable steps, or
// refusals that say why nothing will be done. Pure: no I/O, no clock.
import type { BackfillLimits, Column, DataSource } from '../api/datasource.js';
import { databaseOf, qualifiedTableOf, tableOf } from '../api/names.js';
import { findTable, type Catalog, type ObservedTable } from './catalog.js';
import { stableHash } from '../runtime/hash.js';
import type { ProjectResource } from './graph.js';
import { VIEW_MARKER_PREFIX } from './pipe-plan.js';
import { forwardQueryProblem, nameRefusals } from './project-checks.js';
import { handAddedColumns, tableDrift } from './drift.js';
import { preflightRefusals, type Capacity, type Preflight, type TypeChange } from './preflight.js';
import { columnDetails, indexDefinition, keyTuple, quarantineTableName, quoteIdentifier, quoteString, tableShape, type TableShape } from './sql.js';

export type { TypeChange } from './preflight.js';

export type MigrationStep =
  | { kind: 'CreateDatabase'; database: string }
  | { kind: 'CreateTable'; database: string; table: string; shape: TableShape; version: number; specHash: string }
  | { kind: 'CreateQuarantine'; database: string; table: string }
  | { kind: 'AlterTable'; database: string; table: string; actions: string[]; changes: string[]; version: number; shape: TableShape; specHash: string }
  | {
      kind: 'CopyAndSwap';
      database: string;
      table: string;
      fromVersion: number;
      toVersion: number;
      shape: TableShape;
      specHash: string;
      reasons: string[];
      /** SELECT over {source} mapping old rows to the new columns; default: by column name. */
      forwardQuery?: string;
      typeChanges: TypeChange[];
      /** Every old row becomes exactly one new row, so counts must match before the swap. */
      oneToOne: boolean;
      keepPreviousVersions: number;
      /** spec.migration.backfill: what the backfill may take from the server (not part of the plan hash). */
      backfill?: BackfillLimits;
      /** spec.migration.verify: Counts (rows per partition only); absent, a checksum of the rows too. */
      verify?: 'Counts';
    }
  | {
      kind: 'SwapBack';
      database: string;
      table: string;
      fromVersion: number;
      toVersion: number;
      retainedTable: string;
      specHash: string;
      keepPreviousVersions: number;
    };

export interface DataSourcePlan {
  /** database.table */
  table: string;
  steps: MigrationStep[];
  /** Non-empty: the plan must not run; each says what is wrong and what to do. */
  refusals: string[];
  /** Non-empty: the copy-and-swap would be refused once it ran (MigrationRefused), found by the preflight. */
  preflightRefusals: string[];
  /** What the copy-and-swap will rewrite and the room on its disk, when the preflight read them. */
  capacity?: Capacity;
  /** How the live table differs from the shape weir built it with (ALTERs by hand); [] when it does not. */
  drift: string[];
}

export const shapeHash = (shape: TableShape): string => stableHash(shape);
export const versionTableName = (table: string, version: number): string => `${table}__v${version}`;
export const NEXT_TABLE_SUFFIX = '__weir_next';

const sameList = (a: readonly string[] | undefined, b: readonly string[] | undefined) => JSON.stringify(a ?? []) === JSON.stringify(b ?? []);
const normType = (t: string) => t.replace(/\s+/g, '');

interface ShapeDiff {
  alter: string[];
  changes: string[];
  copyReasons: string[];
  typeChanges: TypeChange[];
  refusals: string[];
}

function engineSignature(shape: TableShape): string {
  const e = shape.engine;
  return JSON.stringify([e.type, e.versionColumn, e.isDeletedColumn, e.signColumn, e.sumColumns]);
}

/** Compare the shape a table was built with to the desired one. */
export function diffShape(applied: TableShape, desired: TableShape, allowDestructive: boolean): ShapeDiff {
  const d: ShapeDiff = { alter: [], changes: [], copyReasons: [], typeChanges: [], refusals: [] };
  const before = new Map(applied.columns.map((c) => [c.name, c]));
  const after = new Map(desired.columns.map((c) => [c.name, c]));
  const added = desired.columns.filter((c) => !before.has(c.name));
  const dropped = applied.columns.filter((c) => !after.has(c.name));

  if (engineSignature(applied) !== engineSignature(desired))
    d.copyReasons.push(`engine ${applied.engine.type} → ${desired.engine.type} (or its parameters) changed`);
  if ((applied.engine.partitionKey ?? '') !== (desired.engine.partitionKey ?? ''))
    d.copyReasons.push(`partitionKey ${applied.engine.partitionKey ?? '(none)'} → ${desired.engine.partitionKey ?? '(none)'}`);
  if (!sameList(applied.engine.primaryKey, desired.engine.primaryKey)) d.copyReasons.push('primaryKey changed');

  const oldKey = applied.engine.sortingKey;
  const newKey = desired.engine.sortingKey;
  if (!sameList(oldKey, newKey)) {
    const extension = newKey.slice(oldKey.length);
    const isExtension = sameList(newKey.slice(0, oldKey.length), oldKey) && extension.every((k) => added.some((c) => c.name === k));
    if (isExtension && !applied.engine.primaryKey) {
      d.alter.push(`MODIFY ORDER BY ${keyTuple(newKey)}`);
      d.changes.push(`extend sortingKey with ${extension.join(', ')} (columns added now)`);
    } else {
      d.copyReasons.push(`sortingKey (${oldKey.join(', ')}) → (${newKey.join(', ')})`);
    }
  }

  for (const c of desired.columns) {
    const old = before.get(c.name);
    if (old && normType(old.type) !== normType(c.type)) {
      d.copyReasons.push(`column ${c.name}: ${old.type} → ${c.type}`);
      d.typeChanges.push({ column: c.name, from: old.type, to: c.type });
    }
  }
  if (dropped.length > 0 && !allowDestructive) {
    d.refusals.push(
      `dropping column${dropped.length > 1 ? 's' : ''} ${dropped.map((c) => c.name).join(', ')} loses data; set spec.migration.allowDestructive: true to allow it`,
    );
  }
  if (d.copyReasons.length > 0) return d; // the next table version gets everything else too

  // In place, in the order ClickHouse needs: new columns before an ORDER BY that uses them.
  const alterColumns: string[] = [];
  for (const c of added) {
    const i = desired.columns.indexOf(c);
    const prev = desired.columns[i - 1];
    alterColumns.push(
      `ADD COLUMN IF NOT EXISTS ${quoteIdentifier(c.name)} ${c.type}${columnDetails(c) ? ` ${columnDetails(c)}` : ''} ${prev ? `AFTER ${quoteIdentifier(prev.name)}` : 'FIRST'}`,
    );
    d.changes.push(`add column ${c.name} ${c.type}`);
  }
  for (const c of dropped) {
    alterColumns.push(`DROP COLUMN IF EXISTS ${quoteIdentifier(c.name)}`);
    d.changes.push(`drop column ${c.name}`);
  }
  for (const c of desired.columns) {
    const old = before.get(c.name);
    if (old) alterColumns.push(...columnChanges(old, c, d.changes));
  }
  d.alter.unshift(...alterColumns);

  if ((applied.engine.ttl ?? '') !== (desired.engine.ttl ?? '')) {
    d.alter.push(desired.engine.ttl ? `MODIFY TTL ${desired.engine.ttl}` : 'REMOVE TTL');
    d.changes.push(desired.engine.ttl ? `set TTL ${desired.engine.ttl}` : 'remove TTL');
  }
  const oldSettings = applied.engine.settings ?? {};
  const newSettings = desired.engine.settings ?? {};
  for (const [k, v] of Object.entries(newSettings)) {
    if (oldSettings[k] !== v) {
      d.alter.push(`MODIFY SETTING ${k} = ${/^-?\d+(\.\d+)?$/.test(v) ? v : quoteString(v)}`);
      d.changes.push(`setting ${k} = ${v}`);
    }
  }
  for (const k of Object.keys(oldSettings)) {
    if (!(k in newSettings)) {
      d.alter.push(`RESET SETTING ${k}`);
      d.changes.push(`reset setting ${k}`);
    }
  }
  const oldIdx = new Map(applied.indexes.map((i) => [i.name, i]));
  const newIdx = new Map(desired.indexes.map((i) => [i.name, i]));
  for (const [name, i] of oldIdx) {
    const next = newIdx.get(name);
    if (!next || indexDefinition(next) !== indexDefinition(i)) {
      d.alter.push(`DROP INDEX IF EXISTS ${quoteIdentifier(name)}`);
      if (!next) d.changes.push(`drop index ${name}`);
    }
  }
  for (const [name, i] of newIdx) {
    const old = oldIdx.get(name);
    if (!old || indexDefinition(old) !== indexDefinition(i)) {
      d.alter.push(`ADD ${indexDefinition(i).replace(/^INDEX /, 'INDEX IF NOT EXISTS ')}`);
      d.changes.push(old ? `change index ${name}` : `add index ${name}`);
    }
  }
  return d;
}

function columnChanges(old: Column, c: Column, changes: string[]): string[] {
  const out: string[] = [];
  const col = quoteIdentifier(c.name);
  if ((old.default ?? '') !== (c.default ?? '')) {
    out.push(c.default !== undefined ? `MODIFY COLUMN ${col} DEFAULT ${c.default}` : `MODIFY COLUMN ${col} REMOVE DEFAULT`);
    changes.push(c.default !== undefined ? `column ${c.name} default ${c.default}` : `column ${c.name} default removed`);
  }
  if ((old.codec ?? '') !== (c.codec ?? '')) {
    out.push(c.codec !== undefined ? `MODIFY COLUMN ${col} ${c.type} CODEC(${c.codec})` : `MODIFY COLUMN ${col} REMOVE CODEC`);
    changes.push(c.codec !== undefined ? `column ${c.name} codec ${c.codec}` : `column ${c.name} codec removed`);
  }
  if ((old.comment ?? '') !== (c.comment ?? '')) {
    out.push(`COMMENT COLUMN ${col} ${quoteString(c.comment ?? '')}`);
    changes.push(`column ${c.name} comment`);
  }
  return out;
}

/**
 * Why the DataSource's names are taken in ClickHouse by something that is not its own: a view
 * under its table's name, or a view or another DataSource's table under its quarantine's.
 * CREATE TABLE IF NOT EXISTS would do nothing there, and inserts would go to the wrong object.
 */
function takenNames(catalog: Catalog, database: string, table: string): string[] {
  const view = (name: string) => catalog.views.find((v) => v.database === database && v.name === name);
  const refusals: string[] = [];
  const tableView = view(table);
  if (tableView)
    refusals.push(
      `${database}.${table} exists as a ${describeView(tableView.comment)}, so its table cannot be created; rename the DataSource or drop the view`,
    );
  const quarantine = quarantineTableName(table);
  const quarantineView = view(quarantine);
  const quarantineTable = findTable(catalog, database, quarantine);
  if (quarantineView)
    refusals.push(
      `${database}.${quarantine} exists as a ${describeView(quarantineView.comment)}, so the quarantine table of ${database}.${table} cannot be created; rename the DataSource or drop the view`,
    );
  else if (quarantineTable?.marker)
    refusals.push(
      `${database}.${quarantine} is the table of another DataSource, so it cannot be the quarantine table of ${database}.${table}; rename one of the DataSources`,
    );
  return refusals;
}

const describeView = (comment: string): string => (comment.startsWith(VIEW_MARKER_PREFIX) ? "materialized Pipe's view" : 'view weir did not create');

/**
 * Plan one DataSource against the catalog. `project` is what is known of the other resources
 * (the whole project, or what the operator sees): a name clash with one of them is refused.
 */
export function planDataSource(ds: DataSource, catalog: Catalog, project: readonly ProjectResource[] = [], preflight: Preflight = {}): DataSourcePlan {
  const database = databaseOf(ds);
  const table = tableOf(ds);
  const shape = tableShape(ds.spec);
  const specHash = shapeHash(shape);
  const keep = ds.spec.migration?.keepPreviousVersions ?? 1;
  const plan: DataSourcePlan = { table: qualifiedTableOf(ds), steps: [], refusals: [], preflightRefusals: [], drift: [] };

  // A clash with a known resource says more than what the catalog shows of it.
  const names = nameRefusals(ds, project);
  const forward = forwardQueryProblem(ds);
  plan.refusals.push(...(names.length > 0 ? names : takenNames(catalog, database, table)), ...(forward ? [forward] : []));
  if (plan.refusals.length > 0) return plan;
  if (!catalog.databases.includes(database)) plan.steps.push({ kind: 'CreateDatabase', database });
  const live = findTable(catalog, database, table);
  if (!live) plan.steps.push({ kind: 'CreateTable', database, table, shape, version: 1, specHash });
  if (!findTable(catalog, database, quarantineTableName(table))) plan.steps.push({ kind: 'CreateQuarantine', database, table });
  if (!live) return plan;
  if (!live.marker) {
    plan.refusals.push(
      `table ${database}.${table} exists but was not created by weir (its comment has no weir marker); rename or drop it, or name the DataSource differently`,
    );
    return plan;
  }
  plan.drift = tableDrift(live);
  // A swap that went live but was interrupted before the old version was put away.
  const previous = findTable(catalog, database, `${table}${NEXT_TABLE_SUFFIX}`);
  if (previous?.marker && previous.marker.version < live.marker.version) {
    plan.steps.push({
      kind: 'CopyAndSwap',
      database,
      table,
      fromVersion: previous.marker.version,
      toVersion: live.marker.version,
      shape: live.marker.shape,
      specHash: live.marker.specHash,
      reasons: [`finish the migration interrupted after v${live.marker.version} went live`],
      typeChanges: [],
      oneToOne: true,
      keepPreviousVersions: keep,
    });
    if (live.marker.specHash === specHash) return plan;
    plan.refusals.push('an interrupted migration must finish before the next change is planned; apply again after it');
    return plan;
  }
  if (live.marker.specHash === specHash) return planUnfinishedRollback(plan, catalog, database, table, live, specHash, keep);

  const allowDestructive = ds.spec.migration?.allowDestructive === true;
  const diff = diffShape(live.marker.shape, shape, allowDestructive);
  plan.refusals.push(...diff.refusals);
  // A new version is built from the spec: a column added by hand that the spec does not adopt would vanish with the swap.
  const lost = diff.copyReasons.length > 0 && !allowDestructive ? handAddedColumns(live).filter((c) => !shape.columns.some((s) => s.name === c.name)) : [];
  for (const c of lost)
    plan.refusals.push(
      `column ${c.name} (${c.type}) of ${database}.${table} was added by hand (weir's marker does not list it); the copy-and-swap would drop it: ` +
        'add it to spec.columns to keep it, or set spec.migration.allowDestructive: true to drop it',
    );
  if (diff.copyReasons.length === 0) {
    plan.steps.push({ kind: 'AlterTable', database, table, actions: diff.alter, changes: diff.changes, version: live.marker.version, shape, specHash });
    return plan;
  }
  const retained = retainedVersion(catalog, database, table, specHash);
  if (retained) {
    plan.steps.push({
      kind: 'SwapBack',
      database,
      table,
      fromVersion: live.marker.version,
      toVersion: retained.marker?.version ?? 0,
      retainedTable: retained.name,
      specHash,
      keepPreviousVersions: keep,
    });
    return plan;
  }
  const forwardQuery = ds.spec.migration?.forwardQuery;
  const copy: MigrationStep = {
    kind: 'CopyAndSwap',
    database,
    table,
    fromVersion: live.marker.version,
    toVersion: nextVersion(catalog, database, table, live),
    shape,
    specHash,
    reasons: diff.copyReasons,
    ...(forwardQuery ? { forwardQuery } : {}),
    typeChanges: diff.typeChanges,
    oneToOne: forwardQuery === undefined,
    keepPreviousVersions: keep,
    ...(ds.spec.migration?.backfill ? { backfill: ds.spec.migration.backfill } : {}),
    ...(ds.spec.migration?.verify === 'Counts' ? { verify: 'Counts' as const } : {}),
  };
  plan.steps.push(copy);
  plan.preflightRefusals.push(...preflightRefusals(copy, preflight[plan.table]));
  const room = preflight[plan.table]?.capacity;
  if (room) plan.capacity = room;
  return plan;
}

/**
 * A rollback interrupted right after its exchange leaves the version rolled back from under the
 * retained name (its marker says another version): finish it by putting that version away.
 */
function planUnfinishedRollback(
  plan: DataSourcePlan,
  catalog: Catalog,
  database: string,
  table: string,
  live: ObservedTable,
  specHash: string,
  keep: number,
): DataSourcePlan {
  const prefix = `${table}__v`;
  const misnamed = catalog.tables.find(
    (t) =>
      t.database === database &&
      t.name.startsWith(prefix) &&
      /^\d+$/.test(t.name.slice(prefix.length)) &&
      t.marker &&
      t.marker.version !== Number(t.name.slice(prefix.length)) &&
      t.marker.version !== live.marker?.version,
  );
  if (!misnamed?.marker || !live.marker) return plan;
  plan.steps.push({
    kind: 'SwapBack',
    database,
    table,
    fromVersion: misnamed.marker.version,
    toVersion: live.marker.version,
    retainedTable: misnamed.name,
    specHash,
    keepPreviousVersions: keep,
  });
  return plan;
}

/** A retained previous version built from exactly this shape: rolling back to it needs no full copy. */
function retainedVersion(catalog: Catalog, database: string, table: string, specHash: string): ObservedTable | undefined {
  const prefix = `${table}__v`;
  return catalog.tables
    .filter((t) => t.database === database && t.name.startsWith(prefix) && /^\d+$/.test(t.name.slice(prefix.length)))
    .filter((t) => t.marker?.specHash === specHash)
    .sort((a, b) => (b.marker?.version ?? 0) - (a.marker?.version ?? 0))[0];
}

function nextVersion(catalog: Catalog, database: string, table: string, live: ObservedTable): number {
  const prefix = `${table}__v`;
  const versions = catalog.tables.filter((t) => t.database === database && t.name.startsWith(prefix)).map((t) => t.marker?.version ?? 0);
  return Math.max(live.marker?.version ?? 0, ...versions) + 1;
}

/**
 * The hash an approval names (weir.dev/approve-plan) and `weir plan` prints: of the steps'
 * content (shapes, forward query, ALTER actions, versions), not of their description, so a
 * reworded description approves nothing new and a changed step needs a new approval.
 */
/** The hash an approval names: of the steps' content, not of how hard the backfill may run (that can change under an approval). */
export const planHash = (steps: readonly MigrationStep[]): string =>
  stableHash(steps.map((s) => (s.kind === 'CopyAndSwap' && s.backfill ? (({ backfill: _limits, ...rest }) => rest)(s) : s)));

/** One line per step, as `weir plan` prints and the operator records. */
export function describeStep(s: MigrationStep): string {
  const t = `${s.database}${'table' in s ? `.${s.table}` : ''}`;
  switch (s.kind) {
    case 'CreateDatabase':
      return `create database ${s.database}`;
    case 'CreateTable':
      return `create table ${t} (${s.shape.columns.length} columns, ${s.shape.engine.type} ORDER BY (${s.shape.engine.sortingKey.join(', ')})) as version 1`;
    case 'CreateQuarantine':
      return `create quarantine table ${s.database}.${quarantineTableName(s.table)}`;
    case 'AlterTable':
      return `alter table ${t} in place: ${s.changes.join('; ')}`;
    case 'CopyAndSwap':
      return `migrate ${t} v${s.fromVersion} → v${s.toVersion} by copy-and-swap (${s.reasons.join('; ')}): create ${s.table}${NEXT_TABLE_SUFFIX}, backfill rows up to a recorded block number in chunks, catch up in rounds while writers write, verify the copy (${s.oneToOne ? (s.verify === 'Counts' ? 'counts' : 'counts and a checksum') : 'skipped: forwardQuery'}), fence writers, copy the rows written since, verify their count, swap, keep v${s.fromVersion} as ${versionTableName(s.table, s.fromVersion)}`;
    case 'SwapBack':
      return `roll ${t} back v${s.fromVersion} → v${s.toVersion} from retained ${s.retainedTable}: fence writers, copy the rows written since v${s.toVersion} was replaced, swap (no full copy)`;
  }
}
