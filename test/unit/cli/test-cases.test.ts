// weir test's test files: the format of the issue parses as written, and every problem names the
// file, the line and the case.
import { describe, expect, it } from 'vitest';
import { formatProblem, matchesFilter, parseTestFile, queryString, unknownEndpoints, unknownParams } from '../../../src/cli/test-cases.js';

const ISSUE_EXAMPLE = `# tests/top_pages.yaml
- name: acme's top pages
  endpoint: top_pages            # Endpoint resource or URL name
  params: {tenant: acme, limit: 2}
  expect:
    status: 200                  # default 200
    rows:                        # exact rows in order, compared as the JSON format returns them
      - {pathname: /blog, views: "3", visitors: "2"}
      - {pathname: /docs, views: "1", visitors: "1"}
- name: a bad limit is a 400
  endpoint: top_pages
  params: {tenant: acme, limit: abc}
  expect: {status: 400}
- name: views are never negative # an SQL assertion passes when it returns no rows (dbt style)
  sql: SELECT tenant_id, day, pathname FROM page_views_daily GROUP BY tenant_id, day, pathname HAVING countMerge(views) < 0
- name: row count only
  endpoint: top_pages
  params: {tenant: globex}
  expect: {rowCount: 10}
`;

const problemsOf = (text: string) => parseTestFile(text, 'tests/t.yaml').problems.map(formatProblem);

describe('parseTestFile', () => {
  it("reads the issue's example as written", () => {
    const { cases, problems } = parseTestFile(ISSUE_EXAMPLE, 'tests/top_pages.yaml');
    expect(problems).toEqual([]);
    expect(cases).toEqual([
      {
        kind: 'endpoint',
        file: 'tests/top_pages.yaml',
        name: "acme's top pages",
        index: 0,
        line: 2,
        endpoint: 'top_pages',
        params: { tenant: 'acme', limit: 2 },
        expect: {
          status: 200,
          rows: [
            { pathname: '/blog', views: '3', visitors: '2' },
            { pathname: '/docs', views: '1', visitors: '1' },
          ],
        },
      },
      {
        kind: 'endpoint',
        file: 'tests/top_pages.yaml',
        name: 'a bad limit is a 400',
        index: 1,
        line: 10,
        endpoint: 'top_pages',
        params: { tenant: 'acme', limit: 'abc' },
        expect: { status: 400 },
      },
      {
        kind: 'sql',
        file: 'tests/top_pages.yaml',
        name: 'views are never negative',
        index: 2,
        line: 14,
        sql: 'SELECT tenant_id, day, pathname FROM page_views_daily GROUP BY tenant_id, day, pathname HAVING countMerge(views) < 0',
      },
      {
        kind: 'endpoint',
        file: 'tests/top_pages.yaml',
        name: 'row count only',
        index: 3,
        line: 16,
        endpoint: 'top_pages',
        params: { tenant: 'globex' },
        expect: { status: 200, rowCount: 10 },
      },
    ]);
  });

  it('an empty file has no cases and no problems', () => {
    expect(parseTestFile('# nothing yet\n', 'tests/t.yaml')).toEqual({ cases: [], problems: [] });
  });

  it('bad YAML names the file, the line and the case it is in', () => {
    expect(problemsOf('- name: fine\n  endpoint: a\n- name: broken\n  params: {tenant: acme\n  endpoint: a\n')).toEqual([
      'tests/t.yaml:5: case "broken": bad YAML: Flow map in block collection must be sufficiently indented and end with a }',
    ]);
    expect(problemsOf('- name: twice\n  endpoint: a\n  endpoint: b\n')).toEqual(['tests/t.yaml:3: case "twice": bad YAML: Map keys must be unique']);
  });

  it('an unknown field names the case and the line of the field, and lists the known ones', () => {
    expect(problemsOf('- name: a\n  endpoint: e\n  expected: {status: 200}\n')).toEqual([
      'tests/t.yaml:3: case "a": unknown field expected (a case has name, endpoint, params, expect, sql)',
    ]);
    expect(problemsOf('- name: a\n  endpoint: e\n  expect: {status: 200, row: []}\n')).toEqual([
      'tests/t.yaml:3: case "a": unknown field expect.row (expect has status, rows, rowCount)',
    ]);
  });

  it('refuses what a case cannot mean, every problem at once', () => {
    const text = [
      '- endpoint: e', // no name
      '- name: both\n  endpoint: e\n  sql: SELECT 1',
      '- name: neither',
      '- name: dup\n  endpoint: e',
      '- name: dup\n  endpoint: e',
      '- name: sql with expect\n  sql: SELECT 1\n  expect: {rowCount: 0}',
      '- name: bad status\n  endpoint: e\n  expect: {status: 700}',
      '- name: rows with a 400\n  endpoint: e\n  expect: {status: 400, rows: []}',
      '- name: counts disagree\n  endpoint: e\n  expect: {rows: [{a: 1}], rowCount: 2}',
      '- name: rows not mappings\n  endpoint: e\n  expect: {rows: [1, 2]}',
      '- name: nested params\n  endpoint: e\n  params: {a: {b: 1}}',
      '- just a string',
    ].join('\n');
    expect(problemsOf(`${text}\n`)).toEqual([
      'tests/t.yaml:1: case 1: needs a name (a non-empty string)',
      'tests/t.yaml:2: case "both": has both endpoint and sql; a case is one or the other',
      'tests/t.yaml:5: case "neither": needs endpoint (an Endpoint to call) or sql (an assertion)',
      'tests/t.yaml:8: case "dup": has the same name as the case at line 6; names must be unique in a file',
      'tests/t.yaml:12: case "sql with expect": an sql case passes when its query returns no rows; expect is for endpoint cases',
      'tests/t.yaml:15: case "bad status": expect.status must be an HTTP status (100 to 599), not 700',
      'tests/t.yaml:18: case "rows with a 400": expect.rows and expect.rowCount need status 200; an answer of 400 has no rows',
      'tests/t.yaml:21: case "counts disagree": expect.rows has 1 rows but expect.rowCount says 2',
      'tests/t.yaml:24: case "rows not mappings": expect.rows must be a list of rows, each a mapping of column to value ({pathname: /blog, views: "3"})',
      'tests/t.yaml:27: case "nested params": params.a must be a string, number, boolean or a list of them, not a mapping',
      'tests/t.yaml:28: case 12: must be a mapping (name, endpoint or sql, params, expect), not a string',
    ]);
  });

  it('a file that is not a list says so', () => {
    expect(problemsOf('name: a\nendpoint: e\n')).toEqual(['tests/t.yaml:1: must be a YAML list of test cases (- name: …), not a mapping']);
  });

  it('keeps the good cases of a file with bad ones', () => {
    const { cases, problems } = parseTestFile('- name: good\n  endpoint: e\n- name: bad\n  endpoint: e\n  oops: 1\n', 'tests/t.yaml');
    expect(cases.map((c) => c.name)).toEqual(['good']);
    expect(problems).toHaveLength(1);
  });
});

describe('unknownEndpoints', () => {
  const { cases } = parseTestFile(
    '- name: a\n  endpoint: top_pages\n- name: b\n  endpoint: top-pages\n- name: c\n  endpoint: nope\n- name: d\n  sql: SELECT 1\n',
    'tests/t.yaml',
  );

  it('accepts the resource name and the URL name, and names file, line and case of the rest', () => {
    expect(unknownEndpoints(cases, ['top-pages']).map(formatProblem)).toEqual(['tests/t.yaml:5: case "c": unknown endpoint nope; the project has top-pages']);
    expect(unknownEndpoints(cases, []).map(formatProblem)).toEqual([
      'tests/t.yaml:1: case "a": unknown endpoint top_pages; the project has no Endpoint',
      'tests/t.yaml:3: case "b": unknown endpoint top-pages; the project has no Endpoint',
      'tests/t.yaml:5: case "c": unknown endpoint nope; the project has no Endpoint',
    ]);
  });
});

describe('unknownParams', () => {
  const { cases } = parseTestFile(
    [
      '- name: typo\n  endpoint: top-pages\n  params: {tenat: acme, limit: 2}',
      '- name: refused on purpose\n  endpoint: top_pages\n  params: {tenat: acme}\n  expect: {status: 400}',
      '- name: with a token\n  endpoint: top_pages\n  params: {tenant: acme, token: t}',
      '- name: not compiled offline\n  endpoint: other\n  params: {x: 1}',
    ].join('\n'),
    'tests/t.yaml',
  );
  const paramsOf = (name: string) => (name === 'top_pages' ? { params: ['tenant', 'limit'], alsoAccepted: ['token'] } : undefined);

  it('names a parameter the Endpoint does not take when the case expects an answer, and leaves a case that expects the 400', () => {
    expect(unknownParams(cases, paramsOf).map(formatProblem)).toEqual([
      'tests/t.yaml:1: case "typo": params.tenat: Endpoint top-pages has no parameter tenat (it takes tenant, limit); to test that it refuses one, expect status 400',
    ]);
  });
});

describe('queryString and matchesFilter', () => {
  it('sends values as a client would, lists as JSON arrays', () => {
    expect(queryString({ tenant: 'acme', limit: 2, on: true, tags: ['a', 'b,c'] })).toBe('?tenant=acme&limit=2&on=true&tags=%5B%22a%22%2C%22b%2Cc%22%5D');
    expect(queryString({})).toBe('');
  });

  it('selects by name or file, case-insensitively', () => {
    const c = { file: 'tests/top_pages.yaml', name: "Acme's top pages" };
    expect(matchesFilter(c, undefined)).toBe(true);
    expect(matchesFilter(c, 'acme')).toBe(true);
    expect(matchesFilter(c, 'top_pages.yaml')).toBe(true);
    expect(matchesFilter(c, 'globex')).toBe(false);
  });
});
