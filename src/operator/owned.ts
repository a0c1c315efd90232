import { AppsV1Api, CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { KindName } from '../api/kinds.js';
import { MANAGED_BY, OWNER_LABELS } from '../controllers/workloads.js';
import type { Logger } from '../runtime/log.js';
import { ResilientInformer } from './informer.js';

/**
 * Watches the Deployments and Services weir owns, so that a change to one (scaled by hand,
 * deleted, its pods becoming ready) reconciles its owner again.
 */
export function watchOwnedObjects(
  kc: KubeConfig,
  log: Logger,
  namespace: string | undefined,
  onOwnerTouched: (kind: KindName, namespace: string, name: string) => void,
): ResilientInformer<KubernetesObject>[] {
  const selector = `${OWNER_LABELS.managedBy}=${MANAGED_BY}`;
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const touched = (obj: KubernetesObject) => {
    const labels = obj.metadata?.labels ?? {};
    const kind = labels[OWNER_LABELS.kind] as KindName | undefined;
    const name = labels[OWNER_LABELS.name];
    if (kind && name && obj.metadata?.namespace) {
      log.debug('owned object changed', { kind, namespace: obj.metadata.namespace, name, owned: obj.metadata.name });
      onOwnerTouched(kind, obj.metadata.namespace, name);
    }
  };
  const path = (group: string, plural: string) => `${group}${namespace ? `/namespaces/${namespace}` : ''}/${plural}`;
  return [
    new ResilientInformer<KubernetesObject>(
      kc,
      {
        path: path('/apis/apps/v1', 'deployments'),
        labelSelector: selector,
        list: () =>
          namespace ? apps.listNamespacedDeployment({ namespace, labelSelector: selector }) : apps.listDeploymentForAllNamespaces({ labelSelector: selector }),
        onChange: touched,
        onDelete: touched,
      },
      log,
    ),
    new ResilientInformer<KubernetesObject>(
      kc,
      {
        path: path('/api/v1', 'services'),
        labelSelector: selector,
        list: () =>
          namespace ? core.listNamespacedService({ namespace, labelSelector: selector }) : core.listServiceForAllNamespaces({ labelSelector: selector }),
        onChange: touched,
        onDelete: touched,
      },
      log,
    ),
  ];
}
