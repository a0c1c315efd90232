import type { Endpoint, EndpointStatus } from '../api/endpoint.js';
import { decideEndpoint, rolloutStatus, type EndpointWorld } from './endpoint-decide.js';
import type { ReconcileContext, ReconcileDecision } from './types.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import { CONFIG_DIR, clickhouseEnv, workerName, workerObjects, type WorkerObjects, type WorkerSettings } from './workloads.js';
import { isRetriable } from '../runtime/errors.js';
import { errorMessage } from '../runtime/log.js';
import { describeEndpointQuery } from '../clickhouse/describe.js';
import type { CompiledEndpoint } from '../plan/endpoint/compile.js';

/** The port `weir serve` listens on in query pods; the Service maps port 80 to it. */
export const SERVE_PORT = 8000;
export const SERVE_CONFIG_FILE = 'endpoints.json';
export const TOKENS_DIR = '/etc/weir/tokens';

/** The query Deployment, Service, PDB and HPA of an Endpoint, as applied. */
export function endpointObjects(ep: Endpoint, compiled: CompiledEndpoint, settings: WorkerSettings): WorkerObjects {
  // Static tokens and the JWT keys are each a Secret mounted under the tokens directory (once, when both are one Secret).
  const secrets = [...new Set([compiled.auth?.tokensSecret, compiled.auth?.jwt?.secret].filter((s): s is string => s !== undefined))];
  return workerObjects(
    {
      owner: { kind: 'Endpoint', metadata: ep.metadata },
      component: 'serve',
      config: { [SERVE_CONFIG_FILE]: `${JSON.stringify({ endpoints: [compiled] }, null, 2)}\n` },
      args: [
        '--config',
        `${CONFIG_DIR}/${SERVE_CONFIG_FILE}`,
        '--port',
        String(SERVE_PORT),
        // Kube-proxy and ingresses learn of a terminating pod a moment late: keep answering meanwhile.
        '--shutdown-delay',
        '5000',
        ...(secrets.length > 0 ? ['--tokens-dir', TOKENS_DIR] : []),
      ],
      env: clickhouseEnv(settings, undefined),
      replicas: ep.spec.replicas ?? 1,
      ...(ep.spec.autoscaling ? { autoscaling: ep.spec.autoscaling } : {}),
      ...(ep.spec.resources ? { resources: ep.spec.resources } : {}),
      servicePort: SERVE_PORT,
      ...(secrets.length > 0 ? { secretMounts: secrets.map((secret) => ({ secret, path: `${TOKENS_DIR}/${secret}` })) } : {}),
      terminationGracePeriodSeconds: 30,
    },
    settings,
  );
}

/** Does the endpoint's query compile against ClickHouse? ClickHouse's first line when not; throws when ClickHouse is unreachable. */
async function queryProblem(ch: ClickHouse, compiled: CompiledEndpoint): Promise<string | undefined> {
  try {
    await describeEndpointQuery(ch, compiled);
    return undefined;
  } catch (e) {
    if (isRetriable(e)) throw e;
    return errorMessage(e).split('\n')[0];
  }
}

/** Read what the Endpoint's decision needs: its Pipe, the namespace's DataSources, and whether the composed query compiles. */
export async function gatherEndpointWorld(ep: Endpoint, ctx: ReconcileContext): Promise<EndpointWorld> {
  const ns = ep.metadata.namespace ?? 'default';
  const pipe = ctx.lookup.pipe(ns, ep.spec.pipe);
  const dataSources = ctx.lookup.dataSourcesIn(ns);
  const world: EndpointWorld = { ...(pipe ? { pipe } : {}), dataSources, runsWorkers: ctx.workloads !== undefined };
  // The query is compiled only once the parameters are (a verdict without it is the same). Whether this
  // operator runs workers does not change what compiles: an operator without workers reports SQL errors too.
  const first = decideEndpoint(ep, { ...world, runsWorkers: true }, ctx.now);
  if (!ctx.clickhouse || !('compiled' in first)) return world;
  const problem = await queryProblem(ctx.clickhouse, first.compiled);
  return problem === undefined ? world : { ...world, queryProblem: problem };
}

/** Endpoint reconcile: gather, decide, apply the query Deployment, and report its rollout. */
export async function reconcileEndpoint(ep: Endpoint, ctx: ReconcileContext): Promise<ReconcileDecision<EndpointStatus>> {
  const world = await gatherEndpointWorld(ep, ctx);
  const decided = decideEndpoint(ep, world, ctx.now);
  if ('decision' in decided) return decided.decision;
  // Only a world with workers decides to apply.
  const workloads = ctx.workloads;
  if (!workloads) throw new Error('a query Deployment to apply needs workloads');
  const objects = endpointObjects(ep, decided.compiled, workloads.settings);
  await workloads.apply(objects);
  const name = objects.deployment.metadata?.name ?? '';
  const deployment = await workloads.deployment(ep.metadata.namespace ?? 'default', name);
  return rolloutStatus(ep, world, decided.compiled, decided.params, { name, ...deployment }, ctx.now);
}

/** Remove the query Deployment, Service, PDB and HPA (owner references would too, given a garbage collector). */
export async function finalizeEndpoint(ep: Endpoint, ctx: ReconcileContext): Promise<void> {
  await ctx.workloads?.remove(ep.metadata.namespace ?? 'default', workerName({ kind: 'Endpoint', metadata: ep.metadata }, 'serve'));
}
