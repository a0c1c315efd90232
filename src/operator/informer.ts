import { ListWatch, Watch, type KubeConfig, type KubernetesObject, type ListPromise } from '@kubernetes/client-node';
import { retry, sleep, type BackoffPolicy } from '../runtime/backoff.js';
import type { Logger } from '../runtime/log.js';
import { errorMessage } from '../runtime/log.js';

export interface WatchOptions<T extends KubernetesObject> {
  /** API path to watch, e.g. /apis/weir.dev/v1alpha1/datasources. */
  path: string;
  list: ListPromise<T>;
  labelSelector?: string;
  onChange: (obj: T) => void;
  onDelete: (obj: T) => void;
  /** Restart the watch (re-list) when no event arrived for this long: JS watches can go quiet. */
  idleRestartMs?: number;
  /** Backoff between restarts of a watch that keeps failing (default 500 ms doubling to 30 s). */
  backoff?: BackoffPolicy;
  /** A restarted watch is healthy again once it delivers an event, or stays up this long (default 10 s). */
  healthyAfterMs?: number;
}

/** The client-side apply annotation: a full second copy of the spec, which no reconcile reads. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * What the cache keeps of an object (controller-runtime's TransformStripManagedFields): everything
 * but metadata.managedFields and the last-applied annotation, which are often most of its bytes
 * and which no reconcile reads. In place, so the cache holds the one copy that was parsed.
 */
export function stripForCache<T extends KubernetesObject>(obj: T): T {
  const meta = obj.metadata;
  if (!meta) return obj;
  delete meta.managedFields;
  const annotations = meta.annotations;
  if (annotations && LAST_APPLIED_ANNOTATION in annotations) {
    delete annotations[LAST_APPLIED_ANNOTATION];
    if (Object.keys(annotations).length === 0) delete meta.annotations;
  }
  return obj;
}

/** A watch whose objects are stripped (stripForCache) before the cache stores them. */
class StrippingWatch extends Watch {
  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase, obj, watchObj) => callback(phase, phase === 'ERROR' || phase === 'BOOKMARK' ? obj : stripForCache(obj as KubernetesObject), watchObj),
      done,
    );
  }
}

const WATCH_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.2 };

// node-fetch's error when the informer's own stop() aborts the watch request; client-node reports it as a watch error.
const isOwnAbort = (e: unknown): boolean => typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'AbortError';

/**
 * An informer that keeps itself alive: after an error it restarts with retry() (bounded backoff
 * with jitter) until the new watch holds, and it re-lists when the watch has been idle too long,
 * since a silently dead watch would leave the operator reconciling nothing.
 */
export class ResilientInformer<T extends KubernetesObject> {
  private readonly informer;
  private lastEventAt = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly stopping = new AbortController();
  private synced = false;
  /** Resolves the wait of start() once a list succeeded. */
  private onSynced: () => void = () => undefined;
  /** The restart in progress: one retry() until a new watch holds. */
  private restarting: Promise<void> | undefined;
  /** The informer's start() of the restart attempt in progress. */
  private starting: Promise<void> | undefined;
  /** Fails the restart attempt in progress: its watch failed before it held. */
  private failAttempt: ((e: unknown) => void) | undefined;
  /** Ends the restart attempt in progress early: its watch delivered an event. */
  private attemptHeld: (() => void) | undefined;

  constructor(
    kc: KubeConfig,
    private readonly opts: WatchOptions<T>,
    private readonly log: Logger,
  ) {
    // The cache is complete once a list succeeded (start() resolves even when the first list failed).
    const list: ListPromise<T> = async () => {
      const listed = await opts.list();
      for (const item of listed.items) stripForCache(item);
      this.synced = true;
      this.onSynced();
      return listed;
    };
    // makeInformer's ListWatch, with a watch that strips objects on the way in, as the list does.
    this.informer = new ListWatch<T>(opts.path, new StrippingWatch(kc), list, false, opts.labelSelector);
    const seen = (obj: T) => {
      this.lastEventAt = Date.now();
      this.attemptHeld?.();
      opts.onChange(obj);
    };
    this.informer.on('add', seen);
    this.informer.on('update', seen);
    this.informer.on('delete', (obj) => {
      this.lastEventAt = Date.now();
      this.attemptHeld?.();
      opts.onDelete(obj);
    });
    this.informer.on('connect', () => {
      this.lastEventAt = Date.now();
    });
    this.informer.on('error', (e) => this.watchFailed(e));
  }

  /** A list has succeeded: the cache holds every object (controller-runtime's WaitForCacheSync). */
  get hasSynced(): boolean {
    return this.synced;
  }

  /** The cached objects, of one namespace when given (the cache is indexed by namespace). */
  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  /** Start the watch; resolves once the cache is complete (a list succeeded, retried as a watch is), or on stop(). */
  async start(): Promise<void> {
    const listed = new Promise<void>((resolve) => (this.onSynced = resolve));
    await this.informer.start();
    // A first list that failed was handed to watchFailed, whose restarts list again: wait for one that succeeds (or stop()).
    if (!this.synced) await Promise.race([listed, new Promise((resolve) => this.stopping.signal.addEventListener('abort', resolve, { once: true }))]);
    const idle = this.opts.idleRestartMs ?? 5 * 60_000;
    this.idleTimer = setInterval(
      () => {
        if (!this.stopping.signal.aborted && !this.restarting && Date.now() - this.lastEventAt > idle) {
          this.log.info('restarting idle watch', { path: this.opts.path });
          this.restart();
        }
      },
      Math.min(idle, 30_000),
    );
    this.idleTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    clearInterval(this.idleTimer);
    this.failAttempt?.(this.stopping.signal.reason);
    // A restart in flight ends before the informer stops for good, so it cannot start it again.
    await this.restarting;
    await this.starting?.catch(() => undefined);
    await this.informer.stop();
  }

  private watchFailed(e: unknown): void {
    if (this.stopping.signal.aborted || isOwnAbort(e)) return;
    if (this.failAttempt) return this.failAttempt(e);
    this.log.warn('watch failed; restarting', { path: this.opts.path, error: errorMessage(e) });
    this.restart();
  }

  /** Restart the watch until one holds; a watch that fails again while restarting backs off. */
  private restart(): void {
    if (this.stopping.signal.aborted || this.restarting) return;
    this.restarting = retry(() => this.restartOnce(), {
      policy: this.opts.backoff ?? WATCH_BACKOFF,
      retries: Infinity,
      // Whatever failed (the API server down, a 403, a 500), the next attempt may pass.
      retriable: () => true,
      signal: this.stopping.signal,
      onRetry: (e, attempt, delayMs) =>
        this.log.warn('watch failed again; restarting', { path: this.opts.path, error: errorMessage(e), attempt: attempt + 1, retryInMs: delayMs }),
    })
      .catch(() => undefined) // only stop() ends it without a watch that holds
      .finally(() => {
        this.restarting = undefined;
      });
  }

  /**
   * One restart: stop the informer and start it again (a new watch from the last resourceVersion,
   * a re-list after 410). Resolves once the watch holds: it delivered an event, or did not fail
   * for healthyAfterMs. Rejects with the watch's error when it fails first.
   */
  private async restartOnce(): Promise<void> {
    this.lastEventAt = Date.now();
    await this.informer.stop();
    if (this.stopping.signal.aborted) return;
    const failed = new Promise<never>((_, reject) => (this.failAttempt = reject));
    const held = new Promise<void>((resolve) => (this.attemptHeld = resolve));
    try {
      this.starting = this.informer.start();
      await Promise.race([this.starting, failed]);
      await Promise.race([failed, held, sleep(this.opts.healthyAfterMs ?? 10_000, this.stopping.signal)]);
    } finally {
      this.failAttempt = undefined;
      this.attemptHeld = undefined;
    }
  }
}
