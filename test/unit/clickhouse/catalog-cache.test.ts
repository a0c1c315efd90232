import { describe, expect, it } from 'vitest';
import { CatalogCache, databasesNamed, invalidatingCatalog } from '../../../src/clickhouse/catalog-cache.js';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
import type { Catalog } from '../../../src/plan/catalog.js';

/** A read that resolves when told, counting reads per database. */
function controlledRead() {
  const reads: { database: string; resolve: (c: Catalog) => void; reject: (e: Error) => void }[] = [];
  const read = (dbs: string[]) => new Promise<Catalog>((resolve, reject) => reads.push({ database: dbs[0] ?? '', resolve, reject }));
  const catalogOf = (db: string, table = 't'): Catalog => ({
    databases: [db],
    tables: [{ database: db, name: table, engine: 'MergeTree', columns: [], comment: '', totalRows: 0, sortingKey: '', partitionKey: '' }],
    views: [],
  });
  return { reads, read, catalogOf };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('CatalogCache', () => {
  it('shares one read among the reconciles asking while it is in flight, then for the TTL', async () => {
    let t = 0;
    const lookups: string[] = [];
    const { reads, read, catalogOf } = controlledRead();
    const cache = new CatalogCache(read, { ttlMs: 1000, now: () => t, onLookup: (r) => lookups.push(r) });
    const asked = [cache.observe(['web']), cache.observe(['web']), cache.observe(['web'])];
    expect(reads).toHaveLength(1);
    reads[0]?.resolve(catalogOf('web'));
    const got = await Promise.all(asked);
    expect(got.map((c) => c.tables[0]?.name)).toEqual(['t', 't', 't']);
    t = 999;
    await cache.observe(['web']);
    expect(reads).toHaveLength(1);
    t = 1000; // the TTL counts from when the read started
    void cache.observe(['web']);
    expect(reads).toHaveLength(2);
    expect(lookups).toEqual(['miss', 'shared', 'shared', 'hit', 'miss']);
  });

  it('after invalidate, nobody gets a read that was in flight when the database changed', async () => {
    const { reads, read, catalogOf } = controlledRead();
    const cache = new CatalogCache(read, { ttlMs: 60_000, now: () => 0 });
    const before = cache.observe(['web']);
    cache.invalidate(['web']); // e.g. a CREATE TABLE finished while the read ran
    const after = cache.observe(['web']);
    expect(reads).toHaveLength(2);
    reads[0]?.resolve(catalogOf('web', 'old'));
    reads[1]?.resolve(catalogOf('web', 'new'));
    expect((await before).tables[0]?.name).toBe('old'); // asked before the change
    expect((await after).tables[0]?.name).toBe('new');
    expect((await cache.observe(['web'])).tables[0]?.name).toBe('new');
  });

  it('keeps databases apart, merges several into one catalog, and invalidates all without arguments', async () => {
    const { reads, read, catalogOf } = controlledRead();
    const cache = new CatalogCache(read, { ttlMs: 60_000, now: () => 0 });
    const both = cache.observe(['a', 'b', 'a']);
    expect(reads.map((r) => r.database)).toEqual(['a', 'b']);
    reads[0]?.resolve(catalogOf('a'));
    reads[1]?.resolve(catalogOf('b'));
    expect((await both).databases).toEqual(['a', 'b']);
    cache.invalidate(['a']);
    void cache.observe(['a', 'b']);
    expect(reads.map((r) => r.database)).toEqual(['a', 'b', 'a']);
    cache.invalidate();
    expect(cache.size).toBe(0);
  });

  it('does not keep a failed read', async () => {
    const { reads, read, catalogOf } = controlledRead();
    const cache = new CatalogCache(read, { ttlMs: 60_000, now: () => 0 });
    const failed = cache.observe(['web']);
    reads[0]?.reject(new Error('connection refused'));
    await expect(failed).rejects.toThrow('connection refused');
    await tick();
    const again = cache.observe(['web']);
    expect(reads).toHaveLength(2);
    reads[1]?.resolve(catalogOf('web'));
    expect((await again).databases).toEqual(['web']);
  });
});

describe('invalidatingCatalog', () => {
  function recording() {
    const invalidated: (string[] | 'all')[] = [];
    const cache = { invalidate: (dbs?: Iterable<string>) => invalidated.push(dbs ? [...dbs].sort() : 'all') } as unknown as CatalogCache;
    const ch = { command: () => Promise.resolve(), query: () => Promise.resolve([]) } as unknown as ClickHouse;
    return { invalidated, ch: invalidatingCatalog(ch, cache) };
  }

  it('a DDL drops the databases it names, after it ran; reads and inserts drop nothing', async () => {
    const { invalidated, ch } = recording();
    await ch.command('CREATE TABLE IF NOT EXISTS `web`.`page_views` (a String) ENGINE = MergeTree ORDER BY a');
    await ch.command('EXCHANGE TABLES web.a AND `shop-eu`.b');
    await ch.command('INSERT INTO web.a SELECT * FROM web.b');
    await ch.query('SELECT 1 FROM web.a');
    await ch.command('ALTER TABLE t ADD COLUMN x String', { database: 'web' });
    await ch.command('DROP TABLE t');
    expect(invalidated).toEqual([['web'], ['shop-eu', 'web'], ['web'], 'all']);
  });

  it('a DDL that failed still drops its databases (it may have done part of its work)', async () => {
    const invalidated: unknown[] = [];
    const cache = { invalidate: (dbs?: Iterable<string>) => invalidated.push(dbs ? [...dbs] : 'all') } as unknown as CatalogCache;
    const ch = invalidatingCatalog({ command: () => Promise.reject(new Error('TIMEOUT')) } as unknown as ClickHouse, cache);
    await expect(ch.command('ALTER TABLE web.a MODIFY TTL x')).rejects.toThrow('TIMEOUT');
    expect(invalidated).toEqual([['web']]);
  });

  it('databasesNamed reads backquoted and bare qualified names', () => {
    expect(databasesNamed('CREATE VIEW `a-b`.`v` TO c.t AS SELECT x FROM `a-b`.src')).toEqual(new Set(['a-b', 'c']));
    expect(databasesNamed('DROP TABLE t')).toBeUndefined();
  });
});
