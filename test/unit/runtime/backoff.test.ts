import { describe, expect, it } from 'vitest';
import { backoffDelay, retry } from '../../../src/runtime/backoff.js';
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

describe('retry', () => {
  const policy = { initialMs: 1, maxMs: 2, factor: 2, jitter: 0 };
  it('retries retriable errors until success', async () => {
    let n = 0;
    const value = await retry(
      async () => {
        if (++n < 3) throw Object.assign(new Error('busy'), { retriable: true });
        return 'ok';
      },
      { policy },
    );
    expect(value).toBe('ok');
    expect(n).toBe(3);
  });
  it('does not retry errors that are not retriable', async () => {
    let n = 0;
    await expect(
      retry(async () => {
        n++;
        throw new Error('syntax error');
      }, { policy }),
    ).rejects.toThrow('syntax error');
    expect(n).toBe(1);
  });
  it('gives up after the retry budget', async () => {
    let n = 0;
    await expect(
      retry(
        async () => {
          n++;
          throw Object.assign(new Error('busy'), { retriable: true });
        },
        { policy, retries: 2 },
      ),
    ).rejects.toThrow('busy');
    expect(n).toBe(3);
  });
});

describe('stableHash', () => {
  it('ignores key order and undefined fields', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 2], c: undefined } })).toBe('{"a":{"d":[1,2]},"b":1}');
    expect(stableHash({ a: 1, b: 2 })).toBe(stableHash({ b: 2, a: 1 }));
    expect(stableHash({ a: 1 })).not.toBe(stableHash({ a: 2 }));
  });
});
