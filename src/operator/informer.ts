import { makeInformer, type KubeConfig, type KubernetesObject, type ListPromise } from '@kubernetes/client-node';
import { backoffDelay } from '../runtime/backoff.js';
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
}

/**
 * An informer that keeps itself alive: it restarts after errors with bounded backoff and
 * re-lists when the watch has been idle too long, since a silently dead watch would leave
 * the operator reconciling nothing.
 */
export class ResilientInformer<T extends KubernetesObject> {
  private readonly informer;
  private failures = 0;
  private lastEventAt = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private synced = false;

  constructor(
    kc: KubeConfig,
    private readonly opts: WatchOptions<T>,
    private readonly log: Logger,
  ) {
    this.informer = makeInformer<T>(kc, opts.path, opts.list, opts.labelSelector);
    const seen = (obj: T) => {
      this.lastEventAt = Date.now();
      this.failures = 0;
      opts.onChange(obj);
    };
    this.informer.on('add', seen);
    this.informer.on('update', seen);
    this.informer.on('delete', (obj) => {
      this.lastEventAt = Date.now();
      opts.onDelete(obj);
    });
    this.informer.on('connect', () => {
      this.lastEventAt = Date.now();
    });
    this.informer.on('error', (e) => this.scheduleRestart(e));
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  list(): readonly T[] {
    return this.informer.list();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  async start(): Promise<void> {
    await this.informer.start();
    this.synced = true;
    const idle = this.opts.idleRestartMs ?? 5 * 60_000;
    this.idleTimer = setInterval(() => {
      if (!this.stopped && Date.now() - this.lastEventAt > idle) {
        this.log.info('restarting idle watch', { path: this.opts.path });
        this.restart();
      }
    }, Math.min(idle, 30_000));
    this.idleTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.idleTimer);
    clearTimeout(this.restartTimer);
    await this.informer.stop();
  }

  private scheduleRestart(e: unknown): void {
    if (this.stopped || this.restartTimer) return;
    const delay = backoffDelay(this.failures++, { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.2 });
    this.log.warn('watch failed; restarting', { path: this.opts.path, error: errorMessage(e), retryInMs: delay });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.restart();
    }, delay);
  }

  private restart(): void {
    this.lastEventAt = Date.now();
    void this.informer
      .stop()
      .then(() => this.informer.start())
      .catch((e: unknown) => this.scheduleRestart(e));
  }
}
