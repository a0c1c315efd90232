// One executor per table: the lease in weir.table_locks against the real engine. A second taker
// is refused with the holder's name; takers that race agree on one winner; a dead holder's
// lease expires by the server's clock; a released one is free at once.
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireTableLock, lockHolder, TableLockedError, withTableLock } from '../../../src/execute/table-lock.js';
import { waitFor } from '../../env/wait.js';
import { uniqueDatabase } from '../../fixtures/builders.js';
import { startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';

let server: TestClickHouse;
beforeAll(async () => {
  server = await startTestClickHouse();
});
afterAll(async () => {
  await server?.stop();
});

const table = () => ({ database: uniqueDatabase('lock'), table: 'events' });
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => (e instanceof TableLockedError ? e : Promise.reject(e instanceof Error ? e : new Error(String(e)))),
  );

describe('table lock', () => {
  it('refuses a second taker naming the holder, and frees the table on release', async () => {
    const t = table();
    const a = await acquireTableLock(server.ch, t, 'operator on host-a (pid 1)');
    expect(await lockHolder(server.ch, t)).toMatchObject({ holder: 'operator on host-a (pid 1)' });
    const refused = await refusal(acquireTableLock(server.ch, t, 'weir apply on laptop (pid 2)'));
    expect(refused?.message).toMatch(
      new RegExp(`^${t.database}\\.events is being changed by operator on host-a \\(pid 1\\) since .+ \\(its lease runs to .+ unless renewed\\)`),
    );
    expect(refused?.retriable).toBe(true);
    await a.release();
    expect(await lockHolder(server.ch, t)).toBeUndefined();
    const b = await acquireTableLock(server.ch, t, 'weir apply on laptop (pid 2)');
    expect((await lockHolder(server.ch, t))?.holder).toBe('weir apply on laptop (pid 2)');
    await b.release();
  });

  it('ten takers at once: exactly one holds the table, and every other is refused naming that one', async () => {
    const t = table();
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => acquireTableLock(server.ch, t, `taker ${i}`)));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    const winner = won[0]?.status === 'fulfilled' ? won[0].value : undefined;
    const losers = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    expect(losers.every((e) => e instanceof TableLockedError && e.holder.holder === winner?.holder)).toBe(true);
    expect((await lockHolder(server.ch, t))?.holder).toBe(winner?.holder);
    await winner?.release();
  });

  it('renews while held, so a lease longer than its TTL stays; a holder that died is waited out by the server clock', async () => {
    const t = table();
    await withTableLock(
      server.ch,
      t,
      'long job',
      async () => {
        const first = await lockHolder(server.ch, t);
        // Four TTLs later the lease is still this holder's: it was renewed, not re-taken.
        await waitFor('four lease periods', async () => {
          const now = await lockHolder(server.ch, t);
          return now && first && Date.parse(now.expiresAt) > Date.parse(first.expiresAt) + 3000 ? now : undefined;
        });
        expect(await lockHolder(server.ch, t)).toMatchObject({ holder: 'long job', claimId: first?.claimId, claimedAt: first?.claimedAt });
        expect(await refusal(acquireTableLock(server.ch, t, 'other'))).toBeInstanceOf(TableLockedError);
      },
      { ttlMs: 1000 },
    );
    // What a SIGKILLed holder leaves: a claim nobody renews.
    await server.ch.command(
      `INSERT INTO weir.table_locks (database, table, claim_id, holder, claimed_at, released, expires_at)
       VALUES ('${t.database}', 'events', 'dead-claim', 'operator on gone (pid 9)', now64(3), 0, now64(3) + toIntervalMillisecond(500))`,
    );
    expect((await refusal(acquireTableLock(server.ch, t, 'next leader')))?.holder.holder).toBe('operator on gone (pid 9)');
    const next = await waitFor('the dead holder’s lease to expire', () => acquireTableLock(server.ch, t, 'next leader').catch(() => undefined));
    expect((await lockHolder(server.ch, t))?.holder).toBe('next leader');
    await next.release();
  });

  it('a claim of a process on this host that is gone is released at once (a SIGKILLed weir apply), not waited out', async () => {
    const t = table();
    // Above PID_MAX_LIMIT (2^22): no process can have it (a pid of an exited child could be taken again on a busy machine).
    const gone = 2 ** 22 + 1;
    const dead = `weir apply on ${hostname()} (pid ${gone})`;
    await server.ch.command(
      `INSERT INTO weir.table_locks (database, table, claim_id, holder, claimed_at, released, expires_at)
       VALUES ('${t.database}', 'events', 'killed-claim', '${dead}', now64(3), 0, now64(3) + toIntervalSecond(600))`,
    );
    expect((await lockHolder(server.ch, t))?.holder).toBe(dead);
    const lock = await acquireTableLock(server.ch, t, 'weir apply again');
    expect((await lockHolder(server.ch, t))?.holder).toBe('weir apply again');
    await lock.release();
    // A live process on this host (this one) is waited for.
    const alive = await acquireTableLock(server.ch, t, `weir dev on ${hostname()} (pid ${process.pid})`);
    expect(await refusal(acquireTableLock(server.ch, t, 'another'))).toBeInstanceOf(TableLockedError);
    await alive.release();
  });
});
