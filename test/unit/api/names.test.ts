// One place works out ClickHouse names from resources (api/names.ts); the planners, the
// controllers, the workers and weir dev all ask it.
import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { databaseOf, namespaceDatabase, qualifiedTableOf, queryDatabaseOf, tableOf } from '../../../src/api/names.js';
import { queryDatabaseIn } from '../../../src/plan/project-checks.js';
import { dataSource, inNamespace, materializedInto, pipe, withSpec } from '../../fixtures/builders.js';

const inDatabase = (database: string) => withSpec<DataSource>({ database });

describe('names', () => {
  it("a DataSource lives in spec.database, else in its namespace's database, under its own name with - read as _", () => {
    expect(namespaceDatabase('web-shop')).toBe('web_shop');
    expect(namespaceDatabase(undefined)).toBe('default');
    const plain = dataSource('page-views', inNamespace('web-shop'));
    const placed = dataSource('page-views', inNamespace('web-shop'), inDatabase('analytics'));
    expect([databaseOf(plain), tableOf(plain), qualifiedTableOf(plain)]).toEqual(['web_shop', 'page_views', 'web_shop.page_views']);
    expect([databaseOf(placed), tableOf(placed), qualifiedTableOf(placed)]).toEqual(['analytics', 'page_views', 'analytics.page_views']);
  });

  it("unqualified names of a materialized Pipe resolve in its target's database", () => {
    const target = dataSource('daily', inNamespace('web'), inDatabase('rollups'));
    const other = dataSource('page-views', inNamespace('web'), inDatabase('analytics'));
    const p = pipe('daily', inNamespace('web'), materializedInto('daily'));
    expect(queryDatabaseOf(p, target, [target, other])).toBe('rollups');
    expect(queryDatabaseIn(p, [other, target])).toBe('rollups');
  });

  it("unqualified names of a plain Pipe resolve in the one database its namespace's DataSources share, else in the namespace's", () => {
    const p = pipe('top', inNamespace('web'));
    const a = dataSource('a', inNamespace('web'), inDatabase('analytics'));
    const b = dataSource('b', inNamespace('web'), inDatabase('analytics'));
    const c = dataSource('c', inNamespace('web'));
    const elsewhere = dataSource('d', inNamespace('shop'), inDatabase('shop_db'));
    expect(queryDatabaseIn(p, [a, b, elsewhere])).toBe('analytics');
    expect(queryDatabaseIn(p, [a, c])).toBe('web');
    expect(queryDatabaseIn(p, [elsewhere])).toBe('web');
    expect(queryDatabaseIn(p, [c])).toBe('web');
  });
});
