// Two ClickHouse objects cannot share a name. A DataSource named like the example's rollup view
// used to be reported as created while nothing was (CREATE TABLE IF NOT EXISTS met the view),
// and its events then went through the view into the rollup. Against the real engine: the
// planners refuse such a clash naming both resources (weir apply, weir dev, and the operator's
// controllers alike), and the executor refuses a name taken after it planned, creating nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import type { Pipe } from '../../../src/api/pipe.js';
import { applyProject, PlanRefusedError } from '../../../src/execute/apply.js';
import { observeCatalog } from '../../../src/clickhouse/catalog.js';
import { Executor, MigrationRefusedError } from '../../../src/execute/executor.js';
import { reconcileDataSource } from '../../../src/controllers/datasource.js';
import { reconcilePipe } from '../../../src/controllers/pipe.js';
import type { ReconcileContext } from '../../../src/controllers/types.js';
import type { ProjectResource } from '../../../src/plan/graph.js';
import { planProject } from '../../../src/plan/project-plan.js';
import { createLogger } from '../../../src/runtime/log.js';
import { dataSource, inNamespace, uniqueNamespace } from '../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { exampleResources } from '../../fixtures/kube.js';

const log = createLogger({ level: 'warn' });
let server: TestClickHouse;

beforeAll(async () => {
  server = await startTestClickHouse();
});
afterAll(async () => {
  await server?.stop();
});

const example = (ns: string) => exampleResources(ns) as unknown as ProjectResource[];
const dailyRollupTable = (ns: string) => dataSource('daily-rollup', inNamespace(ns));
const clash = (ns: string) =>
  `${ns.replace(/-/g, '_')}.daily_rollup would be both the table of DataSource ${ns}/daily-rollup and the materialized view of Pipe ${ns}/daily-rollup; two ClickHouse objects cannot share a name: rename one of them`;

/** Every object in the database, with its engine and comment: what "nothing changed" compares. */
const objects = (db: string) =>
  server.ch.query<{ name: string; engine: string; comment: string }>(
    'SELECT name, engine, comment FROM system.tables WHERE database = {db:String} ORDER BY name',
    { params: { db } },
  );

function context(ns: string, resources: ProjectResource[]): ReconcileContext {
  const find = (kind: string) => (n: string, name: string) =>
    resources.find((r) => r.kind === kind && r.metadata.namespace === n && r.metadata.name === name.replace(/_/g, '-')) as never;
  return {
    now: new Date(),
    clickhouse: server.ch,
    lookup: {
      dataSource: (n, name) => {
        const ds = find('DataSource')(n, name) as DataSource | undefined;
        return ds && { ...ds, status: { version: 1 } };
      },
      dataSourcesIn: (n) => resources.filter((r): r is DataSource => r.kind === 'DataSource' && r.metadata.namespace === n),
      pipe: find('Pipe'),
      endpoint: (n, name) => find('Endpoint')(n, name),
    },
    log,
  };
}

describe('a DataSource named like the materialized Pipe daily-rollup', () => {
  it('weir apply (and weir dev) refuse it naming both, and change nothing', async () => {
    const ns = uniqueNamespace('clash');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, example(ns), { log });
    const before = await objects(db);
    const error = await applyProject(server.ch, [...example(ns), dailyRollupTable(ns)], { log }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanRefusedError);
    expect((error as Error).message).toBe(`DataSource/${ns}/daily-rollup: ${clash(ns)}\nPipe/${ns}/daily-rollup: ${clash(ns)}`);
    expect(await objects(db)).toEqual(before);
  });

  it('refuses it on a fresh ClickHouse too, before creating anything', async () => {
    const ns = uniqueNamespace('clashnew');
    const error = await applyProject(server.ch, [...example(ns), dailyRollupTable(ns)], { log }).catch((e: unknown) => e);
    expect((error as Error).message).toContain(clash(ns));
    expect(await count(server.ch, `SELECT count() AS n FROM system.databases WHERE name = '${ns.replace(/-/g, '_')}'`)).toBe(0);
  });

  it("the operator's controllers refuse both with the same message", async () => {
    const ns = uniqueNamespace('clashop');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, example(ns), { log });
    const before = await objects(db);
    const resources = [...example(ns), dailyRollupTable(ns)];
    const ctx = context(ns, resources);
    const ds = await reconcileDataSource(dailyRollupTable(ns), ctx);
    expect(ds.status.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'PlanRefused', message: clash(ns) });
    const pipe = resources.find((r) => r.kind === 'Pipe' && r.metadata.name === 'daily-rollup') as Pipe;
    const p = await reconcilePipe(pipe, ctx);
    expect(p.status.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'PlanRefused', message: clash(ns) });
    expect(await objects(db)).toEqual(before);
  });

  it('is refused by the DataSource planner from the catalog alone when the view already exists (what an operator that cannot see the Pipe knows)', async () => {
    const ns = uniqueNamespace('clashcat');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, example(ns), { log });
    const plan = planProject([dailyRollupTable(ns)], await observeCatalog(server.ch, [db]));
    expect(plan.resources[0]?.refusals).toEqual([
      `${db}.daily_rollup exists as a materialized Pipe's view, so its table cannot be created; rename the DataSource or drop the view`,
    ]);
  });
});

describe('a name held by an object weir did not create', () => {
  it("a user's view under a DataSource's name is refused at plan time, and nothing is created", async () => {
    const ns = uniqueNamespace('userview');
    const db = ns.replace(/-/g, '_');
    await server.ch.command(`CREATE DATABASE ${db}`);
    await server.ch.command(`CREATE VIEW ${db}.events AS SELECT 1 AS x`);
    const before = await objects(db);
    const error = await applyProject(server.ch, [dataSource('events', inNamespace(ns))], { log }).catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      `DataSource/${ns}/events: ${db}.events exists as a view weir did not create, so its table cannot be created; rename the DataSource or drop the view`,
    );
    expect(await objects(db)).toEqual(before);
  });

  it("a view created under a DataSource's name after the plan: the executor says nothing was created", async () => {
    const ns = uniqueNamespace('racetable');
    const db = ns.replace(/-/g, '_');
    const events = dataSource('events', inNamespace(ns));
    const plan = planProject([events], await observeCatalog(server.ch, [db]));
    expect(plan.resources[0]?.steps.map((s) => s.kind)).toEqual(['CreateDatabase', 'CreateTable', 'CreateQuarantine']);
    await server.ch.command(`CREATE DATABASE ${db}`);
    await server.ch.command(`CREATE VIEW ${db}.events AS SELECT 1 AS x`);
    const error = await new Executor(server.ch, { log }).run(plan.resources[0]?.steps ?? []).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationRefusedError);
    expect((error as Error).message).toBe(
      `${db}.events already exists as a View (comment ""), which is not a table weir made for a DataSource: nothing was created; rename the resource or drop that object`,
    );
    expect(await objects(db)).toEqual([{ name: 'events', engine: 'View', comment: '' }]);
  });

  it("a table created under a materialized Pipe's name after the plan: no view, no backfill, the table untouched", async () => {
    const ns = uniqueNamespace('raceview');
    const db = ns.replace(/-/g, '_');
    const withoutRollup = example(ns).filter((r) => r.metadata.name !== 'daily-rollup');
    await applyProject(server.ch, withoutRollup, { log });
    await server.ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname) SELECT now64(3) - toIntervalMinute(number), toString(number), 't', '/' FROM numbers(500)`,
    );
    const plan = planProject(example(ns), await observeCatalog(server.ch, [db]));
    const steps = plan.resources.flatMap((r) => r.steps);
    expect(steps.map((s) => s.kind)).toEqual(['CreateView']);
    await server.ch.command(`CREATE TABLE ${db}.daily_rollup (x UInt8) ENGINE = MergeTree ORDER BY x COMMENT 'mine'`);
    const error = await new Executor(server.ch, { log }).run(steps).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationRefusedError);
    expect((error as Error).message).toBe(
      `${db}.daily_rollup already exists as a MergeTree (comment "mine"), which is not a materialized Pipe's view: nothing was created; rename the resource or drop that object`,
    );
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.page_views_daily`)).toBe(0);
    expect((await objects(db)).filter((o) => o.name === 'daily_rollup' || o.name.includes('weir'))).toEqual([
      { name: 'daily_rollup', engine: 'MergeTree', comment: 'mine' },
    ]);
    // The refused materialization is not resumed by the next apply: the planner now sees the table.
    const again = await applyProject(server.ch, example(ns), { log }).catch((e: unknown) => e);
    expect((again as Error).message).toBe(
      `Pipe/${ns}/daily-rollup: ${db}.daily_rollup exists as a table weir did not create, so the materialized view cannot be created; rename the Pipe (or the table)`,
    );
  });
});
