// OpenAPI 3.0 documents for served endpoints: each format's path with GET (query-string
// parameters) and POST (a JSON object body), the parameters' schemas from their ClickHouse
// types and spec.params bounds, and the response rows from the query's output columns when
// ClickHouse described them.
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
  }
}

function operations(ep: CompiledEndpoint, format: Format): JsonSchema {
  const rowRef = `#/components/schemas/${ep.name}_row`;
  const responses = {
    200: successResponse(format, rowRef),
    400: errorResponse('A parameter is missing, unknown or not valid, or the result is larger than the endpoint serves.'),
    404: errorResponse('No such endpoint or format.'),
    408: errorResponse("The query took longer than the endpoint's time limit."),
    500: errorResponse('The query failed; the server log has the details under the request id.'),
    503: errorResponse('ClickHouse is unavailable or overloaded; try again.'),
  };
  const summary = ep.description?.split('\n')[0] ?? `${ep.name} (Pipe ${ep.pipe}, node ${ep.node})`;
  const common = { tags: [ep.name], summary, ...(ep.description ? { description: ep.description } : {}), responses };
  const parameters = ep.params.map((p) => {
    const schema = parameterSchema(p);
    return {
      name: p.name,
      in: 'query',
      required: p.required,
      ...(p.description ? { description: p.description } : {}),
      schema,
      ...(schema.type === 'array' ? { style: 'form', explode: false } : {}),
    };
  });
  const body = {
    type: 'object',
    properties: Object.fromEntries(ep.params.map((p) => [p.name, parameterSchema(p)])),
    ...(ep.params.some((p) => p.required) ? { required: ep.params.filter((p) => p.required).map((p) => p.name) } : {}),
    additionalProperties: false,
  };
  return {
    get: { operationId: `${ep.name}_${format}`, ...common, parameters },
    post: {
      operationId: `${ep.name}_${format}_post`,
      ...common,
      requestBody: { required: ep.params.some((p) => p.required), content: { 'application/json': { schema: body } } },
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
