import { arr, int, obj, oneOf, str, stringMap, type Schema } from './schema-dsl.js';

export const GROUP = 'weir.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const conditionSchema: Schema = obj(
  'A kstatus-style condition (Kubernetes API conventions): Ready, Reconciling, Stalled and kind-specific ones.',
  {
    type: str('Condition type, e.g. Ready, Reconciling, Stalled.', { maxLength: 316 }),
    status: oneOf('True, False or Unknown.', ['True', 'False', 'Unknown']),
    reason: str('A CamelCase reason for the last transition, e.g. AwaitingApproval.', { maxLength: 1024 }),
    message: str('A human-readable message: what is wrong, where, and what to do.', { maxLength: 32768 }),
    lastTransitionTime: str('When the condition last changed status.', { format: 'date-time' }),
    observedGeneration: int('The metadata.generation this condition was computed from.', { minimum: 0 }),
  },
  ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
);

export const conditionsSchema: Schema = arr('Current state, as conditions.', conditionSchema, {
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
});

export const observedGenerationSchema: Schema = int(
  'The metadata.generation the operator last reconciled; equal to metadata.generation when status is current.',
  { minimum: 0 },
);

export const secretRefSchema = (what: string): Schema =>
  obj(
    `Reference to a Secret in the resource's namespace holding ${what}.`,
    {
      name: str('Name of the Secret.', { minLength: 1, maxLength: 253 }),
    },
    ['name'],
  );

export const resourcesSchema: Schema = obj('CPU and memory for the pods weir runs (Kubernetes ResourceRequirements).', {
  requests: stringMap('Minimum resources, e.g. {cpu: 100m, memory: 128Mi}.'),
  limits: stringMap('Maximum resources, e.g. {memory: 512Mi}.'),
});

export const autoscalingSchema: Schema = obj(
  'Optional HorizontalPodAutoscaler; when set it owns the replica count.',
  {
    minReplicas: int('Lowest replica count.', { minimum: 1, maximum: 100, default: 1 }),
    maxReplicas: int('Highest replica count.', { minimum: 1, maximum: 100 }),
    targetCPUUtilizationPercentage: int('Average CPU utilisation the HPA aims for.', {
      minimum: 1,
      maximum: 100,
      default: 70,
    }),
  },
  ['maxReplicas'],
  {
    'x-kubernetes-validations': [{ rule: 'self.minReplicas <= self.maxReplicas', message: 'minReplicas must not exceed maxReplicas' }],
  },
);

export const deletionPolicySchema: Schema = oneOf(
  'What happens to the ClickHouse objects when the resource is deleted: Retain keeps them, Delete drops them.',
  ['Retain', 'Delete'],
  { default: 'Retain' },
);

export const connectionRefSchema: Schema = secretRefSchema("the ClickHouse connection (keys: url, username, password); default: the operator's connection");

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string;
  creationTimestamp?: string;
  ownerReferences?: unknown[];
}

export interface Resource<Spec, Status> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

export interface SecretRef {
  name: string;
}

export interface Resources {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface Autoscaling {
  minReplicas?: number;
  maxReplicas: number;
  targetCPUUtilizationPercentage?: number;
}

export type DeletionPolicy = 'Retain' | 'Delete';

export interface CommonStatus {
  observedGeneration?: number;
  phase?: string;
  conditions?: Condition[];
}
