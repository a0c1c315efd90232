import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Metrics of one ingestion worker (one DataSource a process). Rows/s is rate(weir_ingest_rows_total). */
export class IngestMetrics {
  readonly rows: Counter;
  readonly quarantined: Counter;
  readonly batches: Counter<'result'>;
  readonly insertDuration: Histogram;
  readonly lag: Gauge<'topic' | 'partition'>;
  readonly clickhouseUp: Gauge;
  readonly retries: Counter;
  readonly fenceWait: Counter;
  readonly longestFencePause: Gauge;
  readonly assigned: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.rows = new Counter({ name: 'weir_ingest_rows_total', help: 'Rows inserted into the DataSource table (replays included).', registers });
    this.quarantined = new Counter({ name: 'weir_ingest_quarantined_rows_total', help: 'Messages written to the quarantine table instead.', registers });
    this.batches = new Counter({
      name: 'weir_ingest_batches_total',
      help: 'Batches by result: inserted (a new range), replayed (a range from the ledger after a restart), abandoned (the partition moved away mid-batch).',
      labelNames: ['result'] as const,
      registers,
    });
    this.insertDuration = new Histogram({
      name: 'weir_ingest_insert_duration_seconds',
      help: 'From taking a batch to ClickHouse acknowledging it (ledger, rows, quarantine), retries included.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.lag = new Gauge({
      name: 'weir_ingest_consumer_lag',
      help: 'Messages in the partition past the committed offset (high watermark - committed).',
      labelNames: ['topic', 'partition'] as const,
      registers,
    });
    this.clickhouseUp = new Gauge({
      name: 'weir_ingest_clickhouse_up',
      help: '0 while ClickHouse refuses or times out inserts (fetching is paused).',
      registers,
    });
    this.retries = new Counter({ name: 'weir_ingest_insert_retries_total', help: 'Insert attempts that failed and were retried.', registers });
    this.fenceWait = new Counter({ name: 'weir_ingest_fence_wait_seconds_total', help: 'Time batches waited at migration fences.', registers });
    this.longestFencePause = new Gauge({
      name: 'weir_ingest_longest_fence_pause_seconds',
      help: 'Longest a single batch waited at a migration fence since the worker started.',
      registers,
    });
    this.assigned = new Gauge({ name: 'weir_ingest_assigned_partitions', help: 'Partitions this worker consumes now.', registers });
    this.clickhouseUp.set(1);
  }
}
