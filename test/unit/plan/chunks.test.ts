import { describe, expect, it } from 'vitest';
import {
  blockRangeWhere,
  chunkWhere,
  exactRowsInRange,
  keyLiteral,
  keyRanges,
  keyRangeWhere,
  partitionsAfterBlock,
  partsInRange,
  partsRangeWhere,
  planChunks,
  rowsAfterBlock,
  rangeKeyType,
  rowsInRange,
  stagedResume,
  type BackfillChunk,
  type KeyRange,
  type PartInfo,
  type PartMarks,
} from '../../../src/plan/chunks.js';

/** A deterministic random integer in [0, n) generator (an LCG), so generated cases are the same every run. */
function seededRandom(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
}

const part = (partitionId: string, minBlock: number, maxBlock: number, rows: number): PartInfo => ({ partitionId, minBlock, maxBlock, rows });
const shape = (chunks: BackfillChunk[]) => chunks.map((c) => [c.partitionIds.join('+'), c.fromBlock, c.toBlock, c.rows]);

/** Every (partition, block) up to `upTo` is in exactly one chunk: the property every plan must have. */
function assertCovers(chunks: BackfillChunk[], parts: PartInfo[], upTo: number): void {
  for (const p of parts) {
    for (let b = p.minBlock; b <= Math.min(p.maxBlock, upTo); b++) {
      const holders = chunks.filter((c) => c.partitionIds.includes(p.partitionId) && b >= c.fromBlock && b <= c.toBlock);
      expect(
        holders.map((c) => c.index),
        `block ${b} of partition ${p.partitionId}`,
      ).toHaveLength(1);
    }
    for (let b = upTo + 1; b <= p.maxBlock; b++) {
      expect(chunks.some((c) => c.partitionIds.includes(p.partitionId) && b >= c.fromBlock && b <= c.toBlock)).toBe(false);
    }
  }
  expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
}

describe('rowsInRange', () => {
  it('is exact for a part wholly inside the range and prorated by blocks otherwise', () => {
    expect(rowsInRange(part('a', 1, 10, 1000), 0, 100)).toBe(1000);
    expect(rowsInRange(part('a', 1, 10, 1000), 1, 5)).toBe(500);
    expect(rowsInRange(part('a', 1, 10, 1000), 11, 20)).toBe(0);
    expect(rowsInRange(part('a', 5, 5, 7), 5, 5)).toBe(7);
  });
});

describe('planChunks', () => {
  it('has no chunks for an empty table, or one whose parts all came after the block', () => {
    expect(planChunks([], 10, 100)).toEqual([]);
    expect(planChunks([part('a', 11, 12, 50)], 10, 100)).toEqual([]);
  });

  it('copies small partitions whole, several to a chunk while they fit, in partition id order', () => {
    const parts = [part('202603', 5, 5, 30), part('202601', 1, 2, 40), part('202602', 3, 4, 50), part('202604', 6, 6, 90)];
    const chunks = planChunks(parts, 6, 100);
    expect(shape(chunks)).toEqual([
      ['202601+202602', 0, 6, 90],
      ['202603', 0, 6, 30],
      ['202604', 0, 6, 90],
    ]);
    assertCovers(chunks, parts, 6);
  });

  it('cuts a large partition at part boundaries, ranges contiguous from block 0 to the plan block', () => {
    const parts = [part('all', 1, 3, 60), part('all', 4, 4, 60), part('all', 7, 9, 60), part('all', 12, 12, 10)];
    const chunks = planChunks(parts, 20, 100);
    expect(shape(chunks)).toEqual([
      ['all', 0, 3, 60],
      ['all', 4, 6, 60],
      ['all', 7, 20, 70],
    ]);
    assertCovers(chunks, parts, 20);
  });

  it('cuts one part larger than the chunk size by even block ranges (rows keep their blocks through merges)', () => {
    const parts = [part('p', 1, 100, 1000)];
    const chunks = planChunks(parts, 100, 250);
    expect(chunks).toHaveLength(4);
    expect(chunks.map((c) => [c.fromBlock, c.toBlock])).toEqual([
      [0, 25],
      [26, 50],
      [51, 75],
      [76, 100],
    ]);
    expect(chunks.reduce((s, c) => s + c.rows, 0)).toBe(1000);
    assertCovers(chunks, parts, 100);
  });

  it('a merged part of a single block cannot be cut: one chunk, whatever its size', () => {
    const parts = [part('p', 7, 7, 10_000)];
    expect(shape(planChunks(parts, 7, 100))).toEqual([['p', 0, 7, 10_000]]);
  });

  it('a big part after small ones: the small ones end a chunk before it', () => {
    const parts = [part('p', 1, 1, 10), part('p', 2, 2, 10), part('p', 3, 10, 400)];
    const chunks = planChunks(parts, 10, 200);
    expect(chunks[0]).toMatchObject({ fromBlock: 0, toBlock: 2, rows: 20 });
    expect(chunks.slice(1).map((c) => c.rows)).toEqual([200, 200]);
    assertCovers(chunks, parts, 10);
  });

  it('prorates a part that straddles the plan block and copies only up to it', () => {
    const parts = [part('p', 1, 10, 100), part('p', 11, 20, 100)];
    const chunks = planChunks(parts, 15, 1000);
    expect(shape(chunks)).toEqual([['p', 0, 15, 150]]);
    assertCovers(chunks, parts, 15);
  });

  it('mixes whole and cut partitions, and numbers the chunks in order', () => {
    const parts = [part('a', 1, 1, 10), part('b', 2, 5, 300), part('b', 8, 8, 300), part('c', 6, 6, 20), part('d', 7, 7, 30)];
    const chunks = planChunks(parts, 8, 250);
    expect(shape(chunks)).toEqual([
      ['a', 0, 8, 10],
      ['b', 0, 3, 150],
      ['b', 4, 5, 150],
      ['b', 6, 8, 300],
      ['c+d', 0, 8, 50],
    ]);
    assertCovers(chunks, parts, 8);
  });

  it('covers every block exactly once on many generated part layouts', () => {
    const random = seededRandom(42);
    for (let layout = 0; layout < 200; layout++) {
      const parts: PartInfo[] = [];
      let block = 1 + random(3);
      const partitions = ['a', 'b', 'c', 'd'].slice(0, 1 + random(4));
      for (let i = 0; i < 1 + random(12); i++) {
        const span = 1 + random(random(4) === 0 ? 40 : 3);
        parts.push(part(partitions[random(partitions.length)] ?? 'a', block, block + span - 1, 1 + random(500)));
        block += span + random(3);
      }
      const upTo = random(block + 2);
      const target = 1 + random(800);
      const chunks = planChunks(parts, upTo, target);
      assertCovers(chunks, parts, upTo);
      const expected = parts.reduce((s, p) => s + rowsInRange(p, 0, upTo), 0);
      expect(Math.abs(chunks.reduce((s, c) => s + c.rows, 0) - expected)).toBeLessThanOrEqual(chunks.length);
    }
  });

  it('refuses a chunk size below one row', () => {
    expect(() => planChunks([part('a', 1, 1, 1)], 1, 0)).toThrow(/at least 1 row/);
  });
});

/** A part's index with one integer key column: granule i starts at key `keys[i]` and holds `rows[i]` rows. */
const marksOf = (keys: number[], rows: number | number[]): PartMarks => ({
  keys: ['`k`'],
  granules: keys.map((k, i) => ({ key: [String(k)], rows: Array.isArray(rows) ? (rows[i] ?? 0) : rows })),
});

/** Whether an integer key value lies in a one-column range (the literals are the numbers' text). */
const inRange = (r: KeyRange | undefined, k: number): boolean =>
  !r || ((r.from === undefined || k >= Number(r.from[0])) && (r.to === undefined || k < Number(r.to[0])));

describe('keyRanges (a large part cut by its primary key)', () => {
  it('cuts at the first granule after the rows reach the target; the first range is open below, the last above', () => {
    const ranges = keyRanges(marksOf([0, 10, 20, 30, 40, 50], 100), 200);
    expect(ranges.map((r) => [r.range.from?.[0], r.range.to?.[0], r.rows])).toEqual([
      [undefined, '20', 200],
      ['20', '40', 200],
      ['40', undefined, 200],
    ]);
  });

  it('never cuts between granules that start at the same key (the range between would be empty)', () => {
    const ranges = keyRanges(marksOf([0, 5, 5, 5, 9], 100), 100);
    expect(ranges.map((r) => [r.range.from?.[0], r.range.to?.[0], r.rows])).toEqual([
      [undefined, '5', 100],
      ['5', '9', 300],
      ['9', undefined, 100],
    ]);
  });

  it('ignores the final mark (no rows) and scales the rows to the share of the part the chunk copies', () => {
    const ranges = keyRanges(marksOf([0, 10, 20, 20], [100, 100, 100, 0]), 100, 0.5);
    expect(ranges.map((r) => r.rows)).toEqual([50, 50, 50]);
    expect(ranges.at(-1)?.range.to).toBeUndefined();
  });

  it('is one open range when the part is small or has one key', () => {
    expect(keyRanges(marksOf([1, 1, 1], 100), 10).map((r) => r.range)).toEqual([{ keys: ['`k`'] }]);
  });

  it('puts every key in exactly one range, on generated indexes', () => {
    const random = seededRandom(7);
    for (let layout = 0; layout < 200; layout++) {
      const keys: number[] = [];
      for (let k = random(5), i = 0; i < 1 + random(40); i++, k += random(3)) keys.push(k);
      const ranges = keyRanges(marksOf(keys, 1 + random(100)), 1 + random(400));
      for (let k = -1; k <= (keys.at(-1) ?? 0) + 1; k++)
        expect(
          ranges.filter((r) => inRange(r.range, k)),
          `key ${k}`,
        ).toHaveLength(1);
    }
  });
});

describe('planChunks with a part index (key ranges)', () => {
  const named = (name: string, partitionId: string, minBlock: number, maxBlock: number, rows: number): PartInfo => ({
    name,
    partitionId,
    minBlock,
    maxBlock,
    rows,
  });

  it('cuts a merged part larger than the chunk by key, over its whole block range, and the small parts after it by blocks', () => {
    const parts = [named('p_1_10_2', 'p', 1, 10, 600), named('p_11_11_0', 'p', 11, 11, 50), named('p_12_12_0', 'p', 12, 12, 50)];
    const marks = new Map([['p_1_10_2', marksOf([0, 10, 20, 30, 40, 50], 100)]]);
    const chunks = planChunks(parts, 12, 200, marks);
    expect(chunks.map((c) => [c.fromBlock, c.toBlock, c.rows, c.keyRange?.from?.[0], c.keyRange?.to?.[0]])).toEqual([
      [0, 10, 200, undefined, '20'],
      [0, 10, 200, '20', '40'],
      [0, 10, 200, '40', undefined],
      [11, 12, 100, undefined, undefined],
    ]);
    expect(chunks.map((c) => c.index)).toEqual([0, 1, 2, 3]);
  });

  it('extends the last key-cut part to the plan block, so no block is left out', () => {
    const parts = [named('p_1_10_2', 'p', 1, 10, 600)];
    const chunks = planChunks(parts, 15, 300, new Map([['p_1_10_2', marksOf([0, 10, 20, 30, 40, 50], 100)]]));
    expect(chunks.map((c) => [c.fromBlock, c.toBlock])).toEqual([
      [0, 15],
      [0, 15],
    ]);
  });

  it('falls back to block ranges for a part without an index', () => {
    const parts = [named('p_1_100_3', 'p', 1, 100, 1000)];
    expect(planChunks(parts, 100, 250).every((c) => c.keyRange === undefined)).toBe(true);
  });

  it('selects every (block, key) up to the plan block exactly once, on generated layouts', () => {
    const random = seededRandom(99);
    for (let layout = 0; layout < 150; layout++) {
      const parts: PartInfo[] = [];
      const marks = new Map<string, PartMarks>();
      let block = 1 + random(3);
      for (let i = 0; i < 1 + random(8); i++) {
        const span = 1 + random(random(3) === 0 ? 30 : 3);
        const rows = 1 + random(600);
        const name = `p_${block}_${block + span - 1}_${span > 1 ? 1 : 0}`;
        parts.push(named(name, random(3) === 0 ? 'q' : 'p', block, block + span - 1, rows));
        if (random(2) === 0)
          marks.set(
            name,
            marksOf(
              Array.from({ length: 1 + random(12) }, (_, g) => g * 2),
              Math.ceil(rows / 6),
            ),
          );
        block += span + random(2);
      }
      const upTo = random(block + 2);
      const chunks = planChunks(parts, upTo, 1 + random(300), marks);
      for (const p of parts) {
        for (let b = p.minBlock; b <= Math.min(p.maxBlock, upTo); b++) {
          for (let k = -1; k <= 25; k++) {
            const holders = chunks.filter((c) => c.partitionIds.includes(p.partitionId) && b >= c.fromBlock && b <= c.toBlock && inRange(c.keyRange, k));
            expect(holders, `partition ${p.partitionId} block ${b} key ${k}`).toHaveLength(1);
          }
        }
      }
    }
  });
});

describe('key range predicates', () => {
  it('compare lexicographically, nested so that the primary key index prunes by them', () => {
    expect(keyRangeWhere({ keys: ['a'], from: ['1'], to: ['5'] })).toBe('a >= 1 AND a < 5');
    expect(keyRangeWhere({ keys: ['a', 'b'], from: ['1', '2'] })).toBe('(a > 1 OR (a = 1 AND b >= 2))');
    expect(keyRangeWhere({ keys: ['a', 'b', 'c'], to: ['1', '2', '3'] })).toBe('(a < 1 OR (a = 1 AND (b < 2 OR (b = 2 AND c < 3))))');
    expect(keyRangeWhere({ keys: ['a'] })).toBe('');
    expect(() => keyRangeWhere({ keys: ['a', 'b'], from: ['1'] })).toThrow(/1 values for 2 key columns/);
  });

  it('join the block range in a chunk predicate', () => {
    expect(chunkWhere({ partitionIds: ['p'], fromBlock: 0, toBlock: 9, keyRange: { keys: ['`k`'], from: ['3'] } })).toBe(
      "_partition_id = 'p' AND _block_number <= 9 AND `k` >= 3",
    );
  });

  it('take literals as the hex of their text, cast to the column type, and only hex', () => {
    expect(keyLiteral('7431', 'LowCardinality(String)')).toBe("CAST(unhex('7431') AS LowCardinality(String))");
    expect(() => keyLiteral("') OR 1 --", 'String')).toThrow(/not hex/);
  });

  it('are built only on key types that sort as they compare and round-trip through text', () => {
    for (const t of [
      'String',
      'LowCardinality(String)',
      "DateTime64(3, 'UTC')",
      'DateTime',
      'Date',
      'UInt64',
      'Int32',
      'UUID',
      'Decimal(18, 4)',
      "Enum8('a' = 1)",
      'FixedString(4)',
    ])
      expect(rangeKeyType(t), t).toBe(true);
    for (const t of ['Float64', 'Float32', 'Nullable(String)', 'LowCardinality(Nullable(String))', 'Array(String)', 'Tuple(a UInt8)', 'Map(String, String)'])
      expect(rangeKeyType(t), t).toBe(false);
  });
});

describe('rows and partitions after a block (catch-up rounds, the fenced delta)', () => {
  const parts = [part('202601', 1, 10, 1000), part('202602', 11, 11, 50), part('202602', 12, 20, 90)];

  it('estimates the rows after a block: whole parts above it, prorated parts across it', () => {
    expect(rowsAfterBlock(parts, 20)).toBe(0);
    expect(rowsAfterBlock(parts, 11)).toBe(90);
    expect(rowsAfterBlock(parts, 5)).toBe(500 + 50 + 90);
  });

  it('lists only the partitions with a part past the block', () => {
    expect(partitionsAfterBlock(parts, 20)).toEqual([]);
    expect(partitionsAfterBlock(parts, 10)).toEqual(['202602']);
    expect(partitionsAfterBlock(parts, 9)).toEqual(['202601', '202602']);
  });
});

describe('chunk predicates', () => {
  it('prune by partition and select rows by block number, quoted', () => {
    expect(chunkWhere({ partitionIds: ['202601'], fromBlock: 0, toBlock: 9 })).toBe("_partition_id = '202601' AND _block_number <= 9");
    expect(chunkWhere({ partitionIds: ['a', "b'c"], fromBlock: 4, toBlock: 9 })).toBe(
      "_partition_id IN ('a', 'b\\'c') AND _block_number >= 4 AND _block_number <= 9",
    );
    expect(blockRangeWhere(['p'], 5, 9)).toBe("_partition_id IN ('p') AND _block_number > 5 AND _block_number <= 9");
    expect(blockRangeWhere(['p', 'q'], '5')).toBe("_partition_id IN ('p', 'q') AND _block_number > 5");
    expect(blockRangeWhere([], 5, 9)).toBe('0');
  });
});

describe('exactRowsInRange (counts under the fence from metadata)', () => {
  it('sums the parts wholly inside the range, ignoring the rest', () => {
    const parts = [part('a', 1, 10, 1000), part('a', 11, 11, 5), part('b', 12, 12, 7), part('b', 15, 15, 9)];
    expect(exactRowsInRange(parts, 10, 12)).toBe(12);
    expect(exactRowsInRange(parts, 15, 20)).toBe(0);
  });

  it('is undefined when a merged part straddles either end of the range: then the rows are counted', () => {
    const parts = [part('a', 1, 12, 1000), part('b', 13, 13, 5)];
    expect(exactRowsInRange(parts, 10, 13)).toBeUndefined();
    expect(exactRowsInRange([part('a', 11, 20, 50)], 10, 15)).toBeUndefined();
  });

  it('is undefined when a lightweight DELETE masked rows of a part in the range (system.parts still counts them)', () => {
    expect(exactRowsInRange([{ ...part('a', 11, 11, 50), hasDeletes: true }], 10, 15)).toBeUndefined();
    expect(exactRowsInRange([{ ...part('a', 1, 1, 50), hasDeletes: true }, part('a', 11, 11, 5)], 10, 15)).toBe(5);
  });
});

describe('the parts the fenced delta reads', () => {
  it('are those with a block in the range, named in the predicate', () => {
    const parts = [
      { ...part('a', 1, 10, 100), name: 'a_1_10_1' },
      { ...part('a', 11, 11, 5), name: 'a_11_11_0' },
      { ...part('b', 12, 12, 5), name: 'b_12_12_0' },
      { ...part('b', 14, 14, 5), name: 'b_14_14_0' },
    ];
    expect(partsInRange(parts, 10, 12).map((p) => p.name)).toEqual(['a_11_11_0', 'b_12_12_0']);
    expect(partsInRange(parts, 5, 12).map((p) => p.name)).toEqual(['a_1_10_1', 'a_11_11_0', 'b_12_12_0']);
    expect(partsRangeWhere(['a_11_11_0', 'b_12_12_0'], 10, 12)).toBe("_part IN ('a_11_11_0', 'b_12_12_0') AND _block_number > 10 AND _block_number <= 12");
    expect(partsRangeWhere([], 10, 12)).toBe('0');
  });
});

describe('stagedResume (a view backfill resumed after a crash)', () => {
  const part = (name: string, minBlock: number, maxBlock: number) => ({ name, minBlock, maxBlock });
  const done = (nextBlock: number) => ({ done: true, nextBlock: String(nextBlock) });
  const todo = { done: false, nextBlock: '0' };

  it('goes on at the first chunk not done, dropping the parts the chunk in flight left', () => {
    const parts = [part('a', 1, 1), part('b', 2, 3), part('c', 4, 4), part('d', 5, 5)];
    expect(stagedResume([done(1), done(3), todo, todo], parts)).toEqual({ from: 2, drop: [part('c', 4, 4), part('d', 5, 5)] });
  });

  it('drops nothing when the crash came between a chunk landing and the next one starting', () => {
    expect(stagedResume([done(2), todo], [part('a', 1, 2)])).toEqual({ from: 1, drop: [] });
  });

  it('starts at chunk 0, dropping every part, when no chunk was recorded', () => {
    expect(stagedResume([todo, todo], [part('a', 1, 1)])).toEqual({ from: 0, drop: [part('a', 1, 1)] });
  });

  it('has nothing left to do when every chunk is done', () => {
    expect(stagedResume([done(1), done(2)], [part('a', 1, 2)])).toEqual({ from: 2, drop: [] });
  });

  it('keeps parts merged within the recorded chunks', () => {
    expect(stagedResume([done(2), done(4), todo], [part('all_1_4_1', 1, 4), part('e', 5, 6)])).toEqual({ from: 2, drop: [part('e', 5, 6)] });
  });

  it('cannot resume when a part holds blocks of a recorded chunk and of the one in flight (merged after a restart)', () => {
    expect(stagedResume([done(2), todo], [part('all_1_3_1', 1, 3)])).toBeUndefined();
  });

  it('cannot resume without a plan, or with chunks not done in order', () => {
    expect(stagedResume([], [])).toBeUndefined();
    expect(stagedResume([todo, done(2)], [])).toBeUndefined();
  });
});
