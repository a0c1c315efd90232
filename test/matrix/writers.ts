// The weir-managed writers a matrix cell drives: the events API (EventsApi, in this process,
// the class `weir dev` serves), the events API pod (`weir events`, its own process, over HTTP)
// and the Kafka ingester (`weir ingest`, its own process). Both
// write page views with unique ids (session_id) and a few malformed inputs, and both say how
// many rows have been acknowledged, which is what a reader must see afterwards.
import { randomUUID } from 'node:crypto';
import type { Admin, Kafka, Producer } from 'kafkajs';
import type { DataSource } from '../../src/api/datasource.js';
import { groupIdOf } from '../../src/api/names.js';
import type { ClickHouse } from '../../src/clickhouse/connection.js';
import { createLogger } from '../../src/runtime/log.js';
import { EventsApi } from '../../src/workers/events.js';
import { joined, startIngester, writeConfig, type Ingester } from '../fixtures/ingest.js';
import { startWeir, type WeirProcess } from '../fixtures/processes.js';
import { waitFor } from '../env/wait.js';

export interface MatrixWriter {
  /** Valid rows acknowledged so far: a read that starts now must see all of them. */
  acked(): Promise<number>;
  /** The exact raw text of every malformed input sent: the quarantine must hold exactly these. */
  readonly malformed: string[];
  /** Write `rows` valid rows and `bad` malformed ones, and wait until all are acknowledged. */
  seed(rows: number, bad: number): Promise<void>;
  /** Keep writing until stop(). */
  start(): void;
  /** Stop writing and wait until everything sent is acknowledged. */
  stop(): Promise<void>;
  /** The DataSource as the writer's deployment now knows it (the events API maps rows by it). */
  useSpec(ds: DataSource): void;
  /** The longest a batch waited at a migration fence, in ms. */
  longestPauseMs(): Promise<number>;
  /** Failed attempts that were retried (ClickHouse down, a fence that could not be read, …). */
  readonly retries: number;
  close(): Promise<void>;
}

const DAY_MS = 86_400_000;
const log = createLogger({ level: 'error' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Page view number n of a cell, as the example's events carry it (jsonPaths $.payload.*). */
export function pageView(prefix: string, n: number, epoch: number): Record<string, unknown> {
  // duration_ms is never 0: SummingMergeTree deletes rows whose summed columns are all 0.
  // Unique timestamps, all within four weeks: no two rows share an engine key (Replacing/Summing
  // engines would fold them) and the example's TTL expires none.
  const ts = new Date(epoch - (n % 28) * DAY_MS - Math.floor(n / 28)).toISOString().replace('T', ' ').replace('Z', '');
  return {
    timestamp: ts,
    session_id: `${prefix}-${n}`,
    tenant_id: `t${n % 3}`,
    payload: { pathname: `/page/${n % 17}`, country: 'de', duration_ms: 1 + (n % 5000), referrer: 'r' },
  };
}

/** Malformed input k of a cell: text that is not JSON, and a row ClickHouse refuses (a timestamp that is no time). */
export function malformedInput(prefix: string, k: number): string {
  return k % 2 === 0
    ? `{not json ${prefix}-bad-${k}`
    : JSON.stringify({ timestamp: `no time ${k}`, session_id: `${prefix}-bad-${k}`, tenant_id: 't0', payload: { pathname: '/bad' } });
}

/**
 * What the two events writers share: page views in batches of 100 (one malformed line early in
 * the live phase), seeded in batches of 500, each batch sent until it is acknowledged; `send`
 * is how a batch goes (in process, or over HTTP to a weir events process).
 */
abstract class BatchedEventsWriter {
  readonly malformed: string[] = [];
  retries = 0;
  private n = 0;
  private ackedRows = 0;
  private running: Promise<void> | undefined;
  private stopRequested = false;
  private readonly epoch = Date.now();

  constructor(protected readonly prefix: string) {}

  acked = async (): Promise<number> => this.ackedRows;

  async seed(rows: number, bad: number): Promise<void> {
    for (let done = 0; done < rows; done += 500) await this.batch(Math.min(500, rows - done), 0);
    await this.batch(0, bad);
  }

  start(): void {
    this.running = (async () => {
      let sent = 0;
      while (!this.stopRequested) {
        // One malformed line early in the live phase, the rest valid.
        await this.batch(100, sent === 2 ? 1 : 0);
        sent++;
        await sleep(10);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopRequested = true;
    await this.running;
  }

  /** Send `lines` (`rows` valid, then `bad` malformed) under one idempotency key until it is acknowledged. */
  protected abstract send(lines: string[], rows: number, bad: number): Promise<void>;

  private async batch(rows: number, bad: number): Promise<void> {
    const lines = Array.from({ length: rows }, (_, i) => JSON.stringify(pageView(this.prefix, this.n + i, this.epoch)));
    const badLines = Array.from({ length: bad }, (_, i) => malformedInput(this.prefix, this.malformed.length + i));
    await this.send([...lines, ...badLines], rows, bad);
    this.n += rows;
    this.ackedRows += rows;
    this.malformed.push(...badLines);
  }
}

/**
 * The events API, in process: POST /v0/events's ingest(), retried while it fails (as a client
 * would), under one idempotency key per batch so a retry after a lost answer inserts nothing twice.
 */
export class EventsWriter extends BatchedEventsWriter implements MatrixWriter {
  private readonly api: EventsApi;
  private spec: DataSource;

  constructor(ch: ClickHouse, ds: DataSource, prefix: string) {
    super(prefix);
    this.spec = ds;
    this.api = new EventsApi(ch, () => this.spec, log);
  }

  useSpec(ds: DataSource): void {
    this.spec = ds;
  }

  longestPauseMs = async (): Promise<number> => this.api.longestFencePauseMs();

  async close(): Promise<void> {
    await this.api.close();
  }

  protected async send(lines: string[], rows: number, bad: number): Promise<void> {
    const key = randomUUID();
    for (;;) {
      try {
        const r = await this.api.ingest(
          this.spec.metadata.name,
          lines.map((text) => ({ text })),
          key,
        );
        if (r.successful_rows !== rows || r.quarantined_rows !== bad)
          throw new Error(`events API took ${r.successful_rows}/${rows} rows and quarantined ${r.quarantined_rows}/${bad}`);
        return;
      } catch (e) {
        if (!isRetriable(e)) throw e;
        this.retries++;
        await sleep(100);
      }
    }
  }
}

/** A failure a client of the events API retries: ClickHouse unreachable (503) or an error inside it (500). */
const isRetriable = (e: unknown): boolean => !/events API took/.test(e instanceof Error ? e.message : String(e));

/** `weir ingest` consuming a topic of its own; acknowledged = the offset it committed after ClickHouse took the rows. */
export class KafkaWriter implements MatrixWriter {
  readonly malformed: string[] = [];
  retries = 0;
  private readonly producer: Producer;
  private ingester: Ingester | undefined;
  /** validBefore[o]: valid messages among offsets 0..o-1. */
  private readonly validBefore: number[] = [0];
  private running: Promise<void> | undefined;
  private stopRequested = false;
  private n = 0;
  private readonly epoch = Date.now();
  private readonly groupId: string;

  constructor(
    kafka: Kafka,
    private readonly admin: Admin,
    private readonly ds: DataSource,
    private readonly topic: string,
    private readonly clickhouseUrl: string,
    private readonly prefix: string,
  ) {
    this.producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
    this.groupId = groupIdOf(ds);
  }

  async open(): Promise<void> {
    await this.admin.createTopics({ topics: [{ topic: this.topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
    await this.producer.connect();
    this.ingester = await startIngester(writeConfig(this.ds), this.clickhouseUrl);
    await joined(this.ingester);
  }

  async acked(): Promise<number> {
    const [t] = await this.admin.fetchOffsets({ groupId: this.groupId, topics: [this.topic] });
    const offset = Number(t?.partitions[0]?.offset ?? -1);
    return offset < 0 ? 0 : (this.validBefore[Math.min(offset, this.validBefore.length - 1)] ?? 0);
  }

  useSpec(): void {
    // The ingester's DataSource keeps its columns in every row that uses it (rows 4–8).
  }

  async seed(rows: number, bad: number): Promise<void> {
    for (let done = 0; done < rows; done += 500) await this.send(Math.min(500, rows - done), 0);
    await this.send(0, bad);
    await this.drained();
  }

  start(): void {
    this.running = (async () => {
      let sent = 0;
      while (!this.stopRequested) {
        await this.send(100, sent === 2 ? 1 : 0);
        sent++;
        await sleep(20);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopRequested = true;
    await this.running;
    await this.drained();
  }

  async longestPauseMs(): Promise<number> {
    return Math.round(((await this.ingester?.metric('weir_ingest_longest_fence_pause_seconds')) ?? 0) * 1000);
  }

  async close(): Promise<void> {
    await this.ingester?.kill('SIGTERM');
    await this.producer.disconnect().catch(() => undefined);
    await this.admin.deleteTopics({ topics: [this.topic] }).catch(() => undefined);
  }

  private async send(rows: number, bad: number): Promise<void> {
    const valid = Array.from({ length: rows }, (_, i) => JSON.stringify(pageView(this.prefix, this.n + i, this.epoch)));
    const badValues = Array.from({ length: bad }, (_, i) => malformedInput(this.prefix, this.malformed.length + i));
    const values = [...valid, ...badValues];
    await this.producer.send({ topic: this.topic, messages: values.map((value) => ({ value })) });
    this.n += rows;
    this.malformed.push(...badValues);
    let v = this.validBefore[this.validBefore.length - 1] ?? 0;
    for (let i = 0; i < values.length; i++) this.validBefore.push(i < rows ? ++v : v);
  }

  /** Everything sent has been committed by the ingester. */
  private async drained(): Promise<void> {
    const total = this.validBefore[this.validBefore.length - 1] ?? 0;
    await waitFor(
      `weir ingest to commit all ${this.validBefore.length - 1} messages of ${this.topic}`,
      async () => ((await this.acked()) === total && (await this.committed()) === this.validBefore.length - 1) || undefined,
      { timeoutMs: 90_000, intervalMs: 100 },
    );
  }

  private async committed(): Promise<number> {
    const [t] = await this.admin.fetchOffsets({ groupId: this.groupId, topics: [this.topic] });
    return Number(t?.partitions[0]?.offset ?? -1);
  }
}

/**
 * `weir events` as its own process (what the <name>-events pods run), fed over HTTP by a client
 * that sends each batch under its own Idempotency-Key and retries it until it gets 200 (503
 * while ClickHouse is down or a fence holds the table past --max-fence-wait, a refused
 * connection): acknowledged = the rows of the batches answered 200.
 */
export class HttpEventsWriter extends BatchedEventsWriter implements MatrixWriter {
  private proc: WeirProcess | undefined;
  private base = '';
  private metricsBase = '';

  constructor(
    private readonly ds: DataSource,
    private readonly clickhouseUrl: string,
    prefix: string,
  ) {
    super(prefix);
  }

  async open(): Promise<void> {
    this.proc = startWeir(
      ['events', '--config', writeConfig(this.ds), '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--max-fence-wait', '2000'],
      { WEIR_CLICKHOUSE_URL: this.clickhouseUrl, POD_NAME: `matrix-events-${this.prefix}` },
    );
    const l = await this.proc.waitForLog('weir events listening', (x) => x.message === 'events server listening', 60_000);
    this.base = `http://127.0.0.1:${Number(l.port)}`;
    this.metricsBase = `http://127.0.0.1:${Number(l.metricsPort)}`;
  }

  useSpec(): void {
    // The pods' DataSource is the one they were started with (a column change rolls the Deployment); the rows using this writer keep the columns.
  }

  async longestPauseMs(): Promise<number> {
    const text = await (await fetch(`${this.metricsBase}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('weir_events_longest_fence_wait_seconds{'));
    return Math.round(Number(line?.split(' ').at(-1) ?? 0) * 1000);
  }

  async close(): Promise<void> {
    await this.proc?.kill('SIGTERM');
  }

  protected async send(lines: string[], rows: number, bad: number): Promise<void> {
    const body = lines.map((l) => `${l}\n`).join('');
    const key = randomUUID();
    type Answer = { status: number; body: { successful_rows?: number; quarantined_rows?: number; error?: string } };
    for (;;) {
      const answer: Answer = await fetch(`${this.base}/v0/events?name=${this.ds.metadata.name}`, {
        method: 'POST',
        body,
        headers: { 'idempotency-key': key },
      }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as Answer['body'] }),
        (e: unknown): Answer => ({ status: 0, body: { error: String(e) } }),
      );
      if (answer.status === 200) {
        if (answer.body.successful_rows !== rows || answer.body.quarantined_rows !== bad)
          throw new Error(`events API took ${answer.body.successful_rows}/${rows} rows and quarantined ${answer.body.quarantined_rows}/${bad}`);
        return;
      }
      if (answer.status !== 0 && answer.status !== 503 && answer.status !== 429 && answer.status < 500)
        throw new Error(`events API refused a batch: ${answer.status} ${answer.body.error ?? ''}`);
      this.retries++;
      await sleep(100);
    }
  }
}
