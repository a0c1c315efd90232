// observeCatalog in one round trip, against the real engine: databases with and without tables,
// columns in position order, a materialized view and its target, markers, and a database that
// does not exist.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { observeCatalog } from '../../../src/clickhouse/catalog.js';
import { countingRequests } from '../../../src/clickhouse/catalog-cache.js';
import { uniqueDatabase } from '../../fixtures/builders.js';
import { startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';

let server: TestClickHouse;
beforeAll(async () => {
  server = await startTestClickHouse();
});
afterAll(async () => {
  await server?.stop();
});

describe('observeCatalog', () => {
  it('reads databases, tables with their columns in order, and views, in one query', async () => {
    const ch = server.ch;
    const [db, empty, missing] = [uniqueDatabase('cat'), uniqueDatabase('cat_empty'), uniqueDatabase('cat_missing')];
    await ch.command(`CREATE DATABASE ${db}`);
    await ch.command(`CREATE DATABASE ${empty}`);
    await ch.command(
      `CREATE TABLE ${db}.events (z String, a UInt32, m DateTime) ENGINE = MergeTree PARTITION BY toYYYYMM(m) ORDER BY (a, m) COMMENT 'not a marker'`,
    );
    await ch.command(`CREATE TABLE ${db}.counts (a UInt32, n UInt64) ENGINE = SummingMergeTree ORDER BY a`);
    await ch.command(`CREATE MATERIALIZED VIEW ${db}.counts_mv TO ${db}.counts AS SELECT a, count() AS n FROM ${db}.events GROUP BY a`);
    await ch.command(`INSERT INTO ${db}.events VALUES ('x', 1, now()), ('y', 2, now())`);

    let requests = 0;
    const catalog = await observeCatalog(
      countingRequests(ch, () => requests++),
      [db, empty, missing],
    );
    expect(requests).toBe(1);
    expect(catalog.databases.sort()).toEqual([db, empty].sort());
    expect(catalog.tables).toEqual([
      {
        database: db,
        name: 'counts',
        engine: 'SummingMergeTree',
        columns: [
          { name: 'a', type: 'UInt32' },
          { name: 'n', type: 'UInt64' },
        ],
        comment: '',
        totalRows: 2 /* the view's two groups */,
        sortingKey: 'a',
        partitionKey: '',
      },
      {
        database: db,
        name: 'events',
        engine: 'MergeTree',
        columns: [
          { name: 'z', type: 'String' },
          { name: 'a', type: 'UInt32' },
          { name: 'm', type: 'DateTime' },
        ],
        comment: 'not a marker',
        totalRows: 2,
        sortingKey: 'a, m',
        partitionKey: 'toYYYYMM(m)',
      },
    ]);
    expect(catalog.views).toHaveLength(1);
    expect(catalog.views[0]).toMatchObject({ database: db, name: 'counts_mv', target: `${db}.counts`, comment: '' });
    expect(catalog.views[0]?.query).toContain('count()');
    expect(await observeCatalog(ch, [missing])).toEqual({ databases: [], tables: [], views: [] });
  });
});
