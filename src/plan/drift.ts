// Drift: a weir table changed by hand (ALTER TABLE outside weir). Its COMMENT still carries the
// shape weir built it with, so the live columns, engine and keys are compared with that shape.
// Pure; the catalog observation (clickhouse/catalog.ts) reads both.
import type { ObservedColumn, ObservedTable } from './catalog.js';

/** Spellings ClickHouse accepts for a type and reports under another name (case-insensitive aliases). */
const TYPE_ALIASES: Readonly<Record<string, string>> = {
  int: 'Int32',
  integer: 'Int32',
  tinyint: 'Int8',
  smallint: 'Int16',
  bigint: 'Int64',
  float: 'Float32',
  real: 'Float32',
  double: 'Float64',
  boolean: 'Bool',
  bool: 'Bool',
  text: 'String',
  varchar: 'String',
  char: 'String',
  blob: 'String',
};

/** A type as ClickHouse would report it, as far as that follows from the text: no spaces, aliases resolved. */
export const canonicalType = (t: string): string => {
  const compact = t.replace(/\s+/g, '');
  return TYPE_ALIASES[compact.toLowerCase()] ?? compact;
};

/** A key expression list as system.tables prints it, compared without spaces or backquotes. */
const canonicalKey = (k: string): string => k.replace(/[\s`]/g, '');

/** Columns the live table has that weir's marker does not list: someone added them by hand. */
export function handAddedColumns(t: ObservedTable): ObservedColumn[] {
  const marked = new Set(t.marker?.shape.columns.map((c) => c.name) ?? []);
  return t.marker ? t.columns.filter((c) => !marked.has(c.name)) : [];
}

/** The differences between a weir table and the shape its marker says it was built with; [] when none or no marker. */
export function tableDrift(t: ObservedTable): string[] {
  const shape = t.marker?.shape;
  if (!shape) return [];
  const out: string[] = [];
  const live = new Map(t.columns.map((c) => [c.name, c]));
  for (const c of handAddedColumns(t)) out.push(`column ${c.name} ${c.type} was added by hand`);
  for (const c of shape.columns) {
    const now = live.get(c.name);
    if (!now) out.push(`column ${c.name} ${c.type} was dropped by hand`);
    else if (canonicalType(now.type) !== canonicalType(c.type)) out.push(`column ${c.name} is ${now.type}, not ${c.type} as weir made it`);
  }
  const engine = t.engine.replace(/^(Replicated|Shared)/, '');
  if (engine !== shape.engine.type) out.push(`engine is ${t.engine}, not ${shape.engine.type} as weir made it`);
  if (t.sortingKey !== undefined && canonicalKey(t.sortingKey) !== canonicalKey(shape.engine.sortingKey.join(', ')))
    out.push(`sorting key is (${t.sortingKey}), not (${shape.engine.sortingKey.join(', ')}) as weir made it`);
  if (t.partitionKey !== undefined && canonicalKey(t.partitionKey) !== canonicalKey(shape.engine.partitionKey ?? ''))
    out.push(`partition key is ${t.partitionKey || '(none)'}, not ${shape.engine.partitionKey ?? '(none)'} as weir made it`);
  return out;
}
