// The insert side of the events API for one table in one process: requests queue, and one
// flush at a time takes every request queued so far (group commit). A flush waits out any
// migration fence first (asking at most every FENCE_CHECK_MS), then inserts: the rows of requests without a key together as one
// insert, each keyed request's rows as its own insert under its deduplication token (so a
// retry of it alone, on any pod, finds its block), and the quarantine entries likewise. Each
// request is answered when its rows are in ClickHouse.
//
// One flush at a time is also what the fence needs: the participant acknowledges a fence only
// between flushes, never while an insert of this table may be in flight.
//
// `async_insert` mode (kept for the comparison in bench/events.ts) sends every request's rows
// as its own insert with async_insert=1 and wait_for_async_insert=1, letting the server coalesce.
import type { ClickHouse, Settings } from '../clickhouse/connection.js';
import { deduplicatedBy, deduplicationOff } from '../clickhouse/dedup.js';
import { ClickHouseError, ErrorCode, isMissingDependency } from '../clickhouse/errors.js';
import type { FenceParticipant } from '../execute/fence.js';
import { quarantineTableName } from '../plan/sql.js';
import { isRetriable } from '../runtime/errors.js';
import { errorMessage } from '../runtime/log.js';
import { BodyError } from './events-body.js';
import { quarantineDedupToken, type KeyClaim, type KeyStore } from './events-idempotency.js';
import { MAPPED_ROW_SETTINGS, type MappedRow } from './rows.js';

export type InsertMode = 'coalesce' | 'async_insert';

export interface QuarantinedLine {
  raw: string;
  error: string;
}

export interface IngestResult {
  successful_rows: number;
  quarantined_rows: number;
}

/** One request's mapped rows and the lines already refused; with an idempotency key, the key, its events' digest and the insert's token. */
export interface WriteRequest {
  rows: { row: MappedRow; raw: string }[];
  bad: QuarantinedLine[];
  keyed?: { key: string; digest: string; token: string };
}

/** An answer, and whether it is the recorded answer of an earlier request under the same key (nothing inserted now). */
export type WriteResult = IngestResult & { replayed?: true };

/** What a flush reports, for metrics. */
export interface FlushReport {
  fenceWaitMs: number;
  insertMs: number;
  requests: number;
}

interface Pending {
  req: WriteRequest;
  state: 'queued' | 'taken' | 'abandoned';
  resolve: (r: WriteResult) => void;
  reject: (e: unknown) => void;
  timer?: NodeJS.Timeout;
}

export interface TableWriterOptions {
  mode?: InsertMode;
  /** Where keys are claimed (required for keyed requests). */
  keys?: KeyStore;
  /** The DataSource's name, for the 422 message. */
  name?: string;
  /** Longest a request waits for its flush to start (a fence holding the table): then 503. */
  maxWaitMs?: number;
  onFlush?: (r: FlushReport) => void;
}

/** A 503 the client should retry after `retryAfterSeconds`. */
export class RetryLaterError extends BodyError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(503, message);
  }
}

// Keyed inserts of one flush run this many at a time.
const KEYED_PARALLEL = 8;
/**
 * A flush asks for fences (and heartbeats) only if the last ask is older than this: a raised fence
 * is seen within it plus one flush, and acknowledged only between flushes, so the executor's wait
 * for acknowledgements covers every insert made before. Busy writers save a query per flush.
 */
const FENCE_CHECK_MS = 100;
/** How often an idle writer heartbeats and acknowledges fences (well inside the fence's liveness of 5 s). */
const IDLE_CHECK_MS = 1000;

export class TableWriter {
  private queue: Pending[] = [];
  private flushing = false;
  /** When a flush last asked for fences (performance.now()); flushes within FENCE_CHECK_MS of it do not ask again. */
  private fenceCheckedAt = -Infinity;
  private readonly idleTimer: NodeJS.Timeout;
  /** Answers of keyed requests being recorded (in order, one insert per flush). */
  private recording: Promise<void> = Promise.resolve();

  constructor(
    private readonly ch: ClickHouse,
    readonly database: string,
    readonly table: string,
    readonly fence: FenceParticipant,
    private readonly opts: TableWriterOptions = {},
  ) {
    // Idle, the process still heartbeats and acknowledges fences (no insert is in flight then).
    this.idleTimer = setInterval(() => this.idleCheck(), IDLE_CHECK_MS);
    this.idleTimer.unref();
  }

  /** Queue a request; resolves once its rows (and quarantine entries) are in ClickHouse. */
  write(req: WriteRequest): Promise<WriteResult> {
    return new Promise<WriteResult>((resolve, reject) => {
      const p: Pending = { req, state: 'queued', resolve, reject };
      const wait = this.opts.maxWaitMs;
      if (wait !== undefined) {
        p.timer = setTimeout(() => {
          if (p.state !== 'queued') return;
          p.state = 'abandoned';
          reject(
            new RetryLaterError(
              `the table ${this.database}.${this.table} is held by a migration fence (or ClickHouse is slow) for longer than ${wait} ms; nothing was inserted, retry`,
              Math.max(1, Math.ceil(wait / 1000)),
            ),
          );
        }, wait);
        p.timer.unref();
      }
      this.queue.push(p);
      if (!this.flushing) void this.run();
    });
  }

  /** Requests queued or being inserted. */
  get pending(): number {
    return this.queue.length;
  }

  /** Stop heartbeating; resolves once the answers being recorded are in. */
  async close(): Promise<void> {
    clearInterval(this.idleTimer);
    await this.recording;
  }

  private async run(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.some((p) => p.state === 'queued')) {
        let fenceWaitMs = 0;
        const checked = performance.now() - this.fenceCheckedAt < FENCE_CHECK_MS;
        if (!checked) {
          try {
            fenceWaitMs = await this.fence.beforeBatch();
            this.fenceCheckedAt = performance.now();
          } catch (e) {
            // ClickHouse unreachable: every request waiting is told so (nothing of theirs was inserted).
            for (const p of this.take()) p.reject(e);
            continue;
          }
        }
        const batch = this.take();
        const insertStarted = performance.now();
        try {
          await this.flush(batch);
        } finally {
          if (!checked) this.fence.afterBatch();
        }
        this.opts.onFlush?.({ fenceWaitMs, insertMs: performance.now() - insertStarted, requests: batch.length });
      }
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Between flushes, heartbeat and wait out (acknowledging) any fence, in the flush loop itself so
   * that no insert of this table is ever in flight when a fence is acknowledged.
   */
  private idleCheck(): void {
    if (this.flushing || performance.now() - this.fenceCheckedAt < FENCE_CHECK_MS) return;
    this.flushing = true;
    void this.fence
      .beforeBatch()
      .then(
        () => {
          this.fenceCheckedAt = performance.now();
          this.fence.afterBatch();
        },
        () => undefined,
      )
      .finally(() => {
        this.flushing = false;
        if (this.queue.some((p) => p.state === 'queued')) void this.run();
      });
  }

  /** The requests still waiting, now taken into a flush (no longer abandoned on timeout). */
  private take(): Pending[] {
    const batch = this.queue.filter((p) => p.state === 'queued');
    this.queue = [];
    for (const p of batch) {
      p.state = 'taken';
      clearTimeout(p.timer);
    }
    return batch;
  }

  private async flush(batch: Pending[]): Promise<void> {
    const unkeyed = batch.filter((p) => p.req.keyed === undefined);
    const keyed = await this.claim(batch.filter((p) => p.req.keyed !== undefined));
    const jobs: (() => Promise<void>)[] = [];
    if (this.opts.mode === 'async_insert') for (const p of unkeyed) jobs.push(() => this.settle([p], undefined));
    else if (unkeyed.length > 0) jobs.push(() => this.settle(unkeyed, undefined));
    for (const p of keyed) jobs.push(() => this.settle([p], p.req.keyed?.token));
    let next = 0;
    const lanes = Array.from({ length: Math.min(KEYED_PARALLEL, jobs.length) }, async () => {
      while (next < jobs.length) await (jobs[next++] as () => Promise<void>)();
    });
    await Promise.all(lanes);
    const answered = keyed.flatMap((p) => (p.answer && p.req.keyed ? [{ key: p.req.keyed.key, digest: p.req.keyed.digest, result: p.answer }] : []));
    for (const p of keyed) if (p.answer) p.resolve(p.answer);
    // Recorded after answering, off the flush's path: a retry that comes before the record is in
    // (or after it failed) is deduplicated by its token instead, and lands once all the same.
    const keys = this.opts.keys;
    if (keys && answered.length > 0) this.recording = this.recording.then(() => keys.answeredAll(this.database, this.table, answered).catch(() => undefined));
  }

  /**
   * Claim the keys of this flush's keyed requests (one insert, one read for all): a key taken by
   * other events is a 422, an answered one gets its answer again; the rest are inserted. Two
   * requests of the flush under one key: the later one follows the first (same events) or gets 422.
   */
  private async claim(keyed: Pending[]): Promise<(Pending & { answer?: WriteResult })[]> {
    if (keyed.length === 0) return [];
    const leaders = new Map<string, Pending>();
    const followers: Pending[] = [];
    for (const p of keyed) {
      const k = p.req.keyed as NonNullable<WriteRequest['keyed']>;
      const leader = leaders.get(k.key);
      if (!leader) leaders.set(k.key, p);
      else if (leader.req.keyed?.digest !== k.digest) p.reject(this.conflict(k.key));
      else followers.push(p);
    }
    // A follower gets its leader's answer (the same events, so the same counts), as a replay.
    for (const f of followers) {
      const leader = leaders.get(f.req.keyed?.key ?? '') as Pending;
      const resolve = leader.resolve;
      const reject = leader.reject;
      leader.resolve = (r) => {
        resolve(r);
        f.resolve({ ...r, replayed: true });
      };
      leader.reject = (e) => {
        reject(e);
        f.reject(e);
      };
    }
    let claims: Map<string, KeyClaim>;
    try {
      if (!this.opts.keys) throw new Error('keyed requests need a key store');
      claims = await this.opts.keys.claimAll(
        this.database,
        this.table,
        [...leaders.values()].map((p) => ({ key: p.req.keyed?.key ?? '', digest: p.req.keyed?.digest ?? '' })),
      );
    } catch (e) {
      for (const p of leaders.values()) p.reject(e);
      return [];
    }
    const toInsert: Pending[] = [];
    for (const [key, p] of leaders) {
      const claim = claims.get(key) ?? { kind: 'new' };
      if (claim.kind === 'conflict') p.reject(this.conflict(key));
      else if (claim.kind === 'answered') p.resolve({ ...claim.result, replayed: true });
      else toInsert.push(p);
    }
    return toInsert;
  }

  private conflict(key: string): BodyError {
    return new BodyError(
      422,
      `the Idempotency-Key ${JSON.stringify(key.slice(0, 64))} was used for other events on DataSource ${this.opts.name ?? `${this.database}.${this.table}`}; send new events under a new key`,
    );
  }

  /** Insert these requests' rows as one insert (under `token`, when keyed), then their quarantine entries; answer each. */
  private async settle(group: (Pending & { answer?: WriteResult })[], token: string | undefined): Promise<void> {
    try {
      const items = group.flatMap((p, owner) => p.req.rows.map((r) => ({ ...r, owner })));
      const asyncInsert = this.opts.mode === 'async_insert';
      const { refused } = await isolateRefused(
        items,
        (rows, dedup) =>
          this.ch.insert(
            `${this.database}.${this.table}`,
            rows.map((r) => r.row),
            { settings: { ...MAPPED_ROW_SETTINGS, ...dedup, ...(asyncInsert ? ASYNC_INSERT : {}) } },
          ),
        async (t) =>
          t === undefined ? { ...(await deduplicationOff(this.ch)), ...(asyncInsert ? { async_insert_deduplicate: 0 } : {}) } : deduplicatedBy(this.ch, t),
        token,
        { viewRefusals: 'fail' },
      );
      const refusedBy = group.map(() => [] as QuarantinedLine[]);
      for (const r of refused) refusedBy[r.item.owner]?.push({ raw: r.item.raw, error: r.error });
      const quarantine = group.flatMap((p, i) => [...p.req.bad, ...(refusedBy[i] ?? [])]);
      if (quarantine.length > 0) {
        await this.ch.insert(
          `${this.database}.${quarantineTableName(this.table)}`,
          quarantine.map((q) => ({ source: 'http', raw: q.raw, error: q.error })),
          { settings: token === undefined ? await deduplicationOff(this.ch) : await deduplicatedBy(this.ch, quarantineDedupToken(token)) },
        );
      }
      group.forEach((p, i) => {
        const quarantined = p.req.bad.length + (refusedBy[i]?.length ?? 0);
        const result = { successful_rows: p.req.rows.length - (refusedBy[i]?.length ?? 0), quarantined_rows: quarantined };
        // Keyed answers wait until the flush has recorded them.
        if (token === undefined) p.resolve(result);
        else p.answer = result;
      });
    } catch (e) {
      for (const p of group) p.reject(e);
    }
  }
}

const ASYNC_INSERT: Settings = { async_insert: 1, wait_for_async_insert: 1 };

/**
 * Insert items; when ClickHouse refuses the batch (a value the mapper passed through), split
 * it to find the items it refuses, so one bad row never costs the batch.
 *
 * With a `token`, every insert is deduplicated by it: the whole batch by `token`, a half by
 * `token/0` or `token/1`, and so on. The split follows from the items alone, so a replay of the
 * same items inserts the same blocks under the same tokens and ClickHouse drops those that
 * landed. Without one, deduplication is off (identical blocks are legitimate data here).
 */
export async function isolateRefused<T>(
  items: T[],
  insert: (items: T[], dedup: Settings) => Promise<void>,
  dedupSettings: (token: string | undefined) => Promise<Settings>,
  token?: string,
  opts: IsolateOptions = {},
): Promise<{ inserted: number; refused: { item: T; error: string }[] }> {
  if (items.length === 0) return { inserted: 0, refused: [] };
  try {
    await insert(items, await dedupSettings(token));
    return { inserted: items.length, refused: [] };
  } catch (e) {
    if (isRetriable(e) || !refusesRows(e)) throw e;
    if (opts.viewRefusals === 'fail' && refusedByView(e)) throw new ViewRefusedError(e);
    if (items.length === 1) return { inserted: 0, refused: [{ item: items[0] as T, error: errorMessage(e).split('\n')[0] ?? 'refused by ClickHouse' }] };
    const mid = Math.ceil(items.length / 2);
    const a = await isolateRefused(items.slice(0, mid), insert, dedupSettings, token === undefined ? undefined : `${token}/0`, opts);
    const b = await isolateRefused(items.slice(mid), insert, dedupSettings, token === undefined ? undefined : `${token}/1`, opts);
    return { inserted: a.inserted + b.inserted, refused: [...a.refused, ...b.refused] };
  }
}

export interface IsolateOptions {
  /**
   * What to do when a materialized view over the table refused the rows. `split` (the default, what the
   * Kafka ingester still does) treats it like the table refusing them. `fail` throws ViewRefusedError:
   * ClickHouse had already written the block to the table itself (an insert and its views are not one
   * transaction), so inserting halves again, under other tokens, would put those rows in twice.
   */
  viewRefusals?: 'split' | 'fail';
}

/** ClickHouse's words when a dependent materialized view failed on a block the table had already taken. */
const PUSHING_TO_VIEW = 'while pushing to view';

/** Whether an insert failed in a materialized view over the table (the table itself may hold the rows). */
export const refusedByView = (e: unknown): boolean => errorMessage(e).includes(PUSHING_TO_VIEW);

/**
 * A materialized view over the table refused rows that the table itself had taken: nothing is split or
 * quarantined (that would insert them again); the request fails, and a retry under its Idempotency-Key is
 * dropped by the table (same token) and refused by the view again until its Pipe is fixed.
 */
export class ViewRefusedError extends Error {
  constructor(cause: unknown) {
    super(
      `a materialized view over the table refused these rows after ClickHouse had written them to the table (an insert and its views are not atomic), ` +
        `so they are neither split nor quarantined; fix the view's Pipe: ${errorMessage(cause).split('\n')[0] ?? ''}`,
      { cause },
    );
    this.name = 'ViewRefusedError';
  }
}

/**
 * Whether an insert failed because of the rows in it (a value the type refuses), rather than
 * because of the table (missing, read-only, no permission): only the former is split up and
 * quarantined; the latter must be retried or reported, never blamed on the data.
 */
function refusesRows(e: unknown): boolean {
  return e instanceof ClickHouseError && !isMissingDependency(e) && !REFUSES_THE_WRITER.has(e.code);
}

/** The table cannot be written, or not by this user: nothing about the rows. */
const REFUSES_THE_WRITER = new Set<number>([
  ErrorCode.READONLY,
  ErrorCode.TABLE_IS_READ_ONLY,
  ErrorCode.ACCESS_DENIED,
  ErrorCode.DATABASE_ACCESS_DENIED,
  ErrorCode.UNKNOWN_USER,
  ErrorCode.AUTHENTICATION_FAILED,
]);
