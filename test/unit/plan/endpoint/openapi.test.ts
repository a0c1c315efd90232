import { describe, expect, it } from 'vitest';
import type { CompiledEndpoint, EndpointParameter } from '../../../../src/plan/endpoint/compile.js';
import { columnSchema, describeValues, openApiDocument, parameterSchema } from '../../../../src/plan/endpoint/openapi.js';

const p = (name: string, type: string, extra: Partial<EndpointParameter> = {}): EndpointParameter => ({
  name,
  type,
  required: extra.default === undefined,
  ...extra,
});

const ep = (name: string, params: EndpointParameter[], extra: Partial<CompiledEndpoint> = {}): CompiledEndpoint => ({
  name,
  namespace: 'web',
  resource: name.replace(/_/g, '-'),
  pipe: name.replace(/_/g, '-'),
  node: 'main',
  sql: 'SELECT 1',
  params,
  formats: ['json', 'csv', 'ndjson'],
  limits: { maxExecutionTimeMs: 1000, maxResultRows: 10 },
  database: 'web',
  version: `v-${name}`,
  ...extra,
});

describe('parameterSchema', () => {
  it('maps ClickHouse types to JSON schema, with the width of integers as bounds', () => {
    expect(parameterSchema(p('a', 'UInt8'))).toEqual({ type: 'integer', format: 'int64', minimum: 0, maximum: 255, 'x-clickhouse-type': 'UInt8' });
    expect(parameterSchema(p('a', 'Int32'))).toMatchObject({ type: 'integer', format: 'int32', minimum: -2147483648, maximum: 2147483647 });
    expect(parameterSchema(p('a', 'UInt64'))).toMatchObject({ type: 'string', pattern: '^[0-9]+$' });
    expect(parameterSchema(p('a', 'Float32'))).toMatchObject({ type: 'number', format: 'float' });
    expect(parameterSchema(p('a', 'Date'))).toMatchObject({ type: 'string', format: 'date' });
    expect(parameterSchema(p('a', 'DateTime64(3)'))).toMatchObject({ type: 'string', example: '2020-01-01 00:00:00.000' });
    expect(parameterSchema(p('a', 'Bool'))).toMatchObject({ type: 'boolean' });
    expect(parameterSchema(p('a', 'UUID'))).toMatchObject({ type: 'string', format: 'uuid' });
    expect(parameterSchema(p('a', "Enum8('x' = 1, 'y' = 2)"))).toMatchObject({ type: 'string', enum: ['x', 'y'] });
    expect(parameterSchema(p('a', 'Nullable(UInt8)'))).toMatchObject({ type: 'integer', nullable: true });
    expect(parameterSchema(p('a', 'Array(LowCardinality(String))'))).toMatchObject({ type: 'array', items: { type: 'string' } });
  });

  it('carries spec.params bounds, enum, default and description, typed', () => {
    expect(parameterSchema(p('limit', 'UInt32', { default: '10', min: 1, max: 1000, description: 'Rows.' }))).toEqual({
      type: 'integer',
      format: 'int64',
      minimum: 1,
      maximum: 1000,
      default: 10,
      description: 'Rows.',
      'x-clickhouse-type': 'UInt32',
    });
    expect(parameterSchema(p('on', 'Bool', { default: '1' }))).toMatchObject({ default: true });
    expect(parameterSchema(p('c', 'String', { enum: ['de', 'fr'], default: 'de' }))).toMatchObject({ enum: ['de', 'fr'], default: 'de' });
    expect(parameterSchema(p('ids', 'Array(UInt16)', { default: '1,2', max: 9, enum: ['1', '2', '3'] }))).toMatchObject({
      type: 'array',
      items: { type: 'integer', maximum: 9, enum: [1, 2, 3] },
      default: [1, 2],
    });
  });
});

describe('columnSchema', () => {
  it('describes output columns as FORMAT JSON writes them: 64-bit integers as strings', () => {
    expect(columnSchema('UInt32')).toEqual({ type: 'integer', 'x-clickhouse-type': 'UInt32' });
    expect(columnSchema('UInt64')).toMatchObject({ type: 'string', pattern: '^-?[0-9]+$' });
    expect(columnSchema('Decimal(10, 2)')).toMatchObject({ type: 'number' });
    expect(columnSchema('LowCardinality(Nullable(String))')).toMatchObject({ type: 'string', nullable: true });
    expect(columnSchema('Array(Date)')).toMatchObject({ type: 'array', items: { type: 'string', format: 'date' } });
    expect(columnSchema('Map(String, UInt8)')).toMatchObject({ type: 'object', additionalProperties: { type: 'integer' } });
    expect(columnSchema('AggregateFunction(uniq, String)')).toEqual({ 'x-clickhouse-type': 'AggregateFunction(uniq, String)' });
  });
});

describe('openApiDocument', () => {
  const top = ep('top_pages', [p('tenant', 'String', { description: 'Tenant.' }), p('limit', 'UInt32', { default: '10', max: 1000 })], {
    description: 'Most viewed pages.\nPer tenant.',
    formats: ['json', 'ndjson'],
  });
  const other = ep('a_first', []);

  it('has a path per served format, with GET query parameters and a POST JSON body', () => {
    const doc = openApiDocument([top]) as {
      openapi: string;
      info: Record<string, unknown>;
      paths: Record<string, Record<string, Record<string, unknown>>>;
    };
    expect(doc.openapi).toBe('3.0.3');
    expect(doc.info).toEqual({ title: 'top_pages', version: 'v-top_pages', description: 'Most viewed pages.\nPer tenant.' });
    expect(Object.keys(doc.paths)).toEqual(['/v0/pipes/top_pages.json', '/v0/pipes/top_pages.ndjson']);
    const get = doc.paths['/v0/pipes/top_pages.json']?.get;
    expect(get).toMatchObject({ operationId: 'top_pages_json', summary: 'Most viewed pages.', tags: ['top_pages'] });
    expect(get?.parameters).toEqual([
      {
        name: 'tenant',
        in: 'query',
        required: true,
        description: 'Tenant.',
        schema: { type: 'string', description: 'Tenant.', 'x-clickhouse-type': 'String' },
      },
      { name: 'limit', in: 'query', required: false, schema: expect.objectContaining({ type: 'integer', maximum: 1000, default: 10 }) },
    ]);
    expect(get?.responses).toHaveProperty('408');
    expect(doc.paths['/v0/pipes/top_pages.json']?.post).toMatchObject({
      operationId: 'top_pages_json_post',
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['tenant'],
              additionalProperties: false,
              properties: { tenant: expect.any(Object), limit: expect.any(Object) },
            },
          },
        },
      },
    });
    expect(doc.paths['/v0/pipes/top_pages.ndjson']?.get?.responses).toMatchObject({
      200: { content: { 'application/x-ndjson': { schema: { $ref: '#/components/schemas/top_pages_row' } } } },
    });
  });

  it('describes rows from output columns when known, and as generic objects otherwise', () => {
    const doc = openApiDocument([top, other], { columns: (e) => (e.name === 'top_pages' ? [{ name: 'views', type: 'UInt64' }] : undefined) }) as {
      info: { title: string };
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(doc.info.title).toBe('weir endpoints');
    expect(Object.keys(doc.paths)[0]).toBe('/v0/pipes/a_first.json');
    expect(doc.components.schemas.top_pages_row).toEqual({
      type: 'object',
      properties: { views: { type: 'string', pattern: '^-?[0-9]+$', 'x-clickhouse-type': 'UInt64' } },
      required: ['views'],
    });
    expect(doc.components.schemas.a_first_row).toMatchObject({ type: 'object', additionalProperties: true });
    expect(doc.components.schemas.Error).toMatchObject({ required: ['error'] });
  });
});

describe('describeValues', () => {
  it('binds defaults, enum values, or any value of the type, so that DESCRIBE can analyse the query', () => {
    const e = ep('x', [
      p('tenant', 'String'),
      p('limit', 'UInt32', { default: '10' }),
      p('d', 'Date'),
      p('t', 'Identifier', { enum: ['page_views'] }),
      p('ids', 'Array(UInt64)'),
      p('n', 'Nullable(UInt8)'),
    ]);
    expect(describeValues(e)).toEqual({ tenant: '', limit: '10', d: '1970-01-01', t: 'page_views', ids: [], n: null });
  });
});

interface Operation {
  security?: unknown[];
  'x-weir-fixable-parameters'?: string[];
  responses: Record<string, { description: string; content?: unknown }>;
  parameters: { name: string; required: boolean; description?: string }[];
}
interface Doc {
  paths: Record<string, { get: Operation }>;
  components: { securitySchemes?: Record<string, unknown> };
}
const documentOf = (endpoints: CompiledEndpoint[]): Doc => openApiDocument(endpoints) as unknown as Doc;
const getOf = (doc: Doc, path: string): Operation => {
  const op = doc.paths[path]?.get;
  if (!op) throw new Error(`no GET ${path}`);
  return op;
};

describe('openApiDocument: auth and binary formats', () => {
  const jwt = { secret: 'signing', issuer: 'https://app.example', audience: 'weir', algorithms: ['HS256' as const], clockSkewSeconds: 30 };
  const tenant = [p('tenant', 'String'), p('limit', 'UInt32', { default: '10' })];

  it('declares a bearer JWT scheme, the statuses a token can get, and which parameters a token may fix', () => {
    const doc = documentOf([ep('top_pages', tenant, { auth: { jwt }, formats: ['json'] })]);
    expect(doc.components.securitySchemes).toEqual({
      signedToken: expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: expect.stringContaining('weir.dev/params') }),
      queryToken: expect.objectContaining({ type: 'apiKey', in: 'query', name: 'token' }),
    });
    const get = getOf(doc, '/v0/pipes/top_pages.json');
    expect(get.security).toEqual([{ signedToken: [] }, { queryToken: [] }]);
    expect(get['x-weir-fixable-parameters']).toEqual(['tenant', 'limit']);
    expect(Object.keys(get.responses)).toEqual(expect.arrayContaining(['401', '403', '429']));
    expect(get.responses['403']?.description).toMatch(/weir\.dev\/params/);
    // A token may supply a required parameter, so the document cannot demand it.
    expect(get.parameters[0]).toMatchObject({ name: 'tenant', required: false, description: expect.stringContaining('A signed token may fix it') });
  });

  it('declares static tokens as plain bearer, both schemes when both are set, none without auth', () => {
    expect(documentOf([ep('a', tenant, { auth: { tokensSecret: 'readers' } })]).components.securitySchemes).toHaveProperty('bearerToken');
    const both = documentOf([ep('a', tenant, { auth: { tokensSecret: 'readers', jwt } })]);
    expect(getOf(both, '/v0/pipes/a.json').security).toEqual([{ signedToken: [] }, { bearerToken: [] }, { queryToken: [] }]);
    const open = documentOf([ep('a', tenant)]);
    expect(open.components).not.toHaveProperty('securitySchemes');
    expect(getOf(open, '/v0/pipes/a.json')).not.toHaveProperty('security');
    expect(getOf(open, '/v0/pipes/a.json').parameters[0]?.required).toBe(true);
  });

  it('documents .parquet and .arrow as binary bodies of their media types', () => {
    const doc = documentOf([ep('a', tenant, { formats: ['parquet', 'arrow'] })]);
    expect(getOf(doc, '/v0/pipes/a.parquet').responses['200']?.content).toEqual({
      'application/vnd.apache.parquet': { schema: { type: 'string', format: 'binary' } },
    });
    expect(getOf(doc, '/v0/pipes/a.arrow').responses['200']?.content).toEqual({
      'application/vnd.apache.arrow.stream': { schema: { type: 'string', format: 'binary' } },
    });
  });
});
