import { clickhouseName } from '../api/names.js';
import { databaseOf, tableOf } from '../controllers/datasource.js';
import type { DataSource } from '../api/datasource.js';
import type { Endpoint } from '../api/endpoint.js';
import { loadResources } from '../api/load.js';
import type { Pipe } from '../api/pipe.js';
import { formatValidationError } from '../api/validate.js';
import { applyOrder, resourceKey, type ProjectResource } from '../plan/graph.js';

/** Exit codes, as `terraform plan -detailed-exitcode`: 0 nothing to do, 1 error, 2 changes pending. */
export const PLAN_EXIT = { noChanges: 0, error: 1, changes: 2 } as const;

function describe(r: ProjectResource): string {
  if (r.kind === 'DataSource') {
    const ds = r as DataSource;
    const table = `${databaseOf(ds)}.${tableOf(ds)}`;
    return `create table ${table} (${ds.spec.columns.length} columns, ${ds.spec.engine.type} ORDER BY (${ds.spec.engine.sortingKey.join(', ')})) and ${table}_quarantine`;
  }
  if (r.kind === 'Pipe') {
    const p = r as Pipe;
    const m = p.spec.materialize;
    return m
      ? `create materialized view of node ${m.node ?? p.spec.nodes.at(-1)?.name} into ${m.into}${m.backfill === 'None' ? '' : ', backfilling existing rows once'}`
      : `compile ${p.spec.nodes.length} node(s)`;
  }
  const ep = r as Endpoint;
  return `serve /v0/pipes/${clickhouseName(ep.metadata.name)}.{${(ep.spec.formats ?? ['json']).join(',')}} from Pipe ${ep.spec.pipe}`;
}

/**
 * `weir plan -f DIR`: the resources in apply order and what each needs, planned against an
 * empty ClickHouse (comparing with a live one comes with the convergence engine).
 */
export function runPlan(path: string, namespace: string): number {
  const loaded = loadResources(path, { defaultNamespace: namespace });
  for (const e of loaded.errors) console.error(formatValidationError(e));
  if (loaded.errors.length > 0) return PLAN_EXIT.error;
  const resources = loaded.resources.map((r) => r.object as unknown as ProjectResource);
  const ordered = applyOrder(resources);
  if ('cycle' in ordered) {
    console.error(`dependency cycle: ${ordered.cycle.join(' -> ')}`);
    return PLAN_EXIT.error;
  }
  const byKey = new Map(resources.map((r) => [resourceKey(r), r]));
  console.log(`Plan for ${path} (against an empty ClickHouse):`);
  ordered.order.forEach((key, i) => {
    const r = byKey.get(key);
    if (r) console.log(`  ${i + 1}. ${key.replace(/\//, ' ')}: ${describe(r)}`);
  });
  console.log(`${ordered.order.length} change(s) pending.`);
  return ordered.order.length > 0 ? PLAN_EXIT.changes : PLAN_EXIT.noChanges;
}
