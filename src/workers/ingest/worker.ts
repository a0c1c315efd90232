// The Kafka ingestion worker (`weir ingest`): one consumer group per DataSource, messages
// mapped through the columns' jsonPaths into the DataSource's table, exactly once.
//
// Exactly once rests on three rules (see batches.ts for the pure part):
// 1. A batch is a contiguous offset range of one partition. Its range goes into the ledger
//    (weir.ingest_batches) before its rows go anywhere.
// 2. Its rows (and its quarantined messages) are inserted with a deduplication token made of
//    the range, into tables that remember recent tokens (clickhouse/dedup.ts).
// 3. Its offset is committed to Kafka only after ClickHouse acknowledged both inserts.
// A worker that dies anywhere leaves either a committed range (done), or a ledger range past
// the committed offset: whoever owns the partition next reads the ledger, cuts the same
// ranges again, and ClickHouse drops the blocks that had landed.
//
// Backpressure: a batch that ClickHouse refuses is retried with backoff where it is, holding
// its partition (kafkajs does not fetch a partition whose eachBatch has not returned), so
// nothing piles up in memory; readiness and weir_ingest_clickhouse_up say so.
//
// Migrations: before each insert the worker passes the DataSource's fence (execute/fence.ts),
// so the executor can hold every worker at a batch boundary while it swaps tables.
import { hostname } from 'node:os';
import { Kafka, logLevel, type Consumer, type EachBatchPayload, type KafkaConfig } from 'kafkajs';
import type { DataSource } from '../../api/datasource.js';
import { databaseOf, groupIdOf, tableOf } from '../../api/names.js';
import type { ClickHouse } from '../../clickhouse/connection.js';
import { deduplicatedBy } from '../../clickhouse/dedup.js';
import { isMissingDependency } from '../../clickhouse/errors.js';
import { DEFAULT_FENCE_TIMING, FenceParticipant, type FenceTiming } from '../../execute/fence.js';
import { ensureSystemTables } from '../../execute/system-tables.js';
import { quoteIdentifier, quarantineTableName } from '../../plan/sql.js';
import { backoffDelay, isRetriable, retry, sleep, type BackoffPolicy } from '../../runtime/backoff.js';
import { faultPoint } from '../../runtime/fault.js';
import { errorMessage, type Logger } from '../../runtime/log.js';
import { isolateRefused } from '../events.js';
import { compileRowMapper, MAPPED_ROW_SETTINGS, type RowMapper } from '../rows.js';
import { cmpOffsets, commitOffsetAfter, dedupToken, PartitionBatcher, rangesToReplay, type BatchLimits, type OffsetRange } from './batches.js';
import { LineBuffer } from './lines.js';
import type { IngestMetrics } from './metrics.js';

export const DEFAULT_BATCH: BatchLimits = { maxRows: 100_000, maxBytes: 16 * 1024 * 1024, maxDelayMs: 1000 };

export interface IngestWorkerOptions {
  dataSource: DataSource;
  clickhouse: ClickHouse;
  /** brokers, ssl and sasl; the rest is the worker's. */
  kafka: Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl'>;
  log: Logger;
  metrics: IngestMetrics;
  /** Identifies this process in the fence and the ledger (default: hostname and a random suffix). */
  writerId?: string;
  fenceTiming?: FenceTiming;
  /** Retry policy for inserts ClickHouse refuses (default: 200 ms doubling to 10 s, forever). */
  retryPolicy?: BackoffPolicy;
  /**
   * Pause before a partition whose batch could not be written is read again from its committed
   * offset, growing while it keeps failing (default: 5 s doubling to 60 s).
   */
  restartPolicy?: BackoffPolicy;
  /**
   * How long the group waits for a worker that stopped heartbeating before its partitions move
   * (default 30 s; the broker bounds it by group.min/max.session.timeout.ms).
   */
  sessionTimeoutMs?: number;
}

/**
 * A message as a batch keeps it: its offset and where its value bytes were copied (`bytes` from
 * `at`, `size` long; null for an empty message), not the kafkajs message object or a view into the
 * fetch response, which would keep the response alive. Mapped when the batch is written.
 */
interface Message {
  offset: string;
  size: number;
  bytes: Buffer | null;
  at: number;
}

/** Where a partition's message values are copied: chunks of ARENA_BYTES, each freed once its messages' batches are written. */
const ARENA_BYTES = 1 << 20;

/** Messages mapped between two yields to the event loop. */
const MAP_SLICE = 10_000;

/** The message's value as text. */
const textOf = (m: Message): string => m.bytes?.toString('utf8', m.at, m.at + m.size) ?? '';

interface PartitionState {
  topic: string;
  partition: number;
  generation: number;
  batcher: PartitionBatcher<Message>;
  /** Serialises the partition's work: eachBatch and the delay timer never flush at once. */
  queue: Promise<void>;
  busy: boolean;
  /** The batch being written (ledger, insert, commit), if any. */
  writing: Promise<void>;
  committed: string;
  /** Newest offset added to the batcher. */
  lastSeen?: string;
  highWatermark: string;
  rows: number;
  quarantined: number;
  /** The chunk message values are copied into, and how much of it is used. */
  arena: Buffer;
  arenaUsed: number;
}

const RETRY: BackoffPolicy = { initialMs: 200, maxMs: 10_000, factor: 2, jitter: 0.2 };
const RESTART: BackoffPolicy = { initialMs: 5_000, maxMs: 60_000, factor: 2, jitter: 0.2 };
/** The partition moved to another worker (a rebalance) while its batch was being written. */
class PartitionLost extends Error {}

export class IngestWorker {
  private readonly database: string;
  private readonly table: string;
  private readonly groupId: string;
  private readonly topic: string;
  private readonly limits: BatchLimits;
  private readonly mapper: RowMapper;
  private readonly fence: FenceParticipant;
  private readonly consumer: Consumer;
  readonly writerId: string;
  private readonly states = new Map<string, PartitionState>();
  /** Every partition's last flush, across generations: a new owner waits for the old one's. */
  private readonly inflight = new Map<string, Promise<void>>();
  /** Restarts in a row of each partition whose batch could not be written; a written batch clears it. */
  private readonly restarts = new Map<string, number>();
  private generation = 0;
  private rebalancing = false;
  private joined = false;
  private stopping = false;
  private clickhouseUp = true;
  private lastProblem = '';
  private heartbeat: () => Promise<void> = () => Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private crashed: Error | undefined;
  private stopHeartbeats: () => void = () => undefined;

  constructor(private readonly opts: IngestWorkerOptions) {
    const ds = opts.dataSource;
    const ingestion = ds.spec.ingestion;
    if (!ingestion?.kafka) throw new Error(`DataSource ${ds.metadata.namespace ?? 'default'}/${ds.metadata.name} has no spec.ingestion.kafka`);
    this.database = databaseOf(ds);
    this.table = tableOf(ds);
    this.groupId = groupIdOf(ds);
    this.topic = ingestion.kafka.topic;
    this.limits = { ...DEFAULT_BATCH, ...ingestion.batch };
    this.mapper = compileRowMapper(ds.spec.columns);
    this.writerId = opts.writerId ?? FenceParticipant.newId(`ingest-${hostname()}`);
    this.fence = new FenceParticipant(
      opts.clickhouse,
      this.writerId,
      [{ database: this.database, table: this.table }],
      opts.fenceTiming ?? DEFAULT_FENCE_TIMING,
    );
    const kafka = new Kafka({
      ...opts.kafka,
      clientId: `weir-ingest-${ds.metadata.name}`,
      logLevel: logLevel.WARN,
      logCreator: () => (entry) =>
        opts.log.log(entry.level <= logLevel.ERROR ? 'error' : 'warn', `kafka: ${entry.log.message}`, { namespace: entry.namespace }),
    });
    this.consumer = kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: opts.sessionTimeoutMs ?? 30_000,
      rebalanceTimeout: 60_000,
      heartbeatInterval: Math.min(3_000, Math.floor((opts.sessionTimeoutMs ?? 30_000) / 3)),
      maxBytesPerPartition: 2 * 1024 * 1024,
      maxBytes: 16 * 1024 * 1024,
      maxWaitTimeInMs: Math.min(500, this.limits.maxDelayMs),
      allowAutoTopicCreation: false,
    });
  }

  /** Ready: in the group, and ClickHouse took the last insert. The string says why not. */
  ready(): true | string {
    if (this.crashed) return `consumer crashed: ${this.crashed.message}`;
    if (!this.joined) return 'not yet in the consumer group';
    if (!this.clickhouseUp) return `ClickHouse refuses inserts: ${this.lastProblem}`;
    return true;
  }

  healthy(): boolean {
    return this.crashed === undefined;
  }

  /** Connect, join the group and consume until stop(). Resolves once consuming started. */
  async start(): Promise<void> {
    const { log, clickhouse } = this.opts;
    await this.untilClickHouse(() => ensureSystemTables(clickhouse), 'creating weir tables');
    this.stopHeartbeats = this.fence.keepAlive();
    const { events } = this.consumer;
    this.consumer.on(events.REBALANCING, () => {
      this.rebalancing = true;
    });
    this.consumer.on(events.GROUP_JOIN, (e) => {
      // Whatever was buffered belongs to the old assignment: the group re-reads from committed offsets.
      this.generation++;
      this.states.clear();
      this.rebalancing = false;
      this.joined = true;
      const assigned = e.payload.memberAssignment[this.topic] ?? [];
      this.opts.metrics.assigned.set(assigned.length);
      log.info('joined consumer group', { group: this.groupId, generation: this.generation, partitions: assigned.join(',') });
    });
    this.consumer.on(events.CRASH, (e) => {
      const error = e.payload.error;
      log.error('consumer crashed', { error: errorMessage(error), restart: e.payload.restart });
      if (!e.payload.restart) this.crashed = error;
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: (this.opts.dataSource.spec.ingestion?.kafka?.startFrom ?? 'earliest') === 'earliest' });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      partitionsConsumedConcurrently: 4,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    const tick = Math.max(10, Math.min(250, Math.floor(this.limits.maxDelayMs / 4)));
    this.timer = setInterval(() => this.flushDue(), tick);
    log.info('ingesting', { topic: this.topic, group: this.groupId, table: `${this.database}.${this.table}`, writer: this.writerId, batch: this.limits });
  }

  /** Flush what is buffered, commit it, leave the group and the fence. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.timer);
    const states = [...this.states.values()];
    await Promise.allSettled(
      states.map((s) =>
        this.enqueue(s, async () => {
          await this.flush(s, { final: true });
          await s.writing;
        }),
      ),
    );
    await this.consumer.disconnect().catch(() => undefined);
    this.stopHeartbeats();
    await this.fence.leave().catch(() => undefined);
    this.opts.log.info('stopped', { writer: this.writerId });
  }

  // eslint-disable-next-line @typescript-eslint/unbound-method -- kafkajs passes closures, typed as methods
  private async eachBatch({ batch, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    this.heartbeat = heartbeat;
    if (this.stopping || batch.messages.length === 0) return;
    const first = batch.messages[0]?.offset ?? batch.firstOffset() ?? '0';
    const state = this.states.get(`${batch.topic}/${batch.partition}`) ?? (await this.openPartition(batch.topic, batch.partition, first));
    await this.enqueue(state, async () => {
      await this.consume(state, batch, isRunning, isStale);
    }).catch((e: unknown) => {
      // The old generation's work ends here; the partition's new owner replays from the ledger.
      if (!(e instanceof PartitionLost)) throw e;
    });
  }

  private async consume(state: PartitionState, batch: EachBatchPayload['batch'], isRunning: () => boolean, isStale: () => boolean): Promise<void> {
    for (const m of batch.messages) {
      if (!isRunning() || isStale() || this.stopping || state.generation !== this.generation) return;
      if (state.lastSeen !== undefined && cmpOffsets(m.offset, state.lastSeen) <= 0) continue; // delivered twice by a refetch
      state.batcher.add(this.copyMessage(state, m.offset, m.value), Date.now());
      state.lastSeen = m.offset;
      if (state.batcher.due(Date.now())) await this.flush(state);
    }
    state.highWatermark = batch.highWatermark;
    this.opts.metrics.lag.set(
      { topic: state.topic, partition: String(state.partition) },
      Math.max(0, Number(BigInt(state.highWatermark) - BigInt(state.committed))),
    );
  }

  /**
   * A partition newly assigned: wait for this process's own last flush of it (from before the
   * rebalance), then replay the ledger ranges past `committed` (where consumption resumes).
   */
  private async openPartition(topic: string, partition: number, committed: string): Promise<PartitionState> {
    const key = `${topic}/${partition}`;
    const generation = this.generation;
    await this.inflight.get(key);
    const [ledger, progress] = await this.untilClickHouse(
      () =>
        Promise.all([
          this.opts.clickhouse.query<{ first_offset: string; last_offset: string }>(
            `SELECT DISTINCT first_offset, last_offset FROM weir.ingest_batches
             WHERE group_id = {g:String} AND topic = {t:String} AND partition = {p:Int32} AND last_offset >= {c:Int64}`,
            { params: { g: this.groupId, t: topic, p: partition, c: committed } },
          ),
          this.opts.clickhouse.query<{ rows: string; quarantined: string }>(
            `SELECT argMax(rows, updated_at) AS rows, argMax(quarantined, updated_at) AS quarantined FROM weir.ingest_progress
             WHERE group_id = {g:String} AND topic = {t:String} AND partition = {p:Int32}`,
            { params: { g: this.groupId, t: topic, p: partition } },
          ),
        ]),
      'reading the ingest ledger',
    );
    const { ranges, anomalies } = rangesToReplay(
      ledger.map((r) => ({ topic, partition, firstOffset: String(r.first_offset), lastOffset: String(r.last_offset) })),
      committed,
    );
    for (const a of anomalies) this.opts.log.error('ingest ledger anomaly', { detail: a });
    if (ranges.length > 0)
      this.opts.log.info('replaying batches written before a restart', { topic, partition, ranges: ranges.length, from: ranges[0]?.firstOffset });
    const state: PartitionState = {
      topic,
      partition,
      generation,
      batcher: new PartitionBatcher<Message>(topic, partition, this.limits, ranges),
      queue: Promise.resolve(),
      busy: false,
      writing: Promise.resolve(),
      committed,
      highWatermark: committed,
      rows: Number(progress[0]?.rows ?? 0),
      quarantined: Number(progress[0]?.quarantined ?? 0),
      arena: Buffer.allocUnsafeSlow(ARENA_BYTES),
      arenaUsed: 0,
    };
    // Where this owner resumes, for the executor's check of batches left to replay (fence.ts).
    await this.reportProgress(state).catch((e: unknown) => this.opts.log.warn('could not record ingest progress', { error: errorMessage(e) }));
    // Another batch of the same partition may have opened it while we read.
    const existing = this.states.get(key);
    if (existing && existing.generation === this.generation) return existing;
    if (generation === this.generation) this.states.set(key, state);
    return state;
  }

  private enqueue(state: PartitionState, work: () => Promise<void>): Promise<void> {
    const key = `${state.topic}/${state.partition}`;
    const run = state.queue.then(async () => {
      state.busy = true;
      try {
        await work();
      } finally {
        state.busy = false;
      }
    });
    state.queue = run.catch(() => undefined);
    this.inflight.set(
      key,
      state.queue.then(() => state.writing).catch(() => undefined),
    );
    return run;
  }

  /** The delay bound: flush partitions whose oldest buffered message waited long enough. */
  private flushDue(): void {
    if (this.rebalancing || this.stopping) return;
    const now = Date.now();
    for (const state of this.states.values()) {
      if (state.busy || state.generation !== this.generation || !state.batcher.due(now)) continue;
      this.enqueue(state, () => this.flush(state)).catch((e: unknown) => {
        if (!(e instanceof PartitionLost)) this.opts.log.error('flush failed', { topic: state.topic, partition: state.partition, error: errorMessage(e) });
      });
    }
  }

  /**
   * Cut the buffered batch now and write it once the partition's previous batch has landed and
   * been committed. Writing overlaps with fetching and buffering the next batch; at most one
   * batch per partition is being written, so memory stays at two batches a partition.
   */
  private async flush(state: PartitionState, { final = false } = {}): Promise<void> {
    const taken = state.batcher.take(Date.now());
    if (!taken) return;
    const key = `${state.topic}/${state.partition}`;
    await state.writing.catch(() => undefined);
    if (this.states.get(key) !== state && !final) throw new PartitionLost(`${key} restarted`);
    const writing = this.write(state, taken, final);
    writing.catch((e: unknown) => this.restartPartition(state, e));
    state.writing = writing;
    this.inflight.set(
      key,
      writing.catch(() => undefined),
    );
  }

  /**
   * A batch that could not be written (ClickHouse refused it for a reason retrying cannot fix):
   * forget the partition's buffered state and read it again from the committed offset, after a
   * pause that grows while it keeps failing, so the ledger replays the batch. The error is logged;
   * nothing is skipped.
   */
  private restartPartition(state: PartitionState, e: unknown): void {
    if (e instanceof PartitionLost) return;
    const key = `${state.topic}/${state.partition}`;
    this.opts.log.error('batch not written; the partition restarts from its committed offset', {
      topic: state.topic,
      partition: state.partition,
      error: errorMessage(e),
    });
    if (this.states.get(key) === state) this.states.delete(key);
    const failures = this.restarts.get(key) ?? 0;
    this.restarts.set(key, failures + 1);
    void sleep(backoffDelay(failures, this.opts.restartPolicy ?? RESTART)).then(() => {
      if (!this.stopping && !this.states.has(key)) this.consumer.seek({ topic: state.topic, partition: state.partition, offset: state.committed });
    });
  }

  /** Write one batch: ledger, rows, quarantine, commit. Retries ClickHouse until it takes it. */
  private async write(state: PartitionState, taken: NonNullable<ReturnType<PartitionBatcher<Message>['take']>>, final: boolean): Promise<void> {
    const { range, messages, replayed } = taken;
    const started = performance.now();
    const token = dedupToken(this.groupId, range);
    // Mapped before the fence: a fence waits for no JSON parsing.
    const { good, bad } = await this.mapBatch(messages);
    const current = () => {
      if (state.generation !== this.generation && !final) throw new PartitionLost(`${state.topic}/${state.partition} was reassigned`);
    };
    try {
      // The fence first: a batch held at a fence has written nothing yet, not even its ledger row,
      // so a paused writer never leaves a range the executor would have to wait for.
      await this.untilClickHouse(async () => {
        current();
        const waited = await this.fence.beforeBatch();
        this.opts.metrics.fenceWait.inc(waited / 1000);
        this.opts.metrics.longestFencePause.set(this.fence.longestPauseMs / 1000);
      }, 'passing the migration fence');
      try {
        if (!replayed) {
          await this.untilClickHouse(async () => {
            current();
            await this.opts.clickhouse.insert('weir.ingest_batches', [
              {
                group_id: this.groupId,
                topic: range.topic,
                partition: range.partition,
                first_offset: Number(range.firstOffset),
                last_offset: Number(range.lastOffset),
                database: this.database,
                table: this.table,
                writer_id: this.writerId,
              },
            ]);
          }, 'writing the ingest ledger');
          faultPoint('IngestLedgerWritten');
        }
        const table = `${quoteIdentifier(this.database)}.${quoteIdentifier(this.table)}`;
        let inserted = 0;
        let refused: { item: number; error: string }[] = [];
        if (good.count > 0) {
          await this.untilClickHouse(async () => {
            current();
            ({ inserted, refused } = await isolateRefused(
              good.indices(),
              (items, dedup) =>
                this.opts.clickhouse.insertLines(table, [good.text(items[0] ?? 0, items.at(-1) ?? 0)], { settings: { ...MAPPED_ROW_SETTINGS, ...dedup } }),
              (t) => deduplicatedBy(this.opts.clickhouse, t ?? token),
              token,
            ));
          }, 'inserting rows');
        }
        faultPoint('IngestRowsInserted');
        const quarantine = [
          ...bad,
          ...refused.map((r) => {
            const m = good.sources[r.item] as Message;
            return { raw: textOf(m), offset: m.offset, error: r.error };
          }),
        ];
        if (quarantine.length > 0) {
          await this.untilClickHouse(async () => {
            current();
            await this.opts.clickhouse.insert(
              `${quoteIdentifier(this.database)}.${quoteIdentifier(quarantineTableName(this.table))}`,
              quarantine.map((q) => ({
                source: 'kafka',
                raw: q.raw,
                error: q.error,
                topic: range.topic,
                partition: range.partition,
                offset: Number(q.offset),
              })),
              { settings: await deduplicatedBy(this.opts.clickhouse, `${token}:quarantine`) },
            );
          }, 'quarantining messages');
        }
        faultPoint('IngestQuarantined');
        current();
        await this.commit(range);
        state.committed = commitOffsetAfter(range);
        this.restarts.delete(`${state.topic}/${state.partition}`);
        state.rows += inserted;
        state.quarantined += quarantine.length;
        const m = this.opts.metrics;
        m.rows.inc(inserted);
        m.quarantined.inc(quarantine.length);
        m.batches.inc({ result: replayed ? 'replayed' : 'inserted' });
        m.insertDuration.observe((performance.now() - started) / 1000);
        m.lag.set({ topic: state.topic, partition: String(state.partition) }, Math.max(0, Number(BigInt(state.highWatermark) - BigInt(state.committed))));
        // Before the batch closes: a fence raised now finds this range committed in weir.ingest_progress.
        await this.reportProgress(state).catch((e: unknown) => this.opts.log.warn('could not record ingest progress', { error: errorMessage(e) }));
      } finally {
        this.fence.afterBatch();
      }
    } catch (e) {
      if (e instanceof PartitionLost) {
        this.opts.metrics.batches.inc({ result: 'abandoned' });
        this.opts.log.info('partition reassigned mid-batch; its new owner replays it', {
          topic: range.topic,
          partition: range.partition,
          from: range.firstOffset,
          to: range.lastOffset,
        });
      }
      throw e;
    }
  }

  private copyMessage(state: PartitionState, offset: string, value: Buffer | null): Message {
    if (value === null || value.length === 0) return { offset, size: 0, bytes: null, at: 0 };
    if (state.arenaUsed + value.length > state.arena.length) {
      state.arena = Buffer.allocUnsafeSlow(Math.max(ARENA_BYTES, value.length));
      state.arenaUsed = 0;
    }
    const at = state.arenaUsed;
    state.arenaUsed += value.copy(state.arena, at);
    return { offset, size: value.length, bytes: state.arena, at };
  }

  /** Map messages to JSONEachRow lines, written into one buffer as they are made; the others with their reasons. */
  private async mapBatch(messages: Message[]): Promise<{ good: LineBuffer<Message>; bad: { raw: string; error: string; offset: string }[] }> {
    let bytes = 0;
    for (const m of messages) bytes += m.size + 16;
    const good = new LineBuffer<Message>(bytes);
    const bad: { raw: string; error: string; offset: string }[] = [];
    for (let i = 0; i < messages.length; i++) {
      // A batch is up to hundreds of milliseconds of parsing: let heartbeats and fetches run between slices.
      if (i > 0 && i % MAP_SLICE === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const m = messages[i] as Message;
      if (m.bytes === null) {
        bad.push({ raw: '', error: 'empty message (a tombstone?)', offset: m.offset });
        continue;
      }
      const raw = textOf(m);
      const r = this.mapper.mapLine(raw);
      if (r.ok) good.add(r.line, m);
      else bad.push({ raw, error: r.error, offset: m.offset });
    }
    return { good, bad };
  }

  /**
   * Commit past a batch that landed. A commit Kafka refuses (the group is rebalancing) loses
   * nothing: the partition's next owner replays the range from the ledger and ClickHouse drops it.
   */
  private async commit(range: OffsetRange): Promise<void> {
    try {
      await this.consumer.commitOffsets([{ topic: range.topic, partition: range.partition, offset: commitOffsetAfter(range) }]);
    } catch (e) {
      this.opts.log.warn('offset commit refused; the range will be replayed and deduplicated', {
        topic: range.topic,
        partition: range.partition,
        error: errorMessage(e),
      });
      throw new PartitionLost(errorMessage(e));
    }
  }

  private async reportProgress(state: PartitionState): Promise<void> {
    await this.opts.clickhouse.insert('weir.ingest_progress', [
      {
        group_id: this.groupId,
        database: this.database,
        table: this.table,
        topic: state.topic,
        partition: state.partition,
        committed_offset: Number(state.committed),
        high_watermark: Number(state.highWatermark),
        rows: state.rows,
        quarantined: state.quarantined,
        writer_id: this.writerId,
      },
    ]);
  }

  /**
   * Run a ClickHouse call until it succeeds. Failures that retrying can fix (ClickHouse down,
   * slow, the table not there yet) pause the partition with backoff, heartbeating; others are thrown.
   */
  private untilClickHouse<T>(call: () => Promise<T>, doing: string): Promise<T> {
    const attempt = async () => {
      const result = await call();
      if (!this.clickhouseUp) this.opts.log.info('ClickHouse takes inserts again', { after: doing });
      this.clickhouseUp = true;
      this.opts.metrics.clickhouseUp.set(1);
      return result;
    };
    return this.withHeartbeat(
      retry(attempt, {
        policy: this.opts.retryPolicy ?? RETRY,
        retries: Infinity,
        retriable: (e) => !(e instanceof PartitionLost) && worthRetrying(e),
        onRetry: (e) => this.clickHouseRefused(e, doing),
      }),
    );
  }

  private clickHouseRefused(e: unknown, doing: string): void {
    const problem = errorMessage(e).split('\n')[0] ?? '';
    this.opts.metrics.retries.inc();
    if (this.clickhouseUp) this.opts.log.warn('ClickHouse refused; pausing this partition and retrying', { doing, error: problem });
    this.clickhouseUp = false;
    this.lastProblem = problem;
    this.opts.metrics.clickhouseUp.set(0);
  }

  /** Keep the group session alive while waiting (a fence, a retry) longer than a heartbeat interval. */
  private async withHeartbeat<T>(work: Promise<T>): Promise<T> {
    const beat = setInterval(() => void this.heartbeat().catch(() => undefined), 2_000);
    try {
      return await work;
    } finally {
      clearInterval(beat);
    }
  }
}

// A table or database not there: the operator has not created it yet, or is mid-swap.
const worthRetrying = (e: unknown): boolean => isRetriable(e) || isMissingDependency(e);
