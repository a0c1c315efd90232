import {
  autoscalingSchema,
  conditionsSchema,
  observedGenerationSchema,
  resourcesSchema,
  secretRefSchema,
  type Autoscaling,
  type CommonStatus,
  type Resource,
  type Resources,
  type SecretRef,
} from './common.js';
import { celRules, type CrossFieldRule } from './rules.js';
import { arr, bool, IDENTIFIER, int, intOrString, namedList, num, obj, oneOf, str, type Schema } from './schema-dsl.js';

export const FORMATS = ['json', 'csv', 'ndjson'] as const;
export type Format = (typeof FORMATS)[number];

export interface EndpointParam {
  name: string;
  description?: string;
  required?: boolean;
  default?: string | number;
  min?: number;
  max?: number;
  enum?: string[];
}

export interface EndpointSpec {
  pipe: string;
  node?: string;
  description?: string;
  params?: EndpointParam[];
  formats?: Format[];
  replicas?: number;
  autoscaling?: Autoscaling;
  resources?: Resources;
  auth?: { tokensSecretRef: SecretRef };
  limits?: { maxExecutionTimeMs?: number; maxResultRows?: number; maxResultBytes?: number; requestsPerSecond?: number };
}

export interface EndpointStatus extends CommonStatus {
  url?: string;
  replicas?: number;
  readyReplicas?: number;
  /** "ready/desired", for the printer column. */
  replicasSummary?: string;
  params?: { name: string; type: string; required: boolean; default?: string }[];
  specHash?: string;
  /** Hash of the compiled definition the query pods serve; `weir plan` prints the same for a folder. */
  servedHash?: string;
}

export type Endpoint = Resource<EndpointSpec, EndpointStatus>;

export const endpointParamRules: CrossFieldRule<EndpointParam>[] = [
  {
    cel: {
      rule: '!(has(self.required) && self.required && has(self.default))',
      message: 'a required parameter cannot have a default',
      fieldPath: '.default',
    },
    holds: (p) => !(p.required === true && p.default !== undefined),
  },
  {
    cel: {
      rule: '!has(self.min) || !has(self.max) || self.min <= self.max',
      message: 'min must not exceed max',
      fieldPath: '.min',
    },
    holds: (p) => p.min === undefined || p.max === undefined || p.min <= p.max,
  },
];

export const endpointSpecSchema: Schema = obj(
  'A Pipe node published as an HTTP API (JSON, CSV, NDJSON), served by a query Deployment behind a Service.',
  {
    pipe: str('Name of the Pipe, in the same namespace.', { minLength: 1, maxLength: 253 }),
    node: str('Node of the Pipe to publish; default: the last node.', { pattern: IDENTIFIER, maxLength: 128 }),
    description: str('What the endpoint answers, for API consumers (goes into the OpenAPI document).', { maxLength: 4096 }),
    params: namedList(
      'Defaults and bounds for the query parameters. Types come from the SQL placeholders {name:Type}.',
      obj(
        'One query parameter.',
        {
          name: str('Parameter name as in the SQL placeholder {name:Type}.', { pattern: IDENTIFIER, maxLength: 128 }),
          description: str('For API consumers.', { maxLength: 4096 }),
          required: bool('Requests without it get 400.', { default: false }),
          default: intOrString('Value used when the request omits it.'),
          min: num('Smallest allowed value (numeric parameters).'),
          max: num('Largest allowed value (numeric parameters).'),
          enum: arr('Allowed values.', str('An allowed value.', { maxLength: 1024 }), { maxItems: 256 }),
        },
        ['name'],
        { 'x-kubernetes-validations': celRules(endpointParamRules) },
      ),
      { maxItems: 64 },
    ),
    formats: arr('Response formats served.', oneOf('A format.', [...FORMATS]), {
      default: [...FORMATS],
      minItems: 1,
      'x-kubernetes-list-type': 'set',
    }),
    replicas: int('Query pods.', { minimum: 0, maximum: 256, default: 1 }),
    autoscaling: autoscalingSchema,
    resources: resourcesSchema,
    auth: obj(
      'Require a bearer token. Tokens are read from the Secret (one per key) and reloaded when it changes.',
      { tokensSecretRef: secretRefSchema('the allowed bearer tokens (every value is a token)') },
      ['tokensSecretRef'],
    ),
    limits: obj('Limits passed to ClickHouse as settings, and to the HTTP server.', {
      maxExecutionTimeMs: int('Query time limit; past it the query is cancelled and the client gets 408.', {
        minimum: 1,
        maximum: 3_600_000,
        default: 10_000,
      }),
      maxResultRows: int('Most rows a response can carry.', { minimum: 1, maximum: 100_000_000, default: 100_000 }),
      maxResultBytes: int('Most bytes a response can carry.', { minimum: 1024 }),
      requestsPerSecond: int('Rate limit per server pod; past it the client gets 429.', { minimum: 1, maximum: 1_000_000 }),
    }),
  },
  ['pipe'],
);

export const endpointStatusSchema: Schema = obj('Observed state, written by the operator.', {
  observedGeneration: observedGenerationSchema,
  phase: oneOf('Summary for people: Pending, Ready, Failed, Deleting.', ['Pending', 'Ready', 'Failed', 'Deleting']),
  conditions: conditionsSchema,
  url: str('In-cluster URL of the endpoint (Service DNS and path).'),
  replicas: int('Desired query pods.', { minimum: 0 }),
  readyReplicas: int('Ready query pods.', { minimum: 0 }),
  replicasSummary: str('ready/desired, for kubectl get.'),
  params: arr(
    'Parameters as compiled from the SQL.',
    obj('A compiled parameter.', {
      name: str('Parameter name.'),
      type: str('ClickHouse type from the placeholder.'),
      required: bool('Whether requests must carry it.'),
      default: str('Default value, if any.'),
    }),
  ),
  specHash: str('Hash of the Endpoint and Pipe specs last reconciled.'),
  servedHash: str('Hash of the compiled definition the query pods serve; weir plan prints the same hash for a folder, so a different one means a rollout.'),
});
