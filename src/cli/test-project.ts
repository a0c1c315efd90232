// The pure parts of `weir test` around the project: which DataSource a fixture file feeds, the
// scratch databases of a run against a live server, and what the rows of a --from migration are
// compared on. No I/O.
import type { DataSource } from '../api/datasource.js';
import { databaseOf, resourceName, tableOf } from '../api/names.js';
import type { Pipe } from '../api/pipe.js';
import type { ProjectResource } from '../plan/graph.js';
import { materializeTarget, queryDatabaseIn } from '../plan/project-checks.js';
import { quoteIdentifier } from '../plan/sql-text.js';

const dataSources = (resources: readonly ProjectResource[]) => resources.filter((r): r is DataSource => r.kind === 'DataSource');

/** The DataSource `fixtures/<name>.ndjson` feeds: `name` is its resource name or its table name. */
export function fixtureTarget(name: string, resources: readonly ProjectResource[]): { ds: DataSource } | { problem: string } {
  const all = dataSources(resources);
  const found = all.filter((ds) => ds.metadata.name === resourceName(name));
  if (found.length > 1)
    return {
      problem: `names DataSources in ${found.length} namespaces (${found.map((d) => d.metadata.namespace ?? 'default').join(', ')}); weir test loads a fixture into one`,
    };
  const ds = found[0];
  if (!ds) {
    const names = all.map((d) => d.metadata.name).join(', ') || 'none';
    return { problem: `no DataSource ${name} in the project (it has ${names}); a fixture file is named after the DataSource it feeds` };
  }
  if (!ds.spec.columns.some((c) => c.jsonPath !== undefined))
    return {
      problem: `DataSource ${ds.metadata.name} has no column with a jsonPath, so events cannot fill it (a materialized Pipe does); load its source's fixtures instead`,
    };
  return { ds };
}

/** Whether a materialized Pipe writes into this DataSource (its rows then are not the fixture's lines alone). */
export const isMaterializedInto = (ds: DataSource, resources: readonly ProjectResource[]): boolean =>
  resources.some((r) => {
    const target = r.kind === 'Pipe' ? materializeTarget(r as Pipe, resources) : undefined;
    return target !== undefined && target.metadata.name === ds.metadata.name && target.metadata.namespace === ds.metadata.namespace;
  });

/** The databases a project's DataSources live in. */
export const projectDatabases = (resources: readonly ProjectResource[]): string[] => [...new Set(dataSources(resources).map(databaseOf))].sort();

/** The scratch database a run against a live server uses for `database`: unique per run, and saying what it is. */
export const scratchDatabase = (runId: string, database: string): string => `weir_test_${runId}_${database}`.slice(0, 200);

/** A reference to `database` by name in SQL (`web.page_views`, `"web".x`, `` `web`.x ``): it would bypass the scratch database. */
export function namesDatabase(sql: string, database: string): boolean {
  const escaped = database.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^\\w.\`"])[\`"]?${escaped}[\`"]?\\s*\\.\\s*[\`"]?[A-Za-z_]`).test(sql);
}

/**
 * The project as it runs in scratch databases: each DataSource's database `d` becomes
 * `rename(d)` (as spec.database; the resources given are not changed). Refused, with every
 * reason, when SQL names one of the project's databases explicitly or a Pipe's queries would
 * resolve elsewhere: the run must touch nothing but its scratch databases.
 */
export function inScratchDatabases(
  resources: readonly ProjectResource[],
  rename: (database: string) => string,
  extraSql: readonly { what: string; sql: string }[] = [],
): { resources: ProjectResource[] } | { problems: string[] } {
  const databases = projectDatabases(resources);
  const problems: string[] = [];
  const sqlOf = [
    ...resources
      .filter((r): r is Pipe => r.kind === 'Pipe')
      .flatMap((p) => p.spec.nodes.map((n) => ({ what: `Pipe ${p.metadata.name}, node ${n.name}`, sql: n.sql }))),
    ...extraSql,
  ];
  for (const { what, sql } of sqlOf) {
    for (const d of databases)
      if (namesDatabase(sql, d))
        problems.push(`${what} names database ${d} explicitly; against a live server weir test runs in a scratch database, so write table names unqualified`);
  }
  const moved = resources.map((r) =>
    r.kind === 'DataSource' ? { ...r, spec: { ...(r as DataSource).spec, database: rename(databaseOf(r as DataSource)) } } : r,
  ) as ProjectResource[];
  const scratch = new Set(databases.map(rename));
  for (const p of moved.filter((r): r is Pipe => r.kind === 'Pipe')) {
    const db = queryDatabaseIn(p, moved);
    if (!scratch.has(db))
      problems.push(
        `Pipe ${p.metadata.name}'s queries run in database ${db}, where none of the project's DataSources are; weir test cannot move it to a scratch database`,
      );
  }
  return problems.length > 0 ? { problems } : { resources: moved };
}

/** The database SQL cases run in: the one the project's DataSources share, else the namespace's. */
export function defaultDatabase(resources: readonly ProjectResource[], namespaceDatabase: string): string {
  const dbs = projectDatabases(resources);
  return dbs.length === 1 && dbs[0] !== undefined ? dbs[0] : namespaceDatabase;
}

/**
 * The query that fingerprints a table's rows on some of its columns: how many rows and a hash
 * of them all, merged as a reader sees them (FINAL for engines that merge rows, aggregate states
 * finalized), so that a table holding the same rows before and after a migration gives the same answer.
 */
export function fingerprintQuery(ds: DataSource, columns: readonly string[]): string {
  const types = new Map(ds.spec.columns.map((c) => [c.name, c.type]));
  const values = columns.map((c) => (/^AggregateFunction\(/.test(types.get(c) ?? '') ? `finalizeAggregation(${quoteIdentifier(c)})` : quoteIdentifier(c)));
  const engine = ds.spec.engine?.type ?? 'MergeTree';
  const final = engine === 'MergeTree' ? '' : ' FINAL';
  const table = `${quoteIdentifier(databaseOf(ds))}.${quoteIdentifier(tableOf(ds))}`;
  const hashed = values.length > 0 ? `sum(cityHash64(${values.join(', ')}))` : '0';
  return `SELECT toString(count()) AS rows, toString(${hashed}) AS hash FROM ${table}${final}`;
}

/** The columns two versions of a DataSource share, name and type alike: what its rows are compared on across a migration. */
export const sharedColumns = (before: DataSource, after: DataSource): string[] =>
  after.spec.columns.filter((c) => before.spec.columns.some((b) => b.name === c.name && b.type === c.type)).map((c) => c.name);

/** Whether the rows a materialized Pipe writes into `target` should be the same in both projects: the same Pipe feeds it. */
export function sameFeed(target: string, before: readonly ProjectResource[], after: readonly ProjectResource[]): boolean {
  const feeds = (resources: readonly ProjectResource[]) =>
    resources
      .filter((r): r is Pipe => r.kind === 'Pipe' && materializeTarget(r as Pipe, resources)?.metadata.name === target)
      .map((p) => JSON.stringify(p.spec))
      .sort();
  return JSON.stringify(feeds(before)) === JSON.stringify(feeds(after));
}
