import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../../src/operator/workqueue.js';
import { waitFor } from '../../env/wait.js';

const fast = { initialMs: 5, maxMs: 40, factor: 2, jitter: 0 };

describe('WorkQueue', () => {
  it('never handles the same key twice at once, and re-runs a key added while it ran', async () => {
    const q = new WorkQueue({ concurrency: 4, backoff: fast });
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    let release: () => void = () => {};
    const first = new Promise<void>((r) => (release = r));
    const running = q.run(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      runs++;
      if (runs === 1) await first;
      active--;
    });
    q.add('ns/a');
    await waitFor('first run', () => (runs === 1 ? true : undefined));
    q.add('ns/a');
    q.add('ns/a');
    expect(runs).toBe(1);
    release();
    await waitFor('second run', () => (runs === 2 ? true : undefined));
    await q.shutDown();
    await running;
    expect(maxActive).toBe(1);
    expect(runs).toBe(2); // the two adds during the run coalesced into one re-run
  });

  it('coalesces adds of a queued key', async () => {
    const q = new WorkQueue({ concurrency: 1 });
    const seen: string[] = [];
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.depth).toBe(2);
    const running = q.run(async (k) => {
      seen.push(k);
    });
    await waitFor('both', () => (seen.length === 2 ? true : undefined));
    await q.shutDown();
    await running;
    expect(seen).toEqual(['a', 'b']);
  });

  it('retries failures with growing backoff and forgets them on success', async () => {
    const q = new WorkQueue({ concurrency: 1, backoff: fast });
    const times: number[] = [];
    const errors: number[] = [];
    const running = q.run(
      async () => {
        times.push(Date.now());
        if (times.length < 4) throw new Error('boom');
      },
      (_k, _e, delay) => errors.push(delay),
    );
    q.add('k');
    await waitFor('4 attempts', () => (times.length === 4 ? true : undefined));
    await q.shutDown();
    await running;
    expect(errors).toEqual([5, 10, 20]);
    expect(q.failureCount('k')).toBe(0);
  });

  it('caps the backoff', () => {
    const q = new WorkQueue({ backoff: fast });
    const delays = Array.from({ length: 8 }, () => q.addRateLimited('k'));
    expect(delays).toEqual([5, 10, 20, 40, 40, 40, 40, 40]);
    void q.shutDown();
  });

  it('requeues after the delay a handler asks for', async () => {
    const q = new WorkQueue({ concurrency: 1 });
    let runs = 0;
    const running = q.run(async () => {
      runs++;
      return runs < 3 ? { requeueAfterMs: 5 } : undefined;
    });
    q.add('k');
    await waitFor('3 runs', () => (runs === 3 ? true : undefined));
    await q.shutDown();
    await running;
    expect(runs).toBe(3);
  });
});
