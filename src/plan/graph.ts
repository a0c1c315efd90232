import { databaseOf, resourceName } from '../api/names.js';
import type { DataSource } from '../api/datasource.js';
import type { Endpoint } from '../api/endpoint.js';
import type { Pipe } from '../api/pipe.js';
import { findTableReferences } from './sql-scan.js';

export type ProjectResource = DataSource | Pipe | Endpoint;

export const resourceKey = (r: { kind: string; metadata: { namespace?: string; name: string } }): string =>
  `${r.kind}/${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;

export interface Dependency {
  from: string;
  to: string;
  why: string;
}

/**
 * What each resource needs to exist first: a Pipe reads DataSources (and earlier nodes, not
 * resources) and writes its materialize target; an Endpoint serves a Pipe. Derived from the
 * SQL, never declared twice. Names that are neither nodes nor known resources are returned
 * as unknown (ClickHouse may still know them, e.g. system tables).
 */
export function dependencies(resources: ProjectResource[]): { edges: Dependency[]; unknown: { from: string; name: string }[] } {
  const byKey = new Map(resources.map((r) => [resourceKey(r), r]));
  const edges: Dependency[] = [];
  const unknown: { from: string; name: string }[] = [];
  for (const r of resources) {
    const ns = r.metadata.namespace ?? 'default';
    const from = resourceKey(r);
    if (r.kind === 'Pipe') {
      const pipe = r as Pipe;
      const nodeNames = new Set(pipe.spec.nodes.map((n) => n.name));
      for (const node of pipe.spec.nodes) {
        for (const ref of findTableReferences(node.sql)) {
          if (nodeNames.has(ref)) continue;
          const [db, table] = ref.includes('.') ? (ref.split('.') as [string, string]) : [undefined, ref];
          const dsKey = `DataSource/${ns}/${resourceName(table)}`;
          const pipeKey = `Pipe/${ns}/${resourceName(table)}`;
          const target = byKey.get(dsKey) as DataSource | undefined;
          if (target && (db === undefined || db === databaseOf(target))) edges.push({ from, to: dsKey, why: `node ${node.name} reads ${ref}` });
          else if (db === undefined && byKey.has(pipeKey)) edges.push({ from, to: pipeKey, why: `node ${node.name} reads Pipe ${ref}` });
          else unknown.push({ from, name: ref });
        }
      }
      if (pipe.spec.materialize) {
        edges.push({ from, to: `DataSource/${ns}/${resourceName(pipe.spec.materialize.into)}`, why: `materializes into ${pipe.spec.materialize.into}` });
      }
    } else if (r.kind === 'Endpoint') {
      edges.push({ from, to: `Pipe/${ns}/${resourceName((r as Endpoint).spec.pipe)}`, why: `serves Pipe ${(r as Endpoint).spec.pipe}` });
    }
  }
  return { edges, unknown };
}

/**
 * A loop of rows: DataSource a feeds (through a materialized Pipe) DataSource b, which
 * feeds … a again. ClickHouse would push every insert around it forever.
 */
export function dataFlowCycle(resources: ProjectResource[]): string[] | undefined {
  const { edges } = dependencies(resources);
  const feeds = new Map<string, { pipe: string; into: string }[]>();
  for (const r of resources) {
    if (r.kind !== 'Pipe' || !(r as Pipe).spec.materialize) continue;
    const pipeKey = resourceKey(r);
    const into = edges.find((e) => e.from === pipeKey && e.why.startsWith('materializes'))?.to;
    if (!into) continue;
    for (const e of edges) {
      if (e.from === pipeKey && e.to.startsWith('DataSource/') && !e.why.startsWith('materializes')) {
        feeds.set(e.to, [...(feeds.get(e.to) ?? []), { pipe: pipeKey, into }]);
      }
    }
  }
  const visiting: string[] = [];
  const done = new Set<string>();
  const visit = (ds: string): string[] | undefined => {
    const at = visiting.indexOf(ds);
    if (at >= 0) return [...visiting.slice(at), ds];
    if (done.has(ds)) return undefined;
    visiting.push(ds);
    for (const f of feeds.get(ds) ?? []) {
      const cycle = visit(f.into);
      if (cycle) return cycle;
    }
    visiting.pop();
    done.add(ds);
    return undefined;
  };
  for (const ds of feeds.keys()) {
    const cycle = visit(ds);
    if (cycle) return cycle;
  }
  return undefined;
}

/**
 * Resources in apply order (dependencies first; deletion is the reverse). A cycle (Pipes
 * reading each other, or materialized Pipes feeding rows around a loop) is an error naming
 * it. Ties keep kind order (DataSource, Pipe, Endpoint), then name.
 */
export function applyOrder(resources: ProjectResource[]): { order: string[] } | { cycle: string[] } {
  const loop = dataFlowCycle(resources);
  if (loop) return { cycle: loop };
  const kindRank: Record<string, number> = { DataSource: 0, Pipe: 1, Endpoint: 2 };
  const keys = resources.map(resourceKey).sort((a, b) => {
    const [ka = '', ...ra] = a.split('/');
    const [kb = '', ...rb] = b.split('/');
    return (kindRank[ka] ?? 9) - (kindRank[kb] ?? 9) || ra.join('/').localeCompare(rb.join('/'));
  });
  const present = new Set(keys);
  const needs = new Map<string, string[]>(keys.map((k) => [k, []]));
  for (const e of dependencies(resources).edges) if (present.has(e.to) && e.from !== e.to) needs.get(e.from)?.push(e.to);
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (k: string): string[] | undefined => {
    if (state.get(k) === 'done') return undefined;
    if (state.get(k) === 'visiting') return [...stack.slice(stack.indexOf(k)), k];
    state.set(k, 'visiting');
    stack.push(k);
    for (const dep of needs.get(k) ?? []) {
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(k, 'done');
    order.push(k);
    return undefined;
  };
  for (const k of keys) {
    const cycle = visit(k);
    if (cycle) return { cycle };
  }
  return { order };
}
