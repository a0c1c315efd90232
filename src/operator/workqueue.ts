import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../runtime/backoff.js';

export type ReconcileOutcome = { requeueAfterMs?: number } | void;

export interface WorkQueueOptions {
  concurrency?: number;
  backoff?: BackoffPolicy;
  onDepth?: (depth: number) => void;
}

/**
 * A keyed work queue, as client-go's: a key is never handled twice at once (an add while it
 * runs marks it dirty and it runs again after), failures are retried with capped
 * exponential backoff per key, and adds of a queued key coalesce.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly waiters: (() => void)[] = [];
  private stopped = false;
  private readonly concurrency: number;
  private readonly backoff: BackoffPolicy;

  constructor(private readonly opts: WorkQueueOptions = {}) {
    this.concurrency = opts.concurrency ?? 2;
    this.backoff = opts.backoff ?? { ...DEFAULT_BACKOFF, initialMs: 500, maxMs: 5 * 60_000 };
  }

  get depth(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.opts.onDepth?.(this.queue.length);
    this.waiters.shift()?.();
  }

  /** Add after a delay; an earlier pending delayed add of the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) return this.add(key);
    const existing = this.timers.get(key);
    if (existing) return;
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, timer);
  }

  /** Requeue after a failure, with this key's backoff; returns the delay used. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = backoffDelay(n, this.backoff);
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /**
   * Run `handle` for queued keys until `shutDown`. A thrown error requeues the key with
   * backoff; a returned requeueAfterMs requeues it after that delay (and resets backoff).
   */
  async run(handle: (key: string) => Promise<ReconcileOutcome>, onError?: (key: string, e: unknown, retryInMs: number) => void): Promise<void> {
    const worker = async () => {
      while (!this.stopped) {
        const key = this.queue.shift();
        if (key === undefined) {
          await new Promise<void>((resolve) => this.waiters.push(resolve));
          continue;
        }
        this.queued.delete(key);
        this.processing.add(key);
        this.opts.onDepth?.(this.queue.length);
        try {
          const outcome = await handle(key);
          this.forget(key);
          if (outcome && outcome.requeueAfterMs !== undefined) this.addAfter(key, outcome.requeueAfterMs);
        } catch (e) {
          const delay = this.addRateLimited(key);
          onError?.(key, e, delay);
        } finally {
          this.processing.delete(key);
          if (this.dirty.delete(key)) this.add(key);
        }
      }
    };
    // Every add wakes one idle worker; a busy worker re-checks the queue before sleeping.
    await Promise.all(Array.from({ length: this.concurrency }, () => worker()));
  }

  /** Stop handing out keys; resolves when in-flight handlers have finished. */
  async shutDown(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const wake of this.waiters.splice(0)) wake();
    while (this.processing.size > 0) await new Promise((r) => setTimeout(r, 20));
  }
}
