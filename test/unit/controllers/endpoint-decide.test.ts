// decideEndpoint and rolloutStatus as pure functions of (Endpoint, world, now): one test per
// condition reason an Endpoint sets.
import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../../src/api/endpoint.js';
import type { Pipe } from '../../../src/api/pipe.js';
import { CONDITION_REASONS, type ConditionReason } from '../../../src/controllers/conditions.js';
import { decideEndpoint, rolloutStatus, type DeploymentState, type EndpointWorld } from '../../../src/controllers/endpoint-decide.js';
import { dataSource, endpoint, inNamespace, node, pipe, withGeneration, withNodes, withParams } from '../../fixtures/builders.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const top = (sql = 'SELECT pathname FROM page_views WHERE tenant_id = {tenant:String}') => pipe('top', inNamespace('web'), withNodes(node('n', sql)));
const ep = (...mods: ((e: Endpoint) => void)[]) => endpoint('top', 'top', inNamespace('web'), withGeneration(3), ...mods);
const world = (patch: Partial<EndpointWorld> = {}, p: Pipe = top()): EndpointWorld => ({
  pipe: p,
  dataSources: [dataSource('page-views', inNamespace('web'))],
  runsWorkers: true,
  ...patch,
});

const tested = new Set<ConditionReason>();
function verdict(e: Endpoint, w: EndpointWorld) {
  const d = decideEndpoint(e, w, t0);
  if (!('decision' in d)) throw new Error('expected a verdict, got a Deployment to apply');
  tested.add(d.reason);
  return { reason: d.reason, status: d.decision.status, ready: d.decision.status.conditions?.find((c) => c.type === 'Ready') };
}
function rollout(deployment: Omit<DeploymentState, 'name'>, e = ep()) {
  const w = world();
  const d = decideEndpoint(e, w, t0);
  if (!('compiled' in d)) throw new Error(`expected a Deployment to apply, got ${d.reason}`);
  const r = rolloutStatus(e, w, d.compiled, d.params, { name: 'top-serve', ...deployment }, t0);
  const ready = r.status.conditions?.find((c) => c.type === 'Ready');
  if (ready) tested.add(ready.reason as ConditionReason);
  return { status: r.status, ready, requeueAfterMs: r.requeueAfterMs };
}

describe('decideEndpoint: before any call', () => {
  it('WaitingForPipe: spec.pipe names no Pipe (yet)', () => {
    const { pipe: _none, ...noPipe } = world();
    const r = verdict(ep(), noPipe);
    expect(r.reason).toBe('WaitingForPipe');
    expect(r.ready?.message).toBe('spec.pipe names Pipe web/top, which does not exist (yet); create it or fix the name.');
    expect(r.status.phase).toBe('Pending');
  });

  it('UnknownNode: spec.node is not a node of the Pipe', () => {
    expect(
      verdict(
        ep((e) => (e.spec.node = 'missing')),
        world(),
      ).reason,
    ).toBe('UnknownNode');
  });

  it('UnknownParameter: spec.params names a parameter the SQL does not use', () => {
    const r = verdict(ep(withParams({ name: 'tennant', default: 'x' })), world());
    expect(r.reason).toBe('UnknownParameter');
    expect(r.status.phase).toBe('Failed');
  });

  it('ConflictingParameterTypes: one placeholder name with two types', () => {
    const r = verdict(ep(), world({}, top('SELECT pathname FROM page_views WHERE tenant_id = {t:String} AND length(pathname) > {t:UInt32}')));
    expect(r.reason).toBe('ConflictingParameterTypes');
  });

  it('InvalidEndpoint: an Identifier parameter without enum', () => {
    const r = verdict(ep(), world({}, top('SELECT {col:Identifier} FROM page_views')));
    expect(r.reason).toBe('InvalidEndpoint');
    expect(r.ready?.message).toMatch(/Identifier parameter/);
  });

  it('SqlDoesNotCompile: ClickHouse refuses the composed query; nothing is rolled out', () => {
    const r = verdict(ep(), world({ queryProblem: 'Unknown identifier pathnme' }));
    expect(r.reason).toBe('SqlDoesNotCompile');
    expect(r.ready?.message).toBe("The endpoint's query does not compile against ClickHouse: Unknown identifier pathnme");
  });

  it('QueryServerUnavailable: parameters compile, the operator runs no workers; params in status', () => {
    const r = verdict(ep(), world({ runsWorkers: false }));
    expect(r.reason).toBe('QueryServerUnavailable');
    expect(r.status.params?.map((p) => p.name)).toEqual(['tenant']);
  });
});

describe('rolloutStatus: the owned Deployment after the apply', () => {
  it('RollingOut while pods are not all ready and updated; looks again in 5 s', () => {
    const r = rollout({ replicas: 1, readyReplicas: 1, updatedReplicas: 0 });
    expect(r.ready).toMatchObject({ status: 'False', reason: 'RollingOut' });
    expect(r.status).toMatchObject({ url: 'http://top-serve.web.svc/v0/pipes/top.json', replicasSummary: '1/1', observedGeneration: 3 });
    expect(r.requeueAfterMs).toBe(5_000);
  });

  it('Serving once every desired pod is ready and updated', () => {
    const r = rollout({ replicas: 1, readyReplicas: 1, updatedReplicas: 1 });
    expect(r.ready).toMatchObject({ status: 'True', reason: 'Serving', message: '1/1 query pods serve http://top-serve.web.svc/v0/pipes/top.json' });
    expect(r.requeueAfterMs).toBeUndefined();
  });

  it('ScaledToZero with replicas: 0', () => {
    const r = rollout(
      {},
      ep((e) => (e.spec.replicas = 0)),
    );
    expect(r.ready).toMatchObject({ status: 'True', reason: 'ScaledToZero' });
  });

  it('every Endpoint reason has a decide-level test above', () => {
    expect([...tested].sort()).toEqual([...CONDITION_REASONS.Endpoint].sort());
  });
});
