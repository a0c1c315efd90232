// Pipe SQL inside weir's own statements, against the real engine: a materialized Pipe whose SQL
// ends with a `-- comment`, a `/* comment */` or a ';' creates its view with its marker and
// backfills exactly (it used to half-apply: an empty view comment, "Unmatched parentheses" in
// the backfill, a `__weir_backfill` table left behind). Every place the SQL is embedded is run
// here: CREATE … AS, DESCRIBE TABLE (…), INSERT … FROM (…), MODIFY QUERY, a recompute's
// second view, a forwardQuery's copy, the Pipe controller's compile check and an Endpoint.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import type { Endpoint } from '../../../src/api/endpoint.js';
import type { Pipe } from '../../../src/api/pipe.js';
import { applyProject, PlanRefusedError } from '../../../src/execute/apply.js';
import { reconcilePipe } from '../../../src/controllers/pipe.js';
import type { ProjectResource } from '../../../src/plan/graph.js';
import { createLogger } from '../../../src/runtime/log.js';
import { uniqueNamespace } from '../../fixtures/builders.js';
import { count, FAST_FENCE, rollupMismatches, runWeirApply, startTestClickHouse, writeProject, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { exampleResources } from '../../fixtures/kube.js';
import { compiled, readyz, startServe } from '../../fixtures/serve.js';

const log = createLogger({ level: 'warn' });
let server: TestClickHouse;

beforeAll(async () => {
  server = await startTestClickHouse();
});
afterAll(async () => {
  await server?.stop();
});

const ROLLUP_ENDINGS: [string, string][] = [
  ['a trailing -- comment line', '\n-- one row per day, tenant and page\n'],
  ['a trailing /* comment */', ' /* one row per day */'],
  ['a trailing ;', ';\n'],
  ['a ; then a comment', '; -- done'],
];

/** The example project in `ns`, its Pipes' nodes rewritten by `edit`. */
function example(ns: string, edit: (pipe: string, node: string, sql: string) => string = (_p, _n, sql) => sql): ProjectResource[] {
  return (exampleResources(ns) as unknown as ProjectResource[]).map((r) => {
    if (r.kind !== 'Pipe') return r;
    const pipe = r as Pipe;
    return { ...pipe, spec: { ...pipe.spec, nodes: pipe.spec.nodes.map((n) => ({ ...n, sql: edit(pipe.metadata.name, n.name, n.sql) })) } };
  });
}
const withoutRollup = (resources: ProjectResource[]) => resources.filter((r) => r.metadata.name !== 'daily-rollup');
const rollupEnding = (ending: string) => (pipe: string, _node: string, sql: string) => (pipe === 'daily-rollup' ? `${sql.trimEnd()}${ending}` : sql);

/** `rows` page views, a minute apart from four days ago (inside the table's TTL), over three tenants and eleven pages. */
async function insertPageViews(db: string, rows: number, offset = 0): Promise<void> {
  await server.ch.command(
    `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname, duration_ms)
     SELECT toDateTime64(toStartOfDay(now()) - INTERVAL 4 DAY, 3) + toIntervalMinute(number), toString(number % 97), concat('t', toString(number % 3)), concat('/p', toString(number % 11)), number % 5000
     FROM numbers(${offset}, ${rows})`,
  );
}

async function viewComment(db: string, view: string): Promise<string> {
  const rows = await server.ch.query<{ comment: string }>('SELECT comment FROM system.tables WHERE database = {db:String} AND name = {n:String}', {
    params: { db, n: view },
  });
  return rows[0]?.comment ?? '<no view>';
}

const weirTables = (db: string) =>
  server.ch.query<{ name: string }>("SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE '%weir%' ORDER BY name", { params: { db } });

async function assertRollupExact(db: string, rows: number): Promise<void> {
  expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(rows);
  expect(await rollupMismatches(server.ch, db)).toBe(0);
}

describe('a materialized Pipe whose SQL ends with a comment or a ;', () => {
  it('weir apply creates the view with its marker and backfills exactly, with a trailing -- comment line (the reported case)', async () => {
    const ns = uniqueNamespace('trailing');
    const db = ns.replace(/-/g, '_');
    const resources = example(ns, rollupEnding('\n-- one row per day, tenant and page\n'));
    await applyProject(server.ch, withoutRollup(resources), { log });
    await insertPageViews(db, 5_000);
    const applied = await runWeirApply(writeProject(resources), server.url);
    expect(applied.code, applied.out).toBe(0);
    expect(await viewComment(db, 'daily_rollup')).toMatch(/^weir-pipe:[0-9a-f]+$/);
    await assertRollupExact(db, 5_000);
    expect(await weirTables(db)).toEqual([]);
    // The view carries new rows too.
    await insertPageViews(db, 700, 5_000);
    await assertRollupExact(db, 5_700);
  });

  for (const [what, ending] of ROLLUP_ENDINGS.slice(1)) {
    it(`applies with ${what}: marker, exact backfill, nothing left behind`, async () => {
      const ns = uniqueNamespace('ending');
      const db = ns.replace(/-/g, '_');
      const resources = example(ns, rollupEnding(ending));
      await applyProject(server.ch, withoutRollup(resources), { log });
      await insertPageViews(db, 3_000);
      const { plan } = await applyProject(server.ch, resources, { log, fenceTiming: FAST_FENCE });
      expect(plan.resources.flatMap((r) => r.steps.map((s) => s.kind))).toEqual(['CreateView']);
      expect(await viewComment(db, 'daily_rollup')).toMatch(/^weir-pipe:[0-9a-f]+$/);
      await assertRollupExact(db, 3_000);
      expect(await weirTables(db)).toEqual([]);
      // Applied again, nothing is left to do: the marker matches the spec.
      const again = await applyProject(server.ch, resources, { log });
      expect(again.plan.resources.flatMap((r) => r.steps)).toEqual([]);
    });
  }

  it('recomputes the target when the query changes, through a second view and a staged backfill, with a trailing comment', async () => {
    const ns = uniqueNamespace('recomment');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, example(ns), { log });
    await insertPageViews(db, 4_000);
    const filtered = example(ns, (p, _n, sql) =>
      p === 'daily-rollup' ? `${sql.replace('FROM page_views', 'FROM page_views WHERE duration_ms >= 2500').trimEnd()}\n-- long views only` : sql,
    );
    const { plan } = await applyProject(server.ch, filtered, { log, fenceTiming: FAST_FENCE });
    expect(plan.resources.flatMap((r) => r.steps.map((s) => s.kind))).toEqual(['RecomputeView']);
    // Durations are number % 5000: rows 2500..3999 are the long ones.
    expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(1_500);
    expect(await viewComment(db, 'daily_rollup')).toMatch(/^weir-pipe:[0-9a-f]+$/);
    expect(await weirTables(db)).toEqual([]);
    await insertPageViews(db, 1_000, 4_000);
    expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(2_500);
  });

  it('changes the query in place (backfill: None) with a trailing comment', async () => {
    const ns = uniqueNamespace('modcomment');
    const db = ns.replace(/-/g, '_');
    const noBackfill = (resources: ProjectResource[]) =>
      resources.map((r) =>
        r.kind === 'Pipe' && (r as Pipe).spec.materialize
          ? { ...r, spec: { ...(r as Pipe).spec, materialize: { into: 'page-views-daily', backfill: 'None' as const } } }
          : r,
      );
    await applyProject(server.ch, noBackfill(example(ns)), { log });
    const changed = noBackfill(
      example(ns, (p, _n, sql) =>
        p === 'daily-rollup' ? `${sql.replace('FROM page_views', 'FROM page_views WHERE duration_ms >= 2500').trimEnd()} -- long views only` : sql,
      ),
    );
    const { plan } = await applyProject(server.ch, changed, { log });
    expect(plan.resources.flatMap((r) => r.steps.map((s) => s.kind))).toEqual(['ModifyViewQuery']);
    expect(await viewComment(db, 'daily_rollup')).toMatch(/^weir-pipe:[0-9a-f]+$/);
    // Rows 2000..2999: half of them are long.
    await insertPageViews(db, 1_000, 2_000);
    expect(await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`)).toBe(500);
  });

  it('migrates a table by copy-and-swap with a forwardQuery ending in a comment, the rollup view compiled against the next version', async () => {
    const ns = uniqueNamespace('fwdcomment');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, example(ns), { log });
    await insertPageViews(db, 2_000);
    const resorted = example(ns).map((r) => {
      if (r.kind !== 'DataSource' || r.metadata.name !== 'page-views') return r;
      const ds = structuredClone(r as DataSource);
      ds.spec.engine.sortingKey = ['tenant_id', 'pathname', 'timestamp'];
      ds.spec.migration = { ...ds.spec.migration, forwardQuery: 'SELECT * FROM {source}\n-- every row as it was' };
      return ds;
    });
    const { plan } = await applyProject(server.ch, resorted, { log, fenceTiming: FAST_FENCE });
    expect(plan.resources.flatMap((r) => r.steps.map((s) => s.kind))).toEqual(['CopyAndSwap']);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.page_views`)).toBe(2_000);
    await assertRollupExact(db, 2_000);
    expect(await weirTables(db)).toEqual([]);
  });
});

describe('Pipe SQL ending with FORMAT or SETTINGS', () => {
  for (const ending of ['\nFORMAT JSON', '\nSETTINGS max_threads = 1']) {
    it(`is refused before anything is created (${ending.trim()})`, async () => {
      const ns = uniqueNamespace('format');
      const db = ns.replace(/-/g, '_');
      const error = await applyProject(server.ch, example(ns, rollupEnding(ending)), { log }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PlanRefusedError);
      expect((error as Error).message).toMatch(
        new RegExp(`^Pipe/${ns}/daily-rollup: node rollup (ends with FORMAT JSON|has a SETTINGS max_threads clause); remove it`),
      );
      expect(await count(server.ch, `SELECT count() AS n FROM system.databases WHERE name = '${db}'`)).toBe(0);
    });
  }
});

describe('an Endpoint whose SQL ends in a comment', () => {
  it('compiles in the Pipe controller and answers from weir serve with the right rows', async () => {
    const ns = uniqueNamespace('epcomment');
    const db = ns.replace(/-/g, '_');
    const resources = example(ns, (_p, node, sql) => `${sql.trimEnd()}\n-- end of node ${node}`);
    await applyProject(server.ch, resources, { log });
    await insertPageViews(db, 3_300);

    const pipe = resources.find((r) => r.kind === 'Pipe' && r.metadata.name === 'top-pages') as Pipe;
    const dataSources = resources.filter((r): r is DataSource => r.kind === 'DataSource');
    const lookup = {
      dataSource: (_ns: string, name: string) =>
        ({ ...dataSources.find((d) => d.metadata.name === name.replace(/_/g, '-')), status: { version: 1 } }) as DataSource,
      dataSourcesIn: () => dataSources,
      pipe: () => undefined,
      endpoint: () => undefined,
    };
    const decision = await reconcilePipe(pipe, { now: new Date(), lookup, clickhouse: server.ch });
    expect(decision.status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', message: 'Every node compiles.' });

    const ep = resources.find((r) => r.kind === 'Endpoint') as Endpoint;
    const { auth: _auth, ...open } = ep.spec;
    const serve = await startServe(server.url, [compiled({ ...ep, spec: open }, pipe, db)]);
    try {
      await readyz(serve, 200);
      const res = await fetch(`${serve.base}/v0/pipes/top_pages.json?tenant=t1&limit=20`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { data: { pathname: string; views: string | number }[] };
      const expected = await server.ch.query<{ pathname: string; views: string }>(
        `SELECT pathname, count() AS views FROM ${db}.page_views WHERE tenant_id = 't1' GROUP BY pathname ORDER BY pathname`,
      );
      // 3,300 rows: tenant t1 has 1,100 of them, 100 on each of the 11 pages.
      expect(expected).toHaveLength(11);
      const byPage = (rows: { pathname: string; views: string | number }[]) => rows.map((r) => `${r.pathname}=${Number(r.views)}`).sort();
      expect(byPage(body.data)).toEqual(byPage(expected));
      expect(body.data.reduce((n, r) => n + Number(r.views), 0)).toBe(1_100);
    } finally {
      await serve.stop();
    }
  });
});
