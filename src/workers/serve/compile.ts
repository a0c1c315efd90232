// An Endpoint and its Pipe compiled into what the endpoint server runs: one SQL text (the
// nodes up to the endpoint's node, as CTEs), its typed parameters with their bounds, the
// formats and the limits. Pure: no I/O; ClickHouse stays the judge of whether the SQL runs.
import { FORMATS, type Endpoint, type Format } from '../../api/endpoint.js';
import { clickhouseName, resourceName } from '../../api/names.js';
import type { Pipe } from '../../api/pipe.js';
import { analyzeStatement } from '../../plan/sql-text.js';
import { compileParams, endpointNodes } from '../../controllers/endpoint.js';
import { composeQuery } from '../../plan/pipe-plan.js';
import { pipeSqlProblem } from '../../plan/sql.js';
import { stableHash } from '../../runtime/hash.js';
import { isNumeric, nonNull, parseParamType } from './param-types.js';
import { checkParam } from './params.js';

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

/** Bearer tokens: `weir serve` reads the allowed ones from the Secret's mounted directory. */
export interface EndpointAuth {
  /** Name of the Secret (Endpoint spec.auth.tokensSecretRef.name); every value in it is an allowed token. */
  tokensSecret: string;
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

/** The query weir serves for `endpoint`, or why it cannot be served (with the field to fix). */
export function compileEndpoint(endpoint: Endpoint, pipe: Pipe, database: string): CompiledEndpoint | { problem: string } {
  const problem = (message: string) => ({ problem: message });
  if (resourceName(endpoint.spec.pipe) !== pipe.metadata.name) {
    return problem(`spec.pipe names Pipe ${endpoint.spec.pipe}, but Pipe ${pipe.metadata.name} was given`);
  }
  const compiled = compileParams(endpoint, pipe);
  if ('problem' in compiled) return problem(compiled.problem.message);
  const nodes = endpointNodes(endpoint, pipe);
  const node = nodes?.[nodes.length - 1];
  if (!nodes || !node) return problem(`Pipe ${pipe.metadata.name} has no node to serve`);

  const sql = composeQuery(nodes, node.name);
  const statement = analyzeStatement(sql);
  if (statement.kind !== 'SELECT' && statement.kind !== 'WITH') {
    return problem(`node ${node.name} of Pipe ${pipe.metadata.name} must be a SELECT to be served (it starts with ${statement.kind || 'nothing'})`);
  }
  if (statement.secondStatementAt !== undefined) return problem(`node ${node.name} of Pipe ${pipe.metadata.name} holds more than one statement`);
  if (statement.outputFormat !== undefined) {
    return problem(`node ${node.name} of Pipe ${pipe.metadata.name} ends with FORMAT ${statement.outputFormat}; remove it: the endpoint picks the format from the URL`);
  }
  if (statement.intoOutfile) return problem(`node ${node.name} of Pipe ${pipe.metadata.name} writes INTO OUTFILE, which an endpoint cannot`);
  // Every node must be safe to splice: the server wraps the query (DESCRIBE TABLE (…), FORMAT …).
  for (const n of nodes) {
    const sqlProblem = pipeSqlProblem(n.sql);
    if (sqlProblem) return problem(`node ${n.name} of Pipe ${pipe.metadata.name} ${sqlProblem}`);
  }

  const declared = new Map((endpoint.spec.params ?? []).map((p) => [p.name, p]));
  const params: EndpointParameter[] = [];
  for (const p of compiled.params) {
    const spec = declared.get(p.name);
    const param: EndpointParameter = { name: p.name, type: p.type, required: p.required };
    if (p.default !== undefined) param.default = p.default;
    if (spec?.min !== undefined) param.min = spec.min;
    if (spec?.max !== undefined) param.max = spec.max;
    if (spec?.enum !== undefined) param.enum = [...spec.enum];
    if (spec?.description !== undefined) param.description = spec.description;
    const checked = checkParameter(param);
    if ('problem' in checked) {
      const where = spec ? `spec.params ${p.name}` : `parameter {${p.name}:${p.type}} of Pipe ${pipe.metadata.name}`;
      return problem(`${where}: ${checked.problem}`);
    }
    if (checked.enum) param.enum = checked.enum;
    params.push(param);
  }

  const limits: EndpointLimits = {
    maxExecutionTimeMs: endpoint.spec.limits?.maxExecutionTimeMs ?? DEFAULT_LIMITS.maxExecutionTimeMs,
    maxResultRows: endpoint.spec.limits?.maxResultRows ?? DEFAULT_LIMITS.maxResultRows,
  };
  if (endpoint.spec.limits?.maxResultBytes !== undefined) limits.maxResultBytes = endpoint.spec.limits.maxResultBytes;
  if (endpoint.spec.limits?.requestsPerSecond !== undefined) limits.requestsPerSecond = endpoint.spec.limits.requestsPerSecond;
  const auth = endpoint.spec.auth ? { tokensSecret: endpoint.spec.auth.tokensSecretRef.name } : undefined;
  if (auth && params.some((p) => p.name === TOKEN_PARAM)) {
    return problem(`parameter {${TOKEN_PARAM}:…} of Pipe ${pipe.metadata.name} clashes with ?${TOKEN_PARAM}=, which carries the bearer token when spec.auth is set; rename the parameter`);
  }

  const result: Omit<CompiledEndpoint, 'version'> = {
    name: clickhouseName(endpoint.metadata.name),
    namespace: endpoint.metadata.namespace ?? 'default',
    resource: endpoint.metadata.name,
    pipe: pipe.metadata.name,
    node: node.name,
    ...(endpoint.spec.description !== undefined ? { description: endpoint.spec.description } : {}),
    sql,
    params,
    formats: [...new Set(endpoint.spec.formats ?? FORMATS)],
    limits,
    ...(auth ? { auth } : {}),
    database,
  };
  return { ...result, version: stableHash(result) };
}

/** Why a parameter cannot be served as declared (its type, bounds, enum or default), or its enum in canonical text. */
function checkParameter(param: EndpointParameter): { problem: string } | { enum?: string[] } {
  const type = parseParamType(param.type);
  if ('unsupported' in type) return { problem: type.unsupported };
  if (type.kind === 'identifier' && param.enum === undefined) {
    return { problem: 'an Identifier parameter names a table or column for the caller; list the names callers may pick in enum' };
  }
  if ((param.min !== undefined || param.max !== undefined) && !isNumeric(type)) {
    return { problem: `min and max apply to numeric parameters, and ${param.name} is ${param.type}` };
  }
  // Enum values are compared as canonical text (UInt32 "010" is "10"); for an array, per element.
  let scalar = nonNull(type);
  while (scalar.kind === 'array') scalar = nonNull(scalar.element);
  const canonical: string[] = [];
  for (const allowed of param.enum ?? []) {
    const checked = checkParam({ name: param.name, type: scalar.text, required: false }, scalar, allowed, 'query');
    if (!checked.ok || typeof checked.value !== 'string') {
      return { problem: `enum value ${JSON.stringify(allowed)} is not a ${scalar.text}${checked.ok ? '' : ` (${checked.errors.join('; ')})`}` };
    }
    canonical.push(checked.value);
  }
  const withEnum = param.enum === undefined ? param : { ...param, enum: canonical };
  if (param.default !== undefined) {
    const checked = checkParam(withEnum, type, param.default, 'query');
    if (!checked.ok) return { problem: `default ${JSON.stringify(param.default)} does not hold: ${checked.errors.join('; ')}` };
  }
  return param.enum === undefined ? {} : { enum: canonical };
}
