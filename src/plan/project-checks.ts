// Checks of a project that no single resource's schema can make: the ClickHouse names its
// resources create must not clash or be reserved, and its SQL must be safe to splice into
// weir's own statements. Pure: `weir validate` reports them with file names, and the planners
// (weir plan, weir apply, weir dev, the operator) refuse with the same messages.
import type { DataSource } from '../api/datasource.js';
import { clickhouseName, databaseOf, queryDatabaseOf, resourceName, SYSTEM_DATABASE, tableOf } from '../api/names.js';
import type { Pipe } from '../api/pipe.js';
import type { ValidationError } from '../api/validate.js';
import { resourceKey, type ProjectResource } from './graph.js';
import { embeddingProblem, pipeSqlProblem, quarantineTableName } from './sql.js';

/** One object weir creates in ClickHouse for a resource, under its stable name. */
export interface ClickHouseObject {
  database: string;
  name: string;
  what: 'table' | 'quarantine table' | 'materialized view';
  /** The resource, as people read it: `DataSource web/page-views`. */
  owner: string;
  /** The resource's key (resourceKey). */
  key: string;
}

export interface NameClash {
  first: ClickHouseObject;
  second: ClickHouseObject;
}

/** Databases a DataSource may not use: weir's own (migrations, fences) and ClickHouse's. */
export const RESERVED_DATABASES = [SYSTEM_DATABASE, 'system', 'information_schema', 'INFORMATION_SCHEMA'];

/**
 * weir names the tables it makes next to a table or view `<name>__<suffix>` (`__v<N>`,
 * `__weir_next`, `__weir_backfill`, `__weir_recompute`) and treats every `<table>__…` as the
 * table's own; so a resource's ClickHouse name may not hold `__` (`--` in its resource name).
 */
export const RESERVED_NAME_PART = '__';

const ownerOf = (r: ProjectResource): string => `${r.kind} ${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;

/** The DataSource a materialized Pipe writes to, among `resources`. */
export function materializeTarget(pipe: Pipe, resources: readonly ProjectResource[]): DataSource | undefined {
  const into = pipe.spec.materialize?.into;
  if (into === undefined) return undefined;
  const ns = pipe.metadata.namespace ?? 'default';
  return resources.find(
    (r): r is DataSource => r.kind === 'DataSource' && r.metadata.name === resourceName(into) && (r.metadata.namespace ?? 'default') === ns,
  );
}

/** Where the unqualified table names of `pipe`'s SQL resolve (api/names.ts queryDatabaseOf), among `resources`. */
export function queryDatabaseIn(pipe: Pipe, resources: readonly ProjectResource[]): string {
  const ns = pipe.metadata.namespace ?? 'default';
  const namespaceDataSources = resources.filter((r): r is DataSource => r.kind === 'DataSource' && (r.metadata.namespace ?? 'default') === ns);
  return queryDatabaseOf(pipe, materializeTarget(pipe, resources), namespaceDataSources);
}

/**
 * The objects a resource creates: a DataSource its table and quarantine table, a materialized
 * Pipe its view (in its target's database). Plain Pipes and Endpoints create none.
 */
export function objectsOf(r: ProjectResource, resources: readonly ProjectResource[]): ClickHouseObject[] {
  const base = { owner: ownerOf(r), key: resourceKey(r) };
  if (r.kind === 'DataSource') {
    const ds = r as DataSource;
    const database = databaseOf(ds);
    return [
      { ...base, database, name: tableOf(ds), what: 'table' },
      { ...base, database, name: quarantineTableName(tableOf(ds)), what: 'quarantine table' },
    ];
  }
  if (r.kind === 'Pipe') {
    const target = materializeTarget(r as Pipe, resources);
    if (target) return [{ ...base, database: databaseOf(target), name: clickhouseName(r.metadata.name), what: 'materialized view' }];
  }
  return [];
}

/** The resources with one entry per key: a later one (the newest spec) replaces an earlier one. */
const distinct = (resources: readonly ProjectResource[]): ProjectResource[] => [...new Map(resources.map((r) => [resourceKey(r), r])).values()];

/** Every pair of objects that would share a `database.name`, in the order the resources are given. */
export function nameClashes(resources: readonly ProjectResource[]): NameClash[] {
  const all = distinct(resources);
  const taken = new Map<string, ClickHouseObject>();
  const clashes: NameClash[] = [];
  for (const o of all.flatMap((r) => objectsOf(r, all))) {
    const id = `${o.database}.${o.name}`;
    const first = taken.get(id);
    if (first) clashes.push(inOrder(first, o));
    else taken.set(id, o);
  }
  return clashes;
}

/** The two objects of a clash in one order (by resource key), so every path words it alike. */
function inOrder(a: ClickHouseObject, b: ClickHouseObject): NameClash {
  return a.key.localeCompare(b.key) <= 0 ? { first: a, second: b } : { first: b, second: a };
}

export const describeClash = (c: NameClash): string =>
  `${c.first.database}.${c.first.name} would be both the ${c.first.what} of ${c.first.owner} and the ${c.second.what} of ${c.second.owner}; ` +
  'two ClickHouse objects cannot share a name: rename one of them';

/** A name or database weir keeps for itself, with the field that sets it. */
export function reservedNameProblems(r: ProjectResource, resources: readonly ProjectResource[]): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  const creates = objectsOf(r, resources).length > 0;
  const name = clickhouseName(r.metadata.name);
  if (creates && name.includes(RESERVED_NAME_PART)) {
    problems.push({
      path: '.metadata.name',
      message: `${r.metadata.name} is ClickHouse name ${name}, and "${RESERVED_NAME_PART}" (written "--" in a resource name) is reserved for the tables weir keeps next to a table or view (${name}__v2, ${name}__weir_next); use single dashes`,
    });
  }
  if (r.kind === 'DataSource' && RESERVED_DATABASES.includes(databaseOf(r as DataSource))) {
    const database = databaseOf(r as DataSource);
    problems.push({
      path: (r as DataSource).spec.database === undefined ? '.metadata.namespace' : '.spec.database',
      message: `database ${database} is ${database === SYSTEM_DATABASE ? "weir's own (migrations, fences)" : "ClickHouse's"}; set spec.database to another database`,
    });
  }
  return problems;
}

/**
 * What keeps `r` from being planned among `resources` (the project, or what an operator can
 * see of it): reserved names and name clashes it is part of. The planners' refusals.
 */
export function nameRefusals(r: ProjectResource, resources: readonly ProjectResource[]): string[] {
  const all = distinct([...resources, r]);
  const key = resourceKey(r);
  return [
    ...reservedNameProblems(r, all).map((p) => p.message),
    ...nameClashes(all)
      .filter((c) => c.first.key === key || c.second.key === key)
      .map(describeClash),
  ];
}

/** Nodes whose SQL weir cannot run as one of its queries, as `node <name> <problem>`, with the node's index. */
export function pipeSqlProblems(pipe: Pipe): { index: number; message: string }[] {
  return pipe.spec.nodes.flatMap((n, index) => {
    const problem = pipeSqlProblem(n.sql);
    return problem ? [{ index, message: `node ${n.name} ${problem}` }] : [];
  });
}

/** A forwardQuery weir cannot splice into its copy, or undefined. */
export function forwardQueryProblem(ds: DataSource): string | undefined {
  const sql = ds.spec.migration?.forwardQuery;
  const problem = sql === undefined ? undefined : embeddingProblem(sql);
  return problem ? `spec.migration.forwardQuery ${problem}` : undefined;
}

/**
 * Every project-level problem of loaded resources, as validation errors naming the file. A
 * clash names both resources and both files.
 */
export function projectProblems(
  loaded: readonly { file: string; object: { kind: string; metadata: { name: string; namespace?: string } } }[],
): ValidationError[] {
  const resources = loaded.map((l) => l.object as unknown as ProjectResource);
  const fileOf = new Map(loaded.map((l) => [resourceKey(l.object), l.file]));
  const errors: ValidationError[] = [];
  const at = (r: ProjectResource, path: string, message: string): ValidationError => ({
    file: fileOf.get(resourceKey(r)) ?? '',
    resource: ownerOf(r),
    path,
    message,
  });
  for (const r of resources) {
    for (const p of reservedNameProblems(r, resources)) errors.push(at(r, p.path, p.message));
    if (r.kind === 'Pipe') for (const p of pipeSqlProblems(r as Pipe)) errors.push(at(r, `.spec.nodes[${p.index}].sql`, p.message));
    const forward = r.kind === 'DataSource' ? forwardQueryProblem(r as DataSource) : undefined;
    if (forward) errors.push(at(r, '.spec.migration.forwardQuery', forward));
  }
  const byKey = new Map(resources.map((r) => [resourceKey(r), r]));
  const position = new Map(resources.map((r, i) => [resourceKey(r), i]));
  for (const c of nameClashes(resources)) {
    // Reported at the resource read last: the one that came to clash.
    const later = (position.get(c.first.key) ?? 0) > (position.get(c.second.key) ?? 0) ? c.first.key : c.second.key;
    const r = byKey.get(later);
    if (r)
      errors.push(
        at(
          r,
          '.metadata.name',
          `${describeClash(c)} (${c.first.owner} is in ${fileOf.get(c.first.key) ?? '?'}, ${c.second.owner} in ${fileOf.get(c.second.key) ?? '?'})`,
        ),
      );
  }
  return errors;
}
