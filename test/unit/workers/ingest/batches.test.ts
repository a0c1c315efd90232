import { describe, expect, it } from 'vitest';
import { cmpOffsets, commitOffsetAfter, dedupToken, PartitionBatcher, rangesToReplay, type OffsetRange } from '../../../../src/workers/ingest/batches.js';

const limits = { maxRows: 3, maxBytes: 1_000, maxDelayMs: 100 };
const msg = (offset: number, bytes = 10) => ({ offset: String(offset), size: bytes });
const range = (first: number, last: number): OffsetRange => ({ topic: 't', partition: 0, firstOffset: String(first), lastOffset: String(last) });

describe('PartitionBatcher', () => {
  it('flushes at maxRows, maxBytes or maxDelayMs, whichever comes first', () => {
    const b = new PartitionBatcher('t', 0, limits);
    b.add(msg(0), 0);
    b.add(msg(1), 0);
    expect(b.due(50)).toBe(false);
    expect(b.due(100)).toBe(true);
    b.add(msg(2), 0);
    expect(b.due(0)).toBe(true);
    expect(b.take(0)?.range).toEqual(range(0, 2));
    b.add(msg(3, 2_000), 200);
    expect(b.due(200)).toBe(true);
  });

  it('replays a recorded range exactly, even when more messages arrived', () => {
    const b = new PartitionBatcher('t', 0, limits, [range(10, 11), range(12, 16)]);
    for (const o of [10, 11, 12, 13]) b.add(msg(o), 0);
    expect(b.due(0)).toBe(true);
    expect(b.take(0)).toMatchObject({ range: range(10, 11), replayed: true });
    // The second recorded range is longer than maxRows: it still ends where it ended before.
    expect(b.due(10_000)).toBe(false);
    for (const o of [14, 15, 16, 17]) b.add(msg(o), 0);
    const second = b.take(0);
    expect(second).toMatchObject({ range: range(12, 16), replayed: true });
    expect(second?.messages.map((m) => m.offset)).toEqual(['12', '13', '14', '15', '16']);
    expect(b.take(0)).toMatchObject({ range: range(17, 17), replayed: false });
  });

  it('refuses messages out of order', () => {
    const b = new PartitionBatcher('t', 0, limits);
    b.add(msg(5), 0);
    expect(() => b.add(msg(5), 0)).toThrow(/out of order/);
  });

  it('keeps 64-bit offsets exact', () => {
    const big = '9223372036854775806';
    const b = new PartitionBatcher('t', 0, limits);
    b.add({ offset: big, size: 0 }, 0);
    const taken = b.take(0);
    expect(taken?.range.lastOffset).toBe(big);
    expect(taken && commitOffsetAfter(taken.range)).toBe('9223372036854775807');
  });
});

describe('rangesToReplay', () => {
  it('keeps the ranges at or past the committed offset, oldest first', () => {
    expect(rangesToReplay([range(20, 29), range(0, 9), range(10, 19)], '10')).toEqual({ ranges: [range(10, 19), range(20, 29)], anomalies: [] });
    expect(rangesToReplay([range(0, 9)], '10')).toEqual({ ranges: [], anomalies: [] });
  });

  it('keeps one copy of a range written twice', () => {
    expect(rangesToReplay([range(10, 19), range(10, 19)], '10')).toEqual({ ranges: [range(10, 19)], anomalies: [] });
  });

  it('replays a range the committed offset falls inside, and says so', () => {
    const r = rangesToReplay([range(5, 14)], '10');
    expect(r.ranges).toEqual([range(5, 14)]);
    expect(r.anomalies).toEqual([expect.stringMatching(/5-14 .* straddles committed offset 10/)]);
  });

  it('skips a range overlapping an earlier one, and says so', () => {
    const r = rangesToReplay([range(15, 25), range(10, 19), range(26, 30)], '10');
    expect(r.ranges).toEqual([range(10, 19), range(26, 30)]);
    expect(r.anomalies).toEqual([expect.stringMatching(/10-19 and 15-25 .* overlap/)]);
  });
});

describe('dedupToken', () => {
  it('is the same for every replay of a range and differs between ranges', () => {
    expect(dedupToken('g', range(0, 9))).toBe('weir:g:t:0:0-9');
    expect(dedupToken('g', range(0, 9))).not.toBe(dedupToken('g', range(0, 8)));
  });
});

describe('cmpOffsets', () => {
  it('orders offsets as numbers without parsing them, 64-bit ones included', () => {
    const offsets = ['10', '9', '0', '100', '18446744073709551615', '9223372036854775807', '99'];
    const sorted = [...offsets].sort(cmpOffsets);
    expect(sorted).toEqual([...offsets].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0)));
    expect(cmpOffsets('7', '7')).toBe(0);
  });
});
