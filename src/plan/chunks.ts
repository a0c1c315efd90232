// Chunks of a copy-and-swap backfill, planned from the live table's active parts (system.parts):
// partition by partition, small partitions together, and a large partition cut into ranges of
// _block_number. Rows keep their block number through merges, so a chunk's predicate selects the
// same rows whatever merges happen after it was planned; the chunks of one plan are disjoint and
// together select every row with a block number up to the plan's block, exactly once.
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
export function planChunks(parts: readonly PartInfo[], upToBlock: number, targetRows: number = DEFAULT_CHUNK_ROWS): BackfillChunk[] {
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
    chunks.push(...splitPartition(id, list, upToBlock, targetRows));
  }
  flush();
  return chunks.map((c, index) => ({ index, ...c }));
}

/** Block ranges of one large partition: cut where the rows since the last cut reach the target. */
function splitPartition(id: string, parts: PartInfo[], upToBlock: number, targetRows: number): Omit<BackfillChunk, 'index'>[] {
  // Cut points (inclusive ends), chosen at part ends, or inside a part too large for one chunk.
  const cuts: number[] = [];
  let since = 0;
  for (const p of parts) {
    const top = Math.min(p.maxBlock, upToBlock);
    const rows = rowsInRange(p, 0, upToBlock);
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
  if (since === 0 && cuts.length > 0) cuts[cuts.length - 1] = upToBlock;
  else cuts.push(upToBlock);
  const out: Omit<BackfillChunk, 'index'>[] = [];
  let from = 0;
  for (const to of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (to < from) continue;
    out.push({ partitionIds: [id], fromBlock: from, toBlock: to, rows: parts.reduce((s, p) => s + rowsInRange(p, from, to), 0) });
    from = to + 1;
  }
  return out;
}

/** The WHERE condition of a chunk: partition pruning by `_partition_id`, rows by `_block_number`. */
export function chunkWhere(c: Pick<BackfillChunk, 'partitionIds' | 'fromBlock' | 'toBlock'>): string {
  const partitions =
    c.partitionIds.length === 1
      ? `_partition_id = ${quoteString(c.partitionIds[0] ?? '')}`
      : `_partition_id IN (${c.partitionIds.map(quoteString).join(', ')})`;
  const blocks = c.fromBlock > 0 ? `_block_number >= ${c.fromBlock} AND _block_number <= ${c.toBlock}` : `_block_number <= ${c.toBlock}`;
  return `${partitions} AND ${blocks}`;
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
