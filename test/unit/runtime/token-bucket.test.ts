import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../src/runtime/token-bucket.js';

describe('TokenBucket', () => {
  it('lets a burst through at once, then spaces requests 1/qps apart', () => {
    const t = 0;
    const bucket = new TokenBucket(10, 3, () => t);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 0]);
    // The 4th, 5th and 6th wait for tokens that arrive every 100 ms, queued behind each other.
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([100, 200, 300]);
  });

  it('refills at qps up to the burst, no further', () => {
    let t = 0;
    const bucket = new TokenBucket(10, 2, () => t);
    bucket.reserve();
    bucket.reserve();
    t = 10_000; // long idle: still only 2 tokens
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 100]);
    t += 100;
    expect(bucket.reserve()).toBe(100); // the token of that 100 ms went to the one queued before
  });

  it('qps 0 is no limit', () => {
    const bucket = new TokenBucket(0, 0, () => 0);
    expect(Array.from({ length: 1000 }, () => bucket.reserve()).every((w) => w === 0)).toBe(true);
  });
});
