import type { Endpoint, EndpointStatus } from '../api/endpoint.js';
import { stableHash } from '../runtime/hash.js';
import type { Health } from './conditions.js';
import { healthStatus } from './status.js';
import type { ReconcileContext, ReconcileDecision } from './types.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import { CONFIG_DIR, clickhouseEnv, workerName, workerObjects, type WorkerObjects, type WorkerSettings } from './workloads.js';
import { isRetriable } from '../runtime/errors.js';
import { errorMessage } from '../runtime/log.js';
import { describeEndpointQuery } from '../clickhouse/describe.js';
import { compileEndpoint, compileParams, type CompiledEndpoint, type CompiledParam } from '../plan/endpoint/compile.js';
import { queryDatabaseIn } from '../plan/project-checks.js';

/** The port `weir serve` listens on in query pods; the Service maps port 80 to it. */
export const SERVE_PORT = 8000;
export const SERVE_CONFIG_FILE = 'endpoints.json';
export const TOKENS_DIR = '/etc/weir/tokens';

/** The query Deployment, Service, PDB and HPA of an Endpoint, as applied. */
export function endpointObjects(ep: Endpoint, compiled: CompiledEndpoint, settings: WorkerSettings): WorkerObjects {
  const tokens = compiled.auth?.tokensSecret;
  return workerObjects(
    {
      owner: { kind: 'Endpoint', metadata: ep.metadata },
      component: 'serve',
      config: { [SERVE_CONFIG_FILE]: `${JSON.stringify({ endpoints: [compiled] }, null, 2)}\n` },
      args: [
        '--config', `${CONFIG_DIR}/${SERVE_CONFIG_FILE}`, '--port', String(SERVE_PORT),
        // Kube-proxy and ingresses learn of a terminating pod a moment late: keep answering meanwhile.
        '--shutdown-delay', '5000',
        ...(tokens ? ['--tokens-dir', TOKENS_DIR] : []),
      ],
      env: clickhouseEnv(settings, undefined),
      replicas: ep.spec.replicas ?? 1,
      ...(ep.spec.autoscaling ? { autoscaling: ep.spec.autoscaling } : {}),
      ...(ep.spec.resources ? { resources: ep.spec.resources } : {}),
      servicePort: SERVE_PORT,
      ...(tokens ? { secretMounts: [{ secret: tokens, path: `${TOKENS_DIR}/${tokens}` }] } : {}),
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

export async function reconcileEndpoint(ep: Endpoint, ctx: ReconcileContext): Promise<ReconcileDecision<EndpointStatus>> {
  const generation = ep.metadata.generation ?? 0;
  const ns = ep.metadata.namespace ?? 'default';
  const pipe = ctx.lookup.pipe(ns, ep.spec.pipe);
  let health: Health;
  let params: CompiledParam[] | undefined;
  const extra: Partial<EndpointStatus> = {};
  let requeueAfterMs: number | undefined;
  if (!pipe) {
    // Reconciling, not Stalled: in a GitOps sync the Pipe may simply not have arrived yet.
    health = { state: 'Reconciling', reason: 'WaitingForPipe', message: `spec.pipe names Pipe ${ns}/${ep.spec.pipe}, which does not exist (yet); create it or fix the name.` };
  } else {
    const checked = compileParams(ep, pipe);
    const compiled = 'problem' in checked ? undefined : compileEndpoint(ep, pipe, queryDatabaseIn(pipe, ctx.lookup.dataSourcesIn(ns)));
    if ('problem' in checked) health = { state: 'Stalled', ...checked.problem };
    else if (!compiled || 'problem' in compiled) {
      health = { state: 'Stalled', reason: 'InvalidEndpoint', message: compiled?.problem ?? 'the endpoint does not compile' };
    } else {
      params = checked.params;
      const problem = ctx.clickhouse ? await queryProblem(ctx.clickhouse, compiled) : undefined;
      if (problem) {
        // The running pods keep serving the last version that compiled: a broken one is never rolled out.
        health = { state: 'Stalled', reason: 'SqlDoesNotCompile', message: `The endpoint's query does not compile against ClickHouse: ${problem}` };
      } else if (!ctx.workloads) {
        health = {
          state: 'Reconciling',
          reason: 'QueryServerUnavailable',
          message: 'Parameters compile; no query Deployment is run because this operator runs no workers (--no-workers).',
        };
      } else {
        const objects = endpointObjects(ep, compiled, ctx.workloads.settings);
        await ctx.workloads.apply(objects);
        const name = objects.deployment.metadata?.name ?? '';
        const deployment = await ctx.workloads.deployment(ns, name);
        const desired = ep.spec.autoscaling ? (deployment?.replicas ?? ep.spec.autoscaling.minReplicas ?? 1) : (ep.spec.replicas ?? 1);
        const ready = deployment?.readyReplicas ?? 0;
        const updated = deployment?.updatedReplicas ?? 0;
        extra.url = `http://${name}.${ns}.svc/v0/pipes/${compiled.name}.json`;
        extra.replicas = desired;
        extra.readyReplicas = ready;
        extra.replicasSummary = `${ready}/${desired}`;
        if (desired === 0) health = { state: 'Ready', reason: 'ScaledToZero', message: `Endpoint ${compiled.name} is scaled to 0 replicas; ${extra.url} answers nothing.` };
        else if (ready >= desired && updated >= desired) health = { state: 'Ready', reason: 'Serving', message: `${ready}/${desired} query pods serve ${extra.url}` };
        else {
          health = { state: 'Reconciling', reason: 'RollingOut', message: `${ready}/${desired} query pods ready (${updated} updated to this version); serving ${extra.url} as pods become ready` };
          requeueAfterMs = 5_000;
        }
      }
    }
  }
  const phase = health.state === 'Stalled' ? 'Failed' : health.state === 'Ready' ? 'Ready' : 'Pending';
  const { status, events } = healthStatus(ep.status, generation, health, phase, ctx.now);
  const next: EndpointStatus = { ...ep.status, ...status, specHash: stableHash({ spec: ep.spec, pipe: pipe?.spec }), ...extra };
  if (params) next.params = params;
  else delete next.params;
  return { status: next, events, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
}

/** Remove the query Deployment, Service, PDB and HPA (owner references would too, given a garbage collector). */
export async function finalizeEndpoint(ep: Endpoint, ctx: ReconcileContext): Promise<void> {
  await ctx.workloads?.remove(ep.metadata.namespace ?? 'default', workerName({ kind: 'Endpoint', metadata: ep.metadata }, 'serve'));
}
