// An Endpoint and its Pipe compiled into what the endpoint server runs: one SQL text (the
// nodes up to the endpoint's node, as CTEs), its typed parameters with their bounds, the
// formats and the limits. Pure: no I/O; ClickHouse stays the judge of whether the SQL runs.
import { DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_FORMATS, JWT_ALGORITHMS, type Endpoint, type EndpointStatus } from '../../api/endpoint.js';
import { clickhouseName, resourceName } from '../../api/names.js';
import type { Pipe } from '../../api/pipe.js';
import { stableHash } from '../../runtime/hash.js';
import { composeQuery } from '../pipe-plan.js';
import { collectParameters } from '../sql-scan.js';
import { analyzeStatement } from '../sql-text.js';
import { pipeSqlProblem } from '../sql.js';
import { isNumeric, nonNull, parseParamType } from './param-types.js';
import { checkParam } from './params.js';
import { DEFAULT_LIMITS, TOKEN_PARAM, type CompiledEndpoint, type EndpointAuth, type EndpointLimits, type EndpointParameter } from './compiled.js';

// What compiling yields is declared in compiled.ts (params.ts and openapi.ts read it too); importers of compile.ts find it here.
export * from './compiled.js';

export type CompiledParam = NonNullable<EndpointStatus['params']>[number];

/** Why an Endpoint's parameters do not compile: the condition reason the operator reports, and the message. */
export interface ParamsProblem {
  reason: 'UnknownNode' | 'ConflictingParameterTypes' | 'UnknownParameter';
  message: string;
}

/** The nodes an endpoint runs: its node and every node before it (later ones cannot be read). */
export function endpointNodes(ep: Endpoint, pipe: Pipe): Pipe['spec']['nodes'] | undefined {
  const nodeName = ep.spec.node ?? pipe.spec.nodes[pipe.spec.nodes.length - 1]?.name;
  const index = pipe.spec.nodes.findIndex((n) => n.name === nodeName);
  return index < 0 ? undefined : pipe.spec.nodes.slice(0, index + 1);
}

/** Parameters from the SQL placeholders, with defaults and requiredness from spec.params. */
export function compileParams(ep: Endpoint, pipe: Pipe): { params: CompiledParam[] } | { problem: ParamsProblem } {
  const nodes = endpointNodes(ep, pipe);
  if (!nodes) {
    return {
      problem: {
        reason: 'UnknownNode',
        message: `spec.node ${ep.spec.node ?? ''} is not a node of Pipe ${pipe.metadata.name} (nodes: ${pipe.spec.nodes.map((n) => n.name).join(', ')}).`,
      },
    };
  }
  const { params, conflicts } = collectParameters(nodes.map((n) => n.sql));
  if (conflicts.length > 0) return { problem: { reason: 'ConflictingParameterTypes', message: conflicts.join('; ') } };
  const declared = new Map((ep.spec.params ?? []).map((p) => [p.name, p]));
  const unused = [...declared.keys()].filter((name) => !params.some((p) => p.name === name));
  if (unused.length > 0) {
    return {
      problem: {
        reason: 'UnknownParameter',
        message: `spec.params declares ${unused.join(', ')}, which the SQL of Pipe ${pipe.metadata.name} does not use (placeholders: ${params.map((p) => p.name).join(', ') || 'none'}).`,
      },
    };
  }
  return {
    params: params.map((p) => {
      const spec = declared.get(p.name);
      // ClickHouse refuses a query whose placeholder has no value, so no default means required.
      const compiled: CompiledParam = { name: p.name, type: p.type, required: spec?.default === undefined };
      if (spec?.default !== undefined) compiled.default = String(spec.default);
      return compiled;
    }),
  };
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
    return problem(
      `node ${node.name} of Pipe ${pipe.metadata.name} ends with FORMAT ${statement.outputFormat}; remove it: the endpoint picks the format from the URL`,
    );
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
  const auth = compileAuth(endpoint);
  if (auth && auth.tokensSecret === undefined && auth.jwt === undefined) return problem('spec.auth needs tokensSecretRef, jwt, or both');
  if (auth && params.some((p) => p.name === TOKEN_PARAM)) {
    return problem(
      `parameter {${TOKEN_PARAM}:…} of Pipe ${pipe.metadata.name} clashes with ?${TOKEN_PARAM}=, which carries the bearer token when spec.auth is set; rename the parameter`,
    );
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
    formats: [...new Set(endpoint.spec.formats ?? DEFAULT_FORMATS)],
    limits,
    ...(auth ? { auth } : {}),
    database,
  };
  return { ...result, version: stableHash(result) };
}

/** spec.auth as the server reads it: Secret names, and the JWT checks with their defaults. */
function compileAuth(endpoint: Endpoint): EndpointAuth | undefined {
  const spec = endpoint.spec.auth;
  if (!spec) return undefined;
  const auth: EndpointAuth = {};
  if (spec.tokensSecretRef) auth.tokensSecret = spec.tokensSecretRef.name;
  if (spec.jwt) {
    auth.jwt = {
      secret: spec.jwt.secretRef.name,
      issuer: spec.jwt.issuer,
      audience: spec.jwt.audience,
      // In the allow-list's order, so that the compiled version does not depend on how the spec lists them.
      algorithms: JWT_ALGORITHMS.filter((a) => (spec.jwt?.algorithms ?? JWT_ALGORITHMS).includes(a)),
      clockSkewSeconds: spec.jwt.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS,
    };
  }
  return auth;
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
