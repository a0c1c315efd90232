import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../../../src/api/endpoint.js';
import type { Pipe } from '../../../../src/api/pipe.js';
import { compileEndpoint, DEFAULT_LIMITS, type CompiledEndpoint } from '../../../../src/plan/endpoint/compile.js';
import { endpoint, node, pipe, withNodes, withParams, withSpec } from '../../../fixtures/builders.js';

const topPagesPipe = pipe(
  'top-pages',
  withNodes(
    node(
      'scoped',
      `SELECT day, pathname, countMerge(views) AS views
FROM page_views_daily
WHERE tenant_id = {tenant:String} AND day BETWEEN {date_from:Date} AND {date_to:Date}
GROUP BY day, pathname;`,
    ),
    node('ranked', 'SELECT pathname, sum(views) AS views FROM scoped GROUP BY pathname ORDER BY views DESC LIMIT {limit:UInt32}'),
    node('unused_after', "SELECT * FROM ranked WHERE {never:String} != ''"),
  ),
);

const topPages = (...mods: ((e: Endpoint) => void)[]) =>
  endpoint(
    'top-pages',
    'top-pages',
    withSpec<Endpoint>({ node: 'ranked', description: 'Most viewed pages of a tenant.' }),
    withParams(
      { name: 'tenant', required: true, description: 'Tenant id.' },
      { name: 'date_from', default: '2020-01-01' },
      { name: 'date_to', default: '2100-01-01' },
      { name: 'limit', default: 10, min: 1, max: 1000 },
    ),
    ...mods,
  );

function compiled(ep: Endpoint, p: Pipe = topPagesPipe): CompiledEndpoint {
  const c = compileEndpoint(ep, p, 'web');
  if ('problem' in c) throw new Error(c.problem);
  return c;
}

const problemOf = (ep: Endpoint, p: Pipe = topPagesPipe): string => {
  const c = compileEndpoint(ep, p, 'web');
  return 'problem' in c ? c.problem : 'compiled';
};

describe('compileEndpoint', () => {
  it('names the endpoint as ClickHouse does and composes the nodes up to its node as CTEs', () => {
    const c = compiled(topPages());
    expect(c).toMatchObject({ name: 'top_pages', resource: 'top-pages', namespace: 'default', pipe: 'top-pages', node: 'ranked', database: 'web' });
    expect(c.sql).toBe(
      `WITH scoped AS (
SELECT day, pathname, countMerge(views) AS views
FROM page_views_daily
WHERE tenant_id = {tenant:String} AND day BETWEEN {date_from:Date} AND {date_to:Date}
GROUP BY day, pathname
)
SELECT pathname, sum(views) AS views FROM scoped GROUP BY pathname ORDER BY views DESC LIMIT {limit:UInt32}`,
    );
    expect(c.description).toBe('Most viewed pages of a tenant.');
  });

  it('takes parameters from the placeholders, with spec.params defaults, bounds and descriptions', () => {
    expect(compiled(topPages()).params).toEqual([
      { name: 'tenant', type: 'String', required: true, description: 'Tenant id.' },
      { name: 'date_from', type: 'Date', required: false, default: '2020-01-01' },
      { name: 'date_to', type: 'Date', required: false, default: '2100-01-01' },
      { name: 'limit', type: 'UInt32', required: false, default: '10', min: 1, max: 1000 },
    ]);
  });

  it('serves every format and the default limits unless the spec says otherwise', () => {
    const c = compiled(topPages());
    expect(c.formats).toEqual(['json', 'csv', 'ndjson']);
    expect(c.limits).toEqual({ maxExecutionTimeMs: 10_000, maxResultRows: 100_000 });
    expect(DEFAULT_LIMITS).toEqual({ maxExecutionTimeMs: 10_000, maxResultRows: 100_000 });
    const limited = compiled(topPages(withSpec<Endpoint>({ formats: ['ndjson'], limits: { maxExecutionTimeMs: 2000, maxResultBytes: 4096 } })));
    expect(limited.formats).toEqual(['ndjson']);
    expect(limited.limits).toEqual({ maxExecutionTimeMs: 2000, maxResultRows: 100_000, maxResultBytes: 4096 });
  });

  it('carries the tokens Secret of spec.auth and the rate limit, and refuses a parameter named token with auth', () => {
    const c = compiled(topPages(withSpec<Endpoint>({ auth: { tokensSecretRef: { name: 'readers' } }, limits: { requestsPerSecond: 50 } })));
    expect(c.auth).toEqual({ tokensSecret: 'readers' });
    expect(c.limits.requestsPerSecond).toBe(50);
    expect(compiled(topPages())).not.toHaveProperty('auth');
    const p = pipe('p', withNodes(node('a', 'SELECT {token:String} AS t')));
    expect(compiled(endpoint('e', 'p'), p).params.map((x) => x.name)).toEqual(['token']);
    expect(problemOf(endpoint('e', 'p', withSpec<Endpoint>({ auth: { tokensSecretRef: { name: 'readers' } } })), p)).toBe(
      'parameter {token:…} of Pipe p clashes with ?token=, which carries the bearer token when spec.auth is set; rename the parameter',
    );
  });

  it('carries spec.auth.jwt with the allow-list in a fixed order and the default clock skew, next to static tokens or alone', () => {
    const jwt = { secretRef: { name: 'signing' }, issuer: 'https://app.example', audience: 'weir' };
    expect(compiled(topPages(withSpec<Endpoint>({ auth: { jwt } }))).auth).toEqual({
      jwt: { secret: 'signing', issuer: 'https://app.example', audience: 'weir', algorithms: ['HS256', 'RS256', 'ES256'], clockSkewSeconds: 30 },
    });
    const both = compiled(
      topPages(withSpec<Endpoint>({ auth: { tokensSecretRef: { name: 'readers' }, jwt: { ...jwt, algorithms: ['ES256', 'RS256'], clockSkewSeconds: 5 } } })),
    );
    expect(both.auth).toEqual({ tokensSecret: 'readers', jwt: expect.objectContaining({ algorithms: ['RS256', 'ES256'], clockSkewSeconds: 5 }) });
    // The order of the spec's list does not make another version.
    const reordered = compiled(
      topPages(withSpec<Endpoint>({ auth: { tokensSecretRef: { name: 'readers' }, jwt: { ...jwt, algorithms: ['RS256', 'ES256'], clockSkewSeconds: 5 } } })),
    );
    expect(reordered.version).toBe(both.version);
    expect(problemOf(topPages(withSpec<Endpoint>({ auth: {} })))).toBe('spec.auth needs tokensSecretRef, jwt, or both');
  });

  it('serves json, csv and ndjson by default, and parquet or arrow when listed', () => {
    expect(compiled(topPages()).formats).toEqual(['json', 'csv', 'ndjson']);
    expect(compiled(topPages(withSpec<Endpoint>({ formats: ['json', 'parquet', 'arrow'] }))).formats).toEqual(['json', 'parquet', 'arrow']);
  });

  it('serves the last node when spec.node is not set', () => {
    const p = pipe('p', withNodes(node('a', 'SELECT 1 AS x'), node('b', 'SELECT x + {n:UInt8} AS y FROM a')));
    const c = compiled(endpoint('e', 'p'), p);
    expect(c.node).toBe('b');
    expect(c.params.map((x) => x.name)).toEqual(['n']);
    expect(c.params[0]?.required).toBe(true);
  });

  it('changes version with what it serves, and only then', () => {
    expect(compiled(topPages()).version).toBe(compiled(topPages()).version);
    expect(compiled(topPages()).version).not.toBe(compiled(topPages(withSpec<Endpoint>({ limits: { maxResultRows: 5 } }))).version);
    expect(compileEndpoint(topPages(), topPagesPipe, 'other')).not.toMatchObject({ version: compiled(topPages()).version });
  });

  it('canonicalises enum values, so that they compare with checked values', () => {
    const p = pipe('p', withNodes(node('a', 'SELECT {n:UInt16} AS n, {d:Decimal(5,2)} AS d')));
    const c = compiled(endpoint('e', 'p', withParams({ name: 'n', enum: ['010', '20'], default: '10' }, { name: 'd', enum: ['1.50'], default: '1.5' })), p);
    expect(c.params.map((x) => x.enum)).toEqual([['10', '20'], ['1.5']]);
  });
});

describe('compileEndpoint refuses what it cannot serve, saying where', () => {
  it('a Pipe other than the one spec.pipe names', () => {
    expect(problemOf(endpoint('e', 'other'))).toBe('spec.pipe names Pipe other, but Pipe top-pages was given');
  });

  it('an unknown node, a parameter used with two types, or spec.params the SQL does not use', () => {
    expect(problemOf(topPages(withSpec<Endpoint>({ node: 'nope' })))).toMatch(/^spec.node nope is not a node of Pipe top-pages/);
    const conflicting = pipe('p', withNodes(node('a', 'SELECT {x:UInt8} AS a'), node('b', 'SELECT {x:String} AS b FROM a')));
    expect(problemOf(endpoint('e', 'p'), conflicting)).toBe('parameter x is used as UInt8 and as String');
    expect(problemOf(topPages(withParams({ name: 'tenant' }, { name: 'ghost', default: 1 })))).toMatch(
      /^spec.params declares ghost, which the SQL of Pipe top-pages does not use/,
    );
  });

  it('a node that is not one SELECT, or that picks its own format', () => {
    const insert = pipe('p', withNodes(node('a', 'INSERT INTO t SELECT 1')));
    expect(problemOf(endpoint('e', 'p'), insert)).toBe('node a of Pipe p must be a SELECT to be served (it starts with INSERT)');
    const formatted = pipe('p', withNodes(node('a', 'SELECT 1 FORMAT CSV')));
    expect(problemOf(endpoint('e', 'p'), formatted)).toBe('node a of Pipe p ends with FORMAT CSV; remove it: the endpoint picks the format from the URL');
    const two = pipe('p', withNodes(node('a', 'SELECT 1; SELECT 2')));
    expect(problemOf(endpoint('e', 'p'), two)).toBe('node a of Pipe p holds more than one statement');
  });

  it('parameter types it cannot check', () => {
    const p = pipe('p', withNodes(node('a', 'SELECT {m:Map(String, UInt8)} AS m')));
    expect(problemOf(endpoint('e', 'p'), p)).toMatch(
      /^parameter \{m:Map\(String, UInt8\)\} of Pipe p: Map\(String, UInt8\) is not a type endpoint parameters take/,
    );
  });

  it('an Identifier parameter without an enum of allowed names', () => {
    const p = pipe('p', withNodes(node('a', 'SELECT count() FROM {t:Identifier}')));
    expect(problemOf(endpoint('e', 'p'), p)).toMatch(/Identifier parameter names a table or column for the caller; list the names callers may pick in enum/);
    expect(compileEndpoint(endpoint('e', 'p', withParams({ name: 't', enum: ['page_views'], default: 'page_views' })), p, 'web')).not.toHaveProperty('problem');
  });

  it('min or max on a parameter that is not numeric', () => {
    expect(problemOf(topPages(withParams({ name: 'tenant', min: 1 })))).toBe(
      'spec.params tenant: min and max apply to numeric parameters, and tenant is String',
    );
  });

  it('defaults and enum values that are not of the type or outside the bounds', () => {
    expect(problemOf(topPages(withParams({ name: 'tenant' }, { name: 'date_from', default: '2020-13-01' })))).toBe(
      'spec.params date_from: default "2020-13-01" does not hold: parameter date_from: expected Date, got "2020-13-01" (write dates as YYYY-MM-DD)',
    );
    expect(problemOf(topPages(withParams({ name: 'tenant' }, { name: 'limit', default: 5000, max: 1000 })))).toBe(
      'spec.params limit: default "5000" does not hold: parameter limit: 5000 is above the maximum 1000',
    );
    expect(problemOf(topPages(withParams({ name: 'tenant' }, { name: 'limit', enum: ['ten'] })))).toMatch(
      /^spec.params limit: enum value "ten" is not a UInt32/,
    );
    expect(problemOf(topPages(withParams({ name: 'tenant', enum: ['a'] }, { name: 'limit', default: 10, enum: ['5'] })))).toBe(
      'spec.params limit: default "10" does not hold: parameter limit: "10" is not an allowed value (allowed: 5)',
    );
  });
});
