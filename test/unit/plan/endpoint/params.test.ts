import { describe, expect, it } from 'vitest';
import type { EndpointParameter } from '../../../../src/plan/endpoint/compile.js';
import { parseParamType } from '../../../../src/plan/endpoint/param-types.js';
import { paramText } from '../../../../src/clickhouse/connection.js';
import { gatherParams, MAX_PARAM_BYTES, oversizedParams, validateParams, type BoundValue, type GivenValue } from '../../../../src/plan/endpoint/params.js';

const p = (name: string, type: string, extra: Partial<EndpointParameter> = {}): EndpointParameter => ({
  name,
  type,
  required: extra.default === undefined,
  ...extra,
});

const fromQuery = (search: string) => {
  const gathered = gatherParams(new URLSearchParams(search));
  if (!gathered.ok) throw new Error(gathered.errors.join('; '));
  return gathered.value;
};

/** Validates one parameter given in a query string: its bound value, or the error text. */
function bind(param: EndpointParameter, search: string): BoundValue | string {
  const result = validateParams({ name: 'ep', params: [param] }, fromQuery(search));
  return result.ok ? boundOf(result.value, param.name) : result.errors.join('; ');
}

const boundOf = (values: Record<string, BoundValue>, name: string): BoundValue | string => (name in values ? (values[name] as BoundValue) : 'unbound');

/** The same with a JSON body. */
function bindBody(param: EndpointParameter, body: Record<string, unknown>): BoundValue | string {
  const gathered = gatherParams(new URLSearchParams(), body);
  if (!gathered.ok) return gathered.errors.join('; ');
  const result = validateParams({ name: 'ep', params: [param] }, gathered.value);
  return result.ok ? boundOf(result.value, param.name) : result.errors.join('; ');
}

describe('parseParamType', () => {
  it('reads the types endpoints take', () => {
    expect(parseParamType('UInt8')).toMatchObject({ kind: 'int', signed: false, bits: 8, min: 0n, max: 255n });
    expect(parseParamType('Int64')).toMatchObject({ kind: 'int', min: -9223372036854775808n, max: 9223372036854775807n });
    expect(parseParamType('UInt256')).toMatchObject({ kind: 'int', max: 2n ** 256n - 1n });
    expect(parseParamType('Decimal(10, 2)')).toMatchObject({ kind: 'decimal', precision: 10, scale: 2 });
    expect(parseParamType('Decimal64(4)')).toMatchObject({ kind: 'decimal', precision: 18, scale: 4 });
    expect(parseParamType("DateTime('Europe/Berlin')")).toMatchObject({ kind: 'datetime', precision: 0 });
    expect(parseParamType("DateTime64(3, 'UTC')")).toMatchObject({ kind: 'datetime', precision: 3 });
    expect(parseParamType('LowCardinality(String)')).toMatchObject({ kind: 'string', text: 'LowCardinality(String)' });
    expect(parseParamType('Array(Nullable(UInt32))')).toMatchObject({ kind: 'array', element: { kind: 'nullable', inner: { kind: 'int', bits: 32 } } });
    expect(parseParamType("Enum8('a' = 1, 'it''s' = 2, 'b\\'c' = 3)")).toMatchObject({ kind: 'enum', values: ['a', "it's", "b'c"] });
    expect(parseParamType('FixedString(3)')).toMatchObject({ kind: 'fixedString', bytes: 3 });
  });

  it('refuses types it cannot check, saying which it takes', () => {
    expect(parseParamType('Map(String, UInt8)')).toEqual({
      unsupported: expect.stringMatching(/^Map\(String, UInt8\) is not a type endpoint parameters take/),
    });
    expect(parseParamType('Tuple(String, UInt8)')).toHaveProperty('unsupported');
    expect(parseParamType('Array(Identifier)')).toHaveProperty('unsupported');
    expect(parseParamType('Nullable(Array(UInt8))')).toHaveProperty('unsupported');
    expect(parseParamType('Decimal(80, 2)')).toHaveProperty('unsupported');
    expect(parseParamType('String(')).toHaveProperty('unsupported');
  });
});

describe('gatherParams', () => {
  it('takes each query-string key once and the keys of a JSON object body', () => {
    const gathered = gatherParams(new URLSearchParams('a=1&b=x'), { c: [1, 2] });
    expect(gathered.ok && [...gathered.value]).toEqual([
      ['a', { value: '1', from: 'query' }],
      ['b', { value: 'x', from: 'query' }],
      ['c', { value: [1, 2], from: 'body' }],
    ]);
  });

  it('refuses a key given twice, in the query string or in both places, and bodies that are not objects', () => {
    expect(gatherParams(new URLSearchParams('a=1&a=2'))).toEqual({ ok: false, errors: [expect.stringMatching(/^parameter a is given more than once/)] });
    expect(gatherParams(new URLSearchParams('a=1'), { a: 2 })).toEqual({
      ok: false,
      errors: ['parameter a is given both in the query string and in the body'],
    });
    for (const body of [[1], 'a', 3, null]) {
      expect(gatherParams(new URLSearchParams(), body)).toEqual({ ok: false, errors: [expect.stringMatching(/must be a JSON object/)] });
    }
  });
});

describe('validateParams: presence', () => {
  const params = [p('tenant', 'String'), p('limit', 'UInt32', { default: '10', max: 1000 })];

  it('fills in defaults and requires the rest', () => {
    expect(validateParams({ name: 'top', params }, fromQuery('tenant=acme'))).toEqual({ ok: true, value: { tenant: 'acme', limit: '10' } });
    expect(validateParams({ name: 'top', params }, fromQuery('limit=5'))).toEqual({ ok: false, errors: ['parameter tenant is required (String)'] });
  });

  it('refuses unknown parameters, saying which are allowed', () => {
    expect(validateParams({ name: 'top', params }, fromQuery('tenant=a&foo=1&bar=2'))).toEqual({
      ok: false,
      errors: ['unknown parameters foo, bar; top takes tenant, limit'],
    });
    expect(validateParams({ name: 'plain', params: [] }, fromQuery('x=1'))).toEqual({ ok: false, errors: ['unknown parameter x; plain takes no parameters'] });
  });

  it('reports every problem at once', () => {
    const result = validateParams({ name: 'top', params }, fromQuery('limit=5000&x=1'));
    expect(result).toEqual({
      ok: false,
      errors: ['unknown parameter x; top takes tenant, limit', 'parameter tenant is required (String)', 'parameter limit: 5000 is above the maximum 1000'],
    });
  });

  it('treats a JSON null as left out, unless the parameter is Nullable', () => {
    expect(bindBody(p('limit', 'UInt32', { default: '10' }), { limit: null })).toBe('10');
    expect(bindBody(p('tenant', 'String'), { tenant: null })).toBe('parameter tenant is required (String)');
    expect(bindBody(p('n', 'Nullable(UInt32)', { default: '3' }), { n: null })).toBeNull();
  });
});

describe('validateParams: integers', () => {
  it('takes integers in the range of their width, in canonical form', () => {
    expect(bind(p('v', 'UInt8'), 'v=255')).toBe('255');
    expect(bind(p('v', 'Int8'), 'v=-128')).toBe('-128');
    expect(bind(p('v', 'UInt32'), 'v=007')).toBe('7');
    expect(bind(p('v', 'Int32'), 'v=%2B5')).toBe('5');
    expect(bind(p('v', 'UInt64'), 'v=18446744073709551615')).toBe('18446744073709551615');
    expect(bind(p('v', 'Int128'), 'v=-170141183460469231731687303715884105728')).toBe('-170141183460469231731687303715884105728');
  });

  it('refuses values outside the width, with the range', () => {
    expect(bind(p('v', 'UInt8'), 'v=256')).toBe('parameter v: expected UInt8, got "256" (UInt8 holds 0 to 255)');
    expect(bind(p('v', 'UInt32'), 'v=-1')).toBe('parameter v: expected UInt32, got "-1" (UInt32 holds 0 to 4294967295)');
    expect(bind(p('v', 'Int64'), 'v=9223372036854775808')).toMatch(/Int64 holds -9223372036854775808 to 9223372036854775807/);
  });

  it('refuses what is not an integer', () => {
    for (const bad of ['1.5', '1e3', '', ' 1', '1 ', '0x10', '1; DROP TABLE x', 'abc', '--1']) {
      expect(bind(p('v', 'Int32'), `v=${encodeURIComponent(bad)}`)).toBe(`parameter v: expected Int32, got ${JSON.stringify(bad)}`);
    }
  });

  it('takes JSON numbers from a body, and 64-bit integers beyond 2^53 only as strings', () => {
    expect(bindBody(p('v', 'UInt32'), { v: 12 })).toBe('12');
    expect(bindBody(p('v', 'UInt64'), { v: '18446744073709551615' })).toBe('18446744073709551615');
    expect(bindBody(p('v', 'UInt64'), { v: 2 ** 60 })).toMatch(/send them as JSON strings/);
    expect(bindBody(p('v', 'Int32'), { v: 1.5 })).toBe('parameter v: expected Int32, got 1.5');
    expect(bindBody(p('v', 'Int32'), { v: true })).toBe('parameter v: expected Int32, got true');
    expect(bindBody(p('v', 'Int32'), { v: { a: 1 } })).toBe('parameter v: expected Int32, got {"a":1}');
  });

  it('checks min and max, naming the bound', () => {
    const limit = p('limit', 'UInt32', { default: '10', min: 1, max: 1000 });
    expect(bind(limit, 'limit=1000')).toBe('1000');
    expect(bind(limit, 'limit=1001')).toBe('parameter limit: 1001 is above the maximum 1000');
    expect(bind(limit, 'limit=0')).toBe('parameter limit: 0 is below the minimum 1');
  });
});

describe('validateParams: floats and decimals', () => {
  it('takes floats in canonical form and refuses the rest', () => {
    expect(bind(p('v', 'Float64'), 'v=1.5')).toBe('1.5');
    expect(bind(p('v', 'Float64'), 'v=1e3')).toBe('1000');
    expect(bind(p('v', 'Float64'), 'v=-.5')).toBe('-0.5');
    for (const bad of ['inf', 'nan', '1e999', '1.2.3', '', '1,5']) {
      expect(bind(p('v', 'Float64'), `v=${encodeURIComponent(bad)}`)).toMatch(/^parameter v: expected Float64, got /);
    }
    expect(bind(p('v', 'Float32'), 'v=1e39')).toMatch(/beyond the range of Float32/);
  });

  it('checks min and max on floats', () => {
    expect(bind(p('v', 'Float64', { min: 0.5 }), 'v=0.25')).toBe('parameter v: 0.25 is below the minimum 0.5');
  });

  it('takes decimals with their precision and scale, refusing what ClickHouse would round', () => {
    const price = p('price', 'Decimal(6, 2)');
    expect(bind(price, 'price=1234.5')).toBe('1234.5');
    expect(bind(price, 'price=0012.50')).toBe('12.5');
    expect(bind(price, 'price=-0.00')).toBe('0');
    expect(bind(price, 'price=1.555')).toBe('parameter price: expected Decimal(6, 2), got "1.555" (at most 2 digit(s) after the point)');
    expect(bind(price, 'price=12345.6')).toBe('parameter price: expected Decimal(6, 2), got "12345.6" (at most 4 digit(s) before the point)');
    expect(bind(price, 'price=1e3')).toMatch(/^parameter price: expected Decimal\(6, 2\)/);
    expect(bind(price, 'price=.')).toMatch(/^parameter price: expected Decimal\(6, 2\)/);
  });
});

describe('validateParams: dates and times', () => {
  it('takes real calendar dates in the range of the type', () => {
    expect(bind(p('d', 'Date'), 'd=2024-02-29')).toBe('2024-02-29');
    expect(bind(p('d', 'Date'), 'd=2023-02-29')).toBe('parameter d: expected Date, got "2023-02-29" (write dates as YYYY-MM-DD)');
    expect(bind(p('d', 'Date'), 'd=2024-13-01')).toBe('parameter d: expected Date, got "2024-13-01" (write dates as YYYY-MM-DD)');
    expect(bind(p('d', 'Date'), 'd=2024-1-1')).toMatch(/write dates as YYYY-MM-DD/);
    expect(bind(p('d', 'Date'), 'd=1969-12-31')).toBe('parameter d: expected Date, got "1969-12-31" (Date holds 1970-01-01 to 2149-06-06)');
    expect(bind(p('d', 'Date32'), 'd=1900-01-01')).toBe('1900-01-01');
  });

  it('takes date-times with a space or a T, or a date alone for midnight', () => {
    expect(bind(p('t', 'DateTime'), 't=2024-05-01%2010:11:12')).toBe('2024-05-01 10:11:12');
    expect(bind(p('t', "DateTime('UTC')"), 't=2024-05-01T10:11:12')).toBe('2024-05-01 10:11:12');
    expect(bind(p('t', 'DateTime'), 't=2024-05-01')).toBe('2024-05-01 00:00:00');
    expect(bind(p('t', 'DateTime'), 't=2024-05-01%2024:00:00')).toBe('parameter t: expected DateTime, got "2024-05-01 24:00:00" (write YYYY-MM-DD hh:mm:ss)');
    expect(bind(p('t', 'DateTime'), 't=2024-05-01%2010:11:12.5')).toMatch(/DateTime has no fraction of a second/);
    expect(bind(p('t', 'DateTime'), 't=1700000000')).toMatch(/write YYYY-MM-DD hh:mm:ss/);
    expect(bind(p('t', 'DateTime'), 't=2200-01-01')).toMatch(/DateTime holds 1970-01-01 00:00:00 to 2106-02-07 06:28:15/);
  });

  it('takes fractions of a second up to the precision of DateTime64', () => {
    expect(bind(p('t', 'DateTime64(3)'), 't=2024-05-01%2010:11:12.123')).toBe('2024-05-01 10:11:12.123');
    expect(bind(p('t', 'DateTime64(3)'), 't=2024-05-01%2010:11:12.1234')).toMatch(/at most 3 digit\(s\) after the second/);
  });
});

describe('validateParams: strings and other scalars', () => {
  it('takes any string as it is, quotes and all', () => {
    for (const s of ["' OR 1=1 --", 'a\\b', 'tab\there', '{x:String}', '', 'ünïcødé']) {
      expect(bind(p('s', 'String'), `s=${encodeURIComponent(s)}`)).toBe(s);
    }
    expect(bindBody(p('s', 'String'), { s: 42 })).toBe('42');
    expect(bindBody(p('s', 'String'), { s: false })).toBe('parameter s: expected String, got false');
  });

  it('bounds FixedString by bytes', () => {
    expect(bind(p('s', 'FixedString(2)'), 's=ab')).toBe('ab');
    expect(bind(p('s', 'FixedString(2)'), 's=%C3%A9%C3%A9')).toBe('parameter s: expected FixedString(2), got "éé" (FixedString(2) holds at most 2 byte(s))');
  });

  it('takes booleans as true, false, 1 or 0', () => {
    expect(bind(p('b', 'Bool'), 'b=TRUE')).toBe('true');
    expect(bind(p('b', 'Bool'), 'b=0')).toBe('false');
    expect(bindBody(p('b', 'Bool'), { b: true })).toBe('true');
    expect(bind(p('b', 'Bool'), 'b=yes')).toBe('parameter b: expected Bool, got "yes" (write true, false, 1 or 0)');
  });

  it('takes UUIDs and IP addresses', () => {
    expect(bind(p('u', 'UUID'), 'u=61F0C404-5CB3-11E7-907B-A6006AD3DBA0')).toBe('61f0c404-5cb3-11e7-907b-a6006ad3dba0');
    expect(bind(p('u', 'UUID'), 'u=61f0c4045cb311e7907ba6006ad3dba0')).toMatch(/^parameter u: expected UUID/);
    expect(bind(p('ip', 'IPv4'), 'ip=10.0.0.1')).toBe('10.0.0.1');
    expect(bind(p('ip', 'IPv4'), 'ip=10.0.0.256')).toBe('parameter ip: expected IPv4, got "10.0.0.256"');
    expect(bind(p('ip', 'IPv6'), 'ip=%3A%3A1')).toBe('::1');
  });

  it('takes the names of an Enum type, and checks spec enums', () => {
    expect(bind(p('e', "Enum8('view' = 1, 'click' = 2)"), 'e=click')).toBe('click');
    expect(bind(p('e', "Enum8('view' = 1, 'click' = 2)"), 'e=1')).toBe(`parameter e: expected Enum8('view' = 1, 'click' = 2), got "1" (one of view, click)`);
    const country = p('country', 'LowCardinality(String)', { enum: ['de', 'fr'], default: 'de' });
    expect(bind(country, 'country=fr')).toBe('fr');
    expect(bind(country, 'country=us')).toBe('parameter country: "us" is not an allowed value (allowed: de, fr)');
  });

  it('takes an Identifier only from its enum', () => {
    const table = p('t', 'Identifier', { enum: ['page_views', 'clicks'], default: 'clicks' });
    expect(bind(table, 't=page_views')).toBe('page_views');
    expect(bind(table, 't=system.users')).toBe('parameter t: "system.users" is not an allowed value (allowed: page_views, clicks)');
  });
});

describe('validateParams: Nullable', () => {
  it('reads an empty query-string value as NULL, and JSON null from a body', () => {
    expect(bind(p('n', 'Nullable(UInt32)'), 'n=')).toBeNull();
    expect(bind(p('n', 'Nullable(UInt32)'), 'n=5')).toBe('5');
    expect(bind(p('n', 'Nullable(String)'), 'n=')).toBeNull();
    expect(bindBody(p('n', 'Nullable(String)'), { n: '' })).toBe('');
    expect(bind(p('n', 'Nullable(UInt32)'), 'n=x')).toBe('parameter n: expected Nullable(UInt32), got "x"');
  });

  it('refuses an empty value for a type that cannot be NULL', () => {
    expect(bind(p('n', 'UInt32'), 'n=')).toBe('parameter n: expected UInt32, got ""');
  });
});

describe('validateParams: arrays', () => {
  it('takes a comma list or a JSON array from the query string, and a JSON array from a body', () => {
    expect(bind(p('ids', 'Array(UInt32)'), 'ids=1,2,3')).toEqual([1, 2, 3]);
    expect(bind(p('ids', 'Array(UInt32)'), 'ids=1,%202')).toEqual([1, 2]);
    expect(bind(p('ids', 'Array(UInt32)'), 'ids=[1,2]')).toEqual([1, 2]);
    expect(bind(p('ids', 'Array(UInt32)'), 'ids=')).toEqual([]);
    expect(bind(p('ids', 'Array(UInt32)'), 'ids=[]')).toEqual([]);
    expect(bindBody(p('ids', 'Array(UInt32)'), { ids: [4, '5'] })).toEqual([4, 5]);
    expect(bindBody(p('ids', 'Array(UInt32)'), { ids: '1,2' })).toMatch(/in a JSON body, write an array as a JSON array/);
  });

  it('keeps 64-bit integers exact, in a comma list or in a JSON array text', () => {
    expect(bind(p('ids', 'Array(UInt64)'), 'ids=18446744073709551615,1')).toEqual([18446744073709551615n, 1n]);
    expect(bind(p('ids', 'Array(UInt64)'), `ids=${encodeURIComponent('[18446744073709551615, 1]')}`)).toEqual([18446744073709551615n, 1n]);
  });

  it('keeps strings whole: commas need the JSON form, and spaces are kept', () => {
    expect(bind(p('names', 'Array(String)'), 'names=a,%20b')).toEqual(['a', ' b']);
    expect(bind(p('names', 'Array(String)'), `names=${encodeURIComponent('["a,b","it\'s"]')}`)).toEqual(['a,b', "it's"]);
    expect(bind(p('days', 'Array(Date)'), 'days=2024-01-01,2024-01-02')).toEqual(['2024-01-01', '2024-01-02']);
  });

  it('says which element is wrong', () => {
    expect(bind(p('ids', 'Array(UInt8)'), 'ids=1,300,3')).toBe(
      'parameter ids: expected Array(UInt8), got "1,300,3" (element 2: "300" is not a UInt8: UInt8 holds 0 to 255)',
    );
    expect(bind(p('ids', 'Array(UInt8)'), 'ids=[1,')).toBe('parameter ids: expected Array(UInt8), got "[1," (not a valid JSON array)');
    expect(bind(p('ids', 'Array(UInt8)'), 'ids=[1,null]')).toMatch(/element 2: null where UInt8 cannot be NULL/);
  });

  it('takes NULL elements of Array(Nullable(T)), and nested arrays as JSON', () => {
    expect(bind(p('v', 'Array(Nullable(Int32))'), 'v=1,,3')).toEqual([1, null, 3]);
    expect(bind(p('v', 'Array(Nullable(Int32))'), 'v=[1,null]')).toEqual([1, null]);
    expect(bind(p('v', 'Array(Array(UInt8))'), 'v=[[1,2],[3]]')).toEqual([[1, 2], [3]]);
    expect(bind(p('v', 'Array(Array(UInt8))'), 'v=[1]')).toMatch(/element 1: "1" is not an array/);
  });

  it('sends elements as the client formats them: numbers, booleans and quoted text', () => {
    expect(bind(p('v', 'Array(Bool)'), 'v=true,0')).toEqual([true, false]);
    expect(bind(p('v', 'Array(Float64)'), 'v=1.5,2')).toEqual([1.5, 2]);
    expect(bind(p('v', 'Array(Decimal(10, 2))'), 'v=1.50,2')).toEqual([1.5, 2]);
    expect(bind(p('v', 'Array(Decimal(38, 20))'), 'v=1.00000000000000000001')).toMatch(/at most 15 significant digits/);
  });

  it('checks min, max and enum on every element', () => {
    expect(bind(p('v', 'Array(UInt32)', { max: 10 }), 'v=1,11')).toBe('parameter v: 11 is above the maximum 10');
    expect(bind(p('v', 'Array(String)', { enum: ['a', 'b'] }), 'v=a,c')).toBe('parameter v: "c" is not an allowed value (allowed: a, b)');
  });
});

describe('validateParams: values never become SQL', () => {
  it('binds injection attempts as plain values of their type, or refuses them', () => {
    const given = new Map<string, GivenValue>([
      ['tenant', { value: "' OR 1=1 --", from: 'query' }],
      ['names', { value: "x','y') OR ('1'='1", from: 'query' }],
    ]);
    const result = validateParams({ name: 'ep', params: [p('tenant', 'String'), p('names', 'Array(String)')] }, given);
    expect(result).toEqual({ ok: true, value: { tenant: "' OR 1=1 --", names: ["x'", "'y') OR ('1'='1"] } });
    expect(bind(p('d', 'Date'), `d=${encodeURIComponent("2020-01-01') OR ('1'='1")}`)).toMatch(/^parameter d: expected Date/);
    expect(bind(p('l', 'UInt32'), `l=${encodeURIComponent('1; DROP TABLE x')}`)).toMatch(/^parameter l: expected UInt32/);
  });

  it('quotes long values back shortened', () => {
    const long = 'x'.repeat(500);
    expect(bind(p('v', 'UInt8'), `v=${long}`)).toBe(`parameter v: expected UInt8, got "${'x'.repeat(79)}…`);
  });
});

describe('oversizedParams: the size of a value as sent', () => {
  it('takes values up to MAX_PARAM_BYTES as ClickHouse receives them, and names each one past it', () => {
    expect(MAX_PARAM_BYTES).toBe(131072);
    const ids = Array.from({ length: 3000 }, (_, i) => i + 1);
    expect(oversizedParams({ s: 'x'.repeat(20_000), ids, n: null }, paramText)).toEqual([]);
    expect(oversizedParams({ s: 'x'.repeat(MAX_PARAM_BYTES) }, paramText)).toEqual([]);
    // Counted as sent: escapes (a quote is \') and UTF-8 bytes, not characters.
    expect(oversizedParams({ s: "'".repeat(MAX_PARAM_BYTES / 2 + 1), t: 'é'.repeat(MAX_PARAM_BYTES / 2) }, paramText)).toEqual([
      'parameter s is 131074 bytes as sent to ClickHouse; a parameter value may be at most 131072 bytes',
    ]);
    expect(oversizedParams({ a: ['abc', 'de'], b: 'x'.repeat(11) }, paramText, 10)).toEqual([
      'parameter a is 12 bytes as sent to ClickHouse; a parameter value may be at most 10 bytes',
      'parameter b is 11 bytes as sent to ClickHouse; a parameter value may be at most 10 bytes',
    ]);
  });
});
