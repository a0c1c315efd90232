// `weir test` as CI runs it: the real CLI process, its own embedded engine, the example project's
// fixtures and tests; exit codes, what it prints, its JSON and JUnit reports, --update, --from
// (a real copy-and-swap with the fixture rows counted) and --clickhouse (scratch databases dropped).
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { run, WEIR_BIN } from '../../fixtures/processes.js';
import { parseXml } from '../../fixtures/xml.js';
import { waitFor } from '../../env/wait.js';
import { parseTestFile } from '../../../src/cli/test-cases.js';

const EXAMPLE = 'manifests/examples/web-analytics';
const weirTest = (...args: string[]) => run(process.execPath, [WEIR_BIN, 'test', ...args]);

/** A copy of the example to change. */
const copyOfExample = (): string => {
  const dir = join(mkdtempSync(join(tmpdir(), 'weir-test-')), 'web-analytics');
  cpSync(EXAMPLE, dir, { recursive: true });
  return dir;
};

/** The lines of one test each, times taken out. */
const testLines = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => /^[✓✗↻] /.test(l))
    .map((l) => l.replace(/ \(\d+ ms\)/, ''));

const EXAMPLE_TESTS = [
  `✓ ${EXAMPLE}/tests/page_views.yaml: every fixture line landed once or was quarantined`,
  `✓ ${EXAMPLE}/tests/page_views.yaml: a missing country is 'unknown', not empty`,
  `✓ ${EXAMPLE}/tests/page_views.yaml: the rollup counts every page view`,
  `✓ ${EXAMPLE}/tests/top_pages.yaml: acme's top pages`,
  `✓ ${EXAMPLE}/tests/top_pages.yaml: a bad limit is a 400`,
  `✓ ${EXAMPLE}/tests/top_pages.yaml: views are never negative`,
  `✓ ${EXAMPLE}/tests/top_pages.yaml: row count only`,
  `✓ ${EXAMPLE}/tests/top_pages.yaml: a date range keeps the days in it`,
  `✓ ${EXAMPLE}/tests/top_pages.yaml: the tenant is required`,
];

describe('weir test on the example project', () => {
  it('passes every case, one line per test with its time, and exits 0', async () => {
    const r = await weirTest('-f', EXAMPLE);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(testLines(r.stdout)).toEqual(EXAMPLE_TESTS);
    expect(r.stdout).toMatch(/^[✓] .+ \(\d+ ms\)$/m);
    // 21 lines: 18 events and 3 that do not map (not JSON, no tenant_id, a negative duration).
    expect(r.stdout).toContain(`fixtures: ${EXAMPLE}/fixtures/page_views.ndjson → page_views: 18 row(s), 3 quarantined`);
    expect(r.stdout).toMatch(/^9 passed, 0 failed in [\d.]+ s after the engine started \(apply [\d.]+ s, fixtures [\d.]+ s, tests [\d.]+ s\)$/m);
  });

  it('-o json and --junit give the same results in forms CI parses', async () => {
    const junit = join(mkdtempSync(join(tmpdir(), 'weir-junit-')), 'results.xml');
    const r = await weirTest('-f', EXAMPLE, '-o', 'json', '--junit', junit);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ project: EXAMPLE, passed: 9, failed: 0, updated: 0, ok: true });
    expect(doc.fixtures).toEqual([{ file: `${EXAMPLE}/fixtures/page_views.ndjson`, datasource: 'page-views', lines: 21, accepted: 18, quarantined: 3 }]);
    expect(doc.results.map((t: { file: string; name: string; outcome: string }) => `✓ ${t.file}: ${t.name}`)).toEqual(EXAMPLE_TESTS);
    const acme = doc.results.find((t: { name: string }) => t.name === "acme's top pages");
    expect(acme).toMatchObject({
      outcome: 'passed',
      status: 200,
      actualRows: [
        { pathname: '/blog', views: '3', visitors: '2' },
        { pathname: '/docs', views: '1', visitors: '1' },
      ],
    });
    expect(doc.results.find((t: { name: string }) => t.name === 'a bad limit is a 400')).toMatchObject({
      status: 400,
      error: 'parameter limit: expected UInt32, got "abc"',
    });

    const xml = parseXml(readFileSync(junit, 'utf8'));
    expect(xml.attributes).toMatchObject({ tests: '9', failures: '0' });
    expect(xml.children.map((s) => [s.attributes.name, s.attributes.tests, s.attributes.failures])).toEqual([
      [`${EXAMPLE}/tests/page_views.yaml`, '3', '0'],
      [`${EXAMPLE}/tests/top_pages.yaml`, '6', '0'],
    ]);
  });

  it('--filter runs the matching cases only', async () => {
    const r = await weirTest('-f', EXAMPLE, '--filter', 'ACME');
    expect(r.code).toBe(0);
    expect(testLines(r.stdout)).toEqual([`✓ ${EXAMPLE}/tests/top_pages.yaml: acme's top pages`]);
    expect(r.stdout).toMatch(/^1 passed, 0 failed, 8 not selected by --filter in /m);
  });
});

describe('a failing case', () => {
  it('exits 1 and shows the rows expected against the rows answered, and the status with ClickHouse’s message', async () => {
    const dir = copyOfExample();
    writeFileSync(
      join(dir, 'pipes.yaml'),
      `${readFileSync(join(dir, 'pipes.yaml'), 'utf8')}---
apiVersion: weir.dev/v1alpha1
kind: Pipe
metadata: {name: refuse, namespace: web}
spec:
  nodes:
    - name: q
      sql: SELECT throwIf({fail:UInt8} = 1, 'refused on purpose') AS x FROM page_views LIMIT 1
---
apiVersion: weir.dev/v1alpha1
kind: Endpoint
metadata: {name: refuse, namespace: web}
spec: {pipe: refuse}
`,
    );
    writeFileSync(
      join(dir, 'tests', 'wrong.yaml'),
      `- name: acme's pages, as someone misremembers them
  endpoint: top_pages
  params: {tenant: acme}
  expect:
    rows:
      - {pathname: /blog, views: 3, visitors: "2"}
      - {pathname: /pricing, views: "1", visitors: "1"}
- name: a query ClickHouse refuses
  endpoint: refuse
  params: {fail: 1}
  expect: {rows: [{x: 0}]}
- name: an assertion that finds rows
  sql: SELECT tenant_id, count() AS n FROM page_views GROUP BY tenant_id ORDER BY tenant_id
`,
    );
    const r = await weirTest('-f', dir, '--filter', 'wrong.yaml');
    expect(r.code).toBe(1);
    const out = r.stdout.replace(/ \(\d+ ms\)/g, '');
    const file = join(dir, 'tests', 'wrong.yaml');
    expect(out).toContain(
      [
        `✗ ${file}: acme's pages, as someone misremembers them`,
        '    the rows differ from expect.rows (- expected, + answered):',
        '    - {pathname: "/blog", views: 3, visitors: "2"}',
        '    + {pathname: "/blog", views: "3", visitors: "2"}',
        '    - {pathname: "/pricing", views: "1", visitors: "1"}',
        '    + {pathname: "/docs", views: "1", visitors: "1"}',
        '    hint: views: the answer has the string "3" where the test has the number 3; the JSON format quotes 64-bit integers and decimals: write views: "3"',
        `✗ ${file}: a query ClickHouse refuses`,
        '    expected status 200, got 500: the query failed',
      ].join('\n'),
    );
    expect(out).toMatch(/^ {4}ClickHouse: FUNCTION_THROW_IF_VALUE_IS_NON_ZERO: refused on purpose/m);
    expect(out).toContain(
      [
        `✗ ${file}: an assertion that finds rows`,
        '    the assertion returned 3 row(s); it passes when it returns none:',
        '    + {tenant_id: "acme", n: "4"}',
        '    + {tenant_id: "globex", n: "12"}',
        '    + {tenant_id: "initech", n: "2"}',
      ].join('\n'),
    );
    expect(out).toMatch(/^0 passed, 3 failed, 9 not selected by --filter in /m);
  });
});

describe('problems in test files', () => {
  it('each is an error naming the file and the case, and nothing runs', async () => {
    const dir = copyOfExample();
    writeFileSync(
      join(dir, 'tests', 'bad-yaml.yaml'),
      '- name: fine\n  endpoint: top_pages\n- name: unclosed\n  params: {tenant: acme\n  endpoint: top_pages\n',
    );
    writeFileSync(join(dir, 'tests', 'unknown-field.yaml'), '- name: typo\n  endpoint: top_pages\n  expected: {status: 200}\n');
    writeFileSync(join(dir, 'tests', 'unknown-endpoint.yaml'), '- name: gone\n  endpoint: bottom_pages\n');
    writeFileSync(join(dir, 'tests', 'unknown-param.yaml'), '- name: tenat\n  endpoint: top_pages\n  params: {tenat: acme}\n');
    writeFileSync(join(dir, 'fixtures', 'clicks.ndjson'), '{"a": 1}\n');
    const r = await weirTest('-f', dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([
      `${dir}/tests/bad-yaml.yaml:5: case "unclosed": bad YAML: Flow map in block collection must be sufficiently indented and end with a }`,
      `${dir}/tests/unknown-field.yaml:3: case "typo": unknown field expected (a case has name, endpoint, params, expect, sql)`,
      `${dir}/tests/unknown-endpoint.yaml:1: case "gone": unknown endpoint bottom_pages; the project has top-pages`,
      `${dir}/tests/unknown-param.yaml:1: case "tenat": params.tenat: Endpoint top_pages has no parameter tenat (it takes tenant, date_from, date_to, limit); to test that it refuses one, expect status 400`,
      `${dir}/fixtures/clicks.ndjson: no DataSource clicks in the project (it has page-views, page-views-daily); a fixture file is named after the DataSource it feeds`,
      `5 problem(s) in the tests and fixtures of ${dir}; nothing ran`,
    ]);
  });

  it('-o json says the same problems as a document, and a project that does not apply is exit 1 with the reason', async () => {
    const dir = copyOfExample();
    writeFileSync(join(dir, 'tests', 'unknown-endpoint.yaml'), '- name: gone\n  endpoint: bottom_pages\n');
    const r = await weirTest('-f', dir, '-o', 'json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: false,
      error: '1 problem(s) in the tests and fixtures; nothing ran',
      problems: [`${dir}/tests/unknown-endpoint.yaml:1: case "gone": unknown endpoint bottom_pages; the project has top-pages`],
    });

    const broken = copyOfExample();
    const pipes = join(broken, 'pipes.yaml');
    writeFileSync(pipes, readFileSync(pipes, 'utf8').replace('FROM page_views\n', 'FROM page_views_typo\n'));
    const failed = await weirTest('-f', broken);
    expect(failed.code).toBe(1);
    expect(
      failed.stderr.startsWith(
        `${broken} does not apply: Pipe web/daily-rollup: node rollup: the SQL does not compile: Unknown table expression identifier 'page_views_typo'`,
      ),
    ).toBe(true);
    expect(failed.stderr).toContain('\n  not applied: create materialized view web.daily_rollup TO web.page_views_daily');
    expect(testLines(failed.stdout)).toEqual([]);
  });

  it('weir validate, plan and the loader are not tripped by them', async () => {
    const dir = copyOfExample();
    writeFileSync(join(dir, 'tests', 'bad-yaml.yaml'), '- name: unclosed\n  params: {tenant: acme\n');
    const validate = await run(process.execPath, [WEIR_BIN, 'validate', '-f', dir]);
    expect(validate).toMatchObject({ code: 0, stderr: '' });
    expect(validate.stdout).toContain('valid: 2 DataSources, 1 Endpoint, 2 Pipes');
    const plan = await run(process.execPath, [WEIR_BIN, 'plan', '-f', dir]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain('6 change(s) pending.');
  });
});

describe('weir test --update', () => {
  it('rewrites expect.rows from the answers, then the same tests pass as written', async () => {
    const dir = copyOfExample();
    const file = join(dir, 'tests', 'top_pages.yaml');
    const original = readFileSync(file, 'utf8');
    writeFileSync(file, original.replace('- {pathname: /docs, views: "1", visitors: "1"}', '- {pathname: /docs, views: "7", visitors: "1"}'));
    writeFileSync(join(dir, 'tests', 'new.yaml'), '# initech, to be filled in\n- name: initech home\n  endpoint: top_pages\n  params: {tenant: initech}\n');

    const stale = await weirTest('-f', dir);
    expect(stale.code).toBe(1);
    expect(stale.stdout).toContain('    - {pathname: "/docs", views: "7", visitors: "1"}\n    + {pathname: "/docs", views: "1", visitors: "1"}');

    const updated = await weirTest('-f', dir, '--update');
    expect(updated.code).toBe(0);
    expect(testLines(updated.stdout).filter((l) => l.startsWith('↻'))).toEqual([
      `↻ ${dir}/tests/new.yaml: initech home updated`,
      `↻ ${file}: acme's top pages updated`,
    ]);
    // The file reads as the original again (yaml rewrites the spacing before comments, keeping them).
    const rewritten = readFileSync(file, 'utf8');
    const cases = (text: string) => parseTestFile(text, 't').cases.map(({ line: _line, ...c }) => c);
    expect(cases(rewritten)).toEqual(cases(original));
    expect(rewritten).toContain('# exact rows in order, compared as the JSON format returns them');
    expect(readFileSync(join(dir, 'tests', 'new.yaml'), 'utf8')).toBe(
      '# initech, to be filled in\n- name: initech home\n  endpoint: top_pages\n  params: {tenant: initech}\n  expect:\n    rows:\n      - {pathname: /, views: "2", visitors: "1"}\n',
    );

    const again = await weirTest('-f', dir);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^10 passed, 0 failed in /m);
  });
});

describe('weir test --from: the migration itself', () => {
  it('builds the previous version, loads the fixtures, migrates by copy-and-swap with a column added, and counts every row', async () => {
    const previous = copyOfExample();
    const ds = join(previous, 'datasources.yaml');
    writeFileSync(
      ds,
      readFileSync(ds, 'utf8')
        .replace('sortingKey: [tenant_id, timestamp]', 'sortingKey: [timestamp]')
        .replace(/\n {4}- \{name: country, [^\n]+/, ''),
    );
    const r = await weirTest('-f', EXAMPLE, '--from', previous, '-o', 'json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ from: previous, passed: 11, failed: 0, ok: true });
    expect(doc.timings.migrationMs).toBeGreaterThan(0);
    // The fixtures went into the previous version (which had no country): 18 rows and 3 in the quarantine.
    expect(doc.fixtures).toEqual([{ file: `${EXAMPLE}/fixtures/page_views.ndjson`, datasource: 'page-views', lines: 21, accepted: 18, quarantined: 3 }]);
    expect(doc.results.slice(0, 2).map((t: { file: string; name: string; outcome: string }) => [t.file, t.name, t.outcome])).toEqual([
      [`migration from ${previous}`, 'page_views keeps its 18 fixture row(s) and 3 quarantined line(s)', 'passed'],
      [`migration from ${previous}`, 'page_views_daily keeps its 16 row(s)', 'passed'],
    ]);
    expect(doc.results.slice(2).map((t: { file: string; name: string }) => `✓ ${t.file}: ${t.name}`)).toEqual(EXAMPLE_TESTS);

    const text = await weirTest('-f', EXAMPLE, '--from', previous, '--filter', 'acme');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ {2}✓ migrate web\.page_views v1 → v2 by copy-and-swap \(sortingKey \(timestamp\) → \(tenant_id, timestamp\)/m);
    expect(testLines(text.stdout)).toEqual([
      `✓ migration from ${previous}: page_views keeps its 18 fixture row(s) and 3 quarantined line(s)`,
      `✓ migration from ${previous}: page_views_daily keeps its 16 row(s)`,
      `✓ ${EXAMPLE}/tests/top_pages.yaml: acme's top pages`,
    ]);
  });
});

describe('weir test --from: a rollup recomputed', () => {
  it('a column added to the rollup and its Pipe: the view is recomputed from the fixtures exactly once, and the cases see it', async () => {
    // The previous version's rollup had no visitors.
    const previous = copyOfExample();
    const ds = join(previous, 'datasources.yaml');
    writeFileSync(ds, readFileSync(ds, 'utf8').replace(/\n {4}- \{name: visitors, [^\n]+/, ''));
    const pipes = join(previous, 'pipes.yaml');
    writeFileSync(pipes, readFileSync(pipes, 'utf8').replace('countState() AS views, uniqState(session_id) AS visitors', 'countState() AS views'));
    const r = await weirTest('-f', EXAMPLE, '--from', previous);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      [
        '  ✓ alter table web.page_views_daily in place: add column visitors AggregateFunction(uniq, String)',
        '  ✓ recompute web.page_views_daily with the new query of web.daily_rollup: build v2 from a second view and an exactly-once backfill, then swap it in under a fence',
      ].join('\n'),
    );
    // The rollup's rows change with its Pipe, so it is not compared with before; the cases check it:
    // "the rollup counts every page view" (18 = 18, none doubled) and acme's visitors ("2"), which only the recompute fills in.
    expect(testLines(r.stdout)).toEqual([`✓ migration from ${previous}: page_views keeps its 18 fixture row(s) and 3 quarantined line(s)`, ...EXAMPLE_TESTS]);
  });
});

describe('weir test --from: a change that loses rows', () => {
  it('fails the row check with how many were lost, and exits 1', async () => {
    // A TTL that every fixture row is past: applied in place (MODIFY TTL), ClickHouse deletes them.
    const next = copyOfExample();
    const ds = join(next, 'datasources.yaml');
    writeFileSync(ds, readFileSync(ds, 'utf8').replace('ttl: "toDateTime(timestamp) + INTERVAL 180 DAY"', 'ttl: "toDateTime(timestamp) - INTERVAL 100 YEAR"'));
    const r = await weirTest('-f', next, '--from', EXAMPLE, '--filter', 'every fixture line');
    expect(r.code).toBe(1);
    const out = r.stdout.replace(/ \(\d+ ms\)/g, '');
    expect(out).toContain(
      [
        `✗ migration from ${EXAMPLE}: page_views keeps its 18 fixture row(s) and 3 quarantined line(s)`,
        '    web.page_views held 18 row(s) before the migration and 0 after: 18 lost',
        `✓ migration from ${EXAMPLE}: page_views_daily keeps its 16 row(s)`,
        `✗ ${next}/tests/page_views.yaml: every fixture line landed once or was quarantined`,
        '    the assertion returned 1 row(s); it passes when it returns none:',
        '    + {landed: "0", quarantined: "3"}',
      ].join('\n'),
    );
    expect(out).toMatch(/^1 passed, 2 failed, 8 not selected by --filter in /m);
  });
});

describe('weir test --clickhouse URL', () => {
  let server: TestClickHouse;
  beforeAll(async () => {
    server = await startTestClickHouse();
  });
  afterAll(async () => {
    await server?.stop();
  });
  const scratch = async () =>
    (await server.ch.query<{ name: string }>("SELECT name FROM system.databases WHERE name LIKE 'weir\\_test\\_%' ORDER BY name")).map((d) => d.name);

  it('runs in a scratch database of the live server and drops it, passing or failing', async () => {
    const ok = await weirTest('-f', EXAMPLE, '--clickhouse', server.url);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^weir test: against http:\/\/127\.0\.0\.1:\d+, scratch database\(s\) weir_test_[0-9a-f]{8}_web$/m);
    expect(testLines(ok.stdout)).toEqual(EXAMPLE_TESTS);
    expect(await scratch()).toEqual([]);
    // weir's bookkeeping of the run (its migration ledger, table locks, fences) is gone with it.
    for (const table of ['migrations', 'table_locks', 'fences', 'writers'])
      expect(await server.ch.query(`SELECT database FROM weir.${table} WHERE database LIKE 'weir\\_test\\_%'`), table).toEqual([]);
    // Nothing of the example landed in the database its namespace names.
    expect(await server.ch.query("SELECT name FROM system.databases WHERE name = 'web'")).toEqual([]);

    const dir = copyOfExample();
    writeFileSync(join(dir, 'tests', 'wrong.yaml'), '- name: wrong\n  endpoint: top_pages\n  params: {tenant: acme}\n  expect: {rowCount: 5}\n');
    const failed = await weirTest('-f', dir, '--clickhouse', server.url);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('    expected 5 row(s), got 2');
    expect(await scratch()).toEqual([]);
  });

  it('drops the scratch database when stopped midway (SIGINT)', async () => {
    // A case that runs until it is stopped: one row a block, a quarter of a second each (10 s in all).
    const dir = copyOfExample();
    writeFileSync(
      join(dir, 'tests', 'slow.yaml'),
      '- name: slow\n  sql: SELECT sleepEachRow(0.25) AS s FROM numbers(40) WHERE s != 0 SETTINGS max_block_size = 1\n',
    );
    const child = spawn(process.execPath, [WEIR_BIN, 'test', '-f', dir, '--clickhouse', server.url, '--filter', 'slow'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(
      'the slow case running',
      async () =>
        (
          await server.ch.query<{ n: string }>(
            "SELECT toString(count()) AS n FROM system.processes WHERE query LIKE '%sleepEachRow(0.25)%' AND query NOT LIKE '%system.processes%'",
          )
        )[0]?.n === '1' || undefined,
    );
    expect((await scratch()).length).toBe(1);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(await scratch()).toEqual([]);
  });

  it('refuses a project whose SQL names its database, since the scratch database cannot redirect it', async () => {
    const dir = copyOfExample();
    writeFileSync(join(dir, 'tests', 'qualified.yaml'), '- name: qualified\n  sql: SELECT 1 FROM web.page_views WHERE 0\n');
    const r = await weirTest('-f', dir, '--clickhouse', server.url);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `${dir}/tests/qualified.yaml: case "qualified" names database web explicitly; against a live server weir test runs in a scratch database, so write table names unqualified`,
    );
    expect(await scratch()).toEqual([]);
  });
});
