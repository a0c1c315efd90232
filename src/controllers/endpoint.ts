import type { Endpoint, EndpointStatus } from '../api/endpoint.js';
import type { Pipe } from '../api/pipe.js';
import { collectParameters } from '../plan/sql-scan.js';
import { stableHash } from '../runtime/hash.js';
import type { Health } from './conditions.js';
import { healthStatus } from './status.js';
import type { ReconcileContext, ReconcileDecision } from './types.js';

export type CompiledParam = NonNullable<EndpointStatus['params']>[number];

/** The nodes an endpoint runs: its node and every node before it (later ones cannot be read). */
export function endpointNodes(ep: Endpoint, pipe: Pipe): Pipe['spec']['nodes'] | undefined {
  const nodeName = ep.spec.node ?? pipe.spec.nodes[pipe.spec.nodes.length - 1]?.name;
  const index = pipe.spec.nodes.findIndex((n) => n.name === nodeName);
  return index < 0 ? undefined : pipe.spec.nodes.slice(0, index + 1);
}

/** Parameters from the SQL placeholders, with defaults and requiredness from spec.params. */
export function compileParams(ep: Endpoint, pipe: Pipe): { params: CompiledParam[] } | { problem: Health } {
  const nodes = endpointNodes(ep, pipe);
  if (!nodes) {
    return {
      problem: {
        state: 'Stalled',
        reason: 'UnknownNode',
        message: `spec.node ${ep.spec.node ?? ''} is not a node of Pipe ${pipe.metadata.name} (nodes: ${pipe.spec.nodes.map((n) => n.name).join(', ')}).`,
      },
    };
  }
  const { params, conflicts } = collectParameters(nodes.map((n) => n.sql));
  if (conflicts.length > 0) return { problem: { state: 'Stalled', reason: 'ConflictingParameterTypes', message: conflicts.join('; ') } };
  const declared = new Map((ep.spec.params ?? []).map((p) => [p.name, p]));
  const unused = [...declared.keys()].filter((name) => !params.some((p) => p.name === name));
  if (unused.length > 0) {
    return {
      problem: {
        state: 'Stalled',
        reason: 'UnknownParameter',
        message: `spec.params declares ${unused.join(', ')}, which the SQL of Pipe ${pipe.metadata.name} does not use (placeholders: ${params.map((p) => p.name).join(', ') || 'none'}).`,
      },
    };
  }
  return {
    params: params.map((p) => {
      const spec = declared.get(p.name);
      // ClickHouse refuses a query whose placeholder has no value, so no default means required.
      const compiled: CompiledParam = { name: p.name, type: p.type, required: spec?.default === undefined };
      if (spec?.default !== undefined) compiled.default = String(spec.default);
      return compiled;
    }),
  };
}

export function reconcileEndpoint(ep: Endpoint, ctx: ReconcileContext): ReconcileDecision<EndpointStatus> {
  const generation = ep.metadata.generation ?? 0;
  const ns = ep.metadata.namespace ?? 'default';
  const pipe = ctx.lookup.pipe(ns, ep.spec.pipe);
  let health: Health;
  let params: CompiledParam[] | undefined;
  if (!pipe) {
    health = { state: 'Stalled', reason: 'UnknownPipe', message: `spec.pipe names Pipe ${ns}/${ep.spec.pipe}, which does not exist.` };
  } else {
    const compiled = compileParams(ep, pipe);
    if ('problem' in compiled) health = compiled.problem;
    else {
      params = compiled.params;
      health = {
        state: 'Reconciling',
        reason: 'QueryServerUnavailable',
        message: 'Parameters compile; no query Deployment is run because this operator build has no endpoint server yet.',
      };
    }
  }
  const { status, events } = healthStatus(ep.status, generation, health, health.state === 'Stalled' ? 'Failed' : 'Pending', ctx.now);
  const next: EndpointStatus = { ...ep.status, ...status, specHash: stableHash({ spec: ep.spec, pipe: pipe?.spec }) };
  if (params) next.params = params;
  else delete next.params;
  return { status: next, events };
}
