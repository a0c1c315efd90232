// A weir-managed writer for benchmarks: inserts page views in batches, back to back (or paced),
// and waits out fences at every batch boundary, as weir's ingesters do.
import type { TableRef } from '../src/plan/catalog.js';
import type { ClickHouse } from '../src/clickhouse/connection.js';
import { FenceParticipant, type FenceTiming } from '../src/execute/fence.js';
import { sleep } from '../src/runtime/backoff.js';

export interface PageViewWriterOptions {
  batchRows: number;
  /** Pause between batches; 0 writes back to back. */
  intervalMs: number;
  timing?: FenceTiming;
}

const DAY_MS = 86_400_000;

export class PageViewWriter {
  written = 0;
  batches = 0;
  readonly fence: FenceParticipant;
  private running: Promise<void> | undefined;
  private stopRequested = false;
  private readonly epoch = Date.now();

  constructor(
    private readonly ch: ClickHouse,
    private readonly table: TableRef,
    private readonly opts: PageViewWriterOptions,
  ) {
    this.fence = new FenceParticipant(ch, FenceParticipant.newId('bench-writer'), [table], opts.timing);
  }

  start(): void {
    this.running = this.loop();
    // Surfaces a failed insert at stop(); until then the loop's rejection is held, not unhandled.
    this.running.catch(() => undefined);
  }

  /** Resolves once the writer has written `rows` rows in total; rejects if the writer failed. */
  async waitForRows(rows: number): Promise<void> {
    while (this.written < rows) {
      await Promise.race([this.running, sleep(20)]);
    }
  }

  async stop(): Promise<void> {
    this.stopRequested = true;
    await this.running;
    await this.fence.leave();
  }

  private async loop(): Promise<void> {
    const target = `${this.table.database}.${this.table.table}`;
    while (!this.stopRequested) {
      await this.fence.beforeBatch();
      await this.ch.insert(target, this.batch());
      this.written += this.opts.batchRows;
      this.batches++;
      if (this.opts.intervalMs > 0) await sleep(this.opts.intervalMs);
    }
  }

  private batch(): object[] {
    return Array.from({ length: this.opts.batchRows }, (_, i) => {
      const n = this.written + i;
      return {
        // Within the last four weeks: the 180-day TTL must not expire them.
        timestamp: new Date(this.epoch - (n % 28) * DAY_MS - (n % 1000)).toISOString().replace('T', ' ').replace('Z', ''),
        // Unique across writers and the bulk fill, so uniqExact(session_id) = count() proves exactly-once.
        session_id: `${this.fence.writerId}-${n}`,
        tenant_id: `t${n % 50}`,
        pathname: `/page/${n % 500}`,
        country: ['de', 'us', 'fr', 'gb', 'jp'][n % 5],
        duration_ms: n % 30_000,
      };
    });
  }
}
