// weir test's row diff, JUnit and JSON reports, and --update's rewrite of a test file.
import { describe, expect, it } from 'vitest';
import { parseTestFile } from '../../../src/cli/test-cases.js';
import { diffRows, pairChanges, renderDiff, sameRows, showValue, typeHints } from '../../../src/cli/test-diff.js';
import { counts, jsonReport, junitReport, xmlText, type RunSummary } from '../../../src/cli/test-report.js';
import { updateExpectedRows } from '../../../src/cli/test-update.js';
import { parseXml } from '../../fixtures/xml.js';

const blog = { pathname: '/blog', views: '3', visitors: '2' };
const docs = { pathname: '/docs', views: '1', visitors: '1' };
const home = { pathname: '/', views: '1', visitors: '1' };

describe('row comparison', () => {
  it('rows are equal whatever their key order, and differ by type', () => {
    expect(sameRows([{ a: '1', b: 2 }], [{ b: 2, a: '1' }])).toBe(true);
    expect(sameRows([{ a: 3 }], [{ a: '3' }])).toBe(false);
    expect(sameRows([{ a: [1, { b: null }] }], [{ a: [1, { b: null }] }])).toBe(true);
    expect(sameRows([blog, docs], [docs, blog])).toBe(false);
    expect(sameRows([blog], [blog, docs])).toBe(false);
  });

  it('diffs in order: common rows kept, missing ones -, extra ones +', () => {
    expect(diffRows([blog, docs], [blog, home, docs])).toEqual([
      { op: ' ', row: blog },
      { op: '+', row: home },
      { op: ' ', row: docs },
    ]);
    expect(diffRows([blog, docs], [docs])).toEqual([
      { op: '-', row: blog },
      { op: ' ', row: docs },
    ]);
    expect(diffRows([], [])).toEqual([]);
  });

  it('a changed row reads as - then + of the same place', () => {
    const changed = { ...docs, views: '2' };
    expect(pairChanges(diffRows([blog, docs, home], [changed, { ...home, visitors: '9' }]))).toEqual([
      { op: '-', row: blog },
      { op: '+', row: changed },
      { op: '-', row: docs },
      { op: '+', row: { ...home, visitors: '9' } },
      { op: '-', row: home },
    ]);
  });

  it('renders rows with bare keys and JSON values, so "3" and 3 look different, with a hint', () => {
    expect(showValue({ pathname: '/blog', views: 3, 'odd key': null, tags: ['a'] })).toBe('{pathname: "/blog", views: 3, "odd key": null, tags: ["a"]}');
    expect(renderDiff([{ pathname: '/blog', views: 3 }], [{ pathname: '/blog', views: '3' }], '  ')).toEqual([
      '  the rows differ from expect.rows (- expected, + answered):',
      '  - {pathname: "/blog", views: 3}',
      '  + {pathname: "/blog", views: "3"}',
      '  hint: views: the answer has the string "3" where the test has the number 3; the JSON format quotes 64-bit integers and decimals: write views: "3"',
    ]);
    expect(typeHints([{ n: '1', a: 1 }], [{ n: 1 }])).toEqual([
      'n: the answer has the number 1 where the test has the string "1"; write n: 1 unquoted',
      'the test has columns the answer does not: a',
    ]);
  });

  it('diffs long results row by row', () => {
    const many = Array.from({ length: 2500 }, (_, i) => ({ i: String(i) }));
    const other = many.map((r, i) => (i === 7 ? { i: 'x' } : r));
    const d = diffRows(many, other);
    expect(d.filter((l) => l.op !== ' ')).toEqual([
      { op: '-', row: { i: '7' } },
      { op: '+', row: { i: 'x' } },
    ]);
    expect(d).toHaveLength(2501);
  });
});

const RUN: RunSummary = {
  project: 'manifests/examples/web-analytics',
  clickhouse: 'the embedded engine (chDB)',
  timings: { engineMs: 400, applyMs: 900, fixturesMs: 50, testsMs: 120 },
  fixtures: [{ file: 'fixtures/page_views.ndjson', datasource: 'page-views', lines: 21, accepted: 18, quarantined: 3 }],
  results: [
    { file: 'tests/top_pages.yaml', name: "acme's top pages", outcome: 'passed', durationMs: 12 },
    {
      file: 'tests/top_pages.yaml',
      name: 'a <bad> & "odd" one',
      outcome: 'failed',
      durationMs: 8,
      failure: ['    expected status 200, got 400: parameter limit', '    more'],
    },
    { file: 'migration from ../main', name: 'page_views keeps its 18 fixture row(s)', outcome: 'passed', durationMs: 30 },
    { file: 'tests/other.yaml', name: 'rewritten', outcome: 'updated', durationMs: 5 },
  ],
};

describe('reports', () => {
  it('counts outcomes, and the JSON document says ok only with no failure', () => {
    expect(counts(RUN.results)).toEqual({ passed: 2, failed: 1, updated: 1 });
    const doc = jsonReport(RUN);
    expect(doc).toMatchObject({ passed: 2, failed: 1, updated: 1, ok: false, fixtures: RUN.fixtures, timings: RUN.timings });
    expect(jsonReport({ ...RUN, results: [RUN.results[0]!] }).ok).toBe(true);
  });

  it('renders JUnit XML a CI parser reads: a suite per file, failures with their text', () => {
    const xml = junitReport(RUN);
    const root = parseXml(xml);
    expect(root.name).toBe('testsuites');
    expect(root.attributes).toEqual({ name: 'weir test', tests: '4', failures: '1', errors: '0', time: '0.055' });
    const suites = root.children;
    expect(suites.map((s) => [s.name, s.attributes.name, s.attributes.tests, s.attributes.failures])).toEqual([
      ['testsuite', 'tests/top_pages.yaml', '2', '1'],
      ['testsuite', 'migration from ../main', '1', '0'],
      ['testsuite', 'tests/other.yaml', '1', '0'],
    ]);
    const [ok, failed] = suites[0]!.children;
    expect(ok).toEqual({
      name: 'testcase',
      attributes: { classname: 'tests/top_pages.yaml', name: "acme's top pages", time: '0.012' },
      children: [],
      text: '',
    });
    expect(failed!.attributes.name).toBe('a <bad> & "odd" one');
    const failure = failed!.children[0]!;
    expect(failure.name).toBe('failure');
    expect(failure.attributes.message).toBe('expected status 200, got 400: parameter limit');
    expect(failure.text).toBe('    expected status 200, got 400: parameter limit\n    more');
  });

  it('the XML reader refuses what is not XML (so the check above means something)', () => {
    expect(() => parseXml('<a><b></a>')).toThrow(/expected <\/b>/);
    expect(() => parseXml('<a>x & y</a>')).toThrow(/bad entity/);
    expect(() => parseXml('<a n="1"')).toThrow();
  });

  it('escapes XML and drops characters XML cannot hold', () => {
    expect(xmlText(`a<b>&"c"'d'\u0001e`)).toBe('a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;e');
  });
});

describe('updateExpectedRows', () => {
  const FILE = `# cases
- name: with rows
  endpoint: top_pages   # by URL name
  params: {tenant: acme}
  expect:
    status: 200
    rows:   # in order
      - {pathname: /old, views: "9"}
- name: a 400
  endpoint: top_pages
  expect: {status: 400}
- name: no expect yet
  endpoint: top_pages
- name: counted
  endpoint: top_pages
  expect: {rows: [], rowCount: 0}
`;

  it('writes the answers into expect.rows, keeping comments and the other cases, and the file still parses to them', () => {
    const out = updateExpectedRows(
      FILE,
      new Map([
        [0, [blog, docs]],
        [2, [home]],
        [3, [home]],
      ]),
    );
    expect(out).toBe(`# cases
- name: with rows
  endpoint: top_pages # by URL name
  params: {tenant: acme}
  expect:
    status: 200
    rows:
      # in order
      - {pathname: /blog, views: "3", visitors: "2"}
      - {pathname: /docs, views: "1", visitors: "1"}
- name: a 400
  endpoint: top_pages
  expect: {status: 400}
- name: no expect yet
  endpoint: top_pages
  expect:
    rows:
      - {pathname: /, views: "1", visitors: "1"}
- name: counted
  endpoint: top_pages
  expect:
    rows:
      - {pathname: /, views: "1", visitors: "1"}
    rowCount: 1
`);
    const { cases, problems } = parseTestFile(out, 't.yaml');
    expect(problems).toEqual([]);
    expect(cases.map((c) => (c.kind === 'endpoint' ? c.expect : undefined))).toEqual([
      { status: 200, rows: [blog, docs] },
      { status: 400 },
      { status: 200, rows: [home] },
      { status: 200, rows: [home], rowCount: 1 },
    ]);
  });
});
