import { describe, expect, it } from 'vitest';
import type { Catalog } from '../../../src/clickhouse/catalog.js';
import { composeQuery, planPipe, viewMarker } from '../../../src/plan/pipe-plan.js';
import { dataSource, inNamespace, materializedInto, node, pipe, withNodes } from '../../fixtures/builders.js';
import { catalogOf, tableFor } from '../../fixtures/catalog.js';

const source = dataSource('page-views', inNamespace('web'));
const target = dataSource('daily', inNamespace('web'));
const rollup = (sql = 'SELECT tenant_id, count() AS n FROM page_views GROUP BY tenant_id', backfill?: 'Full' | 'None') =>
  pipe('rollup', inNamespace('web'), withNodes(node('n', sql)), materializedInto('daily'), (p) => {
    if (backfill && p.spec.materialize) p.spec.materialize.backfill = backfill;
  });

function withView(catalog: Catalog, comment: string): Catalog {
  return { ...catalog, views: [{ database: 'web', name: 'rollup', target: 'web.daily', query: '', comment }] };
}

describe('composeQuery', () => {
  it('makes earlier nodes CTEs of the last one', () => {
    const nodes = [node('a', 'SELECT 1 AS x'), node('b', 'SELECT x FROM a;'), node('c', 'SELECT 2')];
    expect(composeQuery(nodes, 'b')).toBe('WITH a AS (\nSELECT 1 AS x\n)\nSELECT x FROM a');
    expect(composeQuery(nodes.slice(0, 1))).toBe('SELECT 1 AS x');
  });
});

describe('planPipe', () => {
  const catalog = catalogOf(tableFor(source), tableFor(target));

  it('creates the view TO the target with its sources derived from the SQL', () => {
    const plan = planPipe(rollup(), [source, target], catalog);
    expect(plan.steps).toEqual([
      expect.objectContaining({ kind: 'CreateView', view: 'rollup', target: { database: 'web', table: 'daily' }, sources: [{ database: 'web', table: 'page_views' }], backfill: 'Full' }),
    ]);
  });

  it('is up to date when the view carries the spec hash, and resumes an unfinished backfill', () => {
    const first = planPipe(rollup(), [source, target], catalog).steps[0];
    const hash = first && 'specHash' in first ? first.specHash : '';
    expect(planPipe(rollup(), [source, target], withView(catalog, viewMarker(hash))).steps).toEqual([]);
    expect(planPipe(rollup(), [source, target], withView(catalog, viewMarker(hash, true))).steps.map((s) => s.kind)).toEqual(['CreateView']);
  });

  it('changes the query in place with backfill: None, and recomputes the target with backfill: Full', () => {
    const changed = 'SELECT tenant_id, 2 * count() AS n FROM page_views GROUP BY tenant_id';
    const old = withView(catalog, viewMarker('old'));
    expect(planPipe(rollup(changed, 'None'), [source, target], old).steps.map((s) => s.kind)).toEqual(['ModifyViewQuery']);
    expect(planPipe(rollup(changed), [source, target], old).steps).toEqual([expect.objectContaining({ kind: 'RecomputeView', targetVersion: 1 })]);
  });

  it('refuses to touch a view weir did not create, or a target that does not exist', () => {
    expect(planPipe(rollup(), [source, target], withView(catalog, 'hand made')).refusals[0]).toMatch(/was not created by weir/);
    expect(planPipe(rollup(), [source], catalog).refusals[0]).toMatch(/does not exist/);
  });
});
