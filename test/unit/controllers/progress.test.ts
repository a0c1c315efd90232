import { describe, expect, it } from 'vitest';
import { progressWorthReporting, statusProgress, type StatusProgress } from '../../../src/controllers/progress.js';

const at = (percent: number, extra: Partial<StatusProgress> = {}): StatusProgress => ({
  phase: 'Backfilling',
  rowsCopied: percent * 10,
  rowsTotal: 1000,
  percent,
  chunk: Math.floor(percent / 10),
  chunks: 10,
  catchUpRounds: 0,
  ...extra,
});

describe('migration progress in status', () => {
  it('carries the copy figures and an ETA at the rate copied so far', () => {
    const p = { phase: 'Backfilling' as const, rowsCopied: 250, rowsTotal: 1000, percent: 25, chunk: 1, chunks: 4, catchUpRounds: 0, startedAtMs: 0 };
    expect(statusProgress(p, 10_000)).toEqual({
      phase: 'Backfilling',
      rowsCopied: 250,
      rowsTotal: 1000,
      percent: 25,
      chunk: 1,
      chunks: 4,
      catchUpRounds: 0,
      etaSeconds: 30,
    });
    // Nothing copied yet: no rate, no ETA; catching up: the total is no longer what is left.
    expect(statusProgress({ ...p, rowsCopied: 0, percent: 0 }, 10_000)).not.toHaveProperty('etaSeconds');
    expect(statusProgress({ ...p, phase: 'CatchingUp', catchUpRounds: 1 }, 10_000)).not.toHaveProperty('etaSeconds');
  });

  it('is patched every 5 points, at the last chunk, and at each catch-up round; not at every chunk', () => {
    expect(progressWorthReporting(undefined, at(1))).toBe(true);
    expect(progressWorthReporting(at(1), at(4))).toBe(false);
    expect(progressWorthReporting(at(1), at(6))).toBe(true);
    expect(progressWorthReporting(at(97), at(98, { chunk: 10 }))).toBe(true);
    expect(progressWorthReporting(at(100, { chunk: 10 }), at(100, { chunk: 10, phase: 'CatchingUp', catchUpRounds: 1 }))).toBe(true);
    expect(progressWorthReporting(at(100, { phase: 'CatchingUp', catchUpRounds: 1 }), at(100, { phase: 'CatchingUp', catchUpRounds: 2 }))).toBe(true);
    // 1000 chunks of 0.1% each: 20 patches, not 1000.
    let last: StatusProgress | undefined;
    let patches = 0;
    for (let i = 1; i <= 1000; i++) {
      const next = at(i / 10, { chunk: i, chunks: 1000 });
      if (progressWorthReporting(last, next)) {
        patches++;
        last = next;
      }
    }
    expect(patches).toBe(21);
  });
});
