import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { EventRecord } from '../controllers/types.js';
import type { Logger } from '../runtime/log.js';
import { errorMessage } from '../runtime/log.js';

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
}

/**
 * Kubernetes Events (core/v1, what `kubectl describe` shows). Repeats of the same
 * reason and message on the same object bump the count of one Event instead of adding one.
 */
export class EventRecorder {
  private readonly api: CoreV1Api;
  private readonly recent = new Map<string, { name: string; count: number }>();

  constructor(
    kc: KubeConfig,
    private readonly component: string,
    private readonly log: Logger,
    private readonly instance = '',
  ) {
    this.api = kc.makeApiClient(CoreV1Api);
  }

  async record(obj: InvolvedObject, event: EventRecord): Promise<void> {
    const namespace = obj.metadata.namespace ?? 'default';
    const key = `${obj.metadata.uid ?? obj.metadata.name}|${event.type}|${event.reason}|${event.message}`;
    const now = new Date();
    try {
      const seen = this.recent.get(key);
      if (seen) {
        seen.count++;
        await this.api.patchNamespacedEvent({ name: seen.name, namespace, body: { count: seen.count, lastTimestamp: now } }, mergePatch());
        return;
      }
      const name = `${obj.metadata.name.replace(/_/g, '-')}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
      await this.api.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name, namespace },
          involvedObject: {
            apiVersion: obj.apiVersion,
            kind: obj.kind,
            name: obj.metadata.name,
            namespace,
            ...(obj.metadata.uid !== undefined ? { uid: obj.metadata.uid } : {}),
            ...(obj.metadata.resourceVersion !== undefined ? { resourceVersion: obj.metadata.resourceVersion } : {}),
          },
          type: event.type,
          reason: event.reason,
          message: event.message,
          source: { component: this.component },
          reportingComponent: `weir.dev/${this.component}`,
          reportingInstance: this.instance,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
      if (this.recent.size > 5000) this.recent.clear();
      this.recent.set(key, { name, count: 1 });
    } catch (e) {
      // Events are best effort: a failure to record one must not fail the reconcile.
      this.log.warn('could not record event', { kind: obj.kind, namespace, name: obj.metadata.name, reason: event.reason, error: errorMessage(e) });
    }
  }
}

export const mergePatch = () => setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
