// The fence between weir-managed writers and the migration executor, against the real engine:
// an idle writer is acknowledged by its heartbeat timer, one with a batch in flight is not, and
// a batch that starts during a fence waits for its release.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FenceParticipant, FenceTimeoutError, withFence, type FenceTiming } from '../../../src/execute/fence.js';
import { waitFor } from '../../env/wait.js';
import { uniqueDatabase } from '../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';

const TIMING: FenceTiming = { livenessMs: 1000, fenceTtlMs: 4000, ackTimeoutMs: 1500, pollMs: 10 };
const table = { database: uniqueDatabase('fencing'), table: 'events' };

let server: TestClickHouse;
beforeAll(async () => {
  server = await startTestClickHouse();
});
afterAll(async () => {
  await server?.stop();
});

describe('fence', () => {
  it('acknowledges for an idle writer from its heartbeat timer, so a migration need not wait for its next batch', async () => {
    const writer = new FenceParticipant(server.ch, FenceParticipant.newId('idle'), [table], TIMING);
    const stop = writer.keepAlive();
    await writer.beforeBatch();
    writer.afterBatch();
    const { report } = await withFence(server.ch, [table], async () => 'swapped', TIMING);
    expect(report.writers).toEqual([writer.writerId]);
    stop();
  });

  it('does not wait for a writer that left: its last heartbeat says so, even within its liveness', async () => {
    const t = { ...table, table: 'left' };
    // Liveness far longer than the ack timeout: a writer still counted as live would time the fence out.
    const timing: FenceTiming = { ...TIMING, livenessMs: 60_000, ackTimeoutMs: 1000 };
    // The writer keeps its own timing (keepAlive acknowledges every 250 ms); only the executor's liveness is long.
    const writer = new FenceParticipant(server.ch, FenceParticipant.newId('left'), [t], TIMING);
    await writer.beforeBatch();
    writer.afterBatch();
    await writer.leave();
    const { report } = await withFence(server.ch, [t], async () => 'swapped', timing);
    expect(report.writers).toEqual([]);
    // A heartbeat after leaving makes it a live writer again, waited for.
    const back = writer.keepAlive();
    await writer.beforeBatch();
    writer.afterBatch();
    const again = await withFence(server.ch, [t], async () => 'swapped', timing);
    expect(again.report.writers).toEqual([writer.writerId]);
    back();
  });

  it('does not acknowledge while a batch is open, and the fence times out rather than race the insert', async () => {
    const writer = new FenceParticipant(server.ch, FenceParticipant.newId('busy'), [{ ...table, table: 'busy' }], TIMING);
    const stop = writer.keepAlive();
    await writer.beforeBatch(); // an insert is "in flight" from here on
    let ran = false;
    await expect(withFence(server.ch, [{ ...table, table: 'busy' }], async () => (ran = true), TIMING)).rejects.toBeInstanceOf(FenceTimeoutError);
    expect(ran).toBe(false);
    writer.afterBatch();
    const { report } = await withFence(server.ch, [{ ...table, table: 'busy' }], async () => (ran = true), TIMING);
    expect(ran).toBe(true);
    expect(report.writers).toEqual([writer.writerId]);
    stop();
  });

  it('holds a batch that starts during a fence until the fence is released', async () => {
    const t = { ...table, table: 'held' };
    const writer = new FenceParticipant(server.ch, FenceParticipant.newId('held'), [t], TIMING);
    const stop = writer.keepAlive();
    await writer.beforeBatch();
    writer.afterBatch();
    let batchPassedAt = 0;
    let releasedAt = 0;
    let batchStartedAt = 0;
    let batch: Promise<unknown> = Promise.resolve();
    // The writer's acknowledgements: one from keepAlive before the critical section, one from the batch when it saw the fence.
    const acks = () => count(server.ch, `SELECT count() AS n FROM weir.fence_acks WHERE writer_id = '${writer.writerId}'`);
    await withFence(
      server.ch,
      [t],
      async () => {
        batchStartedAt = Date.now();
        batch = writer.beforeBatch().then(() => (batchPassedAt = Date.now()));
        await waitFor('the batch waiting at the fence', async () => ((await acks()) === 2 ? true : undefined));
        expect(batchPassedAt).toBe(0);
        releasedAt = Date.now();
      },
      TIMING,
    );
    await batch;
    expect(batchPassedAt).toBeGreaterThanOrEqual(releasedAt);
    // The pause is counted from when the writer saw the fence, so it lies within the batch's wait (not a timing bound).
    expect(writer.longestPauseMs).toBeGreaterThan(0);
    expect(writer.longestPauseMs).toBeLessThanOrEqual(batchPassedAt - batchStartedAt);
    writer.afterBatch();
    stop();
  });
});
