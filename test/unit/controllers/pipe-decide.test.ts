// decidePipe as a pure function of (Pipe, world, now): one test per condition reason a Pipe sets.
import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import type { Pipe } from '../../../src/api/pipe.js';
import { CONDITION_REASONS, type ConditionReason } from '../../../src/controllers/conditions.js';
import { decidePipe, type PipeWorld } from '../../../src/controllers/pipe-decide.js';
import type { Catalog } from '../../../src/plan/catalog.js';
import {
  column,
  dataSource,
  inNamespace,
  materializedInto,
  node,
  pipe,
  withColumns,
  withGeneration,
  withNodes,
  withSortingKey,
} from '../../fixtures/builders.js';
import { catalogOf, tableFor } from '../../fixtures/catalog.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const events = (...mods: ((d: DataSource) => void)[]) =>
  dataSource('events', inNamespace('shop'), withColumns(column('ts', 'DateTime'), column('user', 'String')), withSortingKey('ts'), ...mods);
const counts = (...mods: ((d: DataSource) => void)[]) =>
  dataSource('counts', inNamespace('shop'), withColumns(column('user', 'String'), column('n', 'UInt64')), withSortingKey('user'), ...mods);
const counter = (...mods: ((p: Pipe) => void)[]) =>
  pipe(
    'counter',
    inNamespace('shop'),
    withNodes(node('n', 'SELECT user, count() AS n FROM events GROUP BY user')),
    materializedInto('counts'),
    withGeneration(2),
    ...mods,
  );
const world = (patch: Partial<PipeWorld> = {}): PipeWorld => ({
  dataSources: [events(), counts()],
  connected: true,
  missingReads: [],
  into: counts(),
  catalog: catalogOf(tableFor(events()), tableFor(counts())),
  ...patch,
});

const tested = new Set<ConditionReason>();
function written(p: Pipe, w: PipeWorld) {
  const d = decidePipe(p, w, t0);
  if (!('decision' in d)) throw new Error(`expected a status to write, got ${d.plan.steps.length} step(s) to run`);
  tested.add(d.reason);
  const ready = d.decision.status.conditions?.find((c) => c.type === 'Ready');
  return { reason: d.reason, status: d.decision.status, ready, requeueAfterMs: d.decision.requeueAfterMs };
}

describe('decidePipe: one verdict per reason', () => {
  it('WaitingForDataSource: materialize.into names no DataSource (yet)', () => {
    const { into: _none, ...withoutTarget } = world();
    const r = written(counter(), { ...withoutTarget, dataSources: [events()] });
    expect(r.reason).toBe('WaitingForDataSource');
    expect(r.ready?.message).toBe('spec.materialize.into names DataSource shop/counts, which does not exist (yet); create it or fix the name.');
    expect(r.status.reads).toBeUndefined();
  });

  it('WaitingForDataSource: a table it reads is not created yet; looks again in 2 s', () => {
    const r = written(counter(), world({ missingReads: ['shop/events'] }));
    expect(r.reason).toBe('WaitingForDataSource');
    expect(r.ready?.message).toBe('Waiting for shop/events to be created.');
    expect(r.status.reads).toEqual(['shop/events']);
    expect(r.requeueAfterMs).toBe(2000);
  });

  it('InvalidSql: a node weir cannot embed, before anything runs', () => {
    const r = written(counter(withNodes(node('n', 'SELECT user, count() AS n FROM events GROUP BY user FORMAT JSON'))), world());
    expect(r.reason).toBe('InvalidSql');
    expect(r.status.phase).toBe('Failed');
    expect(r.ready?.message).toMatch(/^node n ends with FORMAT JSON/);
  });

  it('NoClickHouseConnection: references resolve, nothing compiled', () => {
    const r = written(counter(), world({ connected: false }));
    expect(r.reason).toBe('NoClickHouseConnection');
    expect(r.status).toMatchObject({ phase: 'Pending', observedGeneration: 2, reads: ['shop/events'] });
  });

  it("SqlDoesNotCompile: ClickHouse's message, with the node", () => {
    const r = written(counter(), world({ compileProblem: { node: 'n', message: 'Unknown identifier usr' } }));
    expect(r.reason).toBe('SqlDoesNotCompile');
    expect(r.ready?.message).toBe('node n: Unknown identifier usr');
  });

  it("PlanRefused: the view's name is taken by a table weir did not make", () => {
    const taken: Catalog = world().catalog ?? { databases: [], tables: [], views: [] };
    const catalog = {
      ...taken,
      tables: [...taken.tables, { database: 'shop', name: 'counter', engine: 'MergeTree', columns: [], comment: 'mine', totalRows: 0 }],
    };
    const r = written(counter(), world({ catalog }));
    expect(r.reason).toBe('PlanRefused');
    expect(r.status.phase).toBe('Failed');
    expect(r.ready?.message).toMatch(/shop\.counter/);
  });

  it('UpToDate: the view exists as planned; otherwise its steps run', () => {
    const first = decidePipe(counter(), world(), t0);
    expect('decision' in first).toBe(false);
    expect(first.plan?.steps.map((s) => s.kind)).toEqual(['CreateView']);
    const step = first.plan?.steps[0];
    const view =
      step?.kind === 'CreateView'
        ? { database: 'shop', name: 'counter', target: 'shop.counts', query: step.query, comment: `weir-pipe:${step.specHash}` }
        : undefined;
    const base = world().catalog ?? { databases: [], tables: [], views: [] };
    const r = written(counter(), world({ catalog: { ...base, views: view ? [view] : [] } }));
    expect(r.reason).toBe('UpToDate');
    expect(r.ready?.message).toBe('Materialized view shop.counter is up to date.');
    expect(r.status).toMatchObject({ phase: 'Ready', view: 'shop.counter', reads: ['shop/events'] });
  });

  it('every Pipe reason has a decide-level test above', () => {
    expect([...tested].sort()).toEqual([...CONDITION_REASONS.Pipe].sort());
  });
});
