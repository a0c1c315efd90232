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
import type { TableRef } from './catalog.js';
import type { ClickHouse } from './connection.js';
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

export class FenceTimeoutError extends Error {
  readonly retriable = true;
}

const tupleParams = (tables: TableRef[]) => ({ dbs: tables.map((t) => t.database), tbls: tables.map((t) => t.table) });
const TABLE_MATCH = 'arrayExists((d, t) -> d = database AND t = table, {dbs:Array(String)}, {tbls:Array(String)})';

/** The writer's side: call `beforeBatch` at every batch boundary. */
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

  /** Wait out any fence on our tables. Returns how long the batch was held. */
  async beforeBatch(): Promise<number> {
    if (this.lastHeartbeat === 0) await ensureSystemTables(this.ch);
    if (Date.now() - this.lastHeartbeat > this.timing.livenessMs / 3) await this.heartbeat();
    let fences = await this.activeFences();
    if (fences.length === 0) return 0;
    const started = Date.now();
    await this.ch.insert('weir.fence_acks', fences.map((fence_id) => ({ fence_id, writer_id: this.writerId })));
    while (fences.length > 0) {
      await sleep(this.timing.pollMs);
      if (Date.now() - this.lastHeartbeat > this.timing.livenessMs / 3) await this.heartbeat();
      const still = await this.activeFences();
      const fresh = still.filter((f) => !fences.includes(f));
      if (fresh.length > 0) await this.ch.insert('weir.fence_acks', fresh.map((fence_id) => ({ fence_id, writer_id: this.writerId })));
      fences = still;
    }
    const paused = Date.now() - started;
    this.longestPauseMs = Math.max(this.longestPauseMs, paused);
    return paused;
  }

  /** Stop being waited for (a clean shutdown): a heartbeat far in the past. */
  async leave(): Promise<void> {
    await this.ch.command(
      `INSERT INTO weir.writers (writer_id, database, table, heartbeat_at)
       SELECT {w:String}, d, t, now64(3) - INTERVAL 1 DAY FROM (SELECT arrayJoin(arrayZip({dbs:Array(String)}, {tbls:Array(String)})) AS x, x.1 AS d, x.2 AS t)`,
      { params: { w: this.writerId, ...tupleParams(this.tables) } },
    );
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
         FROM (SELECT writer_id, max(heartbeat_at) AS hb FROM weir.writers WHERE ${TABLE_MATCH} GROUP BY writer_id) AS w
         WHERE w.hb > now64(3) - toIntervalMillisecond({live:UInt32})`,
        { params: { id: fenceId, live: timing.livenessMs, ...tupleParams(tables) } },
      );
      writers = rows.map((r) => r.writer_id);
      if (rows.every((r) => Number(r.acked) === 1)) break;
      if (Date.now() - raisedAt > timing.ackTimeoutMs) {
        const waiting = rows.filter((r) => Number(r.acked) !== 1).map((r) => r.writer_id);
        throw new FenceTimeoutError(`writers did not pause within ${timing.ackTimeoutMs} ms: ${waiting.join(', ')}`);
      }
      await sleep(timing.pollMs);
    }
    const waitedMs = Date.now() - raisedAt;
    const assertHeld = async () => {
      // Irreversible steps need the fence to outlive them: fail (and retry) rather than race an expiry.
      if (Date.now() - raisedAt > timing.fenceTtlMs / 2) throw new FenceTimeoutError('fence held too long; retrying the critical section');
    };
    const result = await critical(assertHeld);
    return { result, report: { fenceId, writers, waitedMs, heldMs: Date.now() - raisedAt } };
  } finally {
    await setState('released', 0);
  }
}
