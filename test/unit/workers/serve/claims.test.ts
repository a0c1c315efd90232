// What a verified token's claims grant: scope, fixed parameters (type-checked like any value), the
// per-token rate, and a request's parameters with the fixed ones put in. Pure: no I/O.
import { describe, expect, it } from 'vitest';
import type { CompiledEndpoint, EndpointParameter } from '../../../../src/plan/endpoint/compile.js';
import type { GivenValue } from '../../../../src/plan/endpoint/params.js';
import { boundText, fixedParams, grantOf, scopeAllows, tokenRate, withFixedParams } from '../../../../src/workers/serve/claims.js';

const p = (name: string, type: string, extra: Partial<EndpointParameter> = {}): EndpointParameter => ({
  name,
  type,
  required: extra.default === undefined,
  ...extra,
});

const ep: Pick<CompiledEndpoint, 'name' | 'resource' | 'params'> = {
  name: 'top_pages',
  resource: 'top-pages',
  params: [
    p('tenant', 'String'),
    p('limit', 'UInt32', { default: '10', max: 1000 }),
    p('region', 'LowCardinality(String)', { default: 'eu', enum: ['eu', 'us'] }),
    p('ids', 'Array(UInt64)', { default: '' }),
    p('day', 'Date', { default: '2020-01-01' }),
    p('team', 'Nullable(String)', { default: '' }),
    p('flag', 'Bool', { default: 'false' }),
  ],
};

const query = (entries: Record<string, unknown>): Map<string, GivenValue> => new Map(Object.entries(entries).map(([k, v]) => [k, { value: v, from: 'query' }]));
const body = (entries: Record<string, unknown>): Map<string, GivenValue> => new Map(Object.entries(entries).map(([k, v]) => [k, { value: v, from: 'body' }]));
const fixedOf = (claim: unknown) => {
  const r = fixedParams(ep, claim);
  if (!r.ok) throw new Error(r.error);
  return r.fixed;
};

describe('scopeAllows (weir.dev/endpoints)', () => {
  it.each([
    ['*', true],
    [['*'], true],
    [['top_pages'], true],
    [['top-pages'], true],
    [['other', 'top_pages'], true],
  ])('%j allows top_pages', (claim, ok) => {
    expect(scopeAllows(ep, claim).ok).toBe(ok);
  });

  it('refuses with 403 a list without the endpoint, naming what the token may call', () => {
    expect(scopeAllows(ep, ['other', 'more'])).toEqual({
      ok: false,
      status: 403,
      error: 'the token is not allowed to call top_pages (weir.dev/endpoints: other, more)',
    });
    expect(scopeAllows(ep, [])).toEqual({ ok: false, status: 403, error: 'the token is not allowed to call top_pages (weir.dev/endpoints: none)' });
  });

  it('refuses with 403 a token without the claim: no scope is no endpoint', () => {
    expect(scopeAllows(ep, undefined)).toEqual({ ok: false, status: 403, error: 'the token has no weir.dev/endpoints claim, so it may call no endpoint' });
  });

  it.each([['top_pages'], [{ top_pages: true }], [[1]], [null], [['top_pages', 2]]])('refuses a malformed claim %j with 401', (claim) => {
    expect(scopeAllows(ep, claim)).toMatchObject({ ok: false, status: 401 });
  });

  it('shortens a long list and quotes names printably', () => {
    const r = scopeAllows(ep, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'x\ny']);
    expect(r).toMatchObject({ ok: false, error: 'the token is not allowed to call top_pages (weir.dev/endpoints: a, b, c, d, e and 3 more)' });
    expect(scopeAllows(ep, ['x\ny'])).toMatchObject({ error: 'the token is not allowed to call top_pages (weir.dev/endpoints: x\\ny)' });
  });
});

describe('fixedParams (weir.dev/params)', () => {
  it('fixes nothing without the claim', () => {
    expect(fixedOf(undefined).size).toBe(0);
  });

  it('checks each value as its parameter would be checked, and keeps its canonical text', () => {
    const fixed = fixedOf({ tenant: 'acme', limit: 25, region: 'us', ids: [1, '18446744073709551615'], day: '2024-02-29', team: null, flag: true });
    expect(Object.fromEntries([...fixed].map(([k, f]) => [k, f.text]))).toEqual({
      tenant: 'acme',
      limit: '25',
      region: 'us',
      ids: '[1,18446744073709551615]',
      day: '2024-02-29',
      team: '\\N',
      flag: 'true',
    });
    expect(fixed.get('ids')?.bound).toEqual([1n, 18446744073709551615n]);
  });

  it.each([
    [{ limit: 'ten' }, 'parameter limit: expected UInt32, got "ten"'],
    [{ limit: 5000 }, 'parameter limit: 5000 is above the maximum 1000'],
    [{ limit: -1 }, 'parameter limit: expected UInt32, got -1 (UInt32 holds 0 to 4294967295)'],
    [{ region: 'apac' }, 'parameter region: "apac" is not an allowed value (allowed: eu, us)'],
    [{ day: '2023-02-29' }, 'parameter day: expected Date, got "2023-02-29" (write dates as YYYY-MM-DD)'],
    [{ tenant: null }, 'parameter tenant: expected String, got null'],
    [{ tenant: { $ne: 'x' } }, 'parameter tenant: expected String, got {"$ne":"x"}'],
    [{ tenant: ['acme', 'globex'] }, 'parameter tenant: expected String, got ["acme","globex"]'],
    [{ ids: '1,2' }, 'parameter ids: expected Array(UInt64), got "1,2" (in a JSON body, write an array as a JSON array)'],
    [{ flag: 'yes' }, 'parameter flag: expected Bool, got "yes" (write true, false, 1 or 0)'],
  ])('refuses %j with 401: the value does not fit the parameter', (claim, message) => {
    const r = fixedParams(ep, claim);
    expect(r).toMatchObject({ ok: false, status: 401 });
    expect(!r.ok && r.error).toBe(`the token's weir.dev/params do not fit top_pages: ${message}`);
  });

  it.each([['acme'], [['tenant']], [null], [42]])('refuses a claim that is not an object (%j) with 401', (claim) => {
    expect(fixedParams(ep, claim)).toMatchObject({ ok: false, status: 401, error: expect.stringContaining('must be an object') });
  });

  it('refuses with 403 a token fixing a parameter the endpoint does not take: it cannot be narrowed', () => {
    expect(fixedParams(ep, { tenant: 'acme', customer: 'c1' })).toEqual({
      ok: false,
      status: 403,
      error: 'the token fixes parameter customer, which top_pages does not take; it cannot be narrowed as the token requires',
    });
    expect(fixedParams(ep, { "x'); DROP TABLE t; --": 1, 'a\u0000b': 2 })).toMatchObject({
      status: 403,
      error: expect.stringMatching(/^the token fixes parameters x'\); DROP TABLE t; --, a\\u0000b, which top_pages/),
    });
  });

  it('carries hostile strings as values, unchanged', () => {
    for (const hostile of ["acme' OR '1'='1", "x'; DROP TABLE page_views; --", 'a\\', '\u0000', '{tenant:String}', "') UNION SELECT * FROM system.users --"]) {
      expect(fixedOf({ tenant: hostile }).get('tenant')?.bound).toBe(hostile);
    }
  });
});

describe('tokenRate (weir.dev/rps)', () => {
  it('counts by sub, else by jti', () => {
    expect(tokenRate({ 'weir.dev/rps': 5, sub: 'c1', jti: 'j' })).toEqual({ ok: true, rps: 5, rateKey: 'sub:c1' });
    expect(tokenRate({ 'weir.dev/rps': 0.5, jti: 'j' })).toEqual({ ok: true, rps: 0.5, rateKey: 'jti:j' });
    expect(tokenRate({ sub: 'c1' })).toEqual({ ok: true });
  });

  it.each([[0], [-1], ['5'], [Infinity], [null]])('refuses rps %j with 401', (rps) => {
    expect(tokenRate({ 'weir.dev/rps': rps, sub: 'c1' })).toMatchObject({ ok: false, status: 401 });
  });

  it('refuses a rate with nobody to count it by', () => {
    expect(tokenRate({ 'weir.dev/rps': 5 })).toEqual({
      ok: false,
      status: 401,
      error: 'a token with weir.dev/rps needs a sub or a jti to count its requests by',
    });
    expect(tokenRate({ 'weir.dev/rps': 5, sub: '' })).toMatchObject({ ok: false });
  });
});

describe('grantOf', () => {
  it('grants scope, fixed parameters and a rate, with the sub as the identifier', () => {
    const r = grantOf(ep, { sub: 'customer-42', 'weir.dev/endpoints': ['top-pages'], 'weir.dev/params': { tenant: 'acme' }, 'weir.dev/rps': 3 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.grant).toMatchObject({ subject: 'customer-42', rps: 3, rateKey: 'sub:customer-42' });
    expect([...r.grant.fixed.keys()]).toEqual(['tenant']);
  });

  it('checks scope first: a token for another endpoint is 403 whatever else it carries', () => {
    expect(grantOf(ep, { 'weir.dev/endpoints': ['other'], 'weir.dev/params': { limit: 'x' } })).toMatchObject({ status: 403 });
  });

  it('has an empty subject for a token without sub', () => {
    expect(grantOf(ep, { 'weir.dev/endpoints': '*' })).toMatchObject({ ok: true, grant: { subject: '' } });
  });
});

describe('withFixedParams: a request cannot widen its token', () => {
  const fixed = fixedOf({ tenant: 'acme', limit: 10, ids: [1, 2] });

  it('puts the fixed values in when the request leaves them out', () => {
    const r = withFixedParams(ep, query({ day: '2024-01-01' }), fixed);
    expect(r.ok && Object.fromEntries([...r.given].map(([k, v]) => [k, v.value]))).toEqual({ day: '2024-01-01', tenant: 'acme', limit: 10, ids: [1, 2] });
  });

  it('takes the same value written another way', () => {
    expect(withFixedParams(ep, query({ tenant: 'acme', limit: '010', ids: '1,2' }), fixed).ok).toBe(true);
    expect(withFixedParams(ep, body({ limit: 10, ids: [1, 2] }), fixed).ok).toBe(true);
    expect(withFixedParams(ep, query({ ids: '[1, 2]' }), fixed).ok).toBe(true);
  });

  it.each([
    [{ tenant: 'globex' }, 'parameter tenant is'],
    [{ tenant: 'acme ' }, 'parameter tenant is'],
    [{ tenant: "acme' OR '1'='1" }, 'parameter tenant is'],
    [{ limit: '11' }, 'parameter limit is'],
    [{ limit: 'ten' }, 'parameter limit is'],
    [{ ids: '1,2,3' }, 'parameter ids is'],
    [{ tenant: 'globex', limit: 1000 }, 'parameters tenant, limit are'],
  ])('refuses %j with 403 naming the parameter, without its value', (sent, which) => {
    const r = withFixedParams(ep, query(sent), fixed);
    expect(r).toMatchObject({ ok: false, status: 403 });
    expect(!r.ok && r.error).toBe(`${which} fixed by the token (weir.dev/params); leave ${which.startsWith('parameters') ? 'them' : 'it'} out of the request`);
    expect(!r.ok && r.error).not.toMatch(/globex|OR/);
  });

  it('refuses an override sent in a JSON body too', () => {
    expect(withFixedParams(ep, body({ tenant: ['acme'] }), fixed)).toMatchObject({ ok: false, status: 403 });
    expect(withFixedParams(ep, body({ tenant: null }), fixed)).toMatchObject({ ok: false, status: 403 });
  });

  it('compares a fixed NULL as NULL', () => {
    const nul = fixedOf({ team: null });
    expect(withFixedParams(ep, query({ team: '' }), nul).ok).toBe(true);
    expect(withFixedParams(ep, query({ team: 'x' }), nul).ok).toBe(false);
  });
});

describe('boundText', () => {
  it('writes scalars as they are, arrays as JSON with 64-bit integers as digits, NULL as \\N', () => {
    expect(boundText('acme')).toBe('acme');
    expect(boundText([1n, [2, null], 'a'])).toBe('[1,[2,null],"a"]');
    expect(boundText(null)).toBe('\\N');
  });
});
