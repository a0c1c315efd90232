// Exactly-once from Kafka into ClickHouse, the pure part. Each partition's messages are cut
// into batches whose offset range is written to a ledger (weir.ingest_batches) *before* the
// batch is inserted, and each insert carries a deduplication token made of that range.
// After a crash, the worker replays the ledger's ranges past the committed offset first:
// the same range reads the same messages, so it forms the same block with the same token,
// and ClickHouse drops it if it had landed (non_replicated_deduplication_window). Only then
// does it cut new batches. Offsets are committed to Kafka after ClickHouse acknowledged.

export interface OffsetRange {
  topic: string;
  partition: number;
  /** Inclusive, as decimal strings: Kafka offsets are 64-bit. */
  firstOffset: string;
  lastOffset: string;
}

export interface BatchLimits {
  maxRows: number;
  maxBytes: number;
  maxDelayMs: number;
}

/** What a batch holds per message: its offset and its size in bytes (for the maxBytes bound). */
export interface BatchItem {
  offset: string;
  size: number;
}

/** The insert_deduplication_token of a batch: one range, one token, for every replay of it. */
export const dedupToken = (groupId: string, r: OffsetRange): string => `weir:${groupId}:${r.topic}:${r.partition}:${r.firstOffset}-${r.lastOffset}`;

const next = (offset: string): string => (BigInt(offset) + 1n).toString();
/**
 * Compare two offsets (non-negative decimal integers, as kafkajs gives them) without parsing:
 * the longer is larger, and equal lengths compare as text. Called per message, so it matters.
 */
export const cmpOffsets = (a: string, b: string): number => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
const cmp = cmpOffsets;

/**
 * Collects one partition's messages until a limit is reached. A range recorded before a
 * crash, when given, fixes where the next batch must end so that it is formed exactly as
 * before.
 */
export class PartitionBatcher<M extends BatchItem = BatchItem> {
  private messages: M[] = [];
  private bytes = 0;
  private openedAt = 0;
  private replay: OffsetRange[];

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly limits: BatchLimits,
    /** Ledger ranges past the committed offset, oldest first. */
    replay: OffsetRange[] = [],
  ) {
    this.replay = [...replay].sort((a, b) => cmp(a.firstOffset, b.firstOffset));
  }

  get size(): number {
    return this.messages.length;
  }

  /** The offset of the newest message buffered, if any. */
  get lastOffset(): string | undefined {
    return this.messages.at(-1)?.offset;
  }

  /** Add the next message of the partition (offsets strictly increasing). */
  add(m: M, now: number): void {
    const last = this.messages.at(-1);
    if (last && cmp(m.offset, last.offset) <= 0)
      throw new Error(`offset ${m.offset} after ${last.offset} on ${this.topic}/${this.partition}: messages out of order`);
    if (this.messages.length === 0) this.openedAt = now;
    this.messages.push(m);
    this.bytes += m.size;
  }

  /** Whether the batch must be flushed now. A replayed range flushes exactly at its recorded end. */
  due(now: number): boolean {
    if (this.messages.length === 0) return false;
    const pending = this.replay[0];
    const last = this.messages.at(-1)?.offset ?? '0';
    if (pending) return cmp(last, pending.lastOffset) >= 0;
    return this.messages.length >= this.limits.maxRows || this.bytes >= this.limits.maxBytes || now - this.openedAt >= this.limits.maxDelayMs;
  }

  /**
   * Take the batch to insert. While replaying, the batch is exactly the recorded range (a
   * range whose later messages were compacted away ends where the partition's data ends).
   */
  take(now: number): { range: OffsetRange; messages: M[]; replayed: boolean } | undefined {
    if (this.messages.length === 0) return undefined;
    const pending = this.replay[0];
    let count = this.messages.length;
    if (pending) {
      const end = this.messages.findIndex((m) => cmp(m.offset, pending.lastOffset) > 0);
      count = end < 0 ? this.messages.length : end;
    }
    const messages = this.messages.splice(0, count);
    this.bytes = this.messages.reduce((n, m) => n + m.size, 0);
    if (this.messages.length > 0) this.openedAt = now;
    const first = messages[0]?.offset ?? '0';
    const last = messages.at(-1)?.offset ?? '0';
    if (pending) {
      this.replay.shift();
      return { range: { ...pending }, messages, replayed: true };
    }
    return { range: { topic: this.topic, partition: this.partition, firstOffset: first, lastOffset: last }, messages, replayed: false };
  }
}

/**
 * The ledger ranges to replay after a restart: those not yet covered by the committed offset
 * (the next offset to read), oldest first.
 *
 * Two anomalies are reported rather than thrown, because a worker that refuses to start is a
 * partition that stops: a range straddling the committed offset (the log was truncated under
 * it by retention; it is replayed from what is left, under its recorded token), and a range
 * overlapping an earlier one (two owners cut batches at once; the later one is skipped, as its
 * messages are in the earlier one).
 */
export function rangesToReplay(ledger: OffsetRange[], committed: string): { ranges: OffsetRange[]; anomalies: string[] } {
  const pending = ledger.filter((r) => cmp(r.lastOffset, committed) >= 0).sort((a, b) => cmp(a.firstOffset, b.firstOffset) || cmp(a.lastOffset, b.lastOffset));
  const ranges: OffsetRange[] = [];
  const anomalies: string[] = [];
  for (const r of pending) {
    const prev = ranges.at(-1);
    if (prev && prev.firstOffset === r.firstOffset && prev.lastOffset === r.lastOffset) continue;
    if (prev && cmp(r.firstOffset, prev.lastOffset) <= 0) {
      anomalies.push(
        `ledger ranges ${prev.firstOffset}-${prev.lastOffset} and ${r.firstOffset}-${r.lastOffset} of ${r.topic}/${r.partition} overlap; skipping the later`,
      );
      continue;
    }
    if (cmp(r.firstOffset, committed) < 0)
      anomalies.push(`ledger range ${r.firstOffset}-${r.lastOffset} of ${r.topic}/${r.partition} straddles committed offset ${committed}`);
    ranges.push(r);
  }
  return { ranges, anomalies };
}

/** The offset to commit after a range landed: Kafka commits the next offset to read. */
export const commitOffsetAfter = (r: OffsetRange): string => next(r.lastOffset);
