import { describe, expect, it } from 'vitest';
import { backoffDelay, retry } from '../../../src/runtime/backoff.js';
import { isRetriable, RetriesExhaustedError, WeirError } from '../../../src/runtime/errors.js';
import { canonicalJson, stableHash } from '../../../src/runtime/hash.js';

describe('backoffDelay', () => {
  const policy = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
  it('grows exponentially and caps', () => {
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, policy, () => 0))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
  it('jitters downwards by at most the jitter fraction', () => {
    expect(backoffDelay(3, policy, () => 1)).toBe(400);
    expect(backoffDelay(3, policy, () => 0.5)).toBe(600);
  });
});

const busy = () => new WeirError('busy', { retriable: true, reason: 'Busy' });

describe('retry', () => {
  const policy = { initialMs: 1, maxMs: 2, factor: 2, jitter: 0 };
  it('retries retriable errors until success', async () => {
    let n = 0;
    const value = await retry(
      async () => {
        if (++n < 3) throw busy();
        return 'ok';
      },
      { policy },
    );
    expect(value).toBe('ok');
    expect(n).toBe(3);
  });

  it('does not retry errors that are not retriable, and rejects with the error itself', async () => {
    let n = 0;
    const syntax = new Error('syntax error');
    const caught = await retry(
      async () => {
        n++;
        throw syntax;
      },
      { policy },
    ).catch((e: unknown) => e);
    expect(caught).toBe(syntax);
    expect(n).toBe(1);
  });

  it('gives up after the retry budget with RetriesExhaustedError: the attempt count and the last error', async () => {
    let n = 0;
    const errors: WeirError[] = [];
    const caught = await retry(
      async () => {
        n++;
        const e = busy();
        errors.push(e);
        throw e;
      },
      { policy, retries: 2 },
    ).catch((e: unknown) => e);
    expect(n).toBe(3);
    expect(caught).toBeInstanceOf(RetriesExhaustedError);
    const exhausted = caught as RetriesExhaustedError;
    expect(exhausted.attempts).toBe(3);
    expect(exhausted.lastError).toBe(errors[2]);
    expect(exhausted.cause).toBe(errors[2]);
    expect(exhausted.message).toBe('gave up after 3 attempt(s): busy');
    expect(exhausted.retriable).toBe(false);
    expect(exhausted.reason).toBe('RetriesExhausted');
    expect(exhausted).toBeInstanceOf(WeirError);
  });

  it('stops at once on bail, with the error given, even one that says it is retriable', async () => {
    let n = 0;
    const fatal = busy();
    const caught = await retry(
      async (attempt, bail) => {
        n++;
        if (attempt === 1) bail(fatal);
        throw busy();
      },
      { policy, retries: 10 },
    ).catch((e: unknown) => e);
    expect(caught).toBe(fatal);
    expect(n).toBe(2);
  });

  it('stops on bail even when the attempt catches it and throws something else', async () => {
    let n = 0;
    const fatal = new Error('fatal');
    const caught = await retry(
      async (_attempt, bail) => {
        n++;
        try {
          bail(fatal);
        } catch {
          throw busy();
        }
      },
      { policy, retries: 10 },
    ).catch((e: unknown) => e);
    expect(caught).toBe(fatal);
    expect(n).toBe(1);
  });

  it('stops waiting when its signal aborts, rejecting with the signal reason, and tries no more', async () => {
    const controller = new AbortController();
    const stopped = new Error('stopped');
    let n = 0;
    const running = retry(
      async () => {
        n++;
        throw busy();
      },
      // A wait far longer than the test: only the abort can end it.
      {
        policy: { initialMs: 3_600_000, maxMs: 3_600_000, factor: 1, jitter: 0 },
        retries: Infinity,
        signal: controller.signal,
        onRetry: () => controller.abort(stopped),
      },
    );
    expect(await running.catch((e: unknown) => e)).toBe(stopped);
    expect(n).toBe(1);
  });

  it('makes no attempt when its signal is already aborted', async () => {
    const controller = new AbortController();
    const stopped = new Error('stopped');
    controller.abort(stopped);
    let n = 0;
    const caught = await retry(
      async () => {
        n++;
        return 'ok';
      },
      { signal: controller.signal },
    ).catch((e: unknown) => e);
    expect(caught).toBe(stopped);
    expect(n).toBe(0);
  });

  it('rejects with the signal reason when aborted during an attempt that then fails', async () => {
    const controller = new AbortController();
    const stopped = new Error('stopped');
    const caught = await retry(
      async () => {
        controller.abort(stopped);
        throw busy();
      },
      { policy, retries: 10, signal: controller.signal },
    ).catch((e: unknown) => e);
    expect(caught).toBe(stopped);
  });

  it('waits backoffDelay with the injected randomness: exponential, capped, jitter only downwards', async () => {
    const bounded = { initialMs: 1, maxMs: 8, factor: 2, jitter: 0.5 };
    const delays = async (random: () => number) => {
      const seen: number[] = [];
      await retry(
        async () => {
          throw busy();
        },
        { policy: bounded, retries: 6, random, onRetry: (_e, attempt, delayMs) => seen.push(attempt, delayMs) },
      ).catch(() => undefined);
      return seen;
    };
    // [attempt, delay] pairs: no jitter at random() = 0, the full half taken off at random() = 1.
    expect(await delays(() => 0)).toEqual([0, 1, 1, 2, 2, 4, 3, 8, 4, 8, 5, 8]);
    expect(await delays(() => 1)).toEqual([0, 1, 1, 1, 2, 2, 3, 4, 4, 4, 5, 4]);
  });

  it('passes each attempt its 0-based number', async () => {
    const attempts: number[] = [];
    await retry(
      async (attempt) => {
        attempts.push(attempt);
        if (attempt < 3) throw busy();
      },
      { policy },
    );
    expect(attempts).toEqual([0, 1, 2, 3]);
  });
});

describe('WeirError', () => {
  it('is not retriable unless it says so, and names its reason after the class when not given one', () => {
    class FenceStuckError extends WeirError {}
    const e = new FenceStuckError('stuck');
    expect(e.retriable).toBe(false);
    expect(e.reason).toBe('FenceStuck');
    expect(e.name).toBe('FenceStuckError');
    expect(isRetriable(e)).toBe(false);
    expect(isRetriable(new WeirError('x', { retriable: true }))).toBe(true);
  });

  it('reads the flag of errors from elsewhere (kafkajs sets one), and nothing else', () => {
    expect(isRetriable(Object.assign(new Error('kafka'), { retriable: true }))).toBe(true);
    expect(isRetriable(Object.assign(new Error('kafka'), { retriable: 'yes' }))).toBe(false);
    expect(isRetriable(new Error('plain'))).toBe(false);
    expect(isRetriable(undefined)).toBe(false);
    expect(isRetriable('retriable')).toBe(false);
  });
});

describe('stableHash', () => {
  it('ignores key order and undefined fields', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 2], c: undefined } })).toBe('{"a":{"d":[1,2]},"b":1}');
    expect(stableHash({ a: 1, b: 2 })).toBe(stableHash({ b: 2, a: 1 }));
    expect(stableHash({ a: 1 })).not.toBe(stableHash({ a: 2 }));
  });
});
