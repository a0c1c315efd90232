// The Kubernetes objects weir runs for its resources: a ConfigMap with the worker's config, a
// Deployment running `weir <subcommand>` from the operator's image (a hash of the config in the
// pod template, so a change rolls the pods), and optionally a HorizontalPodAutoscaler, a
// Service and a PodDisruptionBudget. Building them is pure (unit-tested); applying them is
// server-side apply with weir's field manager, so unchanged objects are not written at all.
import type { V1ConfigMap, V1Deployment, V1EnvVar, V1PodDisruptionBudget, V1Service, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import type { Autoscaling, Resources } from '../api/common.js';
import { API_VERSION } from '../api/common.js';
import type { KindName } from '../api/kinds.js';
import { stableHash } from '../runtime/hash.js';

/** Labels on every object weir creates, pointing back at the resource that owns it. */
export const OWNER_LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  kind: 'weir.dev/owner-kind',
  name: 'weir.dev/owner-name',
} as const;
export const MANAGED_BY = 'weir';

export function ownerLabels(kind: KindName, name: string): Record<string, string> {
  return { [OWNER_LABELS.managedBy]: MANAGED_BY, [OWNER_LABELS.kind]: kind, [OWNER_LABELS.name]: name };
}

/** How the operator runs workers: its own image, and the ClickHouse they talk to. */
export interface WorkerSettings {
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** ClickHouse URL for workers of resources without a connectionRef. */
  clickhouseUrl?: string;
  clickhouseUser?: string;
  /** A Secret, in each resource's namespace, whose `password` key is the ClickHouse password (optional). */
  clickhousePasswordSecret?: string;
  serviceAccountName?: string;
}

export const CONFIG_HASH_ANNOTATION = 'weir.dev/config-hash';
export const CONFIG_DIR = '/etc/weir/config';
export const METRICS_PORT = 9090;

interface Owner {
  kind: KindName;
  metadata: { name: string; namespace?: string; uid?: string };
}

export interface WorkerSpec {
  owner: Owner;
  /** ingest, serve or events: the subcommand, and the suffix of every object's name. */
  component: 'ingest' | 'serve' | 'events';
  /** Files of the ConfigMap mounted at CONFIG_DIR. */
  config: Record<string, string>;
  args: string[];
  env?: V1EnvVar[];
  /** Desired replicas (already capped); ignored when autoscaling owns the count. */
  replicas: number;
  autoscaling?: Autoscaling;
  resources?: Resources;
  /** A port served to clients (serve): a Service is created for it. */
  servicePort?: number;
  /** Extra volumes from Secrets: name → mount path. */
  secretMounts?: { secret: string; path: string }[];
  /** Pod shutdown allowance (ingest flushes and commits on SIGTERM). */
  terminationGracePeriodSeconds?: number;
}

export interface WorkerObjects {
  configMap: V1ConfigMap;
  deployment: V1Deployment;
  hpa?: V2HorizontalPodAutoscaler;
  service?: V1Service;
  pdb?: V1PodDisruptionBudget;
}

export const workerName = (owner: Owner, component: WorkerSpec['component']): string => `${owner.metadata.name}-${component}`;

function ownerReference(owner: Owner) {
  return [{ apiVersion: API_VERSION, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid ?? '', controller: true, blockOwnerDeletion: true }];
}

/** Env every worker gets: where ClickHouse is, and the pod's own name (its writer id). */
export function clickhouseEnv(settings: WorkerSettings, connectionSecret: string | undefined): V1EnvVar[] {
  const env: V1EnvVar[] = [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }];
  if (connectionSecret) {
    env.push(
      { name: 'WEIR_CLICKHOUSE_URL', valueFrom: { secretKeyRef: { name: connectionSecret, key: 'url' } } },
      { name: 'WEIR_CLICKHOUSE_USER', valueFrom: { secretKeyRef: { name: connectionSecret, key: 'username', optional: true } } },
      { name: 'WEIR_CLICKHOUSE_PASSWORD', valueFrom: { secretKeyRef: { name: connectionSecret, key: 'password', optional: true } } },
    );
    return env;
  }
  if (settings.clickhouseUrl) env.push({ name: 'WEIR_CLICKHOUSE_URL', value: settings.clickhouseUrl });
  if (settings.clickhouseUser) env.push({ name: 'WEIR_CLICKHOUSE_USER', value: settings.clickhouseUser });
  if (settings.clickhousePasswordSecret) {
    env.push({ name: 'WEIR_CLICKHOUSE_PASSWORD', valueFrom: { secretKeyRef: { name: settings.clickhousePasswordSecret, key: 'password', optional: true } } });
  }
  return env;
}

/** The objects for one worker Deployment, exactly as weir applies them. */
export function workerObjects(spec: WorkerSpec, settings: WorkerSettings): WorkerObjects {
  const { owner, component } = spec;
  const name = workerName(owner, component);
  const namespace = owner.metadata.namespace ?? 'default';
  const labels = { ...ownerLabels(owner.kind, owner.metadata.name), 'app.kubernetes.io/name': 'weir', 'app.kubernetes.io/component': component };
  const selector = { [`weir.dev/${component}`]: owner.metadata.name };
  const metadata = { name, namespace, labels, ownerReferences: ownerReference(owner) };
  const configHash = stableHash({ config: spec.config, args: spec.args, env: spec.env ?? [] });
  const ports = [{ name: 'metrics', containerPort: METRICS_PORT }];
  if (spec.servicePort) ports.unshift({ name: 'http', containerPort: spec.servicePort });
  const configMap: V1ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: spec.config };
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata,
    spec: {
      ...(spec.autoscaling ? {} : { replicas: spec.replicas }),
      selector: { matchLabels: selector },
      // Readiness-gated: a new pod takes traffic (or partitions) only once ready; none is removed before.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...labels, ...selector }, annotations: { [CONFIG_HASH_ANNOTATION]: configHash } },
        spec: {
          ...(settings.serviceAccountName ? { serviceAccountName: settings.serviceAccountName } : {}),
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds ?? 30,
          securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: component,
              image: settings.image,
              imagePullPolicy: settings.imagePullPolicy ?? 'IfNotPresent',
              args: [component, ...spec.args, '--metrics-port', String(METRICS_PORT)],
              env: [...(spec.env ?? [])],
              ports,
              readinessProbe: { httpGet: { path: '/readyz', port: 'metrics' }, periodSeconds: 2, failureThreshold: 2 },
              livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 10, failureThreshold: 3, initialDelaySeconds: 10 },
              ...(spec.resources ? { resources: spec.resources } : {}),
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [
                { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                ...(spec.secretMounts ?? []).map((m, i) => ({ name: `secret-${i}`, mountPath: m.path, readOnly: true })),
              ],
            },
          ],
          volumes: [
            { name: 'config', configMap: { name } },
            ...(spec.secretMounts ?? []).map((m, i) => ({ name: `secret-${i}`, secret: { secretName: m.secret, optional: true } })),
          ],
        },
      },
    },
  };
  const objects: WorkerObjects = { configMap, deployment };
  if (spec.autoscaling) {
    objects.hpa = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata,
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
        minReplicas: Math.min(spec.autoscaling.minReplicas ?? 1, spec.autoscaling.maxReplicas),
        maxReplicas: spec.autoscaling.maxReplicas,
        metrics: [
          {
            type: 'Resource',
            resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: spec.autoscaling.targetCPUUtilizationPercentage ?? 70 } },
          },
        ],
      },
    };
  }
  if (spec.servicePort) {
    objects.service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata,
      spec: {
        selector,
        ports: [
          { name: 'http', port: 80, targetPort: 'http' },
          { name: 'metrics', port: METRICS_PORT, targetPort: 'metrics' },
        ],
      },
    };
    const most = spec.autoscaling ? spec.autoscaling.maxReplicas : spec.replicas;
    if (most > 1) {
      objects.pdb = { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata, spec: { selector: { matchLabels: selector }, maxUnavailable: 1 } };
    }
  }
  return objects;
}
