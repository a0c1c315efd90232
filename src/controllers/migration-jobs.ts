// Migrations off the reconcile path: a DataSource reconcile that decides on a copy-and-swap hands
// it to a job here and returns at once, so one multi-hour migration does not hold a work-queue
// worker while every other resource waits. At most `maxConcurrent` jobs run per ClickHouse
// connection; the others are queued (status MigrationQueued) and requeued when a slot frees. A
// finished job's decision (history, the fence it held, or the refusal) is kept for the reconcile
// its completion requeues, which writes it.
import type { Logger } from '../runtime/log.js';
import { errorMessage } from '../runtime/log.js';

/** How a job ended: the status decision to write, or the error to retry with. */
export type JobOutcome<D> = { decision: D } | { error: unknown };

export interface MigrationJobsOptions {
  /** Jobs running at once on this connection (--max-concurrent-migrations). */
  maxConcurrent: number;
  /** Called when a job of `key` ended, and for each queued key when a slot frees: enqueue it. */
  requeue: (key: string) => void;
  log?: Logger;
}

export const DEFAULT_MAX_CONCURRENT_MIGRATIONS = 2;

export class MigrationJobs<D> {
  private readonly running = new Map<string, Promise<void>>();
  private readonly outcomes = new Map<string, JobOutcome<D>>();
  /** Keys that asked for a slot while none was free, in the order they asked. */
  private readonly queued: string[] = [];

  constructor(private readonly opts: MigrationJobsOptions) {}

  /** The job of `key` runs now, waits for a slot, or neither. */
  state(key: string): 'running' | 'queued' | undefined {
    if (this.running.has(key)) return 'running';
    return this.queued.includes(key) ? 'queued' : undefined;
  }

  /** The keys of the jobs running now (for a queued resource's message). */
  runningKeys(): string[] {
    return [...this.running.keys()];
  }

  get maxConcurrent(): number {
    return this.opts.maxConcurrent;
  }

  /** A finished job's outcome, once: the reconcile that reads it writes it. */
  take(key: string): JobOutcome<D> | undefined {
    const outcome = this.outcomes.get(key);
    this.outcomes.delete(key);
    return outcome;
  }

  /** Start `run` for `key` if a slot is free (or it runs already); otherwise queue the key. */
  submit(key: string, run: () => Promise<D>): 'running' | 'queued' {
    if (this.running.has(key)) return 'running';
    if (this.running.size >= this.opts.maxConcurrent) {
      if (!this.queued.includes(key)) this.queued.push(key);
      return 'queued';
    }
    const i = this.queued.indexOf(key);
    if (i >= 0) this.queued.splice(i, 1);
    const job = (async () => {
      try {
        this.outcomes.set(key, { decision: await run() });
      } catch (error) {
        this.opts.log?.warn('migration job failed; its next reconcile retries it', { key, error: errorMessage(error) });
        this.outcomes.set(key, { error });
      } finally {
        this.running.delete(key);
        this.opts.requeue(key);
        // A slot is free: every queued key asks again (the first to reconcile takes it).
        for (const waiting of this.queued) this.opts.requeue(waiting);
      }
    })();
    this.running.set(key, job);
    return 'running';
  }

  /** Wait for the running jobs (tests; a stopping operator lets them be cut instead). */
  async idle(): Promise<void> {
    await Promise.all([...this.running.values()]);
  }
}
