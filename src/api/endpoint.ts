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

export const FORMATS = ['json', 'csv', 'ndjson', 'parquet', 'arrow'] as const;
export type Format = (typeof FORMATS)[number];
/** The formats an Endpoint serves when spec.formats is not set (the binary ones are asked for by name). */
export const DEFAULT_FORMATS: readonly Format[] = ['json', 'csv', 'ndjson'];

/** Signature algorithms a signed token may use; anything else (none, HS512, PS256, …) is refused. */
export const JWT_ALGORITHMS = ['HS256', 'RS256', 'ES256'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;

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
  auth?: EndpointAuthSpec;
  limits?: { maxExecutionTimeMs?: number; maxResultRows?: number; maxResultBytes?: number; requestsPerSecond?: number };
}

/** Signed tokens (JWT): the keys come from a Secret, iss and aud must match, exp is required. */
export interface EndpointJwtSpec {
  /** Key `secret`: an HS256 shared secret; key `jwks.json`: a JWKS (RS256/ES256 public keys, or oct keys), chosen by kid. */
  secretRef: SecretRef;
  issuer: string;
  audience: string;
  /** Default: all of JWT_ALGORITHMS. */
  algorithms?: JwtAlgorithm[];
  /** Leeway for exp, nbf and iat (default 30 s). */
  clockSkewSeconds?: number;
}

export interface EndpointAuthSpec {
  /** Static bearer tokens: every value in the Secret is one. */
  tokensSecretRef?: SecretRef;
  jwt?: EndpointJwtSpec;
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

export const endpointAuthRules: CrossFieldRule<EndpointAuthSpec>[] = [
  {
    cel: {
      rule: 'has(self.tokensSecretRef) || has(self.jwt)',
      message: 'auth needs tokensSecretRef (static tokens), jwt (signed tokens), or both',
    },
    holds: (a) => a.tokensSecretRef !== undefined || a.jwt !== undefined,
  },
];

export const endpointSpecSchema: Schema = obj(
  'A Pipe node published as an HTTP API (JSON, CSV, NDJSON, Parquet, Arrow), served by a query Deployment behind a Service.',
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
    formats: arr('Response formats served (parquet and arrow only when listed).', oneOf('A format.', [...FORMATS]), {
      default: [...DEFAULT_FORMATS],
      minItems: 1,
      'x-kubernetes-list-type': 'set',
    }),
    replicas: int('Query pods.', { minimum: 0, maximum: 256, default: 1 }),
    autoscaling: autoscalingSchema,
    resources: resourcesSchema,
    auth: obj(
      'Require a bearer token: a static one from tokensSecretRef, a signed one (JWT) checked with jwt, or either. Secrets are reloaded when they change.',
      {
        tokensSecretRef: secretRefSchema('the allowed bearer tokens (every value is a token)'),
        jwt: obj(
          'Signed tokens (JWT). exp is required; claims weir.dev/endpoints (scope), weir.dev/params (fixed parameters) and weir.dev/rps (rate limit) are read.',
          {
            secretRef: secretRefSchema('the verification keys: key `secret` (an HS256 shared secret) and/or key `jwks.json` (a JWKS; keys chosen by kid)'),
            issuer: str('The iss every token must carry.', { minLength: 1, maxLength: 1024 }),
            audience: str('The aud every token must carry (one of its values, when a list).', { minLength: 1, maxLength: 1024 }),
            algorithms: arr('Signature algorithms accepted; default all three.', oneOf('An algorithm.', [...JWT_ALGORITHMS]), {
              minItems: 1,
              'x-kubernetes-list-type': 'set',
            }),
            clockSkewSeconds: int('Leeway for exp, nbf and iat.', { minimum: 0, maximum: 300, default: DEFAULT_CLOCK_SKEW_SECONDS }),
          },
          ['secretRef', 'issuer', 'audience'],
        ),
      },
      [],
      { 'x-kubernetes-validations': celRules(endpointAuthRules) },
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
