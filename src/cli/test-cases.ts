// The test files of `weir test` (tests/*.yaml in a project folder): a YAML list of cases, each
// an endpoint call with what it must answer, or an SQL assertion that passes when it returns no
// rows. Parsing is pure; every problem names the file, the line and the case.
import { isMap, isSeq, parseDocument, type Node } from 'yaml';

export type Row = Record<string, unknown>;

/** A parameter value as a test file may give it: a scalar, or a list of scalars for an Array parameter. */
export type ParamValue = string | number | boolean | (string | number | boolean)[];

interface CaseBase {
  /** The file as shown to the user (relative to the project folder's parent or the cwd). */
  file: string;
  name: string;
  /** Position in the file's list, from 0 (what `--update` rewrites). */
  index: number;
  line: number;
}

export interface EndpointCase extends CaseBase {
  kind: 'endpoint';
  endpoint: string;
  params: Record<string, ParamValue>;
  expect: { status: number; rows?: Row[]; rowCount?: number };
}

export interface SqlCase extends CaseBase {
  kind: 'sql';
  sql: string;
}

export type TestCase = EndpointCase | SqlCase;

/** What is wrong in a test file: where (file, line, case) and what. */
export interface TestFileProblem {
  file: string;
  line?: number;
  /** The case's name, or `case N` (from 1) when it has none. */
  case?: string;
  message: string;
}

export const formatProblem = (p: TestFileProblem): string =>
  `${p.file}${p.line !== undefined ? `:${p.line}` : ''}: ${p.case !== undefined ? `${p.case}: ` : ''}${p.message}`;

const CASE_FIELDS = ['name', 'endpoint', 'params', 'expect', 'sql'] as const;
const EXPECT_FIELDS = ['status', 'rows', 'rowCount'] as const;

const lineAt = (text: string, offset: number | undefined): number | undefined => (offset === undefined ? undefined : text.slice(0, offset).split('\n').length);

const isScalar = (v: unknown): v is string | number | boolean =>
  typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean';

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : `a ${typeof v}`);

/** The case a YAML error is in, as far as the parser got: its name, or `case N`. */
function caseAt(contents: unknown, offset: number): string | undefined {
  if (!isSeq(contents)) return undefined;
  const index = contents.items.findIndex((n) => {
    const range = (n as Node | null)?.range;
    return range !== undefined && range !== null && offset >= range[0] && offset <= range[2];
  });
  if (index < 0) return undefined;
  const item = contents.items[index];
  const name = isMap(item) ? item.get('name') : undefined;
  return typeof name === 'string' && name !== '' ? `case "${name}"` : `case ${index + 1}`;
}

/** Parse one test file. Cases with problems are left out of `cases`; the others are kept, so all problems are said at once. */
export function parseTestFile(text: string, file: string): { cases: TestCase[]; problems: TestFileProblem[] } {
  const problems: TestFileProblem[] = [];
  const cases: TestCase[] = [];
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const inCase = caseAt(doc.contents, e.pos[0]);
      const line = e.linePos?.[0]?.line;
      problems.push({
        file,
        ...(line !== undefined ? { line } : {}),
        ...(inCase !== undefined ? { case: inCase } : {}),
        message: `bad YAML: ${(e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '')}`,
      });
    }
    return { cases, problems };
  }
  if (doc.contents === null) return { cases, problems };
  if (!isSeq(doc.contents)) {
    problems.push({ file, line: 1, message: 'must be a YAML list of test cases (- name: …), not ' + typeName(doc.toJS()) });
    return { cases, problems };
  }
  let value: unknown[];
  try {
    value = doc.toJS({ maxAliasCount: 100 }) as unknown[];
  } catch (e) {
    problems.push({ file, message: `cannot be read (${e instanceof Error ? e.message : String(e)})` });
    return { cases, problems };
  }
  const seen = new Map<string, number>();
  doc.contents.items.forEach((node, index) => {
    const line = lineAt(text, (node as Node | null)?.range?.[0]) ?? 1;
    const raw = value[index];
    const label = (r: unknown) =>
      typeof r === 'object' && r !== null && typeof (r as { name?: unknown }).name === 'string' && (r as { name: string }).name !== ''
        ? `case "${(r as { name: string }).name}"`
        : `case ${index + 1}`;
    const caseLabel = label(raw);
    const problem = (message: string, at = line) => problems.push({ file, line: at, case: caseLabel, message });
    const before = problems.length;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !isMap(node)) {
      problem(`must be a mapping (name, endpoint or sql, params, expect), not ${typeName(raw)}`);
      return;
    }
    const c = raw as Record<string, unknown>;
    const fieldLine = (key: string): number => {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === key);
      return lineAt(text, (pair?.key as Node | undefined)?.range?.[0]) ?? line;
    };
    for (const key of Object.keys(c)) {
      if (!(CASE_FIELDS as readonly string[]).includes(key)) problem(`unknown field ${key} (a case has ${CASE_FIELDS.join(', ')})`, fieldLine(key));
    }
    if (typeof c.name !== 'string' || c.name.trim() === '') problem('needs a name (a non-empty string)');
    else if (seen.has(c.name)) problem(`has the same name as the case at line ${seen.get(c.name)}; names must be unique in a file`);
    else seen.set(c.name, line);
    const hasEndpoint = c.endpoint !== undefined;
    const hasSql = c.sql !== undefined;
    if (hasEndpoint === hasSql)
      problem(hasEndpoint ? 'has both endpoint and sql; a case is one or the other' : 'needs endpoint (an Endpoint to call) or sql (an assertion)');
    if (hasEndpoint && (typeof c.endpoint !== 'string' || c.endpoint === ''))
      problem(`endpoint must be an Endpoint's name, not ${typeName(c.endpoint)}`, fieldLine('endpoint'));
    if (hasSql && (typeof c.sql !== 'string' || c.sql.trim() === '')) problem(`sql must be a query (a string), not ${typeName(c.sql)}`, fieldLine('sql'));
    if (hasSql && c.params !== undefined) problem('params are for endpoint cases; an sql case is a query as written', fieldLine('params'));
    if (hasSql && c.expect !== undefined) problem('an sql case passes when its query returns no rows; expect is for endpoint cases', fieldLine('expect'));

    const params: Record<string, ParamValue> = {};
    if (hasEndpoint && c.params !== undefined) {
      if (typeof c.params !== 'object' || c.params === null || Array.isArray(c.params))
        problem(`params must be a mapping of names to values, not ${typeName(c.params)}`, fieldLine('params'));
      else
        for (const [k, v] of Object.entries(c.params)) {
          if (isScalar(v)) params[k] = v;
          else if (Array.isArray(v) && v.every(isScalar)) params[k] = v;
          else problem(`params.${k} must be a string, number, boolean or a list of them, not ${typeName(v)}`, fieldLine('params'));
        }
    }
    let expect: EndpointCase['expect'] = { status: 200 };
    if (hasEndpoint && c.expect !== undefined) {
      const e = c.expect;
      const at = fieldLine('expect');
      if (typeof e !== 'object' || e === null || Array.isArray(e)) problem(`expect must be a mapping (${EXPECT_FIELDS.join(', ')}), not ${typeName(e)}`, at);
      else {
        const x = e as Record<string, unknown>;
        for (const key of Object.keys(x)) {
          if (!(EXPECT_FIELDS as readonly string[]).includes(key)) problem(`unknown field expect.${key} (expect has ${EXPECT_FIELDS.join(', ')})`, at);
        }
        if (x.status !== undefined && (typeof x.status !== 'number' || !Number.isInteger(x.status) || x.status < 100 || x.status > 599))
          problem(`expect.status must be an HTTP status (100 to 599), not ${JSON.stringify(x.status)}`, at);
        if (x.rowCount !== undefined && (typeof x.rowCount !== 'number' || !Number.isInteger(x.rowCount) || x.rowCount < 0))
          problem(`expect.rowCount must be a whole number of rows, not ${JSON.stringify(x.rowCount)}`, at);
        if (x.rows !== undefined && (!Array.isArray(x.rows) || !x.rows.every((r) => typeof r === 'object' && r !== null && !Array.isArray(r))))
          problem('expect.rows must be a list of rows, each a mapping of column to value ({pathname: /blog, views: "3"})', at);
        if (Array.isArray(x.rows) && typeof x.rowCount === 'number' && x.rows.length !== x.rowCount)
          problem(`expect.rows has ${x.rows.length} rows but expect.rowCount says ${x.rowCount}`, at);
        const status = typeof x.status === 'number' ? x.status : 200;
        if (status !== 200 && (x.rows !== undefined || x.rowCount !== undefined))
          problem(`expect.rows and expect.rowCount need status 200; an answer of ${status} has no rows`, at);
        expect = {
          status,
          ...(Array.isArray(x.rows) ? { rows: x.rows as Row[] } : {}),
          ...(typeof x.rowCount === 'number' ? { rowCount: x.rowCount } : {}),
        };
      }
    }
    if (problems.length > before) return;
    const base = { file, name: c.name as string, index, line };
    cases.push(hasEndpoint ? { ...base, kind: 'endpoint', endpoint: c.endpoint as string, params, expect } : { ...base, kind: 'sql', sql: c.sql as string });
  });
  return { cases, problems };
}

/** Endpoint cases that name no Endpoint of the project (by resource name or URL name). */
export function unknownEndpoints(cases: readonly TestCase[], endpointNames: readonly string[]): TestFileProblem[] {
  const url = (n: string) => n.replace(/-/g, '_');
  const known = new Set(endpointNames.map(url));
  const list = endpointNames.length > 0 ? `the project has ${endpointNames.join(', ')}` : 'the project has no Endpoint';
  return cases
    .filter((c): c is EndpointCase => c.kind === 'endpoint' && !known.has(url(c.endpoint)))
    .map((c) => ({ file: c.file, line: c.line, case: `case "${c.name}"`, message: `unknown endpoint ${c.endpoint}; ${list}` }));
}

/**
 * Endpoint cases that expect an answer (status 200) but give a parameter the Endpoint does not
 * take: a typo the endpoint would refuse with a 400. A case that means to test that refusal
 * expects the 400 and is left alone. `paramsOf` gives an Endpoint's parameters by its URL name,
 * and what else its URL accepts (?token= with auth); undefined: not known offline, not checked.
 */
export function unknownParams(
  cases: readonly TestCase[],
  paramsOf: (urlName: string) => { params: readonly string[]; alsoAccepted: readonly string[] } | undefined,
): TestFileProblem[] {
  const out: TestFileProblem[] = [];
  for (const c of cases) {
    if (c.kind !== 'endpoint' || c.expect.status !== 200) continue;
    const takes = paramsOf(c.endpoint.replace(/-/g, '_'));
    if (takes === undefined) continue;
    for (const name of Object.keys(c.params).filter((n) => !takes.params.includes(n) && !takes.alsoAccepted.includes(n))) {
      const list = takes.params.length > 0 ? `it takes ${takes.params.join(', ')}` : 'it takes no parameters';
      out.push({
        file: c.file,
        line: c.line,
        case: `case "${c.name}"`,
        message: `params.${name}: Endpoint ${c.endpoint} has no parameter ${name} (${list}); to test that it refuses one, expect status 400`,
      });
    }
  }
  return out;
}

/** Whether `--filter TEXT` selects a case: TEXT in its name or its file, case-insensitively. */
export const matchesFilter = (c: Pick<TestCase, 'file' | 'name'>, filter: string | undefined): boolean =>
  filter === undefined || `${c.file}: ${c.name}`.toLowerCase().includes(filter.toLowerCase());

/** The query string of an endpoint case, as a client would send it: a list as a JSON array (the endpoints' array form). */
export function queryString(params: Record<string, ParamValue>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) search.set(k, Array.isArray(v) ? JSON.stringify(v) : String(v));
  const s = search.toString();
  return s === '' ? '' : `?${s}`;
}
