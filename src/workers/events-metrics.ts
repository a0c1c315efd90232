// Metrics of the events API (weir events pods, and weir dev when it has a registry).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export class EventsMetrics {
  readonly requests: Counter<'datasource' | 'status'>;
  readonly rows: Counter<'datasource'>;
  readonly quarantined: Counter<'datasource'>;
  readonly insertDuration: Histogram<'datasource'>;
  readonly fenceWait: Histogram<'datasource'>;
  readonly bodyBytes: Histogram<'datasource'>;
  readonly longestFenceWait: Gauge<'datasource'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'weir_events_requests_total',
      help: 'Events API requests by DataSource and HTTP status (499: the client went away first).',
      labelNames: ['datasource', 'status'] as const,
      registers,
    });
    this.rows = new Counter({
      name: 'weir_events_rows_total',
      help: 'Rows inserted (acknowledged by ClickHouse).',
      labelNames: ['datasource'] as const,
      registers,
    });
    this.quarantined = new Counter({
      name: 'weir_events_quarantined_rows_total',
      help: 'Lines sent to the quarantine table.',
      labelNames: ['datasource'] as const,
      registers,
    });
    this.insertDuration = new Histogram({
      name: 'weir_events_insert_duration_seconds',
      help: 'Duration of one flush: the inserts of the requests it took, quarantine included.',
      labelNames: ['datasource'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.fenceWait = new Histogram({
      name: 'weir_events_fence_wait_seconds',
      help: 'How long a flush waited at a migration fence (0 when none was up).',
      labelNames: ['datasource'] as const,
      buckets: [0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.bodyBytes = new Histogram({
      name: 'weir_events_body_bytes',
      help: 'Request body size as received (before decoding).',
      labelNames: ['datasource'] as const,
      buckets: [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
      registers,
    });
    this.longestFenceWait = new Gauge({
      name: 'weir_events_longest_fence_wait_seconds',
      help: 'The longest a flush waited at a migration fence since the process started.',
      labelNames: ['datasource'] as const,
      registers,
    });
  }
}
