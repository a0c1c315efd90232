import { describe, expect, it } from 'vitest';
import { backfillSettings, throttleWaitMs } from '../../../src/execute/context.js';

describe('backfill limits (spec.migration.backfill)', () => {
  it('become the statement settings: threads, the insert side at most 2, memory with a GROUP BY that spills at half', () => {
    expect(backfillSettings(undefined)).toEqual({ max_insert_threads: 2 });
    expect(backfillSettings({ maxThreads: 1 })).toEqual({ max_insert_threads: 1, max_threads: 1 });
    expect(backfillSettings({ maxThreads: 8, maxMemoryBytes: 2 * 1024 ** 3 })).toEqual({
      max_insert_threads: 2,
      max_threads: 8,
      max_memory_usage: 2 * 1024 ** 3,
      max_bytes_before_external_group_by: 1024 ** 3,
    });
  });

  it('a rate limit waits between chunks for what the average allows, and never when unlimited or behind', () => {
    expect(throttleWaitMs(1000, 100, 500)).toBe(1900);
    expect(throttleWaitMs(1000, 3000, 500)).toBe(0);
    expect(throttleWaitMs(1_000_000, 10, undefined)).toBe(0);
  });
});
