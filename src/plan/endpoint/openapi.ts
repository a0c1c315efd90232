// OpenAPI 3.0 documents for served endpoints: each format's path with GET (query-string
// parameters) and POST (a JSON object body), the parameters' schemas from their ClickHouse
// types and spec.params bounds, and the response rows from the query's output columns when
// ClickHouse described them. Endpoints with auth declare their security schemes (a bearer token,
// a signed JWT when spec.auth.jwt is set, or ?token=) and which parameters a token may fix.
import type { Format } from '../../api/endpoint.js';
import { stableHash } from '../../runtime/hash.js';
import type { CompiledEndpoint, EndpointParameter } from './compiled.js';
import { parseParamType, splitType, type ParamType } from './param-types.js';
import { checkParam, type BoundElement, type BoundValue } from './params.js';

export type JsonSchema = { [key: string]: unknown };

/** One output column of an endpoint's query, as DESCRIBE reports it. */
export interface OutputColumn {
  name: string;
  type: string;
}

export const PATH_PREFIX = '/v0/pipes/';

export const endpointPath = (name: string, format: Format): string => `${PATH_PREFIX}${name}.${format}`;

const DATE_TIME_PATTERN = (precision: number) => `^\\d{4}-\\d{2}-\\d{2}([ T]\\d{2}:\\d{2}:\\d{2}${precision > 0 ? `(\\.\\d{1,${precision}})?` : ''})?$`;

/** JSON schema of a parameter value of type `t`, as a request carries it. */
function inputSchema(t: ParamType): JsonSchema {
  switch (t.kind) {
    case 'int':
      // Wider than 32 bits, integers travel as decimal text to stay exact in JavaScript clients.
      return t.bits <= 32
        ? { type: 'integer', format: t.signed && t.bits === 32 ? 'int32' : 'int64', minimum: Number(t.min), maximum: Number(t.max) }
        : { type: 'string', pattern: t.signed ? '^-?[0-9]+$' : '^[0-9]+$' };
    case 'float':
      return { type: 'number', format: t.text.includes('Float32') ? 'float' : 'double' };
    case 'decimal':
      return { type: 'number' };
    case 'date':
      return { type: 'string', format: 'date' };
    case 'datetime':
      return { type: 'string', pattern: DATE_TIME_PATTERN(t.precision), example: t.precision > 0 ? '2020-01-01 00:00:00.000' : '2020-01-01 00:00:00' };
    case 'string':
    case 'identifier':
      return { type: 'string' };
    case 'fixedString':
      return { type: 'string', maxLength: t.bytes };
    case 'bool':
      return { type: 'boolean' };
    case 'uuid':
      return { type: 'string', format: 'uuid' };
    case 'ipv4':
      return { type: 'string', format: 'ipv4' };
    case 'ipv6':
      return { type: 'string', format: 'ipv6' };
    case 'enum':
      return { type: 'string', enum: t.values };
    case 'array':
      return { type: 'array', items: inputSchema(t.element) };
    case 'nullable':
      return { ...inputSchema(t.inner), nullable: true };
  }
}

/** A bound value in the JSON type its schema names (numbers as numbers, booleans as booleans). */
function typedValue(schema: JsonSchema, value: BoundValue | BoundElement): unknown {
  if (value === null) return null;
  if (Array.isArray(value)) return value.map((v) => typedValue((schema.items as JsonSchema | undefined) ?? {}, v));
  if (schema.type === 'integer' || schema.type === 'number') return Number(value);
  if (schema.type === 'boolean') return value === true || value === 'true';
  return typeof value === 'bigint' ? value.toString() : value;
}

/** The innermost item schema of an array schema: where min, max and enum apply. */
function scalarSchema(schema: JsonSchema): JsonSchema {
  return schema.type === 'array' ? scalarSchema(schema.items as JsonSchema) : schema;
}

/** JSON schema of a parameter: its type, default, bounds and enum. */
export function parameterSchema(param: EndpointParameter): JsonSchema {
  const type = parseParamType(param.type);
  if ('unsupported' in type) return { 'x-clickhouse-type': param.type };
  const schema: JsonSchema = { ...inputSchema(type), 'x-clickhouse-type': param.type };
  const scalar = scalarSchema(schema);
  if (param.min !== undefined) scalar.minimum = Math.max(param.min, typeof scalar.minimum === 'number' ? scalar.minimum : -Infinity);
  if (param.max !== undefined) scalar.maximum = Math.min(param.max, typeof scalar.maximum === 'number' ? scalar.maximum : Infinity);
  if (param.enum !== undefined) scalar.enum = param.enum.map((v) => typedValue(scalar, v));
  if (param.default !== undefined) {
    const checked = checkParam(param, type, param.default, 'query');
    if (checked.ok) schema.default = typedValue(schema, checked.value);
  }
  if (param.description !== undefined) schema.description = param.description;
  return schema;
}

/** JSON schema of an output column of ClickHouse type `type`, as FORMAT JSON writes it (64-bit integers quoted). */
export function columnSchema(type: string): JsonSchema {
  const parts = splitType(type.trim());
  const arg = (i: number) => parts?.args?.[i] ?? '';
  const name = parts?.name ?? '';
  let schema: JsonSchema;
  if (name === 'LowCardinality' || name === 'SimpleAggregateFunction') return columnSchema(arg(name === 'LowCardinality' ? 0 : 1));
  if (name === 'Nullable') schema = { ...columnSchema(arg(0)), nullable: true };
  else if (name === 'Array') schema = { type: 'array', items: columnSchema(arg(0)) };
  else if (name === 'Map') schema = { type: 'object', additionalProperties: columnSchema(arg(1)) };
  else if (/^U?Int(8|16|32)$/.test(name)) schema = { type: 'integer' };
  else if (/^U?Int(64|128|256)$/.test(name)) schema = { type: 'string', pattern: '^-?[0-9]+$' };
  else if (/^(Float32|Float64|BFloat16|Decimal(32|64|128|256)?)$/.test(name)) schema = { type: 'number' };
  else if (name === 'Bool') schema = { type: 'boolean' };
  else if (name === 'Date' || name === 'Date32') schema = { type: 'string', format: 'date' };
  else if (name === 'UUID') schema = { type: 'string', format: 'uuid' };
  else if (/^(DateTime|DateTime64|String|FixedString|IPv4|IPv6|Enum8|Enum16|Enum)$/.test(name)) schema = { type: 'string' };
  else schema = {};
  return { ...schema, 'x-clickhouse-type': type };
}

function rowSchema(columns: OutputColumn[] | undefined): JsonSchema {
  if (!columns) return { type: 'object', additionalProperties: true, description: 'One result row (columns not described).' };
  return {
    type: 'object',
    properties: Object.fromEntries(columns.map((c) => [c.name, columnSchema(c.type)])),
    required: columns.map((c) => c.name),
  };
}

const ERROR_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    error: { type: 'string', description: 'What was wrong and, where it helps, what to do.' },
    documentation: { type: 'string', description: 'Where the endpoint is described.' },
    request_id: { type: 'string', description: 'Identifies the request in the server log.' },
  },
  required: ['error'],
};

const jsonBody = (rowRef: string): JsonSchema => ({
  type: 'object',
  properties: {
    meta: {
      type: 'array',
      items: { type: 'object', properties: { name: { type: 'string' }, type: { type: 'string' } }, required: ['name', 'type'] },
    },
    data: { type: 'array', items: { $ref: rowRef } },
    rows: { type: 'integer' },
    rows_before_limit_at_least: { type: 'integer' },
    statistics: {
      type: 'object',
      properties: { elapsed: { type: 'number', description: 'Seconds.' }, rows_read: { type: 'integer' }, bytes_read: { type: 'integer' } },
    },
  },
  required: ['meta', 'data', 'rows'],
});

const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });

function successResponse(format: Format, rowRef: string): JsonSchema {
  switch (format) {
    case 'json':
      return { description: 'The result, as ClickHouse FORMAT JSON.', content: { 'application/json': { schema: jsonBody(rowRef) } } };
    case 'csv':
      return { description: 'The result as CSV with a header line.', content: { 'text/csv': { schema: { type: 'string' } } } };
    case 'ndjson':
      return { description: 'One JSON object a line, streamed.', content: { 'application/x-ndjson': { schema: { $ref: rowRef } } } };
    case 'parquet':
      return {
        description: "The result as one Apache Parquet file, written by ClickHouse's Parquet output format (columns typed as the row schema says).",
        content: { 'application/vnd.apache.parquet': { schema: { type: 'string', format: 'binary' } } },
      };
    case 'arrow':
      return {
        description: "The result as an Apache Arrow IPC stream, written by ClickHouse's ArrowStream output format.",
        content: { 'application/vnd.apache.arrow.stream': { schema: { type: 'string', format: 'binary' } } },
      };
  }
}

/** The claims a signed token carries, as the document describes them. */
export const TOKEN_CLAIMS = { endpoints: 'weir.dev/endpoints', params: 'weir.dev/params', rps: 'weir.dev/rps' } as const;

/** Security schemes of an endpoint with auth: which of them a request may use. */
function securityOf(ep: CompiledEndpoint): JsonSchema[] {
  if (!ep.auth) return [];
  return [
    { [ep.auth.jwt ? 'signedToken' : 'bearerToken']: [] },
    ...(ep.auth.jwt && ep.auth.tokensSecret !== undefined ? [{ bearerToken: [] }] : []),
    { queryToken: [] },
  ];
}

function securitySchemes(endpoints: readonly CompiledEndpoint[]): JsonSchema | undefined {
  const withAuth = endpoints.filter((ep) => ep.auth);
  if (withAuth.length === 0) return undefined;
  const schemes: JsonSchema = {};
  if (withAuth.some((ep) => ep.auth?.tokensSecret !== undefined)) {
    schemes.bearerToken = { type: 'http', scheme: 'bearer', description: 'A static token from the Secret the Endpoint names (spec.auth.tokensSecretRef).' };
  }
  if (withAuth.some((ep) => ep.auth?.jwt)) {
    schemes.signedToken = {
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
      description: `A JWT signed with HS256, RS256 or ES256 (spec.auth.jwt), with iss, aud and exp. ${TOKEN_CLAIMS.endpoints}: the endpoints it may call ("*" or a list); ${TOKEN_CLAIMS.params}: parameters it fixes server-side (a request sending another value gets 403); ${TOKEN_CLAIMS.rps}: requests per second for its sub.`,
    };
  }
  schemes.queryToken = { type: 'apiKey', in: 'query', name: 'token', description: 'The same token in the query string, where a header cannot be sent.' };
  return schemes;
}

function operations(ep: CompiledEndpoint, format: Format): JsonSchema {
  const rowRef = `#/components/schemas/${ep.name}_row`;
  const jwt = ep.auth?.jwt !== undefined;
  const responses = {
    200: successResponse(format, rowRef),
    400: errorResponse('A parameter is missing, unknown or not valid, or the result is larger than the endpoint serves.'),
    ...(ep.auth
      ? {
          401: errorResponse(
            jwt
              ? 'No token, or a signed token that does not verify (signature, exp, iss, aud, algorithm) or fixes a value that does not fit its parameter.'
              : 'No token.',
          ),
          403: errorResponse(
            jwt
              ? `The token may not call this endpoint (${TOKEN_CLAIMS.endpoints}), or the request sends another value for a parameter the token fixes (${TOKEN_CLAIMS.params}).`
              : 'The token is not one of the allowed ones.',
          ),
        }
      : {}),
    404: errorResponse('No such endpoint or format.'),
    408: errorResponse("The query took longer than the endpoint's time limit."),
    429: errorResponse(`Past the endpoint's rate limit${jwt ? ` or the token's (${TOKEN_CLAIMS.rps})` : ''}; Retry-After says when to try again.`),
    500: errorResponse('The query failed; the server log has the details under the request id.'),
    503: errorResponse('ClickHouse is unavailable or overloaded; try again.'),
  };
  const summary = ep.description?.split('\n')[0] ?? `${ep.name} (Pipe ${ep.pipe}, node ${ep.node})`;
  const security = securityOf(ep);
  const common = {
    tags: [ep.name],
    summary,
    ...(ep.description ? { description: ep.description } : {}),
    ...(security.length > 0 ? { security } : {}),
    ...(jwt ? { 'x-weir-fixable-parameters': ep.params.map((p) => p.name) } : {}),
    responses,
  };
  const fixable = jwt ? ` A signed token may fix it (${TOKEN_CLAIMS.params}); the request then leaves it out or sends the same value.` : '';
  const parameters = ep.params.map((p) => {
    const schema = parameterSchema(p);
    const description = `${p.description ?? ''}${fixable}`.trim();
    return {
      name: p.name,
      in: 'query',
      // A token that fixes a required parameter supplies it.
      required: p.required && !jwt,
      ...(description ? { description } : {}),
      schema,
      ...(schema.type === 'array' ? { style: 'form', explode: false } : {}),
    };
  });
  const body = {
    type: 'object',
    properties: Object.fromEntries(ep.params.map((p) => [p.name, parameterSchema(p)])),
    ...(ep.params.some((p) => p.required) && !jwt ? { required: ep.params.filter((p) => p.required).map((p) => p.name) } : {}),
    additionalProperties: false,
  };
  return {
    get: { operationId: `${ep.name}_${format}`, ...common, parameters },
    post: {
      operationId: `${ep.name}_${format}_post`,
      ...common,
      requestBody: { required: ep.params.some((p) => p.required) && !jwt, content: { 'application/json': { schema: body } } },
    },
  };
}

export interface OpenApiOptions {
  title?: string;
  /** Output columns per endpoint name, when known. */
  columns?: (endpoint: CompiledEndpoint) => OutputColumn[] | undefined;
}

/** The OpenAPI 3.0 document of some endpoints. */
export function openApiDocument(endpoints: readonly CompiledEndpoint[], opts: OpenApiOptions = {}): JsonSchema {
  const sorted = [...endpoints].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const only = sorted.length === 1 ? sorted[0] : undefined;
  const schemes = securitySchemes(sorted);
  return {
    openapi: '3.0.3',
    info: {
      title: opts.title ?? (only ? only.name : 'weir endpoints'),
      version: only ? only.version : stableHash(sorted.map((e) => e.version)),
      ...(only?.description ? { description: only.description } : {}),
    },
    servers: [{ url: '/' }],
    paths: Object.fromEntries(sorted.flatMap((ep) => ep.formats.map((f) => [endpointPath(ep.name, f), operations(ep, f)]))),
    components: {
      ...(schemes ? { securitySchemes: schemes } : {}),
      schemas: {
        Error: ERROR_SCHEMA,
        ...Object.fromEntries(sorted.map((ep) => [`${ep.name}_row`, rowSchema(opts.columns?.(ep))])),
      },
    },
  };
}

/** Values for DESCRIBE: defaults where there are, else any value of the type (the query is analysed, not run). */
export function describeValues(endpoint: CompiledEndpoint): Record<string, BoundValue> {
  const values: Record<string, BoundValue> = {};
  for (const p of endpoint.params) {
    const type = parseParamType(p.type);
    if ('unsupported' in type) continue;
    const fromDefault = p.default === undefined ? undefined : checkParam(p, type, p.default, 'query');
    values[p.name] = fromDefault?.ok ? fromDefault.value : (p.enum?.[0] ?? anyValue(type));
  }
  return values;
}

function anyValue(t: ParamType): BoundValue {
  switch (t.kind) {
    case 'int':
    case 'float':
    case 'decimal':
      return t.kind === 'int' && t.min > 0n ? t.min.toString() : '0';
    case 'date':
      return t.min;
    case 'datetime':
      return t.min;
    case 'string':
    case 'fixedString':
    case 'identifier':
      return '';
    case 'bool':
      return 'false';
    case 'uuid':
      return '00000000-0000-0000-0000-000000000000';
    case 'ipv4':
      return '0.0.0.0';
    case 'ipv6':
      return '::';
    case 'enum':
      return t.values[0] ?? '';
    case 'array':
      return [];
    case 'nullable':
      return null;
  }
}
