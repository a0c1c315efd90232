// One executor per table, ever: a lease in weir.table_locks, beside the migration ledger, whose
// holder and expiry anyone can read. The operator's migration jobs, a second operator replica
// that became leader, and a `weir apply` run by hand all take it before changing a table; a
// second taker is refused with the holder's name and when its lease ends.
//
// ClickHouse has no compare-and-set without Keeper, so taking is insert-then-read: a taker that
// finds the table free writes a claim (a fresh id, stamped with the server's clock) and reads the
// live claims back; the earliest live claim wins (ties by id), so two takers that raced agree on
// one winner whatever order their reads come in, and the loser withdraws. Claims are never merged
// away (plain MergeTree; rows only age out), so the winner cannot change under a merge. The
// holder renews its claim while it works; a holder that died stops renewing and its claim
// expires, by the server's clock, after the TTL. On a replicated cluster the reads must see the
// inserts (insert_quorum / select_sequential_consistency): not testable here, where there is one server.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { ClickHouse } from '../clickhouse/connection.js';
import type { TableRef } from '../plan/catalog.js';
import { WeirError } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import { errorMessage } from '../runtime/log.js';

/** A lease not renewed for this long is free: a dead executor holds a table no longer than this (WEIR_TABLE_LOCK_TTL_MS; tests shorten it). */
export const TABLE_LOCK_TTL_MS = Number(process.env.WEIR_TABLE_LOCK_TTL_MS) > 0 ? Number(process.env.WEIR_TABLE_LOCK_TTL_MS) : 30_000;

const CREATE = `CREATE TABLE IF NOT EXISTS weir.table_locks (
    database String, table String, claim_id String, holder String, claimed_at DateTime64(3, 'UTC'), released UInt8,
    expires_at DateTime64(3, 'UTC'), updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
  ) ENGINE = MergeTree ORDER BY (database, table, claim_id, updated_at)
  TTL toDateTime(updated_at) + INTERVAL 1 DAY
  COMMENT 'weir: which executor holds each table (one at a time), and until when'`;

/** Who holds a table: the earliest claim still live. */
export interface LockHolder {
  holder: string;
  claimId: string;
  /** When the claim was first made, and when it ends unless renewed (ISO, the server's clock). */
  claimedAt: string;
  expiresAt: string;
}

/** Another executor holds the table: wait for it (retriable) or stop it. */
export class TableLockedError extends WeirError {
  constructor(
    readonly table: string,
    readonly holder: LockHolder,
  ) {
    super(
      `${table} is being changed by ${holder.holder} since ${holder.claimedAt} (its lease runs to ${holder.expiresAt} unless renewed); ` +
        'one executor changes a table at a time: wait for it to finish, or stop it and let its lease expire',
      { retriable: true, reason: 'TableLocked' },
    );
  }
}

/** A name for this process as lock holder: what it is, the host and the pid, e.g. "operator on weir-7f9c (pid 1)". */
export const holderName = (role: string): string => `${role} on ${hostname()} (pid ${process.pid})`;

/** The holder names a process on this host (holderName's "on <host> (pid N)") that no longer runs. */
export function deadLocalHolder(holder: string): boolean {
  const m = / on (\S+) \(pid (\d+)\)/.exec(holder);
  if (m?.[1] !== hostname()) return false;
  try {
    process.kill(Number(m[2]), 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

const ensured = new WeakSet<ClickHouse>();

async function ensureLockTable(ch: ClickHouse): Promise<void> {
  if (ensured.has(ch)) return;
  await ch.command('CREATE DATABASE IF NOT EXISTS weir');
  await ch.command(CREATE);
  ensured.add(ch);
}

const iso = (t: string): string => `${t.replace(' ', 'T')}Z`;

/** The table's holder now: the earliest claim neither released nor expired, if any. */
export async function lockHolder(ch: ClickHouse, t: TableRef): Promise<LockHolder | undefined> {
  await ensureLockTable(ch);
  const [row] = await ch.query<{ claim_id: string; holder: string; claimed_at: string; expires_at: string }>(
    `SELECT claim_id, any(holder) AS holder, min(claimed_at) AS claimed_at, argMax(expires_at, updated_at) AS expires_at
     FROM weir.table_locks WHERE database = {db:String} AND table = {t:String}
     GROUP BY claim_id HAVING argMax(released, updated_at) = 0 AND expires_at > now64(3)
     ORDER BY claimed_at, claim_id LIMIT 1`,
    { params: { db: t.database, t: t.table } },
  );
  return row ? { holder: row.holder, claimId: row.claim_id, claimedAt: iso(row.claimed_at), expiresAt: iso(row.expires_at) } : undefined;
}

/** Write a claim (or its renewal, or its release): claimed_at is the server's clock at the first write, kept after. */
async function claim(ch: ClickHouse, t: TableRef, c: { id: string; holder: string; claimedAt?: string }, ttlMs: number, released: boolean): Promise<void> {
  const at = c.claimedAt ? '{at:DateTime64(3)}' : 'now64(3)';
  await ch.command(
    `INSERT INTO weir.table_locks (database, table, claim_id, holder, claimed_at, released, expires_at)
     SELECT {db:String}, {t:String}, {id:String}, {h:String}, ${at}, {r:UInt8}, now64(3) + toIntervalMillisecond({ttl:UInt32})`,
    {
      params: {
        db: t.database,
        t: t.table,
        id: c.id,
        h: c.holder,
        r: released ? 1 : 0,
        ttl: ttlMs,
        ...(c.claimedAt ? { at: c.claimedAt.replace('T', ' ').replace('Z', '') } : {}),
      },
    },
  );
}

/** A held table: renewed in the background until released. */
export interface TableLock {
  readonly table: TableRef;
  readonly holder: string;
  release(): Promise<void>;
}

export interface LockOptions {
  ttlMs?: number;
  log?: Logger;
}

/**
 * Take the table for `holder`, or throw TableLockedError naming whoever has it. A holder that
 * takes a table it already holds (a resumed job of the same process) renews its lease.
 */
export async function acquireTableLock(ch: ClickHouse, t: TableRef, holder: string, opts: LockOptions = {}): Promise<TableLock> {
  const ttlMs = opts.ttlMs ?? TABLE_LOCK_TTL_MS;
  const table = `${t.database}.${t.table}`;
  let before = await lockHolder(ch, t);
  // A holder on this machine whose process is gone (a SIGKILLed weir apply, a killed local operator) is released at once, not waited out.
  if (before && before.holder !== holder && deadLocalHolder(before.holder)) {
    opts.log?.warn('released the table lock of a process that is gone', { table, holder: before.holder });
    await claim(ch, t, { id: before.claimId, holder: before.holder, claimedAt: before.claimedAt }, 0, true);
    before = await lockHolder(ch, t);
  }
  if (before && before.holder !== holder) throw new TableLockedError(table, before);
  const mine: { id: string; holder: string; claimedAt?: string } = { id: randomUUID(), holder };
  await claim(ch, t, mine, ttlMs, false);
  const winner = await lockHolder(ch, t);
  if (winner && winner.holder !== holder) {
    await claim(ch, t, mine, 0, true); // withdrawn: a racing taker claimed first
    throw new TableLockedError(table, winner);
  }
  // Renewals keep the winning claim's time (this holder's earlier claim, when it had one): the earliest live claim wins.
  mine.claimedAt = winner?.claimedAt ?? new Date().toISOString();
  let released = false;
  let renewing: Promise<void> = Promise.resolve();
  const timer = setInterval(
    () => {
      renewing = claim(ch, t, mine, ttlMs, false).catch((e: unknown) => {
        opts.log?.warn('could not renew the table lock; it expires unless a later renewal lands', { table, holder, error: errorMessage(e) });
      });
    },
    Math.max(50, Math.floor(ttlMs / 3)),
  );
  timer.unref();
  return {
    table: t,
    holder,
    release: async () => {
      if (released) return;
      released = true;
      clearInterval(timer);
      await renewing;
      await claim(ch, t, mine, 0, true);
    },
  };
}

/** Run `work` holding the table; the lock is released however work ends (a killed process leaves it to expire). */
export async function withTableLock<T>(ch: ClickHouse, t: TableRef, holder: string, work: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const lock = await acquireTableLock(ch, t, holder, opts);
  try {
    return await work();
  } finally {
    await lock
      .release()
      .catch((e: unknown) =>
        opts.log?.warn('could not release the table lock; it expires by itself', { table: `${t.database}.${t.table}`, error: errorMessage(e) }),
      );
  }
}
