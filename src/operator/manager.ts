import { resourceName } from '../api/names.js';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import type { DataSource } from '../api/datasource.js';
import type { Endpoint } from '../api/endpoint.js';
import type { Pipe } from '../api/pipe.js';
import { finalizeDataSource, reconcileDataSource } from '../controllers/datasource.js';
import { finalizeEndpoint, reconcileEndpoint } from '../controllers/endpoint.js';
import { finalizePipe, reconcilePipe } from '../controllers/pipe.js';
import { connectClickHouse } from '../clickhouse/connection.js';
import { DEFAULT_FENCE_TIMING } from '../execute/fence.js';
import type { ReconcileContext } from '../controllers/types.js';
import { startHealthServer, type HealthServer } from '../runtime/health-server.js';
import type { Logger } from '../runtime/log.js';
import { OperatorMetrics } from '../runtime/metrics.js';
import { Controller, type AnyResource } from './controller.js';
import { EventRecorder } from './events.js';
import { DEFAULT_LEADER_TIMING, LeaderElector } from './leader.js';
import { KubeWorkloads } from './kube-workloads.js';
import { watchOwnedObjects } from './owned.js';
import type { WorkerSettings } from '../controllers/workloads.js';

// Fields a caller fills from optional flags take undefined for "not given".
export interface OperatorOptions {
  kubeconfig?: string | undefined;
  /** ClickHouse the operator converges (HTTP URL); without it resources stay Reconciling. */
  clickhouse?: { url: string; username?: string; password?: string };
  /** How to run ingestion and endpoint workers; without it weir creates no Deployments. */
  workers?: WorkerSettings;
  /** Longest a migration fence holds writers if the operator dies holding it (default 30 s). */
  fenceTtlMs?: number;
  /** Watch one namespace only; default all. */
  namespace?: string | undefined;
  metricsPort: number;
  metricsHost?: string | undefined;
  leaderElection: boolean;
  leaseNamespace: string;
  leaseName?: string | undefined;
  leaseDurationMs?: number | undefined;
  renewDeadlineMs?: number | undefined;
  retryPeriodMs?: number | undefined;
  resyncMs?: number | undefined;
  log: Logger;
}

export interface RunningOperator {
  metricsPort: number;
  identity: string;
  /** Resolves when the operator stopped: 'stopped' on request, 'lost' when leadership was lost. */
  done: Promise<'stopped' | 'lost'>;
  stop(): Promise<void>;
}

type Typed<T> = T & AnyResource;

/** The operator process: health and metrics at once, controllers only while leading. */
export async function startOperator(opts: OperatorOptions): Promise<RunningOperator> {
  const kc = new KubeConfig();
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  const log = opts.log;
  const identity = `${hostname()}_${process.pid}_${randomBytes(3).toString('hex')}`;
  const metrics = new OperatorMetrics();
  const events = new EventRecorder(kc, 'weir-operator', log, identity);

  let controllers: Controller<AnyResource>[] = [];
  const health: { server?: HealthServer } = {};
  const clickhouse = opts.clickhouse ? connectClickHouse({ ...opts.clickhouse, logger: log }) : undefined;
  const workloads = opts.workers ? new KubeWorkloads(kc, opts.workers, log) : undefined;
  const context = (): ReconcileContext => ({
    now: new Date(),
    log,
    ...(workloads ? { workloads } : {}),
    ...(opts.fenceTtlMs ? { fenceTiming: { ...DEFAULT_FENCE_TIMING, fenceTtlMs: opts.fenceTtlMs } } : {}),
    ...(clickhouse ? { clickhouse } : {}),
    lookup: {
      dataSource: (ns, name) => dataSources.informer.get(resourceName(name), ns),
      dataSourcesIn: (ns) => dataSources.informer.list().filter((d) => d.metadata?.namespace === ns),
      pipe: (ns, name) => pipes.informer.get(resourceName(name), ns),
      endpoint: (ns, name) => endpoints.informer.get(resourceName(name), ns),
    },
  });
  const deps = { kc, log, metrics, events, context, resyncMs: opts.resyncMs, namespace: opts.namespace };
  const dataSources = new Controller<Typed<DataSource>>(
    { kind: 'DataSource', reconcile: reconcileDataSource, finalize: (ds) => finalizeDataSource(ds, context()) },
    deps,
  );
  const pipes = new Controller<Typed<Pipe>>({ kind: 'Pipe', reconcile: reconcilePipe, finalize: (p) => finalizePipe(p, context()) }, deps);
  const endpoints = new Controller<Typed<Endpoint>>(
    { kind: 'Endpoint', reconcile: reconcileEndpoint, finalize: (ep) => finalizeEndpoint(ep, context()) },
    deps,
  );
  // A change upstream can change the verdict downstream: DataSource → Pipe → Endpoint.
  dataSources.onChange.push((ds) => pipes.enqueueAll(ds.metadata.namespace));
  pipes.onChange.push((p) => endpoints.enqueueAll(p.metadata.namespace));
  let ready = false;

  health.server = await startHealthServer({
    port: opts.metricsPort,
    host: opts.metricsHost,
    registry: metrics.registry,
    ready: () => (ready ? true : 'starting'),
  });

  const byKind = { DataSource: dataSources, Pipe: pipes, Endpoint: endpoints } as const;
  const owned = watchOwnedObjects(kc, log, opts.namespace, (kind, ns, name) => byKind[kind].enqueue(ns, name));

  const startControllers = async () => {
    controllers = [dataSources, pipes, endpoints] as unknown as Controller<AnyResource>[];
    for (const c of controllers) await c.start();
    for (const informer of owned) await informer.start();
    log.info('controllers started', { kinds: controllers.map((c) => c.kind) });
  };

  const elector = opts.leaderElection
    ? new LeaderElector(
        kc,
        {
          namespace: opts.leaseNamespace,
          leaseName: opts.leaseName ?? 'weir-operator',
          identity,
          leaseDurationMs: opts.leaseDurationMs ?? DEFAULT_LEADER_TIMING.leaseDurationMs,
          renewDeadlineMs: opts.renewDeadlineMs ?? DEFAULT_LEADER_TIMING.renewDeadlineMs,
          retryPeriodMs: opts.retryPeriodMs ?? DEFAULT_LEADER_TIMING.retryPeriodMs,
        },
        log,
      )
    : undefined;

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info('shutting down');
      ready = false;
      for (const c of controllers) await c.stop();
      for (const informer of owned) await informer.stop();
      await elector?.stop();
      metrics.leader.set(0);
      await clickhouse?.close();
      await health.server?.close();
    })());

  let resolveStop: () => void = () => {};
  const stopPromise = new Promise<void>((r) => (resolveStop = r));
  // Non-leaders are ready too: they are healthy standbys, and a Service should not flap on election.
  ready = true;
  const done = (async (): Promise<'stopped' | 'lost'> => {
    if (!elector) {
      metrics.leader.set(1);
      await startControllers();
      await stopPromise;
      return 'stopped';
    }
    let started: Promise<void> = Promise.resolve();
    const result = await elector.run(() => {
      metrics.leader.set(1);
      started = startControllers();
    });
    await started;
    if (result === 'lost') await stop();
    return result;
  })();

  return {
    metricsPort: health.server.port,
    identity,
    done,
    stop: async () => {
      resolveStop();
      await stop();
      await done;
    },
  };
}
