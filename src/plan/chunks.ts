// Chunks of a copy-and-swap backfill, planned from the live table's active parts (system.parts):
// partition by partition, small partitions together, and a large partition cut into ranges of
// _block_number. A part too large for one chunk is cut by ranges of its primary key, read from its
// index (mergeTreeIndex): its rows are sorted by the key, so a key range reads only its own
// granules, where a block range of a merged part reads every granule of it (its blocks are spread
// through it). Rows keep their block number and their key through merges, so a chunk's predicate
// selects the same rows whatever merges happen after it was planned; the chunks of one plan are
// disjoint and together select every row with a block number up to the plan's block, exactly once.
import { quoteString } from './sql.js';

/** One active part, as system.parts lists it. */
export interface PartInfo {
  /** The part's name (system.parts name), where the caller needs it to prune by `_part`. */
  name?: string;
  partitionId: string;
  minBlock: number;
  maxBlock: number;
  /** Rows in the part, counting rows a lightweight DELETE has masked. */
  rows: number;
  /** A lightweight DELETE masked rows of the part: `rows` then counts more than a query sees. */
  hasDeletes?: boolean;
}

export interface BackfillChunk {
  index: number;
  /** Partitions the chunk copies; more than one only when each is copied whole. */
  partitionIds: string[];
  /** Block numbers the chunk copies, inclusive. */
  fromBlock: number;
  toBlock: number;
  /** Rows the chunk is expected to copy: exact for parts wholly inside it, prorated by block range for the others. */
  rows: number;
  /** Within the block range, only the rows whose primary key is in this range (a cut of one large part). */
  keyRange?: KeyRange;
}

/**
 * A range of the primary key: from `from` (inclusive) to `to` (exclusive), lexicographically over
 * `keys`; an absent bound is open. Bounds are SQL literals of the key columns' types.
 */
export interface KeyRange {
  /** The key columns, as quoted identifiers, in key order. */
  keys: string[];
  from?: string[];
  to?: string[];
}

/** A part's primary index: the key of each granule's first row (SQL literals, in `keys` order) and the granule's rows, in mark order. */
export interface PartMarks {
  keys: string[];
  granules: { key: string[]; rows: number }[];
}

/**
 * Key column types whose values sort as they compare, always compare (no NULL, no NaN) and come
 * back exactly from their text: a key of only these can cut a part into ranges.
 */
const RANGE_KEY_TYPE =
  /^(U?Int(8|16|32|64|128|256)|Bool|Date|Date32|DateTime(\(.*\))?|DateTime64\(.*\)|String|FixedString\(\d+\)|UUID|IPv4|IPv6|Decimal(32|64|128|256)?\(.*\)|Enum(8|16)?\(.*\))$/;

/** Whether a key column of this ClickHouse type can bound a key range. */
export function rangeKeyType(type: string): boolean {
  const inner = /^LowCardinality\((.*)\)$/.exec(type)?.[1] ?? type;
  return RANGE_KEY_TYPE.test(inner);
}

/** A value of `type` as a SQL literal, from the hex of its text (toString): exact for every range key type, whatever bytes it holds. */
export function keyLiteral(hexOfText: string, type: string): string {
  if (!/^[0-9A-Fa-f]*$/.test(hexOfText)) throw new Error(`not hex: ${hexOfText.slice(0, 40)}`);
  return `CAST(unhex('${hexOfText}') AS ${type})`;
}

/** Rows per chunk unless configured: a few seconds of copying, so a crash costs little and progress moves. */
export const DEFAULT_CHUNK_ROWS = 4_000_000;

/** Rows of `part` whose block number lies in [from, to], assuming blocks spread evenly over its range. */
export function rowsInRange(part: PartInfo, from: number, to: number): number {
  const lo = Math.max(from, part.minBlock);
  const hi = Math.min(to, part.maxBlock);
  if (hi < lo) return 0;
  const span = part.maxBlock - part.minBlock + 1;
  return span === hi - lo + 1 ? part.rows : Math.round((part.rows * (hi - lo + 1)) / span);
}

/** Rows with a block number above `block`, estimated from the parts (exact for parts wholly above it). */
export function rowsAfterBlock(parts: readonly PartInfo[], block: number): number {
  return parts.reduce((sum, p) => sum + rowsInRange(p, block + 1, Number.MAX_SAFE_INTEGER), 0);
}

/**
 * The partitions that can hold rows with a block number above `block`. A merge keeps a row in its
 * partition, so the list stays right after merges: a safe filter for pruning whole partitions.
 */
export function partitionsAfterBlock(parts: readonly PartInfo[], block: number): string[] {
  return [...new Set(parts.filter((p) => p.maxBlock > block).map((p) => p.partitionId))].sort();
}

/**
 * Chunks that together copy every row with a block number ≤ `upToBlock`, each about `targetRows`.
 * Partitions come in partition id order; a partition of at most `targetRows` rows is copied whole
 * (joined with its neighbours while they fit), a larger one is cut at part boundaries, and a part
 * larger than `targetRows` by even block ranges. Inside a partition the ranges are contiguous from
 * block 0 to `upToBlock`, so no row falls between two chunks.
 */
export function planChunks(
  parts: readonly PartInfo[],
  upToBlock: number,
  targetRows: number = DEFAULT_CHUNK_ROWS,
  marks: ReadonlyMap<string, PartMarks> = new Map(),
): BackfillChunk[] {
  if (!(targetRows >= 1)) throw new Error(`chunk size must be at least 1 row, got ${targetRows}`);
  const byPartition = new Map<string, PartInfo[]>();
  for (const p of parts) {
    if (p.minBlock > upToBlock) continue;
    const list = byPartition.get(p.partitionId) ?? [];
    list.push(p);
    byPartition.set(p.partitionId, list);
  }
  const chunks: Omit<BackfillChunk, 'index'>[] = [];
  let pending: Omit<BackfillChunk, 'index'> | undefined; // whole small partitions, joined
  const flush = () => {
    if (pending) chunks.push(pending);
    pending = undefined;
  };
  for (const id of [...byPartition.keys()].sort()) {
    const list = (byPartition.get(id) ?? []).sort((a, b) => a.minBlock - b.minBlock);
    const rows = list.reduce((s, p) => s + rowsInRange(p, 0, upToBlock), 0);
    if (rows <= targetRows) {
      if (pending && pending.rows + rows <= targetRows) {
        pending.partitionIds.push(id);
        pending.rows += rows;
      } else {
        flush();
        pending = { partitionIds: [id], fromBlock: 0, toBlock: upToBlock, rows };
      }
      continue;
    }
    flush();
    chunks.push(...splitPartition(id, list, upToBlock, targetRows, marks));
  }
  flush();
  return chunks.map((c, index) => ({ index, ...c }));
}

/**
 * Block ranges of one large partition: cut where the rows since the last cut reach the target. A
 * part too large for one chunk gets a block range of its own, cut by its key when its index is
 * known (`marks`), else by even block ranges.
 */
function splitPartition(
  id: string,
  parts: PartInfo[],
  upToBlock: number,
  targetRows: number,
  marks: ReadonlyMap<string, PartMarks>,
): Omit<BackfillChunk, 'index'>[] {
  // Cut points (inclusive ends), chosen at part ends, or inside a part too large for one chunk.
  const cuts: number[] = [];
  const byKey = new Map<number, Omit<BackfillChunk, 'index'>[]>(); // block range end → its key-range chunks
  let since = 0;
  for (const p of parts) {
    const top = Math.min(p.maxBlock, upToBlock);
    const rows = rowsInRange(p, 0, upToBlock);
    const index = p.name === undefined ? undefined : marks.get(p.name);
    const ranges = rows > targetRows && index ? keyRanges(index, targetRows, rows / Math.max(1, p.rows)) : [];
    if (ranges.length > 1) {
      if (since > 0 && p.minBlock > 0) cuts.push(p.minBlock - 1);
      cuts.push(top);
      byKey.set(
        top,
        ranges.map((r) => ({ partitionIds: [id], fromBlock: 0, toBlock: top, rows: r.rows, keyRange: r.range })),
      );
      since = 0;
      continue;
    }
    if (rows > targetRows) {
      if (since > 0 && p.minBlock > 0) cuts.push(p.minBlock - 1);
      const pieces = Math.min(Math.ceil(rows / targetRows), top - p.minBlock + 1);
      const span = top - p.minBlock + 1;
      for (let k = 1; k < pieces; k++) cuts.push(p.minBlock + Math.floor((span * k) / pieces) - 1);
      cuts.push(top);
      since = 0;
      continue;
    }
    if (since > 0 && since + rows > targetRows) {
      cuts.push(p.minBlock - 1);
      since = 0;
    }
    since += rows;
  }
  // The last range runs to upToBlock; no empty range after a cut that ended the rows.
  if (since === 0 && cuts.length > 0) {
    const last = cuts[cuts.length - 1] as number;
    const keyed = byKey.get(last);
    cuts[cuts.length - 1] = upToBlock;
    if (keyed) {
      byKey.delete(last);
      byKey.set(upToBlock, keyed);
    }
  } else cuts.push(upToBlock);
  const out: Omit<BackfillChunk, 'index'>[] = [];
  let from = 0;
  for (const to of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (to < from) continue;
    const keyed = byKey.get(to);
    if (keyed) for (const c of keyed) out.push({ ...c, fromBlock: from, toBlock: to });
    else out.push({ partitionIds: [id], fromBlock: from, toBlock: to, rows: parts.reduce((s, p) => s + rowsInRange(p, from, to), 0) });
    from = to + 1;
  }
  return out;
}

/**
 * Ranges of a part's key of about `targetRows` each, from its index: a range starts at the first
 * row of a granule whose key differs from the previous cut's, once the rows since reach the
 * target. Together the ranges cover every key, the first open below and the last above, so they
 * cut any rows (the part's, or a part merged from it later) into disjoint sets. `scale` is the
 * share of the part's rows the chunk copies (below 1 when the part straddles the plan's block).
 */
export function keyRanges(marks: PartMarks, targetRows: number, scale = 1): { range: KeyRange; rows: number }[] {
  const starts: number[] = [0];
  const sizes: number[] = [0];
  const granules = marks.granules.filter((g) => g.rows > 0);
  let since = 0;
  for (let i = 0; i < granules.length; i++) {
    const g = granules[i] as PartMarks['granules'][number];
    const cutKey = granules[starts[starts.length - 1] as number]?.key;
    if (since >= targetRows && i > 0 && !sameKey(g.key, cutKey)) {
      starts.push(i);
      sizes.push(0);
      since = 0;
    }
    since += g.rows;
    sizes[sizes.length - 1] = (sizes[sizes.length - 1] ?? 0) + g.rows;
  }
  return starts.map((start, j) => {
    const next = starts[j + 1];
    const from = j > 0 ? granules[start]?.key : undefined;
    const to = next !== undefined ? granules[next]?.key : undefined;
    const range: KeyRange = { keys: marks.keys, ...(from ? { from } : {}), ...(to ? { to } : {}) };
    return { range, rows: Math.round((sizes[j] ?? 0) * scale) };
  });
}

const sameKey = (a: readonly string[] | undefined, b: readonly string[] | undefined): boolean =>
  a !== undefined && b !== undefined && a.length === b.length && a.every((v, i) => v === b[i]);

/** `keys >= from` (or `<`, `strict`), lexicographically: nested so that the primary key index prunes by it, as it does not by a tuple comparison. */
function lexicographic(keys: readonly string[], bound: readonly string[], op: '>=' | '<'): string {
  const strict = op === '>=' ? '>' : '<';
  const at = (i: number): string => {
    const k = keys[i] as string;
    const v = bound[i] as string;
    if (i === keys.length - 1) return `${k} ${op} ${v}`;
    return `(${k} ${strict} ${v} OR (${k} = ${v} AND ${at(i + 1)}))`;
  };
  if (keys.length === 0 || keys.length !== bound.length) throw new Error(`a key bound of ${bound.length} values for ${keys.length} key columns`);
  return at(0);
}

/** The condition of a key range ('' when it is open at both ends). */
export function keyRangeWhere(r: KeyRange): string {
  const parts = [r.from ? lexicographic(r.keys, r.from, '>=') : '', r.to ? lexicographic(r.keys, r.to, '<') : ''].filter(Boolean);
  return parts.join(' AND ');
}

/** The WHERE condition of a chunk: partition pruning by `_partition_id`, rows by `_block_number` (and by its key range, for a cut of a large part). */
export function chunkWhere(c: Pick<BackfillChunk, 'partitionIds' | 'fromBlock' | 'toBlock' | 'keyRange'>): string {
  const partitions =
    c.partitionIds.length === 1
      ? `_partition_id = ${quoteString(c.partitionIds[0] ?? '')}`
      : `_partition_id IN (${c.partitionIds.map(quoteString).join(', ')})`;
  const blocks = c.fromBlock > 0 ? `_block_number >= ${c.fromBlock} AND _block_number <= ${c.toBlock}` : `_block_number <= ${c.toBlock}`;
  const keys = c.keyRange ? keyRangeWhere(c.keyRange) : '';
  return `${partitions} AND ${blocks}${keys ? ` AND ${keys}` : ''}`;
}

/**
 * Rows with a block number in (after, upTo], only in the partitions that can hold them: what a
 * catch-up round or the fenced delta copies. `'0'` (nothing) when no partition can.
 */
export function blockRangeWhere(partitionIds: readonly string[], after: number | string, upTo?: number | string): string {
  if (partitionIds.length === 0) return '0';
  const blocks = upTo === undefined ? `_block_number > ${after}` : `_block_number > ${after} AND _block_number <= ${upTo}`;
  return `_partition_id IN (${partitionIds.map(quoteString).join(', ')}) AND ${blocks}`;
}

/**
 * The exact number of rows with a block number in (after, upTo], from the parts alone, when every
 * part that holds any of them holds only them (no merge has joined them with older or newer rows)
 * and none has rows masked by a lightweight DELETE; undefined otherwise, and the rows must be counted.
 */
export function exactRowsInRange(parts: readonly PartInfo[], after: number, upTo: number): number | undefined {
  let rows = 0;
  for (const p of parts) {
    if (p.maxBlock <= after || p.minBlock > upTo) continue;
    if (p.minBlock <= after || p.maxBlock > upTo || p.hasDeletes) return undefined;
    rows += p.rows;
  }
  return rows;
}

/** The parts that can hold rows with a block number in (after, upTo]. */
export function partsInRange<P extends PartInfo>(parts: readonly P[], after: number, upTo: number): P[] {
  return parts.filter((p) => p.maxBlock > after && p.minBlock <= upTo);
}

/**
 * Rows with a block number in (after, upTo], read only from the named parts: O(those parts), not
 * O(their partitions). A merge can replace a named part before the statement starts, so the caller
 * checks afterwards that every named part is still active (else the statement may have missed rows).
 */
export function partsRangeWhere(partNames: readonly string[], after: number | string, upTo: number | string): string {
  if (partNames.length === 0) return '0';
  return `_part IN (${partNames.map(quoteString).join(', ')}) AND _block_number > ${after} AND _block_number <= ${upTo}`;
}

/** A planned chunk's state in the ledger, as resuming needs it. */
export interface ChunkState {
  done: boolean;
  /** The staging table's highest block once the chunk landed ('0' while not done). */
  nextBlock: string;
}

/**
 * Where a staged backfill (chunks inserted one by one into a staging table whose merges are
 * stopped) resumes after a crash: the first chunk not done, and the staging parts the chunk in
 * flight left (every block above the last done chunk's) to drop first. Undefined when it cannot
 * resume and must start again from an empty staging table: no plan, chunks not done in order, or
 * a part that holds blocks of both sides (merged after a restart of the server, which forgets that
 * merges were stopped), since a merged aggregate row cannot be split again.
 */
export function stagedResume<P extends Pick<PartInfo, 'minBlock' | 'maxBlock'>>(
  ledger: readonly ChunkState[],
  parts: readonly P[],
): { from: number; drop: P[] } | undefined {
  if (ledger.length === 0) return undefined;
  const todo = ledger.findIndex((c) => !c.done);
  const from = todo === -1 ? ledger.length : todo;
  if (ledger.slice(from).some((c) => c.done)) return undefined;
  const kept = from === 0 ? 0 : Number(ledger[from - 1]?.nextBlock ?? '0');
  if (parts.some((p) => p.minBlock <= kept && p.maxBlock > kept)) return undefined;
  return { from, drop: parts.filter((p) => p.minBlock > kept) };
}
