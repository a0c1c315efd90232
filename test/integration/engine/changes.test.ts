// In-place changes, refusals and rollback against the real engine: the SQL the planner
// writes must be SQL ClickHouse accepts, and a refused plan must change nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { applyProject, PlanRefusedError } from '../../../src/execute/apply.js';
import { Executor, MigrationRefusedError } from '../../../src/execute/executor.js';
import { observeCatalog } from '../../../src/clickhouse/catalog.js';
import { planDataSource } from '../../../src/plan/datasource-plan.js';
import { createLogger } from '../../../src/runtime/log.js';
import {
  column,
  dataSource,
  inNamespace,
  materializedInto,
  node,
  pipe,
  withColumns,
  withEngine,
  withNodes,
  withSortingKey,
  withSpec,
} from '../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { uniqueNamespace } from '../../fixtures/builders.js';

const log = createLogger({ level: 'warn' });
let server: TestClickHouse;
beforeAll(async () => {
  server = await startTestClickHouse();
});
afterAll(async () => {
  await server?.stop();
});

const events = (ns: string, ...mods: ((d: DataSource) => void)[]) =>
  dataSource(
    'events',
    inNamespace(ns),
    withColumns(column('ts', 'DateTime'), column('user', 'String'), column('amount', 'String')),
    withSortingKey('user', 'ts'),
    ...mods,
  );

async function fresh(): Promise<{ ns: string; db: string }> {
  const ns = uniqueNamespace('chg');
  const db = ns.replace(/-/g, '_');
  await applyProject(server.ch, [events(ns)], { log });
  await server.ch.command(`INSERT INTO ${db}.events SELECT now() - number, concat('u', toString(number % 10)), toString(number) FROM numbers(1000)`);
  return { ns, db };
}

const describeTable = async (db: string, table = 'events') =>
  (
    await server.ch.query<{ name: string; type: string; default_expression: string; comment: string; codec_expression: string }>(
      `DESCRIBE TABLE ${db}.${table}`,
    )
  ).map(
    (c) =>
      `${c.name} ${c.type}${c.default_expression ? ` DEFAULT ${c.default_expression}` : ''}${c.codec_expression ? ` ${c.codec_expression}` : ''}${c.comment ? ` -- ${c.comment}` : ''}`,
  );

describe('in-place changes run as ALTERs ClickHouse accepts, keeping every row', () => {
  it('adds a column with a default, changes codec and comment, sets TTL, settings and an index', async () => {
    const { ns, db } = await fresh();
    const next = events(ns, (d) => {
      d.spec.columns.push(column('country', 'LowCardinality(String)', { default: "'unknown'" }));
      const ts = d.spec.columns[0];
      if (ts) ts.codec = 'Delta, ZSTD(1)';
      const user = d.spec.columns[1];
      if (user) user.comment = "who it's about";
      d.spec.engine.ttl = 'ts + INTERVAL 400 DAY';
      d.spec.engine.settings = { merge_with_ttl_timeout: '3600' };
      d.spec.indexes = [{ name: 'user_idx', expression: 'user', type: 'bloom_filter(0.01)', granularity: 2 }];
    });
    const { plan } = await applyProject(server.ch, [next], { log });
    expect(plan.resources[0]?.steps.map((s) => s.kind)).toEqual(['AlterTable']);
    expect(await describeTable(db)).toEqual([
      'ts DateTime Delta(4), ZSTD(1)',
      "user String -- who it's about",
      'amount String',
      "country LowCardinality(String) DEFAULT 'unknown'",
    ]);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events WHERE country = 'unknown'`)).toBe(1000);
    const [t] = await server.ch.query<{ engine_full: string }>(`SELECT engine_full FROM system.tables WHERE database = '${db}' AND name = 'events'`);
    expect(t?.engine_full).toMatch(/TTL ts \+ toIntervalDay\(400\)/);
    expect(t?.engine_full).toMatch(/merge_with_ttl_timeout = 3600/);
    const idx = await server.ch.query<{ name: string }>(`SELECT name FROM system.data_skipping_indices WHERE database = '${db}' AND table = 'events'`);
    expect(idx.map((i) => i.name)).toEqual(['user_idx']);
    // Applying the same spec again changes nothing.
    const again = await applyProject(server.ch, [next], { log });
    expect(again.plan.resources[0]?.steps).toEqual([]);
  });

  it('extends the sorting key with a column added in the same change, in place', async () => {
    const { ns, db } = await fresh();
    const next = events(ns, (d) => d.spec.columns.push(column('session', 'String')), withSortingKey('user', 'ts', 'session'));
    const { plan } = await applyProject(server.ch, [next], { log });
    expect(plan.resources[0]?.steps.map((s) => s.kind)).toEqual(['AlterTable']);
    const [t] = await server.ch.query<{ sorting_key: string }>(`SELECT sorting_key FROM system.tables WHERE database = '${db}' AND name = 'events'`);
    expect(t?.sorting_key).toBe('user, ts, session');
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events`)).toBe(1000);
  });

  it('drops a column only with allowDestructive', async () => {
    const { ns, db } = await fresh();
    const dropped = events(ns, (d) => d.spec.columns.splice(2, 1));
    await expect(applyProject(server.ch, [dropped], { log })).rejects.toThrow(/dropping column amount loses data; set spec.migration.allowDestructive: true/);
    expect((await describeTable(db)).map((c) => c.split(' ')[0])).toEqual(['ts', 'user', 'amount']);
    await applyProject(server.ch, [events(ns, (d) => d.spec.columns.splice(2, 1), withSpec({ migration: { allowDestructive: true } }))], { log });
    expect((await describeTable(db)).map((c) => c.split(' ')[0])).toEqual(['ts', 'user']);
  });
});

describe('type changes', () => {
  it('refuses, with the count and samples, a type change some rows cannot take, and changes nothing', async () => {
    const { ns, db } = await fresh();
    await server.ch.command(`INSERT INTO ${db}.events VALUES (now(), 'u1', 'n/a'), (now(), 'u2', '12.5')`);
    const toInt = events(ns, (d) => d.spec.columns[2] && (d.spec.columns[2].type = 'UInt32'));
    // The preflight finds the rows before the plan runs: the apply is refused as a whole.
    const error = await applyProject(server.ch, [toInt], { log }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanRefusedError);
    expect((error as Error).message).toMatch(
      /^DataSource\/[\w-]+\/events: 2 row\(s\) of .*events have a amount that does not convert from String to UInt32 \(e\.g\. "(n\/a|12\.5)", "(n\/a|12\.5)"\); handle them with spec\.migration\.forwardQuery\. Nothing was changed\.$/,
    );
    // The executor still refuses on its own when handed the copy (the last line of defence).
    const steps = planDataSource(toInt, await observeCatalog(server.ch, [db])).steps;
    const last = await new Executor(server.ch, { log }).run(steps).catch((e: unknown) => e);
    expect(last).toBeInstanceOf(MigrationRefusedError);
    expect((last as Error).message).toMatch(/^2 row\(s\) of .*events have a amount that does not convert from String to UInt32/);
    expect(await describeTable(db)).toEqual(['ts DateTime', 'user String', 'amount String']);
    expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND startsWith(name, 'events__')`)).toBe(0);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events`)).toBe(1002);
  });

  it('converts with a forward query that handles the bad rows', async () => {
    const { ns, db } = await fresh();
    await server.ch.command(`INSERT INTO ${db}.events VALUES (now(), 'u1', 'n/a')`);
    const toInt = events(
      ns,
      (d) => d.spec.columns[2] && (d.spec.columns[2].type = 'UInt32'),
      withSpec({
        migration: { forwardQuery: 'SELECT ts, user, toUInt32OrZero(amount) AS amount FROM {source}' },
      }),
    );
    await applyProject(server.ch, [toInt], { log });
    expect(await describeTable(db)).toEqual(['ts DateTime', 'user String', 'amount UInt32']);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events`)).toBe(1001);
    expect(await count(server.ch, `SELECT sum(amount) AS n FROM ${db}.events`)).toBe((999 * 1000) / 2);
  });

  it('converts by name when every row converts', async () => {
    const { ns, db } = await fresh();
    await applyProject(server.ch, [events(ns, (d) => d.spec.columns[2] && (d.spec.columns[2].type = 'UInt64'))], { log });
    expect(await count(server.ch, `SELECT sum(amount) AS n FROM ${db}.events`)).toBe((999 * 1000) / 2);
  });
});

describe('versions and rollback', () => {
  it('keeps the previous version, and re-applying the earlier spec swaps it back with the rows written since', async () => {
    const { ns, db } = await fresh();
    const v2 = events(ns, withSortingKey('ts'));
    await applyProject(server.ch, [v2], { log });
    await server.ch.command(`INSERT INTO ${db}.events VALUES (now(), 'after-v2', '1'), (now(), 'after-v2', '2')`);
    const { plan } = await applyProject(server.ch, [events(ns)], { log });
    expect(plan.resources[0]?.steps.map((s) => s.kind)).toEqual(['SwapBack']);
    const [t] = await server.ch.query<{ sorting_key: string; comment: string }>(
      `SELECT sorting_key, comment FROM system.tables WHERE database = '${db}' AND name = 'events'`,
    );
    expect(t?.sorting_key).toBe('user, ts');
    expect(t?.comment).toMatch(/"version":1/);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events`)).toBe(1002);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events WHERE user = 'after-v2'`)).toBe(2);
    const versions = await server.ch.query<{ name: string }>(
      `SELECT name FROM system.tables WHERE database = '${db}' AND startsWith(name, 'events__v') ORDER BY name`,
    );
    expect(versions.map((v) => v.name)).toEqual(['events__v2']);
  });

  it('keeps no previous version when keepPreviousVersions is 0', async () => {
    const { ns, db } = await fresh();
    await applyProject(server.ch, [events(ns, withSortingKey('ts'), withSpec({ migration: { keepPreviousVersions: 0 } }))], { log });
    expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND startsWith(name, 'events__')`)).toBe(0);
    expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events`)).toBe(1000);
  });

  it('refuses to take over a table it did not create', async () => {
    const ns = uniqueNamespace('adopt');
    const db = ns.replace(/-/g, '_');
    await server.ch.command(`CREATE DATABASE ${db}`);
    await server.ch.command(`CREATE TABLE ${db}.events (x UInt8) ENGINE = MergeTree ORDER BY x`);
    await expect(applyProject(server.ch, [events(ns)], { log })).rejects.toBeInstanceOf(PlanRefusedError);
    expect(await describeTable(db)).toEqual(['x UInt8']);
  });
});

describe('dependent materialized views', () => {
  it('refuses a migration that would break a view reading the table, before changing anything', async () => {
    const { ns, db } = await fresh();
    const totals = pipe(
      'totals',
      inNamespace(ns),
      withNodes(node('n', 'SELECT user, sum(toUInt64OrZero(amount)) AS total FROM events GROUP BY user')),
      materializedInto('totals-by-user'),
    );
    const target = dataSource(
      'totals-by-user',
      inNamespace(ns),
      withColumns(column('user', 'String'), column('total', 'UInt64')),
      withSortingKey('user'),
      withEngine({ type: 'SummingMergeTree' }),
    );
    await applyProject(server.ch, [events(ns), target, totals], { log });
    // Dropping `amount` (allowed destructively) and re-sorting forces a copy the view cannot follow.
    const next = events(ns, withSortingKey('ts'), (d) => d.spec.columns.splice(2, 1), withSpec({ migration: { allowDestructive: true } }));
    const error = await applyProject(server.ch, [next, target, totals], { log }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanRefusedError);
    expect((error as Error).message).toMatch(
      /^DataSource\/[\w-]+\/events: materialized view .*\.totals would break on the new version of .*\.events: .*amount.*\. Nothing was changed\.$/,
    );
    expect(await describeTable(db)).toEqual(['ts DateTime', 'user String', 'amount String']);
    expect(await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}' AND startsWith(name, 'events__')`)).toBe(0);
    // The SummingMergeTree target was backfilled once from the 1000 existing rows.
    expect(await count(server.ch, `SELECT sum(total) AS n FROM ${db}.totals_by_user`)).toBe((999 * 1000) / 2);
  });

  it('changes a view query in place for new rows with backfill: None', async () => {
    const { ns, db } = await fresh();
    const target = dataSource(
      'counts',
      inNamespace(ns),
      withColumns(column('user', 'String'), column('n', 'UInt64')),
      withSortingKey('user'),
      withEngine({ type: 'SummingMergeTree' }),
    );
    const counting = (sql: string) =>
      pipe('counter', inNamespace(ns), withNodes(node('n', sql)), (p) => (p.spec.materialize = { into: 'counts', backfill: 'None' }));
    await applyProject(server.ch, [events(ns), target, counting('SELECT user, count() AS n FROM events GROUP BY user')], { log });
    await server.ch.command(`INSERT INTO ${db}.events VALUES (now(), 'a', '1')`);
    const { plan } = await applyProject(server.ch, [events(ns), target, counting('SELECT user, 10 * count() AS n FROM events GROUP BY user')], { log });
    expect(plan.resources.flatMap((r) => r.steps.map((s) => s.kind))).toEqual(['ModifyViewQuery']);
    await server.ch.command(`INSERT INTO ${db}.events VALUES (now(), 'a', '1')`);
    expect(await count(server.ch, `SELECT sum(n) AS n FROM ${db}.counts WHERE user = 'a'`)).toBe(11);
  });
});
