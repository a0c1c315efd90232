// The reader of a matrix cell: it queries the table being changed itself, through an Endpoint
// served by `weir serve`, in a loop. Every read must succeed, never go backwards, count each id
// once, and be complete: it sees every row acknowledged before the read started.
import type { MatrixWriter } from './writers.js';

export interface ReadTotals {
  n: number;
  ids: number;
  [column: string]: unknown;
}

interface Failure {
  startedAt: number;
  endedAt: number;
  error: string;
}

/** One GET of the endpoint; throws with the status and body when it is not a 200 with one row. */
export async function readEndpoint(base: string, endpoint: string): Promise<ReadTotals> {
  const res = await fetch(`${base}/v0/pipes/${endpoint}.json`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${res.status} ${text.trim().slice(0, 200)}`);
  const row = (JSON.parse(text) as { data: Record<string, unknown>[] }).data[0];
  if (!row) throw new Error('no row');
  return { ...row, n: Number(row.n), ids: Number(row.ids) };
}

export class EndpointReader {
  reads = 0;
  readonly failures: Failure[] = [];
  readonly backwards: string[] = [];
  readonly incomplete: string[] = [];
  readonly doubled: string[] = [];
  last: ReadTotals | undefined;
  /** While ClickHouse itself is down, reads cannot succeed: failures in this window are counted apart. */
  outage: { from: number; to: number } | undefined;
  private running: Promise<void> | undefined;
  private stopRequested = false;

  constructor(
    private readonly base: string,
    private readonly endpoint: string,
    private readonly writer: Pick<MatrixWriter, 'acked'>,
  ) {}

  start(): void {
    this.running = (async () => {
      while (!this.stopRequested) {
        await this.readOnce();
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopRequested = true;
    await this.running;
  }

  /** One checked read. */
  async readOnce(): Promise<ReadTotals | undefined> {
    const startedAt = Date.now();
    let floor: number;
    try {
      floor = await this.writer.acked();
    } catch (e) {
      // The acknowledgement could not be looked up (Kafka's offsets): this read proves nothing.
      void e;
      return undefined;
    }
    try {
      const r = await readEndpoint(this.base, this.endpoint);
      this.reads++;
      if (this.last && r.n < this.last.n) this.backwards.push(`${this.last.n} → ${r.n}`);
      if (r.n < floor) this.incomplete.push(`read ${r.n} rows, ${floor} were acknowledged before it started`);
      if (r.ids !== r.n) this.doubled.push(`${r.n} rows but ${r.ids} ids`);
      this.last = r;
      return r;
    } catch (e) {
      this.failures.push({ startedAt, endedAt: Date.now(), error: e instanceof Error ? e.message : String(e) });
      return undefined;
    }
  }

  /** Failures outside the ClickHouse outage (there is no outage in most cells). */
  failed(): string[] {
    const o = this.outage;
    return this.failures.filter((f) => !o || f.endedAt < o.from || f.startedAt > o.to).map((f) => f.error);
  }

  failedDuringOutage(): number {
    return this.failures.length - this.failed().length;
  }
}
