// What weir must know about SQL before asking ClickHouse: its {name:Type} placeholders and
// the tables it reads. Built on the one SQL lexer (sql-text.ts), so strings,
// quoted names and comments never count. ClickHouse remains the judge of whether it compiles.
import { tokenize, type Token } from './sql-text.js';

export interface Placeholder {
  name: string;
  type: string;
  /** Offset of the opening brace in the SQL text. */
  offset: number;
}

const PLACEHOLDER_PARTS = /^\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([\s\S]*?)\s*\}$/;

/** Query-parameter placeholders `{name:Type}` outside strings and comments, in order of appearance. */
export function findPlaceholders(sql: string): Placeholder[] {
  const found: Placeholder[] = [];
  for (const t of tokenize(sql)) {
    if (t.kind !== 'placeholder') continue;
    const m = PLACEHOLDER_PARTS.exec(t.text);
    if (m?.[1] && m[2]) found.push({ name: m[1], type: m[2], offset: t.start });
  }
  return found;
}

export interface ParameterType {
  name: string;
  type: string;
}

/**
 * The distinct parameters of some SQL texts. A name used with two different types is an
 * error: ClickHouse would bind one value to both.
 */
export function collectParameters(sqls: string[]): { params: ParameterType[]; conflicts: string[] } {
  const byName = new Map<string, string>();
  const conflicts: string[] = [];
  for (const sql of sqls) {
    for (const p of findPlaceholders(sql)) {
      const prev = byName.get(p.name);
      if (prev === undefined) byName.set(p.name, p.type);
      else if (prev.replace(/\s+/g, '') !== p.type.replace(/\s+/g, '')) conflicts.push(`parameter ${p.name} is used as ${prev} and as ${p.type}`);
    }
  }
  return { params: [...byName].map(([name, type]) => ({ name, type })), conflicts };
}

const isName = (t: Token | undefined): t is Token => t?.kind === 'word' || t?.kind === 'quotedIdentifier';
const isSymbol = (t: Token | undefined, s: string): boolean => t?.kind === 'symbol' && t.text === s;

/**
 * Names read after FROM/JOIN (database-qualified names keep their database). Table
 * functions (`FROM numbers(10)`) and subqueries are not names.
 */
export function findTableReferences(sql: string): string[] {
  const tokens = [...tokenize(sql)];
  const names = new Set<string>();
  tokens.forEach((t, i) => {
    if (t.kind !== 'word' || !/^(FROM|JOIN)$/i.test(t.text)) return;
    const first = tokens[i + 1];
    if (!isName(first)) return;
    let name = first.text;
    let next = i + 2;
    if (isSymbol(tokens[next], '.') && isName(tokens[next + 1])) {
      name = `${name}.${tokens[next + 1]?.text ?? ''}`;
      next += 2;
    }
    if (isSymbol(tokens[next], '(')) return; // a table function
    names.add(name);
  });
  return [...names];
}

/**
 * The SQL with every read of `database.table` pointed at `database.replacement` instead
 * (ClickHouse stores view queries with qualified names). Used to compile a dependent view
 * against a table's next version before anything is swapped.
 */
export function retargetTable(sql: string, database: string, table: string, replacement: string): string {
  const tokens = [...tokenize(sql)];
  const edits: { start: number; end: number }[] = [];
  tokens.forEach((t, i) => {
    if (isName(t) && t.text === database && isSymbol(tokens[i + 1], '.') && isName(tokens[i + 2]) && tokens[i + 2]?.text === table) {
      const target = tokens[i + 2] as Token;
      edits.push({ start: target.start, end: target.end });
    }
  });
  let out = sql;
  for (const e of edits.reverse()) out = `${out.slice(0, e.start)}\`${replacement.replace(/`/g, '\\`')}\`${out.slice(e.end)}`;
  return out;
}
