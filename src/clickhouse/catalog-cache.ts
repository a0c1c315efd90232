// One catalog read per database per burst of reconciles: the gatherers of many resources in the
// same database share one observation (single flight) for a short TTL, and a statement that may
// change a database's tables (DDL through the operator's connection) drops that database's entry.
import type { Catalog } from '../plan/catalog.js';
import { observeCatalog } from './catalog.js';
import type { ClickHouse } from './connection.js';

export interface CatalogCacheOptions {
  /** How long an observation is reused, from when its read started (default 2 s). */
  ttlMs?: number;
  now?: () => number;
  /** Each lookup: a fresh entry (hit), a read in flight joined (shared), or a new read (miss). */
  onLookup?: (result: 'hit' | 'shared' | 'miss') => void;
}

interface Entry {
  startedAt: number;
  settled: boolean;
  catalog: Promise<Catalog>;
}

export const DEFAULT_CATALOG_TTL_MS = 2_000;

/**
 * A catalog per database, read with `read` (observeCatalog) at most once per TTL however many
 * reconciles ask, and never reused past an invalidate() of its database: a read that was in
 * flight when the database changed is not handed to anyone who asks after.
 */
export class CatalogCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    private readonly read: (databases: string[]) => Promise<Catalog>,
    private readonly opts: CatalogCacheOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_CATALOG_TTL_MS;
    this.now = opts.now ?? (() => performance.now());
  }

  /** The catalog of the databases (each from its own entry), as observeCatalog returns it. */
  async observe(databases: readonly string[]): Promise<Catalog> {
    const parts = await Promise.all([...new Set(databases)].map((db) => this.one(db)));
    return { databases: parts.flatMap((c) => c.databases), tables: parts.flatMap((c) => c.tables), views: parts.flatMap((c) => c.views) };
  }

  /** Forget what is known of these databases (all, without arguments). */
  invalidate(databases?: Iterable<string>): void {
    if (databases === undefined) return this.entries.clear();
    for (const db of databases) this.entries.delete(db);
  }

  /** Databases with an entry (fresh, stale or in flight). */
  get size(): number {
    return this.entries.size;
  }

  private one(database: string): Promise<Catalog> {
    const t = this.now();
    const entry = this.entries.get(database);
    if (entry && !entry.settled) {
      this.opts.onLookup?.('shared');
      return entry.catalog;
    }
    if (entry && t - entry.startedAt < this.ttlMs) {
      this.opts.onLookup?.('hit');
      return entry.catalog;
    }
    this.opts.onLookup?.('miss');
    const fresh: Entry = { startedAt: t, settled: false, catalog: this.read([database]) };
    this.entries.set(database, fresh);
    fresh.catalog.then(
      () => (fresh.settled = true),
      // A failed read is not kept: the next one asks again.
      () => {
        if (this.entries.get(database) === fresh) this.entries.delete(database);
      },
    );
    return fresh.catalog;
  }
}

/** The databases a statement names (`db`.x or db.x), or undefined when it names none qualified. */
export function databasesNamed(sql: string): Set<string> | undefined {
  const found = new Set<string>();
  for (const m of sql.matchAll(/(?:`((?:[^`\\]|\\.)+)`|\b([A-Za-z_][\w]*))\s*\.\s*(?=[`A-Za-z_])/g)) found.add(m[1] ?? m[2] ?? '');
  return found.size > 0 ? found : undefined;
}

/** Statements that cannot change a catalog's tables, views or databases. */
const READ_ONLY = /^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN|KILL|INSERT|OPTIMIZE|SYSTEM\s+(SYNC|FLUSH|WAIT))\b/i;

/**
 * The connection, with every statement that may change the catalog (DDL) dropping the entries of
 * the databases it names, once it returned or failed (a failed DDL may have done part of its work).
 * A statement that names no database qualified drops its `database` option's entry, else all.
 */
export function invalidatingCatalog(ch: ClickHouse, cache: CatalogCache): ClickHouse {
  const after = async <T>(sql: string, database: string | undefined, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } finally {
      if (!READ_ONLY.test(sql)) {
        const named = databasesNamed(sql);
        if (named) cache.invalidate(database ? [...named, database] : named);
        else cache.invalidate(database ? [database] : undefined);
      }
    }
  };
  return {
    ping: () => ch.ping(),
    query: (sql, opts) => ch.query(sql, opts),
    ...(ch.queryFormatted ? { queryFormatted: ch.queryFormatted.bind(ch) } : {}),
    command: (sql, opts) => after(sql, opts?.database, () => ch.command(sql, opts)),
    insert: (table, rows, opts) => ch.insert(table, rows, opts),
    insertLines: (table, lines, opts) => ch.insertLines(table, lines, opts),
    close: () => ch.close(),
  };
}

/** The connection, calling `onRequest` before each request it sends (pings aside). */
export function countingRequests(ch: ClickHouse, onRequest: () => void): ClickHouse {
  return {
    ping: () => ch.ping(),
    query: (sql, opts) => (onRequest(), ch.query(sql, opts)),
    ...(ch.queryFormatted
      ? { queryFormatted: (sql, format, opts) => (onRequest(), (ch.queryFormatted as NonNullable<ClickHouse['queryFormatted']>)(sql, format, opts)) }
      : {}),
    command: (sql, opts) => (onRequest(), ch.command(sql, opts)),
    insert: (table, rows, opts) => (onRequest(), ch.insert(table, rows, opts)),
    insertLines: (table, lines, opts) => (onRequest(), ch.insertLines(table, lines, opts)),
    close: () => ch.close(),
  };
}

/** A cache over observeCatalog on `ch`, and the connection that keeps it honest. */
export function sharedCatalog(ch: ClickHouse, opts: CatalogCacheOptions = {}): { cache: CatalogCache; clickhouse: ClickHouse } {
  const cache = new CatalogCache((dbs) => observeCatalog(ch, dbs), opts);
  return { cache, clickhouse: invalidatingCatalog(ch, cache) };
}
