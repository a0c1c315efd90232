import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION, GROUP, VERSION, type CommonStatus, type Resource } from '../api/common.js';
import { KINDS, type KindName } from '../api/kinds.js';
import type { EventRecord, ReconcileContext, ReconcileDecision } from '../controllers/types.js';
import { deepEqual } from '../runtime/hash.js';
import type { Logger } from '../runtime/log.js';
import { errorMessage, resourceFields } from '../runtime/log.js';
import type { OperatorMetrics } from '../runtime/metrics.js';
import { EventRecorder, mergePatch } from './events.js';
import { ResilientInformer } from './informer.js';
import { isConflict, isNotFound, KubeConflictError, kubeErrorMessage } from './kube-errors.js';
import { WorkQueue } from './workqueue.js';

export const FINALIZER = 'weir.dev/cleanup';

export type AnyResource = Resource<unknown, CommonStatus> & KubernetesObject;

export interface KindHandler<R extends AnyResource> {
  kind: KindName;
  /** Decide the status from the resource and the world. Pure apart from reads. */
  reconcile(obj: R, ctx: ReconcileContext): Promise<ReconcileDecision<NonNullable<R['status']>>> | ReconcileDecision<NonNullable<R['status']>>;
  /** Release what the resource owns before its finalizer is removed (e.g. drop tables when deletionPolicy is Delete). */
  finalize?(obj: R): Promise<void>;
}

export interface ControllerDeps {
  kc: KubeConfig;
  log: Logger;
  metrics: OperatorMetrics;
  events: EventRecorder;
  context: () => ReconcileContext;
  /** Periodic full resync: every cached object is reconciled again. */
  resyncMs?: number | undefined;
  concurrency?: number;
  /** Watch one namespace only; default all namespaces. */
  namespace?: string | undefined;
}

const keyOf = (obj: KubernetesObject): string => `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;

/**
 * One controller per kind: an informer feeds a work queue; each key is reconciled by
 * (1) handling deletion and the finalizer, (2) asking the kind's handler for the desired
 * status, (3) writing status and events only when something changed.
 */
export class Controller<R extends AnyResource> {
  readonly informer: ResilientInformer<R>;
  readonly queue: WorkQueue;
  private readonly api: CustomObjectsApi;
  private readonly plural: string;
  private resyncTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Hooks run after an object of this kind changes or (deleted: true) is gone (e.g. requeue dependants). */
  readonly onChange: ((obj: R, deleted: boolean) => void)[] = [];

  constructor(
    private readonly handler: KindHandler<R>,
    private readonly deps: ControllerDeps,
  ) {
    this.plural = KINDS[handler.kind].plural;
    this.api = deps.kc.makeApiClient(CustomObjectsApi);
    this.queue = new WorkQueue({
      concurrency: deps.concurrency ?? 2,
      onDepth: (d) => deps.metrics.queueDepth.set({ kind: handler.kind }, d),
    });
    const ns = deps.namespace;
    const path = ns ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${this.plural}` : `/apis/${GROUP}/${VERSION}/${this.plural}`;
    const list = () =>
      (ns
        ? this.api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: this.plural })
        : this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: this.plural })) as never;
    this.informer = new ResilientInformer<R>(
      deps.kc,
      {
        path,
        list,
        onChange: (obj) => {
          this.queue.add(keyOf(obj));
          for (const hook of this.onChange) hook(obj, false);
        },
        onDelete: (obj) => {
          for (const hook of this.onChange) hook(obj, true);
        },
      },
      deps.log,
    );
  }

  get kind(): KindName {
    return this.handler.kind;
  }

  enqueue(namespace: string, name: string): void {
    this.queue.add(`${namespace}/${name}`);
  }

  enqueueAll(namespace?: string): void {
    for (const obj of this.informer.list(namespace)) this.queue.add(keyOf(obj));
  }

  async start(): Promise<void> {
    await this.informer.start();
    this.running = this.queue.run(
      (key) => this.reconcileKey(key),
      (key, e, retryInMs) => {
        const [namespace, name] = key.split('/') as [string, string];
        this.deps.log.error('reconcile failed', { ...resourceFields(this.kind, namespace, name), error: errorMessage(e), retryInMs });
      },
    );
    this.resyncTimer = setInterval(() => this.enqueueAll(), this.deps.resyncMs ?? 5 * 60_000);
    this.resyncTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    await this.queue.shutDown();
    await this.informer.stop();
    await this.running;
  }

  private async reconcileKey(key: string): Promise<{ requeueAfterMs?: number } | void> {
    const [namespace, name] = key.split('/') as [string, string];
    const obj = this.informer.get(name, namespace);
    if (!obj) return; // deleted; its finalizer already ran
    const log = this.deps.log.child(resourceFields(this.kind, namespace, name));
    const end = this.deps.metrics.reconcileDuration.startTimer({ kind: this.kind });
    try {
      const outcome = await this.reconcileObject(obj, log);
      this.deps.metrics.reconciles.inc({ kind: this.kind, result: outcome?.requeueAfterMs !== undefined ? 'requeue' : 'success' });
      return outcome;
    } catch (e) {
      this.deps.metrics.reconciles.inc({ kind: this.kind, result: 'error' });
      this.deps.metrics.reconcileErrors.inc({ kind: this.kind });
      throw e;
    } finally {
      end();
    }
  }

  private async reconcileObject(obj: R, log: Logger): Promise<{ requeueAfterMs?: number } | void> {
    const { namespace = 'default', name } = obj.metadata as { namespace?: string; name: string };
    const finalizers = obj.metadata.finalizers ?? [];
    if (obj.metadata.deletionTimestamp) {
      if (!finalizers.includes(FINALIZER)) return;
      log.info('finalizing');
      await this.handler.finalize?.(obj);
      await this.patchMetadata(obj, { finalizers: finalizers.filter((f) => f !== FINALIZER) });
      log.info('finalizer removed');
      return;
    }
    if (!finalizers.includes(FINALIZER)) {
      // The update event of this patch queues the key again; reconcile then.
      await this.patchMetadata(obj, { finalizers: [...finalizers, FINALIZER] });
      return;
    }

    const involved = { apiVersion: API_VERSION, kind: this.kind, metadata: obj.metadata as never };
    const report = async (event: EventRecord | undefined, status?: Record<string, unknown>) => {
      if (event) await this.deps.events.record(involved, event);
      if (status) {
        await this.api
          .patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: this.plural, name, body: { status } }, mergePatch())
          .catch((e: unknown) => log.warn('could not patch progress into status', { error: kubeErrorMessage(e) }));
      }
    };
    const decision = await this.handler.reconcile(obj, { ...this.deps.context(), log, report });
    if (!deepEqual(decision.status, obj.status ?? {})) {
      // A merge patch keeps fields it does not mention: fields the decision dropped (and any a
      // progress report added meanwhile) are nulled explicitly, so status is exactly the decision.
      const cleared = Object.fromEntries(
        Object.keys(KINDS[this.kind].statusSchema.properties ?? {})
          .filter((k) => !(k in (decision.status as object)))
          .map((k) => [k, null]),
      );
      await this.api.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, namespace, plural: this.plural, name, body: { status: { ...cleared, ...decision.status } } },
        mergePatch(),
      );
      log.info('status updated', { phase: decision.status.phase, generation: obj.metadata.generation });
    }
    for (const event of decision.events) await this.deps.events.record(involved, event);
    return decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : undefined;
  }

  /** Merge-patch metadata with the object's resourceVersion, so a concurrent change conflicts instead of being lost. */
  private async patchMetadata(obj: R, metadata: Record<string, unknown>): Promise<void> {
    const { namespace = 'default', name, resourceVersion } = obj.metadata as { namespace?: string; name: string; resourceVersion?: string };
    try {
      await this.api.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace, plural: this.plural, name, body: { metadata: { ...metadata, resourceVersion } } },
        mergePatch(),
      );
    } catch (e) {
      if (isNotFound(e)) return;
      if (isConflict(e)) throw new KubeConflictError(`conflict updating ${this.kind} ${namespace}/${name}; will retry`, e);
      throw new Error(`patching ${this.kind} ${namespace}/${name}: ${kubeErrorMessage(e)}`);
    }
  }
}
