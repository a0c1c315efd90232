// Every endpoint request as a row of weir.endpoint_requests, so usage is queryable with SQL.
// Rows are buffered and inserted in batches off the request path (every flushIntervalMs, or
// sooner once flushRows are waiting). The buffer is bounded: while ClickHouse is unreachable
// rows wait up to maxBufferedRows, and past that new rows are dropped and counted
// (weir_endpoint_request_log_dropped_total) rather than growing the heap or slowing requests.
// Each row names the caller's token without being it (token_kind, token_id: a JWT's sub, or the
// static token's key in its Secret) and the parameters the token fixed (fixed_params), so that
// "rows read per tenant this month" is one GROUP BY.
import { hostname } from 'node:os';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClickHouse } from '../../clickhouse/connection.js';
import { toClickHouseError } from '../../clickhouse/errors.js';
import { SYSTEM_DATABASE } from '../../api/names.js';
import type { Logger } from '../../runtime/log.js';
import type { RequestRecord } from './handler.js';

export const REQUEST_LOG_TABLE = `${SYSTEM_DATABASE}.endpoint_requests`;

export const REQUEST_LOG_DDL = `CREATE TABLE IF NOT EXISTS ${REQUEST_LOG_TABLE} (
    time DateTime64(3, 'UTC'),
    namespace LowCardinality(String),
    endpoint LowCardinality(String),
    method LowCardinality(String),
    format LowCardinality(String),
    status UInt16,
    duration_ms Float64,
    rows_read UInt64,
    bytes_read UInt64,
    error String,
    request_id String,
    server LowCardinality(String),
    token_kind LowCardinality(String),
    token_id String,
    fixed_params Map(String, String)
  ) ENGINE = MergeTree ORDER BY (endpoint, time)
  TTL toDateTime(time) + INTERVAL 30 DAY
  COMMENT 'weir: every endpoint request (weir serve), kept 30 days'`;

/** Columns added after the table's first version: a table created by an older weir gets them on start. */
export const REQUEST_LOG_ADDED_COLUMNS = [
  `ALTER TABLE ${REQUEST_LOG_TABLE} ADD COLUMN IF NOT EXISTS token_kind LowCardinality(String)`,
  `ALTER TABLE ${REQUEST_LOG_TABLE} ADD COLUMN IF NOT EXISTS token_id String`,
  `ALTER TABLE ${REQUEST_LOG_TABLE} ADD COLUMN IF NOT EXISTS fixed_params Map(String, String)`,
];

export interface RequestLogOptions {
  flushIntervalMs?: number;
  /** A batch goes as soon as this many rows wait. */
  flushRows?: number;
  /** Rows kept while ClickHouse does not take them; past this, new rows are dropped and counted. */
  maxBufferedRows?: number;
  /** The `server` column: the pod's name. */
  server?: string;
}

export class RequestLogMetrics {
  readonly written: Counter;
  readonly dropped: Counter;
  readonly buffered: Gauge;

  constructor(registry: Registry) {
    this.written = new Counter({
      name: 'weir_endpoint_request_log_written_total',
      help: `Request log rows inserted into ${REQUEST_LOG_TABLE}.`,
      registers: [registry],
    });
    this.dropped = new Counter({
      name: 'weir_endpoint_request_log_dropped_total',
      help: 'Request log rows dropped because the buffer was full (ClickHouse not taking inserts).',
      registers: [registry],
    });
    this.buffered = new Gauge({ name: 'weir_endpoint_request_log_buffered', help: 'Request log rows waiting to be inserted.', registers: [registry] });
  }
}

interface Row {
  time: string;
  namespace: string;
  endpoint: string;
  method: string;
  format: string;
  status: number;
  duration_ms: number;
  rows_read: number;
  bytes_read: number;
  error: string;
  request_id: string;
  server: string;
  token_kind: string;
  token_id: string;
  fixed_params: Record<string, string>;
}

/** An insert that hangs (ClickHouse unreachable) must not hold up every later flush. */
const INSERT_TIMEOUT_MS = 10_000;

/** `2026-01-02 03:04:05.678`, as DateTime64(3, 'UTC') reads it in JSONEachRow. */
const clickhouseTime = (d: Date): string => d.toISOString().replace('T', ' ').replace('Z', '');

export class RequestLog {
  private buffer: Row[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private tableReady = false;
  /** Whether the last flush failed, so that a long outage logs once, and its end once. */
  private failing = false;
  private readonly flushIntervalMs: number;
  private readonly flushRows: number;
  private readonly maxBufferedRows: number;
  private readonly server: string;

  constructor(
    private readonly ch: Pick<ClickHouse, 'command' | 'insert'>,
    private readonly log: Logger,
    private readonly metrics: RequestLogMetrics | undefined,
    opts: RequestLogOptions = {},
  ) {
    this.flushIntervalMs = opts.flushIntervalMs ?? 1000;
    this.flushRows = opts.flushRows ?? 1000;
    this.maxBufferedRows = opts.maxBufferedRows ?? 10_000;
    this.server = opts.server ?? hostname();
  }

  /** Creates the table if it can now (it is tried again before every flush until it works), and starts flushing. */
  async start(): Promise<void> {
    await this.ensureTable().catch(() => undefined);
    this.timer = setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  /** Queues one request's row; never waits and never throws. */
  record(r: RequestRecord): void {
    if (this.buffer.length >= this.maxBufferedRows) {
      this.metrics?.dropped.inc();
      return;
    }
    this.buffer.push({
      time: clickhouseTime(r.time),
      namespace: r.namespace,
      endpoint: r.endpoint,
      method: r.method,
      format: r.format,
      status: r.status,
      duration_ms: Math.round(r.durationMs * 1000) / 1000,
      rows_read: r.rowsRead,
      bytes_read: r.bytesRead,
      error: r.error,
      request_id: r.requestId,
      server: this.server,
      token_kind: r.token?.kind ?? '',
      token_id: r.token?.id ?? '',
      fixed_params: r.fixedParams ?? {},
    });
    this.metrics?.buffered.set(this.buffer.length);
    if (this.buffer.length >= this.flushRows) void this.flush();
  }

  /** Inserts what is buffered now (one flush at a time; a call during a flush waits for it, then flushes again). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.buffer.length === 0) return;
    this.flushing = this.insertBuffered().finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  /** Stops the timer and inserts what is left (once; rows that still cannot be written are logged as lost). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    if (this.buffer.length > 0) {
      this.log.warn('request log rows not written at shutdown', { rows: this.buffer.length, table: REQUEST_LOG_TABLE });
      this.metrics?.dropped.inc(this.buffer.length);
      this.buffer = [];
    }
  }

  private async ensureTable(): Promise<void> {
    if (this.tableReady) return;
    await this.ch.command(`CREATE DATABASE IF NOT EXISTS ${SYSTEM_DATABASE}`);
    await this.ch.command(REQUEST_LOG_DDL);
    try {
      for (const statement of REQUEST_LOG_ADDED_COLUMNS) await this.ch.command(statement);
    } catch (e) {
      // A user without ALTER on an older table still logs requests: the columns it lacks are skipped on insert.
      const error = toClickHouseError(e);
      this.log.warn('request log table not given its token columns (token_kind, token_id, fixed_params); rows are written without them', {
        table: REQUEST_LOG_TABLE,
        code: error.code,
        type: error.type,
      });
    }
    this.tableReady = true;
  }

  private async insertBuffered(): Promise<void> {
    const batch = this.buffer;
    this.buffer = [];
    try {
      await this.ensureTable();
      // An older table that could not be given the token columns takes the rest of each row.
      await this.ch.insert(REQUEST_LOG_TABLE, batch, { signal: AbortSignal.timeout(INSERT_TIMEOUT_MS), settings: { input_format_skip_unknown_fields: 1 } });
      this.metrics?.written.inc(batch.length);
      if (this.failing) this.log.info('request log writes resumed', { table: REQUEST_LOG_TABLE });
      this.failing = false;
    } catch (e) {
      // Back to the front of the buffer, as far as the bound allows; the rest are dropped and counted.
      const kept = batch.slice(0, Math.max(0, this.maxBufferedRows - this.buffer.length));
      this.buffer = [...kept, ...this.buffer];
      this.metrics?.dropped.inc(batch.length - kept.length);
      if (!this.failing) {
        const error = toClickHouseError(e);
        this.log.warn('request log not written; rows wait in memory, and past the buffer they are dropped', {
          table: REQUEST_LOG_TABLE,
          code: error.code,
          type: error.type,
          buffered: this.buffer.length,
          maxBufferedRows: this.maxBufferedRows,
        });
      }
      this.failing = true;
    } finally {
      this.metrics?.buffered.set(this.buffer.length);
    }
  }
}
