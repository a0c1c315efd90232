// Comparing the rows an endpoint answered with the rows a test expects, and saying the
// difference so that it reads at a glance: one row a line, `-` expected only, `+` answered only.
import type { Row } from './test-cases.js';

/** A value as the diff shows it: keys bare, values as JSON, so "3" (a string) and 3 (a number) differ visibly. */
export function showValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(showValue).join(', ')}]`;
  if (typeof v === 'object' && v !== null) {
    return `{${Object.entries(v as Row)
      .map(([k, x]) => `${/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : JSON.stringify(k)}: ${showValue(x)}`)
      .join(', ')}}`;
  }
  return v === undefined ? 'undefined' : JSON.stringify(v);
}

/** One canonical text per value, key order aside: rows are equal when these are. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v as Row).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'undefined';
}

export const sameRow = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b);

export const sameRows = (expected: readonly Row[], actual: readonly Row[]): boolean =>
  expected.length === actual.length && expected.every((r, i) => sameRow(r, actual[i]));

export interface DiffLine {
  op: ' ' | '-' | '+';
  row: Row;
}

/** Past this many rows on either side, the diff compares row by row instead of finding the longest common run. */
const LCS_LIMIT = 2000;

/** The rows in order, marked: common (' '), expected only ('-'), answered only ('+'). */
export function diffRows(expected: readonly Row[], actual: readonly Row[]): DiffLine[] {
  const e = expected.map(canonical);
  const a = actual.map(canonical);
  if (e.length > LCS_LIMIT || a.length > LCS_LIMIT) {
    const out: DiffLine[] = [];
    for (let i = 0; i < Math.max(e.length, a.length); i++) {
      if (i < e.length && i < a.length && e[i] === a[i]) out.push({ op: ' ', row: actual[i] as Row });
      else {
        if (i < e.length) out.push({ op: '-', row: expected[i] as Row });
        if (i < a.length) out.push({ op: '+', row: actual[i] as Row });
      }
    }
    return out;
  }
  // Longest common subsequence, by suffix lengths.
  const n = e.length;
  const m = a.length;
  const lcs = new Int32Array((n + 1) * (m + 1));
  const at = (i: number, j: number): number => lcs[i * (m + 1) + j] ?? 0;
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) lcs[i * (m + 1) + j] = e[i] === a[j] ? at(i + 1, j + 1) + 1 : Math.max(at(i + 1, j), at(i, j + 1));
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && e[i] === a[j]) {
      out.push({ op: ' ', row: actual[j] as Row });
      i++;
      j++;
    } else if (j === m || (i < n && at(i + 1, j) >= at(i, j + 1))) {
      // Among equal choices, expected first: '-' then '+' reads as "this row became that one".
      out.push({ op: '-', row: expected[i] as Row });
      i++;
    } else {
      out.push({ op: '+', row: actual[j] as Row });
      j++;
    }
  }
  return out;
}

/** A diff with each run of changes interleaved, `-` then `+` row by row: "this row became that one" reads at a glance. */
export function pairChanges(lines: readonly DiffLine[]): DiffLine[] {
  const out: DiffLine[] = [];
  let i = 0;
  while (i < lines.length) {
    if ((lines[i] as DiffLine).op === ' ') {
      out.push(lines[i] as DiffLine);
      i++;
      continue;
    }
    const removed: DiffLine[] = [];
    const added: DiffLine[] = [];
    for (; i < lines.length && (lines[i] as DiffLine).op !== ' '; i++) ((lines[i] as DiffLine).op === '-' ? removed : added).push(lines[i] as DiffLine);
    for (let k = 0; k < Math.max(removed.length, added.length); k++) {
      if (k < removed.length) out.push(removed[k] as DiffLine);
      if (k < added.length) out.push(added[k] as DiffLine);
    }
  }
  return out;
}

/**
 * Why rows that look alike differ, when the reason is the usual one: a value written as a
 * number in YAML that the JSON format answers as a string (64-bit integers, decimals), or the
 * other way round. One hint per column.
 */
export function typeHints(expected: readonly Row[], actual: readonly Row[]): string[] {
  const hints = new Map<string, string>();
  for (let i = 0; i < Math.min(expected.length, actual.length); i++) {
    const e = expected[i] as Row;
    const a = actual[i] as Row;
    for (const [k, ev] of Object.entries(e)) {
      const av = a[k];
      if (hints.has(k) || ev === av || String(ev) !== String(av) || typeof ev === typeof av) continue;
      hints.set(
        k,
        typeof av === 'string'
          ? `${k}: the answer has the string ${JSON.stringify(av)} where the test has the ${typeof ev} ${String(ev)}; the JSON format quotes 64-bit integers and decimals: write ${k}: ${JSON.stringify(av)}`
          : `${k}: the answer has the ${typeof av} ${String(av)} where the test has the string ${JSON.stringify(ev)}; write ${k}: ${String(av)} unquoted`,
      );
    }
    const missing = Object.keys(a).filter((k) => !(k in e));
    const extra = Object.keys(e).filter((k) => !(k in a));
    if (missing.length > 0 && !hints.has('<columns>')) hints.set('<columns>', `the answer has columns the test does not: ${missing.join(', ')}`);
    if (extra.length > 0 && !hints.has('<extra>')) hints.set('<extra>', `the test has columns the answer does not: ${extra.join(', ')}`);
  }
  return [...hints.values()];
}

/** The diff as text, indented, with a legend: the lines a failed test prints. */
export function renderDiff(expected: readonly Row[], actual: readonly Row[], indent = '    '): string[] {
  const lines = [`${indent}the rows differ from expect.rows (- expected, + answered):`];
  for (const d of pairChanges(diffRows(expected, actual))) lines.push(`${indent}${d.op} ${showValue(d.row)}`);
  for (const h of typeHints(expected, actual)) lines.push(`${indent}hint: ${h}`);
  return lines;
}
