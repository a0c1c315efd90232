// A small SQL scanner: enough to find query-parameter placeholders and table-like names
// while ignoring string literals and comments. ClickHouse itself remains the judge of
// whether SQL compiles; this only finds what weir must know before asking it.

export interface Placeholder {
  name: string;
  type: string;
  /** Offset of the opening brace in the SQL text. */
  offset: number;
}

type Segment = { kind: 'code' | 'string' | 'comment' | 'quoted'; text: string; offset: number };

/** Split SQL into code, string literals, quoted identifiers and comments. */
export function segments(sql: string): Segment[] {
  const out: Segment[] = [];
  let i = 0;
  let codeStart = 0;
  const flushCode = (end: number) => {
    if (end > codeStart) out.push({ kind: 'code', text: sql.slice(codeStart, end), offset: codeStart });
  };
  while (i < sql.length) {
    const c = sql[i];
    const next = sql[i + 1];
    let end = -1;
    let kind: Segment['kind'] | undefined;
    if (c === "'" || c === '"' || c === '`') {
      kind = c === "'" ? 'string' : 'quoted';
      end = i + 1;
      while (end < sql.length) {
        if (sql[end] === '\\') end += 2;
        else if (sql[end] === c && sql[end + 1] === c) end += 2;
        else if (sql[end] === c) break;
        else end++;
      }
      end = Math.min(end + 1, sql.length);
    } else if (c === '-' && next === '-') {
      kind = 'comment';
      end = sql.indexOf('\n', i);
      end = end < 0 ? sql.length : end;
    } else if (c === '#' && next === '!') {
      kind = 'comment';
      end = sql.indexOf('\n', i);
      end = end < 0 ? sql.length : end;
    } else if (c === '/' && next === '*') {
      kind = 'comment';
      end = sql.indexOf('*/', i + 2);
      end = end < 0 ? sql.length : end + 2;
    }
    if (kind) {
      flushCode(i);
      out.push({ kind, text: sql.slice(i, end), offset: i });
      i = end;
      codeStart = end;
    } else {
      i++;
    }
  }
  flushCode(sql.length);
  return out;
}

const PLACEHOLDER_START = /\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:/g;

/** Offset just past the `}` closing a placeholder type that starts at `from`, or -1. */
function placeholderEnd(sql: string, from: number): number {
  let depth = 0;
  for (let i = from; i < sql.length; i++) {
    const c = sql[i];
    if (c === "'") {
      // A string inside a type, e.g. DateTime64(3, 'UTC').
      i++;
      while (i < sql.length && sql[i] !== "'") i += sql[i] === '\\' ? 2 : 1;
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '}' && depth === 0) return i + 1;
    else if (c === '{' || c === '\n' || depth < 0) return -1;
  }
  return -1;
}

/** Query-parameter placeholders `{name:Type}` outside strings and comments, in order of appearance. */
export function findPlaceholders(sql: string): Placeholder[] {
  const found: Placeholder[] = [];
  for (const seg of segments(sql)) {
    if (seg.kind !== 'code') continue;
    for (const m of seg.text.matchAll(PLACEHOLDER_START)) {
      const offset = seg.offset + (m.index ?? 0);
      const typeStart = offset + m[0].length;
      const end = placeholderEnd(sql, typeStart);
      if (end < 0) continue;
      const type = sql.slice(typeStart, end - 1).trim();
      if (type) found.push({ name: m[1] as string, type, offset });
    }
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
      else if (prev.replace(/\s+/g, '') !== p.type.replace(/\s+/g, ''))
        conflicts.push(`parameter ${p.name} is used as ${prev} and as ${p.type}`);
    }
  }
  return { params: [...byName].map(([name, type]) => ({ name, type })), conflicts };
}

const TABLE_REF = /\b(?:FROM|JOIN)\s+((?:[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)(?:\s*\.\s*(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]+`))?)/gi;

/**
 * Names read after FROM/JOIN, outside strings and comments (database-qualified names keep
 * their database). Table functions (`FROM numbers(10)`) and subqueries are not names.
 */
export function findTableReferences(sql: string): string[] {
  // Quoted identifiers are their own segments; rejoin code and quoted parts to match across them.
  const text = segments(sql)
    .map((s) => (s.kind === 'code' || s.kind === 'quoted' ? s.text : ' '.repeat(s.text.length)))
    .join('');
  const names = new Set<string>();
  for (const m of text.matchAll(TABLE_REF)) {
    const raw = m[1] as string;
    const after = text.slice((m.index ?? 0) + m[0].length).trimStart();
    if (after.startsWith('(')) continue; // a table function
    names.add(raw.replace(/\s*\.\s*/, '.').replace(/`/g, ''));
  }
  return [...names];
}
