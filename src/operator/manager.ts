import { resourceName } from '../api/names.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import type { DataSource, DataSourceStatus } from '../api/datasource.js';
import type { Endpoint } from '../api/endpoint.js';
import type { Pipe } from '../api/pipe.js';
import { finalizeDataSource, reconcileDataSource } from '../controllers/datasource.js';
import { finalizeEndpoint, reconcileEndpoint } from '../controllers/endpoint.js';
import { finalizePipe, reconcilePipe } from '../controllers/pipe.js';
import { connectClickHouse } from '../clickhouse/connection.js';
import { countingRequests, DEFAULT_CATALOG_TTL_MS, sharedCatalog } from '../clickhouse/catalog-cache.js';
import { DEFAULT_FENCE_TIMING } from '../execute/fence.js';
import type { ReconcileContext, ReconcileDecision } from '../controllers/types.js';
import { DEFAULT_MAX_CONCURRENT_MIGRATIONS, MigrationJobs } from '../controllers/migration-jobs.js';
import { holderName } from '../execute/table-lock.js';
import { startHealthServer, type HealthServer } from '../runtime/health-server.js';
import type { Logger } from '../runtime/log.js';
import { OperatorMetrics } from '../runtime/metrics.js';
import { Controller, type AnyResource } from './controller.js';
import { EventRecorder } from './events.js';
import { DEFAULT_LEADER_TIMING, LeaderElector } from './leader.js';
import { KubeWorkloads } from './kube-workloads.js';
import { DEFAULT_KUBE_CLIENT_LIMITS, limitKubeClient } from './kube-client.js';
import { SeenVerdicts } from './verdicts.js';
import { KINDS } from '../api/kinds.js';
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
  /** Copy-and-swap migrations running at once on the ClickHouse connection (default 2). */
  maxConcurrentMigrations?: number;
  /** Watch one namespace only; default all. */
  namespace?: string | undefined;
  /** Keys of one kind reconciled at once (controller-runtime's MaxConcurrentReconciles; default 4). */
  maxConcurrentReconciles?: number | undefined;
  /** API server requests per second and burst (client-go's QPS and Burst; default 100 and 200). */
  kubeApiQps?: number | undefined;
  kubeApiBurst?: number | undefined;
  /** How long gatherers share one catalog read of a database (default 2 s). */
  catalogTtlMs?: number | undefined;
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

/** Keys of one kind reconciled at once, by default (controller-runtime's MaxConcurrentReconciles is 1). */
export const DEFAULT_MAX_CONCURRENT_RECONCILES = 4;

const PLURAL_KINDS: Record<string, string> = Object.fromEntries(Object.entries(KINDS).map(([kind, k]) => [k.plural, kind]));

/** The operator process: health and metrics at once, controllers only while leading. */
export async function startOperator(opts: OperatorOptions): Promise<RunningOperator> {
  const kc = new KubeConfig();
  if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromDefault();
  const log = opts.log;
  const identity = `${hostname()}_${process.pid}_${randomBytes(3).toString('hex')}`;
  const metrics = new OperatorMetrics();
  limitKubeClient(
    kc,
    { qps: opts.kubeApiQps ?? DEFAULT_KUBE_CLIENT_LIMITS.qps, burst: opts.kubeApiBurst ?? DEFAULT_KUBE_CLIENT_LIMITS.burst },
    {
      onRequest: (method, url) => {
        metrics.kubeRequests.inc({ verb: method });
        const status = method === 'PATCH' ? /\/([a-z]+)\/[^/]+\/status(\?|$)/.exec(url) : null;
        if (status) metrics.statusWrites.inc({ kind: PLURAL_KINDS[status[1] ?? ''] ?? status[1] ?? '' });
      },
      onThrottled: (ms) => metrics.kubeThrottledSeconds.inc(ms / 1000),
    },
  );
  const events = new EventRecorder(kc, 'weir-operator', log, identity);

  let controllers: Controller<AnyResource>[] = [];
  const health: { server?: HealthServer } = {};
  const clickhouse = opts.clickhouse ? connectClickHouse({ ...opts.clickhouse, logger: log }) : undefined;
  // Every request is counted against the reconcile that sent it; gatherers share catalog reads.
  const reconciling = new AsyncLocalStorage<{ requests: number }>();
  const counted = clickhouse
    ? countingRequests(clickhouse, () => {
        const current = reconciling.getStore();
        if (current) current.requests++;
        metrics.clickhouseRequests.inc({ kind: current ? (currentKind.getStore() ?? 'none') : 'none' });
      })
    : undefined;
  const shared = counted
    ? sharedCatalog(counted, { ttlMs: opts.catalogTtlMs ?? DEFAULT_CATALOG_TTL_MS, onLookup: (result) => metrics.catalogLookups.inc({ result }) })
    : undefined;
  const currentKind = new AsyncLocalStorage<string>();
  /** Runs one reconcile or finalize of `kind`, observing how many ClickHouse round trips it made. */
  const measured =
    <A extends unknown[], T>(kind: string, fn: (...args: A) => Promise<T> | T) =>
    (...args: A): Promise<T> => {
      const store = { requests: 0 };
      return currentKind.run(kind, () =>
        reconciling.run(store, async () => {
          try {
            return await fn(...args);
          } finally {
            metrics.reconcileClickhouseRequests.observe({ kind }, store.requests);
          }
        }),
      );
    };
  const workloads = opts.workers ? new KubeWorkloads(kc, opts.workers, log) : undefined;
  // Migrations run beside the work queue, a few at a time; each one's end requeues its DataSource.
  const migrations = clickhouse
    ? new MigrationJobs<ReconcileDecision<DataSourceStatus>>({
        maxConcurrent: opts.maxConcurrentMigrations ?? DEFAULT_MAX_CONCURRENT_MIGRATIONS,
        requeue: (key) => {
          const [ns = 'default', name = ''] = key.split('/');
          dataSources.enqueue(ns, name);
        },
        log,
      })
    : undefined;
  const context = (): ReconcileContext => ({
    now: new Date(),
    log,
    ...(workloads ? { workloads } : {}),
    ...(opts.fenceTtlMs ? { fenceTiming: { ...DEFAULT_FENCE_TIMING, fenceTtlMs: opts.fenceTtlMs } } : {}),
    ...(shared ? { clickhouse: shared.clickhouse, catalog: (dbs: string[]) => shared.cache.observe(dbs) } : {}),
    ...(migrations ? { migrations } : {}),
    lockHolder: holderName(`operator ${identity}`),
    lookup: {
      dataSource: (ns, name) => dataSources.informer.get(resourceName(name), ns),
      dataSourcesIn: (ns) => [...dataSources.informer.list(ns)],
      pipe: (ns, name) => pipes.informer.get(resourceName(name), ns),
      endpoint: (ns, name) => endpoints.informer.get(resourceName(name), ns),
    },
  });
  const deps = {
    kc,
    log,
    metrics,
    events,
    context,
    resyncMs: opts.resyncMs,
    namespace: opts.namespace,
    concurrency: opts.maxConcurrentReconciles ?? DEFAULT_MAX_CONCURRENT_RECONCILES,
  };
  const dataSources = new Controller<Typed<DataSource>>(
    {
      kind: 'DataSource',
      reconcile: measured('DataSource', reconcileDataSource),
      finalize: measured('DataSource', (ds: DataSource) => finalizeDataSource(ds, context())),
    },
    deps,
  );
  const pipes = new Controller<Typed<Pipe>>(
    { kind: 'Pipe', reconcile: measured('Pipe', reconcilePipe), finalize: measured('Pipe', (p: Pipe) => finalizePipe(p, context())) },
    deps,
  );
  const endpoints = new Controller<Typed<Endpoint>>(
    {
      kind: 'Endpoint',
      reconcile: measured('Endpoint', reconcileEndpoint),
      finalize: measured('Endpoint', (ep: Endpoint) => finalizeEndpoint(ep, context())),
    },
    deps,
  );
  // A change upstream can change the verdict downstream: DataSource → Pipe → Endpoint. Only a change
  // a dependant's decision reads (spec, version, phase, readiness, deletion) requeues them: not every
  // status patch, which at 10,000 resources would requeue each namespace's Pipes thousands of times.
  const dataSourceSeen = new SeenVerdicts();
  const pipeSeen = new SeenVerdicts();
  dataSources.onChange.push((ds, deleted) => {
    if (dataSourceSeen.changed(ds, deleted)) pipes.enqueueAll(ds.metadata.namespace);
  });
  pipes.onChange.push((p, deleted) => {
    if (pipeSeen.changed(p, deleted)) endpoints.enqueueAll(p.metadata.namespace);
  });
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
