// What an Endpoint compiles to: the one value `weir serve` runs (its config file holds a list of them).
import type { Format, JwtAlgorithm } from '../../api/endpoint.js';

export interface EndpointParameter {
  name: string;
  /** The ClickHouse type from the SQL placeholder. */
  type: string;
  required: boolean;
  /** Used when a request leaves the parameter out; written as in a query string. */
  default?: string;
  min?: number;
  max?: number;
  enum?: string[];
  description?: string;
}

export interface EndpointLimits {
  /** Passed as max_execution_time; past it the client gets 408. */
  maxExecutionTimeMs: number;
  /** Passed as max_result_rows with result_overflow_mode='throw'. */
  maxResultRows: number;
  /** Passed as max_result_bytes when set. */
  maxResultBytes?: number;
  /** Requests per second one server process admits (token bucket); past it, 429. */
  requestsPerSecond?: number;
}

/** Signed tokens: `weir serve` reads the verification keys from the Secret's mounted directory. */
export interface EndpointJwt {
  /** Name of the Secret (spec.auth.jwt.secretRef.name): key `secret` (HS256) and/or `jwks.json`. */
  secret: string;
  issuer: string;
  audience: string;
  algorithms: JwtAlgorithm[];
  clockSkewSeconds: number;
}

/** Bearer tokens: `weir serve` reads the allowed ones (or the keys that sign them) from the Secrets' mounted directories. */
export interface EndpointAuth {
  /** Name of the Secret (Endpoint spec.auth.tokensSecretRef.name); every value in it is an allowed token. */
  tokensSecret?: string;
  jwt?: EndpointJwt;
}

/** The query-string name a token may come in when the Authorization header cannot carry it. */
export const TOKEN_PARAM = 'token';

export const DEFAULT_LIMITS = { maxExecutionTimeMs: 10_000, maxResultRows: 100_000 } as const;

export interface CompiledEndpoint {
  /** ClickHouse-style name, the path segment: Endpoint top-pages is /v0/pipes/top_pages.json. */
  name: string;
  /** The Endpoint resource. */
  namespace: string;
  resource: string;
  pipe: string;
  node: string;
  description?: string;
  /** The composed query, with {name:Type} placeholders; never has values spliced in. */
  sql: string;
  params: EndpointParameter[];
  formats: Format[];
  limits: EndpointLimits;
  /** Set when requests need a bearer token. */
  auth?: EndpointAuth;
  /** Where unqualified table names resolve. */
  database: string;
  /** Changes whenever anything above changes (OpenAPI info.version, caches). */
  version: string;
}
