import { describe, expect, it } from 'vitest';
import { applyOrder, dependencies, type ProjectResource } from '../../../src/plan/graph.js';
import { dataSource, endpoint, materializedInto, node, pipe, withNodes } from '../../fixtures/builders.js';

const example = (): ProjectResource[] => [
  endpoint('top-pages', 'top-pages'),
  pipe('top-pages', withNodes(node('scoped', 'SELECT * FROM page_views_daily'), node('ranked', 'SELECT * FROM scoped'))),
  pipe('daily-rollup', withNodes(node('rollup', 'SELECT * FROM page_views')), materializedInto('page_views_daily')),
  dataSource('page-views-daily'),
  dataSource('page-views'),
];

describe('dependencies', () => {
  it('derives edges from SQL, materialize targets and served pipes, reading _ and - as one', () => {
    const { edges, unknown } = dependencies(example());
    expect(edges.map((e) => `${e.from} -> ${e.to}`).sort()).toEqual([
      'Endpoint/default/top-pages -> Pipe/default/top-pages',
      'Pipe/default/daily-rollup -> DataSource/default/page-views',
      'Pipe/default/daily-rollup -> DataSource/default/page-views-daily',
      'Pipe/default/top-pages -> DataSource/default/page-views-daily',
    ]);
    expect(unknown).toEqual([]);
  });

  it('reports names that are neither nodes nor DataSources', () => {
    const { unknown } = dependencies([pipe('p', withNodes(node('n', 'SELECT * FROM system.tables JOIN nowhere USING x')))]);
    expect(unknown.map((u) => u.name)).toEqual(['system.tables', 'nowhere']);
  });
});

describe('applyOrder', () => {
  it('puts dependencies first', () => {
    const result = applyOrder(example());
    expect(result).toEqual({
      order: [
        'DataSource/default/page-views',
        'DataSource/default/page-views-daily',
        'Pipe/default/daily-rollup',
        'Pipe/default/top-pages',
        'Endpoint/default/top-pages',
      ],
    });
  });

  it('refuses Pipes that read each other and names the cycle', () => {
    const result = applyOrder([pipe('a', withNodes(node('n', 'SELECT * FROM b'))), pipe('b', withNodes(node('n', 'SELECT * FROM a')))]);
    expect(result).toEqual({ cycle: ['Pipe/default/a', 'Pipe/default/b', 'Pipe/default/a'] });
  });

  it('refuses materialized Pipes that feed rows around a loop', () => {
    const result = applyOrder([
      dataSource('t1'),
      dataSource('t2'),
      pipe('p1', withNodes(node('n', 'SELECT * FROM t1')), materializedInto('t2')),
      pipe('p2', withNodes(node('n', 'SELECT * FROM t2')), materializedInto('t1')),
    ]);
    expect(result).toEqual({ cycle: ['DataSource/default/t1', 'DataSource/default/t2', 'DataSource/default/t1'] });
  });

  it('refuses a Pipe that materializes into the DataSource it reads', () => {
    const result = applyOrder([dataSource('t1'), pipe('p', withNodes(node('n', 'SELECT * FROM t1')), materializedInto('t1'))]);
    expect(result).toEqual({ cycle: ['DataSource/default/t1', 'DataSource/default/t1'] });
  });
});
