import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Metrics of the operator process; each worker kind registers its own on the same registry type. */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'weir_reconcile_total',
    help: 'Reconciles by kind and result (success, error, requeue).',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'weir_reconcile_errors_total',
    help: 'Reconciles that failed, by kind.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'weir_reconcile_duration_seconds',
    help: 'Reconcile duration by kind.',
    labelNames: ['kind'] as const,
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'weir_workqueue_depth',
    help: 'Keys waiting in the work queue, by kind.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly statusWrites = new Counter({
    name: 'weir_status_writes_total',
    help: 'Status patches sent to the API server, by kind (a reconcile that changed nothing writes none).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly kubeRequests = new Counter({
    name: 'weir_kube_requests_total',
    help: 'API server requests (watches aside), by verb.',
    labelNames: ['verb'] as const,
    registers: [this.registry],
  });
  readonly kubeThrottledSeconds = new Counter({
    name: 'weir_kube_client_throttled_seconds_total',
    help: 'Time requests waited for the client rate limit (--kube-api-qps, --kube-api-burst).',
    registers: [this.registry],
  });
  readonly clickhouseRequests = new Counter({
    name: 'weir_clickhouse_requests_total',
    help: 'ClickHouse requests the operator sent (pings aside), by the kind whose reconcile sent them (none: outside a reconcile).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly reconcileClickhouseRequests = new Histogram({
    name: 'weir_reconcile_clickhouse_requests',
    help: 'ClickHouse round trips of one reconcile, by kind.',
    labelNames: ['kind'] as const,
    buckets: [0, 1, 2, 3, 5, 8, 13, 21, 50, 100],
    registers: [this.registry],
  });
  readonly catalogLookups = new Counter({
    name: 'weir_catalog_lookups_total',
    help: 'Catalog observations asked for by gatherers, by result: hit (a fresh shared one), shared (joined a read in flight), miss (read).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'weir_leader',
    help: '1 while this process holds the leader lease.',
    registers: [this.registry],
  });

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }
}
