// The fence: how the migration executor gets every weir-managed writer of a table to pause
// at a batch boundary, and knows when they all have. One mechanism for the cluster and for
// `weir dev`: rows in weir's own ClickHouse tables, read with the server's clock.
//
// Writers register (heartbeat) before their first batch and before each batch ask whether a
// fence is up on their table; if so they acknowledge and wait, heartbeating, until it is
// released or expires. The executor raises the fence, waits until every live writer has
// acknowledged (a writer that stops heartbeating is dead and not waited for), runs its
// critical section, and releases. A fence expires on its own, so a crashed executor cannot
// stop writers for longer than the fence TTL.
import { randomBytes } from 'node:crypto';
import { sleep } from '../runtime/backoff.js';
import { WeirError } from '../runtime/errors.js';
import type { TableRef } from '../plan/catalog.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import { ensureSystemTables } from './system-tables.js';

export interface FenceTiming {
  /** A writer whose last heartbeat is older than this is dead. */
  livenessMs: number;
  /** A fence not released within this long expires and writers go on. */
  fenceTtlMs: number;
  /** How long the executor waits for acknowledgements before giving up (and retrying later). */
  ackTimeoutMs: number;
  pollMs: number;
}

export const DEFAULT_FENCE_TIMING: FenceTiming = { livenessMs: 5_000, fenceTtlMs: 30_000, ackTimeoutMs: 10_000, pollMs: 20 };

/** Writers did not pause in time, or the fence was held too long: the migration tries again later. */
export class FenceTimeoutError extends WeirError {
  constructor(message: string) {
    super(message, { retriable: true, reason: 'FenceTimeout' });
  }
}

const tupleParams = (tables: TableRef[]) => ({ dbs: tables.map((t) => t.database), tbls: tables.map((t) => t.table) });
const TABLE_MATCH = 'arrayExists((d, t) -> d = database AND t = table, {dbs:Array(String)}, {tbls:Array(String)})';

/** The writer's side: call `beforeBatch` at every batch boundary (and `afterBatch` after it, when using keepAlive). */
export class FenceParticipant {
  private lastHeartbeat = 0;
  /** Longest time a batch waited at a fence, for metrics and benchmarks. */
  longestPauseMs = 0;

  constructor(
    private readonly ch: ClickHouse,
    readonly writerId: string,
    private readonly tables: TableRef[],
    private readonly timing: FenceTiming = DEFAULT_FENCE_TIMING,
  ) {}

  static newId(prefix: string): string {
    return `${prefix}-${randomBytes(6).toString('hex')}`;
  }

  async heartbeat(): Promise<void> {
    await this.ch.insert(
      'weir.writers',
      this.tables.map((t) => ({ writer_id: this.writerId, database: t.database, table: t.table })),
    );
    this.lastHeartbeat = Date.now();
  }

  /**
   * Batches between beforeBatch and afterBatch (a writer may write several partitions at once):
   * while any is open an insert may be in flight, so keepAlive must not acknowledge fences.
   */
  private openBatches = 0;

  /** A batch that passed beforeBatch is written (or abandoned). */
  afterBatch(): void {
    this.openBatches = Math.max(0, this.openBatches - 1);
  }

  /** Wait out any fence on our tables. Returns how long the batch was held. */
  async beforeBatch(): Promise<number> {
    this.openBatches++;
    try {
      return await this.waitOutFences();
    } catch (e) {
      this.openBatches--;
      throw e;
    }
  }

  private async waitOutFences(): Promise<number> {
    if (this.lastHeartbeat === 0) await ensureSystemTables(this.ch);
    if (Date.now() - this.lastHeartbeat > this.timing.livenessMs / 3) await this.heartbeat();
    let fences = await this.activeFences();
    if (fences.length === 0) return 0;
    const started = Date.now();
    await this.ch.insert(
      'weir.fence_acks',
      fences.map((fence_id) => ({ fence_id, writer_id: this.writerId })),
    );
    while (fences.length > 0) {
      await sleep(this.timing.pollMs);
      if (Date.now() - this.lastHeartbeat > this.timing.livenessMs / 3) await this.heartbeat();
      const still = await this.activeFences();
      const fresh = still.filter((f) => !fences.includes(f));
      if (fresh.length > 0)
        await this.ch.insert(
          'weir.fence_acks',
          fresh.map((fence_id) => ({ fence_id, writer_id: this.writerId })),
        );
      fences = still;
    }
    const paused = Date.now() - started;
    this.longestPauseMs = Math.max(this.longestPauseMs, paused);
    return paused;
  }

  /**
   * Heartbeat on a timer too, not only at batch boundaries: a writer whose insert waits on a
   * busy server (behind a migration's backfill, say) is alive, and the executor must wait for
   * its acknowledgement rather than count it dead and proceed. Returns the function that stops it.
   */
  keepAlive(): () => void {
    let inFlight = false;
    const acked = new Set<string>();
    const tick = async () => {
      await this.heartbeat();
      // Between batches, a raised fence is acknowledged here: the next batch waits in beforeBatch anyway.
      if (this.openBatches > 0) return;
      const fences = (await this.activeFences()).filter((f) => !acked.has(f));
      if (fences.length === 0 || this.openBatches > 0) return;
      await this.ch.insert(
        'weir.fence_acks',
        fences.map((fence_id) => ({ fence_id, writer_id: this.writerId })),
      );
      for (const f of fences) acked.add(f);
    };
    const timer = setInterval(
      () => {
        if (inFlight || this.lastHeartbeat === 0) return;
        inFlight = true;
        tick()
          .catch(() => undefined)
          .finally(() => {
            inFlight = false;
          });
      },
      Math.max(50, Math.floor(this.timing.livenessMs / 4)),
    );
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * Stop being waited for (a clean shutdown): a last heartbeat marked gone. The executor reads the
   * latest heartbeat's mark, so a writer that left is not waited for (a heartbeat dated back, as
   * before, lost to the earlier live ones under max(heartbeat_at): a left writer counted as live
   * until its liveness ran out). A heartbeat after it makes the writer live again.
   */
  async leave(): Promise<void> {
    await this.ch.command(
      `INSERT INTO weir.writers (writer_id, database, table, heartbeat_at, gone)
       SELECT {w:String}, d, t, now64(3), 1 FROM (SELECT arrayJoin(arrayZip({dbs:Array(String)}, {tbls:Array(String)})) AS x, x.1 AS d, x.2 AS t)`,
      { params: { w: this.writerId, ...tupleParams(this.tables) } },
    );
    // A batch after leaving heartbeats first, so the writer is waited for again before it writes.
    this.lastHeartbeat = 1;
  }

  private async activeFences(): Promise<string[]> {
    const rows = await this.ch.query<{ fence_id: string }>(
      `SELECT fence_id FROM weir.fences WHERE ${TABLE_MATCH}
       GROUP BY database, table, fence_id
       HAVING argMax(state, updated_at) = 'requested' AND argMax(expires_at, updated_at) > now64(3)`,
      { params: tupleParams(this.tables) },
    );
    return [...new Set(rows.map((r) => r.fence_id))];
  }
}

/**
 * Kafka batches that may have landed in one of `tables` without their offsets being committed:
 * ledger ranges (weir.ingest_batches) at or past their partition's committed offset. A live
 * writer has none while it is paused at a fence (its ledger row, insert and commit all happen
 * between beforeBatch and afterBatch), so these belong to a writer that died; its partition's
 * next owner replays them, and ClickHouse drops the blocks that landed by their token. That only
 * works against the table they landed in: a table swapped before the replay would take them twice.
 */
async function unreplayedBatches(ch: ClickHouse, tables: TableRef[]): Promise<number> {
  const rows = await ch.query<{ n: string }>(
    `SELECT count() AS n FROM weir.ingest_batches AS b
     LEFT JOIN (SELECT group_id, topic, partition, argMax(committed_offset, updated_at) AS committed
                FROM weir.ingest_progress GROUP BY group_id, topic, partition) AS p
       ON b.group_id = p.group_id AND b.topic = p.topic AND b.partition = p.partition
     WHERE arrayExists((d, t) -> d = b.database AND t = b.table, {dbs:Array(String)}, {tbls:Array(String)})
       AND b.last_offset >= p.committed`,
    { params: tupleParams(tables) },
  );
  return Number(rows[0]?.n ?? 0);
}

/** Under a raised fence: fail (retriably) while a dead ingester's batches wait to be replayed. */
async function assertReplaysDone(ch: ClickHouse, tables: TableRef[]): Promise<void> {
  const pending = await unreplayedBatches(ch, tables);
  if (pending > 0) {
    throw new FenceTimeoutError(
      `${pending} Kafka batch(es) of an ingester that stopped are not yet replayed; the swap waits for the partition's next owner to replay them`,
    );
  }
}

export interface FenceReport {
  fenceId: string;
  writers: string[];
  /** From raising the fence to every live writer acknowledging. */
  waitedMs: number;
  /** From raising to releasing: what writers experienced at most. */
  heldMs: number;
}

/**
 * The executor's side: raise a fence on `tables`, wait for every live writer to pause, run
 * `critical` (which can call `assertHeld` before an irreversible step), release.
 */
export async function withFence<T>(
  ch: ClickHouse,
  tables: TableRef[],
  critical: (assertHeld: () => Promise<void>) => Promise<T>,
  timing: FenceTiming = DEFAULT_FENCE_TIMING,
): Promise<{ result: T; report: FenceReport }> {
  await ensureSystemTables(ch);
  const fenceId = FenceParticipant.newId('fence');
  const raisedAt = Date.now();
  const setState = (state: 'requested' | 'released', ttlMs: number) =>
    ch.command(
      `INSERT INTO weir.fences (database, table, fence_id, state, expires_at, updated_at)
       SELECT x.1, x.2, {id:String}, {state:String}, now64(3) + toIntervalMillisecond({ttl:UInt32}), now64(3)
       FROM (SELECT arrayJoin(arrayZip({dbs:Array(String)}, {tbls:Array(String)})) AS x)`,
      { params: { id: fenceId, state, ttl: ttlMs, ...tupleParams(tables) } },
    );
  await setState('requested', timing.fenceTtlMs);
  try {
    let writers: string[] = [];
    for (;;) {
      const rows = await ch.query<{ writer_id: string; acked: number }>(
        `SELECT w.writer_id AS writer_id, w.writer_id IN (SELECT writer_id FROM weir.fence_acks WHERE fence_id = {id:String}) AS acked
         FROM (SELECT writer_id, max(heartbeat_at) AS hb, argMax(gone, heartbeat_at) AS gone FROM weir.writers WHERE ${TABLE_MATCH} GROUP BY writer_id) AS w
         WHERE w.hb > now64(3) - toIntervalMillisecond({live:UInt32}) AND w.gone = 0`,
        { params: { id: fenceId, live: timing.livenessMs, ...tupleParams(tables) } },
      );
      writers = rows.map((r) => r.writer_id);
      if (rows.every((r) => Number(r.acked) === 1)) {
        await assertReplaysDone(ch, tables);
        break;
      }
      if (Date.now() - raisedAt > timing.ackTimeoutMs) {
        const waiting = rows.filter((r) => Number(r.acked) !== 1).map((r) => r.writer_id);
        throw new FenceTimeoutError(`writers did not pause within ${timing.ackTimeoutMs} ms: ${waiting.join(', ')}`);
      }
      await sleep(timing.pollMs);
    }
    const waitedMs = Date.now() - raisedAt;
    // Irreversible steps need the fence to outlive them: fail (and retry) rather than race an expiry.
    const assertHeld = (): Promise<void> =>
      Date.now() - raisedAt > timing.fenceTtlMs / 2
        ? Promise.reject(new FenceTimeoutError('fence held too long; retrying the critical section'))
        : Promise.resolve();
    const result = await critical(assertHeld);
    return { result, report: { fenceId, writers, waitedMs, heldMs: Date.now() - raisedAt } };
  } finally {
    await setState('released', 0);
  }
}
