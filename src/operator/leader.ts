import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease, type V1LeaseSpec } from '@kubernetes/client-node';
import type { Logger } from '../runtime/log.js';
import { errorMessage } from '../runtime/log.js';
import { isNotFound, isConflict } from './kube-errors.js';

export interface LeaderElectionOptions {
  namespace: string;
  leaseName: string;
  identity: string;
  /** How long a lease is valid without renewal; a new leader waits this long after the old one vanished. */
  leaseDurationMs: number;
  /** The leader gives up if it could not renew for this long (must be < leaseDuration). */
  renewDeadlineMs: number;
  /** How often candidates retry and the leader renews. */
  retryPeriodMs: number;
  now?: () => number;
}

export const DEFAULT_LEADER_TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/**
 * Leader election on a coordination.k8s.io Lease, as client-go does it: expiry is judged
 * by when *we* last saw the record change (not by the holder's clock), updates use
 * optimistic concurrency, and a leader that cannot renew in time stops leading.
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private observed: { resourceVersion: string; holder: string; at: number } | undefined;
  private stopped = false;
  private leading = false;
  private readonly now: () => number;

  constructor(
    kc: KubeConfig,
    private readonly opts: LeaderElectionOptions,
    private readonly log: Logger,
  ) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.now = opts.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Campaign until elected, then hold the lease. Resolves when leadership is lost or
   * `stop` is called; `onStartedLeading` runs once elected.
   */
  async run(onStartedLeading: () => void): Promise<'lost' | 'stopped'> {
    while (!this.stopped) {
      if (await this.tryAcquireOrRenew()) break;
      await this.pause();
    }
    if (this.stopped) return 'stopped';
    this.leading = true;
    this.log.info('became leader', { lease: this.opts.leaseName, identity: this.opts.identity });
    onStartedLeading();
    let lastRenew = this.now();
    while (!this.stopped) {
      await this.pause();
      if (this.stopped) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = this.now();
      } else if (this.now() - lastRenew > this.opts.renewDeadlineMs) {
        this.leading = false;
        this.log.error('lost leadership: could not renew the lease in time', { lease: this.opts.leaseName });
        return 'lost';
      }
    }
    return 'stopped';
  }

  /** Stop campaigning; a leader releases the lease so a successor need not wait for expiry. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({ name: this.opts.leaseName, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      const { holderIdentity: _released, ...held } = lease.spec;
      lease.spec = { ...held, leaseDurationSeconds: 1, renewTime: new V1MicroTime(this.now()) };
      await this.api.replaceNamespacedLease({ name: this.opts.leaseName, namespace: this.opts.namespace, body: lease });
      this.log.info('released leader lease', { lease: this.opts.leaseName });
    } catch (e) {
      this.log.warn('could not release leader lease', { error: errorMessage(e) });
    }
  }

  private pause(): Promise<void> {
    return new Promise((r) => setTimeout(r, this.opts.retryPeriodMs));
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, leaseName: name, identity } = this.opts;
    const now = this.now();
    const spec = (prev?: V1Lease['spec']): V1LeaseSpec => ({
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.opts.leaseDurationMs / 1000),
      acquireTime: prev?.holderIdentity === identity && prev.acquireTime ? prev.acquireTime : new V1MicroTime(now),
      renewTime: new V1MicroTime(now),
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (prev?.holderIdentity === identity ? 0 : 1),
    });
    try {
      let lease: V1Lease;
      try {
        lease = await this.api.readNamespacedLease({ name, namespace });
      } catch (e) {
        if (!isNotFound(e)) throw e;
        await this.api.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: { ...spec(), leaseTransitions: 0 } },
        });
        return true;
      }
      const holder = lease.spec?.holderIdentity ?? '';
      const rv = lease.metadata?.resourceVersion ?? '';
      if (!this.observed || this.observed.resourceVersion !== rv) this.observed = { resourceVersion: rv, holder, at: now };
      const durationMs = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
      const heldByOther = holder !== '' && holder !== identity && this.observed.at + durationMs > now;
      if (heldByOther) return false;
      lease.spec = spec(lease.spec);
      const updated = await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      this.observed = { resourceVersion: updated.metadata?.resourceVersion ?? '', holder: identity, at: now };
      return true;
    } catch (e) {
      if (!isConflict(e)) this.log.warn('leader election attempt failed', { lease: name, error: errorMessage(e) });
      return false;
    }
  }
}
