import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import type { Endpoint } from '../../../src/api/endpoint.js';
import type { Pipe } from '../../../src/api/pipe.js';
import { healthConditions, setCondition } from '../../../src/controllers/conditions.js';
import { reconcileDataSource } from '../../../src/controllers/datasource.js';
import { reconcileEndpoint } from '../../../src/controllers/endpoint.js';
import { reconcilePipe } from '../../../src/controllers/pipe.js';
import type { ReconcileContext } from '../../../src/controllers/types.js';
import { dataSource, endpoint, inNamespace, materializedInto, node, pipe, withNodes, withParams } from '../../fixtures/builders.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-01T00:05:00Z');

function context(resources: (DataSource | Pipe | Endpoint)[], now = t0): ReconcileContext {
  const find = (kind: string) => (ns: string, name: string) =>
    resources.find((r) => r.kind === kind && r.metadata.namespace === ns && r.metadata.name === name.replace(/_/g, '-')) as never;
  return {
    now,
    lookup: {
      dataSource: find('DataSource'),
      dataSourcesIn: (ns: string) => resources.filter((r): r is DataSource => r.kind === 'DataSource' && r.metadata.namespace === ns),
      pipe: find('Pipe'),
      endpoint: find('Endpoint'),
    },
  };
}

describe('conditions', () => {
  it('keeps lastTransitionTime while the status holds, and moves it on a flip', () => {
    const a = setCondition([], { type: 'Ready', status: 'False', reason: 'PlanRefused', message: 'a' }, 1, t0);
    const b = setCondition(a, { type: 'Ready', status: 'False', reason: 'MigrationRefused', message: 'b' }, 2, t1);
    expect(b[0]).toMatchObject({ reason: 'MigrationRefused', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 2 });
    const c = setCondition(b, { type: 'Ready', status: 'True', reason: 'UpToDate', message: 'c' }, 2, t1);
    expect(c[0]?.lastTransitionTime).toBe('2026-01-01T00:05:00Z');
  });

  it('maps health to Ready/Reconciling/Stalled with kstatus polarity', () => {
    const stalled = healthConditions([], { state: 'Stalled', reason: 'PlanRefused', message: 'm' }, 1, t0);
    expect(stalled.map((c) => `${c.type}=${c.status}`)).toEqual(['Ready=False', 'Reconciling=False', 'Stalled=True']);
    const ready = healthConditions([], { state: 'Ready', reason: 'UpToDate', message: 'm' }, 1, t0);
    expect(ready.map((c) => `${c.type}=${c.status}`)).toEqual(['Ready=True', 'Reconciling=False', 'Stalled=False']);
  });
});

describe('reconcileDataSource', () => {
  it('names the table from the resource (- read as _) and the database from the namespace', async () => {
    const ds = dataSource('page-views', inNamespace('web-prod'));
    ds.metadata.generation = 3;
    const { status, events } = await reconcileDataSource(ds, context([ds]));
    expect(status).toMatchObject({ observedGeneration: 3, database: 'web_prod', table: 'web_prod.page_views', phase: 'Pending' });
    expect(events).toEqual([{ type: 'Normal', reason: 'NoClickHouseConnection', message: expect.any(String) }]);
  });

  it('is idempotent: reconciling its own output again yields the same status and no event', async () => {
    const ds = dataSource('page-views');
    ds.metadata.generation = 1;
    ds.status = (await reconcileDataSource(ds, context([ds]))).status;
    const again = await reconcileDataSource(ds, context([ds], t1));
    expect(again.status).toEqual(ds.status);
    expect(again.events).toEqual([]);
  });
});

describe('reconcilePipe', () => {
  it('waits, Reconciling, for a materialize target that does not exist yet', async () => {
    const p = pipe('rollup', materializedInto('missing'));
    const { status } = await reconcilePipe(p, context([p]));
    expect(status.conditions?.find((c) => c.type === 'Reconciling')).toMatchObject({ status: 'True', reason: 'WaitingForDataSource' });
    expect(status.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'False' });
    expect(status.phase).toBe('Pending');
  });

  it('resolves a target written with underscores to the DataSource with dashes', async () => {
    const target = dataSource('page-views-daily');
    const p = pipe('rollup', materializedInto('page_views_daily'));
    const { status } = await reconcilePipe(p, context([p, target]));
    expect(status.conditions?.find((c) => c.type === 'Stalled')?.status).toBe('False');
  });
});

describe('reconcileEndpoint', () => {
  const top = pipe(
    'top-pages',
    withNodes(
      node('scoped', 'SELECT * FROM t WHERE tenant_id = {tenant:String} AND day >= {since:Date}'),
      node('ranked', 'SELECT * FROM scoped LIMIT {limit:UInt32}'),
      node('extra', 'SELECT {secret:String}'),
    ),
  );

  it('compiles parameters from the SQL up to its node, with defaults from spec.params', async () => {
    const ep = endpoint('top', 'top-pages', withParams({ name: 'limit', default: 10 }, { name: 'since', default: '2020-01-01' }));
    ep.spec.node = 'ranked';
    const { status } = await reconcileEndpoint(ep, context([ep, top]));
    expect(status.params).toEqual([
      { name: 'tenant', type: 'String', required: true },
      { name: 'since', type: 'Date', required: false, default: '2020-01-01' },
      { name: 'limit', type: 'UInt32', required: false, default: '10' },
    ]);
  });

  it('waits for a Pipe that does not exist yet; stalls on an unknown node or a parameter the SQL does not use', async () => {
    const reason = async (ep: Endpoint, resources: (Pipe | Endpoint)[]) =>
      (await reconcileEndpoint(ep, context(resources))).status.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True')?.reason;
    const waiting = await reconcileEndpoint(endpoint('e', 'nope'), context([top]));
    expect(waiting.status.conditions?.find((c) => c.type === 'Reconciling')).toMatchObject({ status: 'True', reason: 'WaitingForPipe' });
    expect(await reason(endpoint('e', 'nope'), [top])).toBeUndefined();
    const badNode = endpoint('e', 'top-pages');
    badNode.spec.node = 'missing';
    expect(await reason(badNode, [top])).toBe('UnknownNode');
    const ranked = endpoint('e', 'top-pages', withParams({ name: 'secret', default: 'x' }));
    ranked.spec.node = 'ranked';
    expect(await reason(ranked, [top])).toBe('UnknownParameter'); // 'secret' belongs to a later node
  });

  it('stalls when one parameter has two types', async () => {
    const p = pipe('p', withNodes(node('a', 'SELECT {x:String}'), node('b', 'SELECT {x:UInt8} FROM a')));
    const ep = endpoint('e', 'p');
    const { status } = await reconcileEndpoint(ep, context([p, ep]));
    expect(status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      reason: 'ConflictingParameterTypes',
      message: 'parameter x is used as String and as UInt8',
    });
  });
});
