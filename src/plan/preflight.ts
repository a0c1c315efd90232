// Preflight facts: what a copy-and-swap would find only once it ran, read before deciding
// (execute/preflight.ts gathers them). The planner turns them into refusals with the
// executor's own messages, so `weir plan`, `weir apply` and the operator refuse the change
// before anything is created. Pure: the statements are built here, run elsewhere.
import type { ObservedView } from './catalog.js';
import { findTableReferences } from './sql-scan.js';
import { embedSql, qualified, quoteIdentifier, quoteString, type TableShape } from './sql.js';
import { tokenize, type Token } from './sql-text.js';

export interface TypeChange {
  column: string;
  from: string;
  to: string;
}

/** What the checks read of a copy-and-swap step (datasource-plan.ts's CopyAndSwap). */
export interface CopyStep {
  database: string;
  table: string;
  shape: TableShape;
  typeChanges: TypeChange[];
  forwardQuery?: string;
}

/** Rows of the live table whose value would not convert to the column's next type. */
export interface Unconvertible extends TypeChange {
  rows: number;
  /** Up to 5 of the values, as text. */
  samples: string[];
}

/** A materialized view reading the table whose query does not compile against the next shape. */
export interface BrokenView {
  view: string;
  error: string;
}

/** What a copy-and-swap of the table will rewrite, and the room its disk has, from system.parts and system.disks. */
export interface Capacity {
  /** The live table's rows and compressed bytes on disk (active parts). */
  rows: number;
  bytes: number;
  /** The disk holding most of the table's bytes, and its free space. */
  disk: string;
  freeBytes: number;
}

export interface TablePreflight {
  unconvertible: Unconvertible[];
  brokenViews: BrokenView[];
  /** Undefined where the server does not say (no parts yet counts as 0 rows, 0 bytes). */
  capacity?: Capacity;
}

/**
 * The room a copy needs, over the table's own bytes: the next version may compress less well
 * under another sorting key, and merges of the new parts need room of their own while both versions exist.
 */
export const COPY_SPACE_MARGIN = 1.2;

export const copySpaceNeeded = (c: Capacity): number => Math.ceil(c.bytes * COPY_SPACE_MARGIN);

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i] ?? ''}`;
}

/** "copies 1,000,000 rows (38.2 MiB on disk); disk default has 68.5 GiB free", as weir plan and status.pendingPlan say it. */
export const describeCapacity = (table: string, c: Capacity): string =>
  `copy of ${table}: ${c.rows.toLocaleString('en-US')} rows, ${formatBytes(c.bytes)} on disk; disk ${c.disk} has ${formatBytes(c.freeBytes)} free`;

/** The parts of a table: rows and bytes per disk (the largest first). */
export const tablePartsSql = (): string =>
  `SELECT disk_name AS disk, toString(sum(rows)) AS rows, toString(sum(bytes_on_disk)) AS bytes FROM system.parts
   WHERE database = {db:String} AND table = {t:String} AND active GROUP BY disk_name ORDER BY sum(bytes_on_disk) DESC`;

/** Per database.table: the facts of the copy-and-swap planned for it. */
export type Preflight = Readonly<Record<string, TablePreflight>>;

/** SELECT the count and 5 samples of a column's values that would not convert (the executor's check). */
export function unconvertibleSql(step: CopyStep, change: TypeChange): string {
  const col = quoteIdentifier(change.column);
  const bad = `isNotNull(${col}) AND isNull(accurateCastOrNull(${col}, ${quoteString(change.to)}))`;
  return `SELECT count() AS n, groupArray(5)(toString(${col})) AS samples FROM ${qualified(step.database, step.table)} WHERE ${bad}`;
}

/** The type changes whose values must be counted: none when a forward query owns the conversion. */
export const checkedTypeChanges = (step: CopyStep): TypeChange[] => (step.forwardQuery ? [] : step.typeChanges);

/** The views that read the table: each must compile against the next shape. */
export const dependentViews = (views: readonly ObservedView[], step: CopyStep): ObservedView[] =>
  views.filter((v) => findTableReferences(v.query).includes(`${step.database}.${step.table}`));

/** A table function with the next shape's columns: compiling against it needs no table. */
const nullTable = (shape: TableShape): string => `null(${quoteString(shape.columns.map((c) => `${quoteIdentifier(c.name)} ${c.type}`).join(', '))})`;

/** The view's query with database.table replaced by the next shape, wrapped for DESCRIBE. */
export function viewAgainstNextShapeSql(view: ObservedView, step: CopyStep): string {
  const tokens = [...tokenize(view.query)];
  const isName = (t: Token | undefined, text: string) => (t?.kind === 'word' || t?.kind === 'quotedIdentifier') && t.text === text;
  let out = view.query;
  // From the end, so earlier offsets stay valid.
  for (let i = tokens.length - 3; i >= 0; i--) {
    const [db, dot, table] = [tokens[i], tokens[i + 1], tokens[i + 2]];
    if (!db || !table || dot?.kind !== 'symbol' || dot.text !== '.' || !isName(db, step.database) || !isName(table, step.table)) continue;
    out = `${out.slice(0, db.start)}${nullTable(step.shape)}${out.slice(table.end)}`;
  }
  return `DESCRIBE TABLE (${embedSql(out)})`;
}

/** The refusals the facts give, worded as the executor words them (MigrationRefused). */
export function preflightRefusals(step: CopyStep, facts: TablePreflight | undefined): string[] {
  if (!facts) return [];
  const t = `${step.database}.${step.table}`;
  const c = facts.capacity;
  return [
    ...(c && copySpaceNeeded(c) > c.freeBytes
      ? [
          `the copy of ${t} needs about ${formatBytes(copySpaceNeeded(c))} (${formatBytes(c.bytes)} on disk × ${COPY_SPACE_MARGIN}, ${c.rows} rows) ` +
            `but disk ${c.disk} has ${formatBytes(c.freeBytes)} free; free space or drop retained versions, then plan again. Nothing was changed.`,
        ]
      : []),
    ...facts.unconvertible.map(
      (u) =>
        `${u.rows} row(s) of ${t} have a ${u.column} that does not convert from ${u.from} to ${u.to} ` +
        `(e.g. ${u.samples.map((s) => JSON.stringify(s)).join(', ')}); handle them with spec.migration.forwardQuery. Nothing was changed.`,
    ),
    ...facts.brokenViews.map(
      (v) =>
        `materialized view ${v.view} would break on the new version of ${t}: ${v.error}. Change its Pipe together with the table, or keep the columns it reads. Nothing was changed.`,
    ),
  ];
}
