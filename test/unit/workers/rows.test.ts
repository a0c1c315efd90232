import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { Column, DataSource } from '../../../src/api/datasource.js';
import { ColumnMappingError, compileRowMapper, MAPPED_ROW_SETTINGS, type RowMapper } from '../../../src/workers/rows.js';
import { column } from '../../fixtures/builders.js';

// One column `c` fed from $.c, compiled once per type.
const mappers = new Map<string, RowMapper>();
const mapperFor = (type: string): RowMapper => {
  let m = mappers.get(type);
  if (!m) mappers.set(type, (m = compileRowMapper([column('c', type, { jsonPath: '$.c' })])));
  return m;
};

/**
 * mapLine must give exactly JSON.stringify of what mapValue gives (or the same error) for the
 * message text: every case below checks both paths.
 */
function sameAsLine(type: string, value: unknown): void {
  let raw: string | undefined;
  try {
    raw = JSON.stringify({ c: value });
  } catch {
    return; // a BigInt: no message text can carry it
  }
  if (raw === undefined) return;
  const m = mapperFor(type);
  const viaValue = m.mapValue(JSON.parse(raw));
  expect(m.mapLine(raw), `${type} line ← ${raw}`).toEqual(viaValue.ok ? { ok: true, line: JSON.stringify(viaValue.row) } : viaValue);
}

/** The value `type` sends for `value`; fails the test when refused. */
function sent(type: string, value: unknown): unknown {
  sameAsLine(type, value);
  const r = mapperFor(type).mapValue({ c: value });
  if (!r.ok) throw new Error(`${type} refused ${JSON.stringify(value)}: ${r.error}`);
  return r.row.c;
}

/** The error `type` gives for `value`; fails the test when accepted. */
function refused(type: string, value: unknown): string {
  sameAsLine(type, value);
  const r = mapperFor(type).mapValue({ c: value });
  if (r.ok) throw new Error(`${type} accepted ${JSON.stringify(value)} as ${JSON.stringify(r.row.c)}`);
  return r.error;
}

const expectAll = (type: string, cases: [input: unknown, output: unknown][]) => {
  for (const [input, output] of cases) expect(sent(type, input), `${type} ← ${JSON.stringify(input)}`).toEqual(output);
};
const expectRefused = (type: string, inputs: unknown[]) => {
  for (const input of inputs) expect(() => refused(type, input), `${type} ← ${JSON.stringify(input)}`).not.toThrow();
};

describe('row mapper: mapLine', () => {
  it('leaves out a missing column with a DEFAULT, sends null for a Nullable one, and refuses a required one', () => {
    const m = compileRowMapper([
      column('id', 'String', { jsonPath: '$.id' }),
      column('n', 'Nullable(UInt8)', { jsonPath: '$.n' }),
      column('d', 'UInt8', { jsonPath: '$.d', default: '7' }),
      column('at', "DateTime64(3, 'UTC')", { jsonPath: '$.at' }),
    ]);
    expect(m.mapLine('{"id":"a\\"b","at":"2026-01-02T03:04:05.6Z"}')).toEqual({ ok: true, line: '{"id":"a\\"b","n":null,"at":"2026-01-02T03:04:05.600Z"}' });
    expect(m.mapLine('{"id":"x","n":3,"d":4,"at":0}')).toEqual({
      ok: true,
      line: JSON.stringify(m.map('{"id":"x","n":3,"d":4,"at":0}').ok ? (m.map('{"id":"x","n":3,"d":4,"at":0}') as { row: object }).row : null),
    });
    expect(m.mapLine('{"n":1,"at":0}')).toEqual({ ok: false, error: 'missing required field $.id for column id' });
    expect(m.mapLine('[1]')).toEqual({ ok: false, error: 'not a JSON object' });
    expect(m.mapLine('{nope')).toMatchObject({ ok: false, error: expect.stringMatching(/^not JSON: /) });
  });
});

describe('row mapper: lines and objects', () => {
  const m = compileRowMapper([column('a', 'UInt8', { jsonPath: '$.a' })]);

  it('maps an NDJSON line', () => {
    expect(m.map('{"a":1}')).toEqual({ ok: true, row: { a: 1 } });
    expect(m.map('  {"a": 2, "other": [1, 2]}\n')).toEqual({ ok: true, row: { a: 2 } });
  });

  it('refuses lines that are not JSON, with the parser message', () => {
    for (const line of ['hello', '{"a":1', '', '{"a":1}}', "{'a':1}"]) {
      const r = m.map(line);
      expect(r.ok, line).toBe(false);
      expect(!r.ok && r.error, line).toMatch(/^not JSON: \S/);
    }
    expect(m.map('{"a":1')).toEqual({ ok: false, error: expect.stringContaining('not JSON: Expected') });
  });

  it('refuses JSON that is not an object', () => {
    for (const line of ['[1,2]', '42', '"a"', 'null', 'true']) expect(m.map(line), line).toEqual({ ok: false, error: 'not a JSON object' });
    expect(m.mapValue([{ a: 1 }])).toEqual({ ok: false, error: 'not a JSON object' });
    expect(m.mapValue(undefined)).toEqual({ ok: false, error: 'not a JSON object' });
  });

  it('keeps parser messages short however long the line', () => {
    const r = m.map(`{"a": ${'x'.repeat(100_000)}}`);
    expect(!r.ok && r.error.length).toBeLessThan(250);
  });

  it('names the columns it fills, in table order, and leaves out columns without a jsonPath', () => {
    const mapper = compileRowMapper([
      column('id', 'UInt64', { jsonPath: '$.id' }),
      column('inserted_at', 'DateTime', { default: 'now()' }),
      column('name', 'String', { jsonPath: '$.name' }),
    ]);
    expect(mapper.columns).toEqual(['id', 'name']);
    expect(mapper.map('{"id": 1, "name": "x", "inserted_at": "2024-01-01"}')).toEqual({ ok: true, row: { id: 1, name: 'x' } });
  });

  it('exports the insert settings that mapped rows need', () => {
    expect(MAPPED_ROW_SETTINGS).toEqual({ input_format_defaults_for_omitted_fields: 1, date_time_input_format: 'best_effort' });
  });
});

describe('row mapper: jsonPath', () => {
  it('follows names and array indexes', () => {
    const m = compileRowMapper([
      column('sku', 'String', { jsonPath: '$.order.items[1].sku' }),
      column('first', 'UInt8', { jsonPath: '$.matrix[0][1]' }),
      column('dashed', 'String', { jsonPath: '$.x-y.a_b' }),
    ]);
    const r = m.mapValue({ order: { items: [{ sku: 'a' }, { sku: 'b' }] }, matrix: [[1, 2]], 'x-y': { a_b: 'ok' } });
    expect(r).toEqual({ ok: true, row: { sku: 'b', first: 2, dashed: 'ok' } });
  });

  it('treats a step into the wrong shape as missing', () => {
    const m = compileRowMapper([column('v', 'Nullable(String)', { jsonPath: '$.a[0].b' })]);
    for (const event of [{}, { a: {} }, { a: { 0: { b: 'x' } } }, { a: [] }, { a: ['s'] }, { a: 'str' }, { a: [null] }]) {
      expect(m.mapValue(event), JSON.stringify(event)).toEqual({ ok: true, row: { v: null } });
    }
  });

  it('does not find inherited properties', () => {
    const m = compileRowMapper([
      column('a', 'Nullable(String)', { jsonPath: '$.constructor' }),
      column('b', 'Nullable(String)', { jsonPath: '$.x.toString' }),
      column('c', 'Nullable(String)', { jsonPath: '$.__proto__' }),
      column('d', 'Nullable(UInt8)', { jsonPath: '$.arr.length' }),
    ]);
    expect(m.map('{"x": {}, "arr": [1]}')).toEqual({ ok: true, row: { a: null, b: null, c: null, d: null } });
    expect(m.map('{"constructor": "c", "__proto__": "p"}')).toMatchObject({ ok: true, row: { a: 'c', c: 'p' } });
  });

  it('reads the whole event with $', () => {
    const m = compileRowMapper([column('raw', 'String', { jsonPath: '$' })]);
    expect(m.map('{"a": [1, {"b": null}]}')).toEqual({ ok: true, row: { raw: '{"a":[1,{"b":null}]}' } });
  });

  it('refuses paths outside the grammar when compiling, naming the column', () => {
    for (const path of ['payload', '$.1a', '$..a', '$[x]', '$.a.', '$.a b', '$["a"]', '$.a[-1]']) {
      expect(() => compileRowMapper([column('p', 'String', { jsonPath: path })]), path).toThrow(ColumnMappingError);
    }
    expect(() => compileRowMapper([column('p', 'String', { jsonPath: '$.a..b' })])).toThrow(
      /^column p: jsonPath "\$\.a\.\.b": cannot read "\.\.b" at position 3/,
    );
  });
});

describe('row mapper: missing values', () => {
  const m = compileRowMapper([
    column('required', 'String', { jsonPath: '$.r' }),
    column('with_default', 'UInt32', { jsonPath: '$.d', default: '0' }),
    column('nullable', 'Nullable(String)', { jsonPath: '$.n' }),
    column('nullable_default', 'Nullable(String)', { jsonPath: '$.nd', default: "'x'" }),
    column('lc_nullable', 'LowCardinality(Nullable(String))', { jsonPath: '$.lc' }),
  ]);

  it('leaves out columns with a default and sends null for Nullable ones', () => {
    const r = m.map('{"r": "x"}');
    expect(r).toEqual({ ok: true, row: { required: 'x', nullable: null, lc_nullable: null } });
    expect(r.ok && Object.keys(r.row)).toEqual(['required', 'nullable', 'lc_nullable']);
  });

  it('treats JSON null as missing', () => {
    expect(m.map('{"r": "x", "d": null, "n": null, "nd": null, "lc": null}')).toEqual({
      ok: true,
      row: { required: 'x', nullable: null, lc_nullable: null },
    });
  });

  it('sends values when present', () => {
    expect(m.map('{"r": "x", "d": 5, "n": "n", "nd": "nd", "lc": "lc"}')).toEqual({
      ok: true,
      row: { required: 'x', with_default: 5, nullable: 'n', nullable_default: 'nd', lc_nullable: 'lc' },
    });
  });

  it('refuses a missing or null required value', () => {
    expect(m.map('{"d": 1}')).toEqual({ ok: false, error: 'missing required field $.r for column required' });
    expect(m.map('{"r": null}')).toEqual({ ok: false, error: 'missing required field $.r for column required' });
  });

  it('does not try a default for a value that is present but wrong', () => {
    expect(m.map('{"r": "x", "d": "five"}')).toEqual({ ok: false, error: 'column with_default ($.d): expected UInt32, got "five"' });
  });
});

describe('row mapper: errors', () => {
  it('names column, path, expected type and value', () => {
    const m = compileRowMapper([column('duration_ms', 'UInt32', { jsonPath: '$.payload.duration_ms' })]);
    expect(m.map('{"payload": {"duration_ms": -5}}')).toEqual({ ok: false, error: 'column duration_ms ($.payload.duration_ms): expected UInt32, got -5' });
  });

  it('shows at most about 100 characters of the value and nothing else of the row', () => {
    const m = compileRowMapper([column('secret', 'String', { jsonPath: '$.secret' }), column('n', 'UInt8', { jsonPath: '$.n' })]);
    const long = m.mapValue({ secret: 'hunter2', n: 'x'.repeat(10_000) });
    expect(long.ok).toBe(false);
    expect(!long.ok && long.error).toBe(`column n ($.n): expected UInt8, got "${'x'.repeat(100)}…`);
    const obj = m.mapValue({ secret: 'hunter2', n: { deep: Array.from({ length: 1000 }, (_, i) => i) } });
    expect(!obj.ok && obj.error.length).toBeLessThan(160);
    expect(!obj.ok && obj.error).not.toContain('hunter2');
  });

  it('stops at the first bad column', () => {
    const m = compileRowMapper([column('a', 'UInt8', { jsonPath: '$.a' }), column('b', 'UInt8', { jsonPath: '$.b' })]);
    expect(m.map('{"a": -1, "b": -2}')).toEqual({ ok: false, error: 'column a ($.a): expected UInt8, got -1' });
  });
});

describe('integers', () => {
  it('checks the range of 8- to 32-bit types, taking numbers and digit strings', () => {
    expectAll('UInt8', [
      [0, 0],
      [255, 255],
      ['255', 255],
      ['+7', 7],
      ['007', 7],
      [1e2, 100],
    ]);
    expectRefused('UInt8', [256, -1, '256', '-1', 1.5, '1.0', '', ' 1', '1e2', 'abc', true, [1], {}]);
    expectAll('Int8', [
      [-128, -128],
      [127, 127],
      ['-128', -128],
    ]);
    expectRefused('Int8', [-129, 128, '-129']);
    expectAll('Int16', [
      [-32768, -32768],
      [32767, 32767],
    ]);
    expectRefused('Int16', [-32769, 32768]);
    expectAll('UInt16', [[65535, 65535]]);
    expectRefused('UInt16', [65536]);
    expectAll('Int32', [
      [-2147483648, -2147483648],
      ['2147483647', 2147483647],
    ]);
    expectRefused('Int32', [2147483648, '-2147483649']);
    expectAll('UInt32', [
      [4294967295, 4294967295],
      ['4294967295', 4294967295],
    ]);
    expectRefused('UInt32', [4294967296, '99999999999999999999999']);
  });

  it('keeps 64-bit and wider values exact as strings', () => {
    expectAll('UInt64', [
      ['18446744073709551615', '18446744073709551615'],
      ['0018446744073709551615', '18446744073709551615'],
      ['0', '0'],
      ['-0', '0'],
      [42, 42],
      [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    ]);
    expectRefused('UInt64', ['18446744073709551616', '-1', -1, '1.5', '0x10', 1.5]);
    expectAll('Int64', [
      ['-9223372036854775808', '-9223372036854775808'],
      ['9223372036854775807', '9223372036854775807'],
      ['+12', '12'],
      [Number.MIN_SAFE_INTEGER, Number.MIN_SAFE_INTEGER],
    ]);
    expect(refused('Int64', '-9223372036854775809')).toBe('column c ($.c): expected Int64, got "-9223372036854775809": out of range');
    expectRefused('Int64', ['9223372036854775808']);
    expectAll('Int128', [['-170141183460469231731687303715884105728', '-170141183460469231731687303715884105728']]);
    expectRefused('Int128', ['170141183460469231731687303715884105728']);
    expectAll('UInt128', [['340282366920938463463374607431768211455', '340282366920938463463374607431768211455']]);
    const u256 = (2n ** 256n - 1n).toString();
    expectAll('UInt256', [[u256, u256]]);
    expectRefused('UInt256', [(2n ** 256n).toString()]);
    const i256min = (-(2n ** 255n)).toString();
    expectAll('Int256', [[i256min, i256min]]);
    expectRefused('Int256', [(-(2n ** 255n) - 1n).toString()]);
  });

  it('refuses JSON numbers beyond 2^53, which JSON.parse has already rounded', () => {
    const m = mapperFor('Int64');
    expect(m.map('{"c": 9007199254740991}')).toEqual({ ok: true, row: { c: 9007199254740991 } });
    expect(m.map('{"c": "9007199254740993"}')).toEqual({ ok: true, row: { c: '9007199254740993' } });
    const r = m.map('{"c": 9007199254740993}');
    expect(!r.ok && r.error).toBe(
      'column c ($.c): expected Int64, got 9007199254740992: integers beyond 2^53 are not exact as JSON numbers: send 64-bit and wider integers as strings',
    );
    expectRefused('UInt64', [2 ** 64, 1e300]);
  });
});

describe('floats', () => {
  it('takes numbers, numeric strings and nan/inf', () => {
    expectAll('Float64', [
      [1.5, 1.5],
      [-0, -0],
      ['1.5', 1.5],
      ['-.5', -0.5],
      ['5.', 5],
      ['1e300', 1e300],
      ['nan', 'nan'],
      ['NaN', 'nan'],
      ['inf', 'inf'],
      ['+Infinity', 'inf'],
      ['-inf', '-inf'],
      [NaN, 'nan'],
      [-Infinity, '-inf'],
    ]);
    expectRefused('Float64', ['1e400', '', 'abc', '1,5', true, [], '0x10']);
    expect(refused('Float64', '-1e400')).toMatch(/out of range$/);
  });

  it('checks the Float32 range', () => {
    expectAll('Float32', [
      [3.4e38, 3.4e38],
      ['-3.4e38', -3.4e38],
      [1e-50, 1e-50],
    ]);
    expectRefused('Float32', [3.5e38, '-1e39']);
  });
});

describe('decimals', () => {
  it('checks digits and scale and sends plain decimal strings', () => {
    expectAll('Decimal(5, 2)', [
      ['123.45', '123.45'],
      ['-123.45', '-123.45'],
      ['1.230', '1.23'],
      ['001.5', '1.5'],
      ['.5', '0.5'],
      ['7', '7'],
      ['-0.00', '0'],
      [12.5, '12.5'],
      [0.1, '0.1'],
      ['1.5e2', '150'],
      ['12345e-2', '123.45'],
      ['0.05e1', '0.5'],
    ]);
    expect(refused('Decimal(5, 2)', '1234.5')).toBe('column c ($.c): expected Decimal(5, 2), got "1234.5": more than 3 digits before the decimal point');
    expect(refused('Decimal(5, 2)', '1.234')).toBe('column c ($.c): expected Decimal(5, 2), got "1.234": more than 2 decimal places');
    expectRefused('Decimal(5, 2)', ['', '.', '-', '1.2.3', 'nan', 'inf', '1e', '0x1', true, [1], '1e999', '1e-999']);
  });

  it('knows the fixed-width decimal families and the default precision', () => {
    expectAll('Decimal32(2)', [['9999999.99', '9999999.99']]);
    expectRefused('Decimal32(2)', ['10000000']);
    expectAll('Decimal64(4)', [['99999999999999.9999', '99999999999999.9999']]);
    expectAll('Decimal128(0)', [['9'.repeat(38), '9'.repeat(38)]]);
    expectRefused('Decimal128(0)', ['1' + '0'.repeat(38)]);
    expectAll('Decimal256(10)', [[`${'9'.repeat(66)}.${'1'.repeat(10)}`, `${'9'.repeat(66)}.${'1'.repeat(10)}`]]);
    expectAll('Decimal', [['9999999999', '9999999999']]);
    expectRefused('Decimal', ['0.5', '10000000000']);
    expectAll('Decimal(10, 8)', [[1e-7, '0.0000001']]);
  });

  it('refuses impossible precision or scale when compiling', () => {
    for (const type of ['Decimal(80, 2)', 'Decimal(5, 6)', 'Decimal(0)', 'Decimal32(10)', 'Decimal64', "Decimal('a')"]) {
      expect(() => compileRowMapper([column('d', type, { jsonPath: '$.d' })]), type).toThrow(/^column d: type Decimal/);
    }
  });
});

describe('Bool', () => {
  it('takes true/false, 0/1 and "true"/"false"', () => {
    expectAll('Bool', [
      [true, true],
      [false, false],
      [1, true],
      [0, false],
      ['true', true],
      ['false', false],
    ]);
    expectRefused('Bool', [2, -1, 'yes', 'TRUE', '1', '', [], {}]);
  });
});

describe('strings', () => {
  it('sends strings as they are, other values as their text', () => {
    expectAll('String', [
      ['héllo', 'héllo'],
      ['', ''],
      [42, '42'],
      [1.5, '1.5'],
      [true, 'true'],
      [{ a: [1, 'x'] }, '{"a":[1,"x"]}'],
      [[1, null], '[1,null]'],
    ]);
  });

  it('counts FixedString lengths in UTF-8 bytes', () => {
    expectAll('FixedString(3)', [
      ['abc', 'abc'],
      ['ab', 'ab'],
      ['é', 'é'],
      ['€', '€'],
      [123, '123'],
    ]);
    expect(refused('FixedString(3)', 'éé')).toBe('column c ($.c): expected FixedString(3), got "éé": 4 bytes of UTF-8, more than 3');
    expectRefused('FixedString(3)', ['abcd', '😀', 'a€', 1234]);
    expectAll('FixedString(4)', [
      ['😀', '😀'],
      ['a€', 'a€'],
    ]);
    expectAll('FixedString(16)', [['€€€€€', '€€€€€']]);
    expectRefused('FixedString(16)', ['€€€€€€']);
    expect(() => compileRowMapper([column('f', 'FixedString(0)', { jsonPath: '$.f' })])).toThrow(/length must be an integer/);
  });

  it('checks UUIDs', () => {
    expectAll('UUID', [
      ['6f9619ff-8b86-d011-b42d-00c04fc964ff', '6f9619ff-8b86-d011-b42d-00c04fc964ff'],
      ['6F9619FF-8B86-D011-B42D-00C04FC964FF', '6F9619FF-8B86-D011-B42D-00C04FC964FF'],
      ['6f9619ff8b86d011b42d00c04fc964ff', '6f9619ff8b86d011b42d00c04fc964ff'],
    ]);
    expectRefused('UUID', ['6f9619ff-8b86-d011-b42d-00c04fc964f', '6f9619ff-8b86-d011-b42d-00c04fc964fg', '{6f9619ff-8b86-d011-b42d-00c04fc964ff}', 1, '']);
  });

  it('checks IP addresses', () => {
    expectAll('IPv4', [
      ['1.2.3.4', '1.2.3.4'],
      ['255.255.255.255', '255.255.255.255'],
      ['0.0.0.0', '0.0.0.0'],
    ]);
    expectRefused('IPv4', ['256.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4 ', '::1', 16909060]);
    expectAll('IPv6', [
      ['::1', '::1'],
      ['2001:db8::ff00:42:8329', '2001:db8::ff00:42:8329'],
      ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
      ['1.2.3.4', '1.2.3.4'],
    ]);
    expectRefused('IPv6', ['fe80::1%eth0', '2001:db8:::1', 'abc', 1]);
  });
});

describe('Enum', () => {
  const type = "Enum8('view' = 1, 'click' = 2, 'it''s' = -3)";

  it('takes names, and numbers that are values, and sends names', () => {
    expectAll(type, [
      ['view', 'view'],
      ['click', 'click'],
      [2, 'click'],
      [-3, "it's"],
      ["it's", "it's"],
    ]);
    expect(refused(type, 'scroll')).toBe(`column c ($.c): expected ${type}, got "scroll"`);
    expectRefused(type, [3, 'View', '1', 1.5, true]);
  });

  it('numbers unvalued elements from 1, as ClickHouse does', () => {
    expectAll("Enum('a', 'b')", [
      ['b', 'b'],
      [1, 'a'],
      [2, 'b'],
    ]);
    expectAll("Enum16('x' = 1000)", [[1000, 'x']]);
  });

  it('refuses elements it cannot read when compiling', () => {
    expect(() => compileRowMapper([column('e', 'Enum8(a)', { jsonPath: '$.e' })])).toThrow(/enum elements/);
  });
});

describe('Date and Date32', () => {
  it('takes YYYY-MM-DD and the date part of a date-time as written', () => {
    expectAll('Date', [
      ['2024-02-29', '2024-02-29'],
      ['1970-01-01', '1970-01-01'],
      ['2149-06-06', '2149-06-06'],
      ['2024-01-01T23:30:00-05:00', '2024-01-01'],
      ['2024-01-01 10:00:00.5', '2024-01-01'],
    ]);
    expect(refused('Date', '2149-06-07')).toBe('column c ($.c): expected Date, got "2149-06-07": out of range 1970-01-01..2149-06-06');
    expectRefused('Date', ['1969-12-31', '2023-02-29', '2024-04-31', '2024-1-1', '2024-01-01T25:00:00', '20240101', 19723, '']);
  });

  it('has the wider Date32 range', () => {
    expectAll('Date32', [
      ['1900-01-01', '1900-01-01'],
      ['2299-12-31', '2299-12-31'],
      ['1969-12-31', '1969-12-31'],
    ]);
    expectRefused('Date32', ['1899-12-31', '2300-01-01', '0099-01-01']);
  });
});

describe('DateTime', () => {
  it('keeps the offset of instants and the wall clock of local times', () => {
    expectAll('DateTime', [
      ['2024-01-01T10:00:00Z', '2024-01-01T10:00:00Z'],
      ['2024-01-01t10:00:00z', '2024-01-01T10:00:00Z'],
      ['2024-01-01T10:00:00.999Z', '2024-01-01T10:00:00Z'],
      ['2024-01-01T10:00:00+05:30', '2024-01-01T10:00:00+05:30'],
      ['2024-01-01T10:00:00+0530', '2024-01-01T10:00:00+05:30'],
      ['2024-01-01T10:00:00-05', '2024-01-01T10:00:00-05:00'],
      ['2024-01-01T10:00Z', '2024-01-01T10:00:00Z'],
      ['2024-01-01 10:00:00', '2024-01-01 10:00:00'],
      ['2024-01-01T10:00:00', '2024-01-01 10:00:00'],
      ['2024-01-01 10:00', '2024-01-01 10:00:00'],
      ['2024-01-01', '2024-01-01 00:00:00'],
    ]);
  });

  it('takes epoch seconds as numbers, dropping a fraction', () => {
    expectAll('DateTime', [
      [1704103200, 1704103200],
      [1704103200.9, 1704103200],
      [0, 0],
      [4294967295, 4294967295],
    ]);
    expectRefused('DateTime', [-1, 4294967296, '1704103200']);
  });

  it('checks the range 1970..2106 in UTC', () => {
    expectAll('DateTime', [
      ['2106-02-07T06:28:15Z', '2106-02-07T06:28:15Z'],
      ['1970-01-01T01:00:00+01:00', '1970-01-01T01:00:00+01:00'],
    ]);
    expect(refused('DateTime', '2106-02-07T06:28:16Z')).toBe(
      'column c ($.c): expected DateTime, got "2106-02-07T06:28:16Z": out of range 1970-01-01 00:00:00..2106-02-07 06:28:15 UTC',
    );
    expectRefused('DateTime', ['1970-01-01T00:30:00+01:00', '1969-12-31 23:59:59']);
  });

  it('refuses what is not a date-time', () => {
    expect(refused('DateTime', 'yesterday')).toBe(
      'column c ($.c): expected DateTime, got "yesterday": not a date-time: use ISO 8601 or YYYY-MM-DD hh:mm:ss[.fff]',
    );
    for (const bad of ['2024-13-01', '2024-02-30 00:00:00', '2024-01-01T24:00:00', '2024-01-01T10:60:00', '2024-01-01T10:00:60', '2024-01-01T10:00:00+24:00']) {
      expect(refused('DateTime', bad), bad).toMatch(/no such (date or time|UTC offset)$/);
    }
    expectRefused('DateTime', ['2024-01-01T10', '2024-01-01T10:00:00 Z', '01/02/2024', '', true, {}, NaN]);
  });

  it('reads the time zone argument without changing what it sends', () => {
    expectAll("DateTime('Europe/Berlin')", [['2024-01-01 10:00:00', '2024-01-01 10:00:00']]);
  });
});

describe('DateTime64', () => {
  it('cuts or pads the fraction to the precision', () => {
    expectAll('DateTime64(3)', [
      ['2024-01-01T10:00:00.123456Z', '2024-01-01T10:00:00.123Z'],
      ['2024-01-01T10:00:00.5Z', '2024-01-01T10:00:00.500Z'],
      ['2024-01-01T10:00:00Z', '2024-01-01T10:00:00.000Z'],
      ['2024-01-01 10:00:00', '2024-01-01 10:00:00.000'],
      ['2024-01-01 10:00:00.1', '2024-01-01 10:00:00.100'],
      ['2024-01-01T10:00:00.123+02:00', '2024-01-01T10:00:00.123+02:00'],
    ]);
    expectAll('DateTime64(6)', [['2024-01-01T10:00:00.123456789Z', '2024-01-01T10:00:00.123456Z']]);
    expectAll('DateTime64(0)', [['2024-01-01T10:00:00.9Z', '2024-01-01T10:00:00Z']]);
    expectAll("DateTime64(3, 'UTC')", [['2024-01-01T10:00:00.123Z', '2024-01-01T10:00:00.123Z']]);
  });

  it('takes epoch seconds with a fraction and sends UTC ISO text', () => {
    expectAll('DateTime64(3)', [
      [1704103200.123, '2024-01-01T10:00:00.123Z'],
      [1704103200, '2024-01-01T10:00:00.000Z'],
      [1704103200.1239, '2024-01-01T10:00:00.123Z'],
      [-0.5, '1969-12-31T23:59:59.500Z'],
      [-1.25, '1969-12-31T23:59:58.750Z'],
      [1e-7, '1970-01-01T00:00:00.000Z'],
    ]);
    expectAll('DateTime64(6)', [[1704103200.123456, '2024-01-01T10:00:00.123456Z']]);
    expectAll('DateTime64(0)', [[1704103200.5, '2024-01-01T10:00:00Z']]);
  });

  it('checks the range 1900..2299, and 2262 at precision 9', () => {
    expectAll('DateTime64(3)', [
      ['1900-01-01T00:00:00Z', '1900-01-01T00:00:00.000Z'],
      ['2299-12-31 23:59:59.999', '2299-12-31 23:59:59.999'],
      [-2208988800, '1900-01-01T00:00:00.000Z'],
    ]);
    expectRefused('DateTime64(3)', ['1899-12-31T23:59:59Z', '2300-01-01T00:00:00Z', -2208988801, 10413792000, 1e21, 1704103200000]);
    expectAll('DateTime64(9)', [['2262-04-11T23:47:15.999999999Z', '2262-04-11T23:47:15.999999999Z']]);
    expectRefused('DateTime64(9)', ['2262-04-11T23:47:16Z']);
    expect(() => compileRowMapper([column('t', 'DateTime64(10)', { jsonPath: '$.t' })])).toThrow(
      /^column t: type DateTime64\(10\): precision must be an integer from 0 to 9$/,
    );
  });
});

describe('wrappers and containers', () => {
  it('unwraps LowCardinality, Nullable and SimpleAggregateFunction', () => {
    expectAll('LowCardinality(String)', [
      ['x', 'x'],
      [1, '1'],
    ]);
    expectAll('Nullable(UInt8)', [[5, 5]]);
    expect(refused('Nullable(UInt8)', 300)).toBe('column c ($.c): expected UInt8, got 300');
    expectAll('LowCardinality(Nullable(FixedString(2)))', [['ab', 'ab']]);
    expectAll('SimpleAggregateFunction(sum, UInt64)', [['18446744073709551615', '18446744073709551615']]);
    expectRefused('SimpleAggregateFunction(max, UInt8)', [256]);
  });

  it('converts each array element, with null only where Nullable', () => {
    expectAll('Array(UInt8)', [
      [[], []],
      [
        [1, '2'],
        [1, 2],
      ],
    ]);
    expect(refused('Array(UInt8)', [1, 300])).toBe('column c ($.c[1]): expected UInt8, got 300');
    expect(refused('Array(UInt8)', [1, null])).toBe('column c ($.c[1]): expected UInt8, got null');
    expect(refused('Array(UInt8)', 'x')).toBe('column c ($.c): expected Array(UInt8), got "x"');
    expectAll('Array(Nullable(UInt8))', [
      [
        [1, null, 3],
        [1, null, 3],
      ],
    ]);
    expectAll('Array(Array(Int64))', [
      [
        [['1'], [2, '-3']],
        [['1'], [2, '-3']],
      ],
    ]);
    expect(refused('Array(Array(Int64))', [[1], [2, 'x']])).toBe('column c ($.c[1][1]): expected Int64, got "x"');
    expectAll('Array(DateTime64(3))', [[['2024-01-01T10:00:00Z'], ['2024-01-01T10:00:00.000Z']]]);
  });

  it('converts map values and checks keys', () => {
    expectAll('Map(String, UInt64)', [
      [
        { a: '1', b: 2 },
        { a: '1', b: 2 },
      ],
      [{}, {}],
    ]);
    expect(refused('Map(String, UInt64)', { a: 1, 'b c': -1 })).toBe('column c ($.c["b c"]): expected UInt64, got -1');
    expect(refused('Map(String, UInt64)', { a: null })).toBe('column c ($.c.a): expected UInt64, got null');
    expectRefused('Map(String, UInt64)', [[], 'x', 1]);
    expectAll('Map(LowCardinality(String), Nullable(String))', [
      [
        { a: null, b: 1 },
        { a: null, b: '1' },
      ],
    ]);
    expectAll('Map(UInt8, String)', [
      [
        { '1': 'a', '007': 'b' },
        { '1': 'a', '7': 'b' },
      ],
    ]);
    expect(refused('Map(UInt8, String)', { x: 'a' })).toBe('column c ($.c.x): expected UInt8, got "x": not a valid key');
    const proto = sent('Map(String, UInt8)', JSON.parse('{"__proto__": 1}')) as Record<string, unknown>;
    expect(Object.keys(proto)).toEqual(['__proto__']);
    expect(JSON.stringify(proto)).toBe('{"__proto__":1}');
  });

  it('converts tuple elements, sending named tuples as objects', () => {
    expectAll('Tuple(UInt8, String)', [
      [
        [1, 2],
        [1, '2'],
      ],
    ]);
    expect(refused('Tuple(UInt8, String)', [1])).toBe('column c ($.c): expected Tuple(UInt8, String), got [1]: 2 elements expected');
    expect(refused('Tuple(UInt8, String)', [300, 'a'])).toBe('column c ($.c[0]): expected UInt8, got 300');
    expectRefused('Tuple(UInt8, String)', [{ a: 1 }, 'x']);
    const named = 'Tuple(a UInt8, at DateTime64(3), n Nullable(String))';
    expectAll(named, [
      [
        { a: 1, at: '2024-01-01T10:00:00Z', n: null },
        { a: 1, at: '2024-01-01T10:00:00.000Z', n: null },
      ],
      [
        { a: 1, extra: 'kept' },
        { a: 1, extra: 'kept' },
      ],
      [[1, 1704103200, 'x'], { a: 1, at: '2024-01-01T10:00:00.000Z', n: 'x' }],
    ]);
    expect(refused(named, { a: 'x' })).toBe('column c ($.c.a): expected UInt8, got "x"');
  });

  it('passes values of types it does not convert through as they came', () => {
    const value = { a: [1, { b: 'x' }], n: 12345678901234567890 };
    for (const type of [
      'JSON',
      'JSON(max_dynamic_paths=10, a.b UInt32)',
      "Object('json')",
      'Dynamic',
      'Variant(String, UInt64)',
      'AggregateFunction(uniq, String)',
      'Nested(a UInt8, b String)',
      'Point',
      'SomethingNew(1)',
    ]) {
      expect(sent(type, value), type).toBe(value);
      expect(sent(type, 'text'), type).toBe('text');
    }
  });
});

describe('type names', () => {
  it('understands ClickHouse’s SQL aliases, case-insensitively', () => {
    expectAll('BIGINT', [['9223372036854775807', '9223372036854775807']]);
    expectRefused('bigint unsigned', [-1]);
    expectRefused('TINYINT', [128]);
    expectAll('INT UNSIGNED', [[4294967295, 4294967295]]);
    expectAll('DOUBLE PRECISION', [['nan', 'nan']]);
    expectAll('VARCHAR(255)', [[1, '1']]);
    expectRefused('BINARY(2)', ['abc']);
    expectAll('boolean', [[1, true]]);
    expectAll('DECIMAL(4,1)', [['123.4', '123.4']]);
    expectAll('datetime64(3)', [[0, '1970-01-01T00:00:00.000Z']]);
    expectAll('TIMESTAMP', [[0, 0]]);
    expectAll('INET6', [['::1', '::1']]);
  });

  it('names the column when a type cannot be parsed', () => {
    expect(() => compileRowMapper([column('x', 'Array(UInt8', { jsonPath: '$.x' })])).toThrow(
      /^column x: cannot parse ClickHouse type "Array\(UInt8": unbalanced parentheses/,
    );
    expect(() => compileRowMapper([column('x', 'Map(String)', { jsonPath: '$.x' })])).toThrow(/^column x: type Map\(String\): expected Map\(K, V\)$/);
    // Columns without a jsonPath are not compiled: their type is ClickHouse's business.
    expect(() => compileRowMapper([column('x', 'Array(', {})])).not.toThrow();
  });
});

describe('example DataSource page-views', () => {
  const docs = parseAllDocuments(readFileSync(new URL('../../../manifests/examples/web-analytics/datasources.yaml', import.meta.url), 'utf8'));
  const pageViews = docs.map((d) => d.toJS() as DataSource).find((d) => d.metadata.name === 'page-views');
  const columns = pageViews?.spec.columns as Column[];
  const m = compileRowMapper(columns);

  it('has the columns this test expects', () => {
    expect(columns.map((c) => [c.name, c.type, c.default])).toEqual([
      ['timestamp', 'DateTime64(3)', undefined],
      ['session_id', 'String', undefined],
      ['tenant_id', 'LowCardinality(String)', undefined],
      ['pathname', 'String', undefined],
      ['country', 'LowCardinality(String)', "'unknown'"],
      ['duration_ms', 'UInt32', '0'],
    ]);
    expect(m.columns).toEqual(['timestamp', 'session_id', 'tenant_id', 'pathname', 'country', 'duration_ms']);
  });

  it('maps a full event', () => {
    const line = JSON.stringify({
      timestamp: '2024-05-01T12:34:56.789Z',
      session_id: 's-1',
      tenant_id: 'acme',
      payload: { pathname: '/pricing', country: 'de', duration_ms: 1234, ignored: true },
    });
    expect(m.map(line)).toEqual({
      ok: true,
      row: { timestamp: '2024-05-01T12:34:56.789Z', session_id: 's-1', tenant_id: 'acme', pathname: '/pricing', country: 'de', duration_ms: 1234 },
    });
  });

  it('leaves country and duration_ms to their defaults', () => {
    const r = m.map('{"timestamp": 1714566896.789, "session_id": "s", "tenant_id": "t", "payload": {"pathname": "/", "country": null}}');
    expect(r).toEqual({ ok: true, row: { timestamp: '2024-05-01T12:34:56.789Z', session_id: 's', tenant_id: 't', pathname: '/' } });
  });

  it('refuses events without a timestamp or with a bad duration', () => {
    expect(m.map('{"session_id": "s", "tenant_id": "t", "payload": {"pathname": "/"}}')).toEqual({
      ok: false,
      error: 'missing required field $.timestamp for column timestamp',
    });
    expect(m.map('{"timestamp": "2024-05-01 00:00:00", "session_id": "s", "tenant_id": "t", "payload": {"pathname": "/", "duration_ms": -5}}')).toEqual({
      ok: false,
      error: 'column duration_ms ($.payload.duration_ms): expected UInt32, got -5',
    });
    expect(m.map('{"timestamp": "2024-05-01 00:00:00", "session_id": "s", "tenant_id": "t"}')).toEqual({
      ok: false,
      error: 'missing required field $.payload.pathname for column pathname',
    });
  });

  it('maps 100k lines', () => {
    const lines = Array.from({ length: 100_000 }, (_, i) =>
      JSON.stringify({
        timestamp: `2024-05-01T12:${String(i % 60).padStart(2, '0')}:00.${String(i % 1000).padStart(3, '0')}Z`,
        session_id: `s-${i}`,
        tenant_id: `t${i % 7}`,
        payload: { pathname: `/p/${i % 50}`, ...(i % 3 ? { country: 'de' } : {}), duration_ms: i % 5000 },
      }),
    );
    let mapped = 0;
    for (const line of lines) if (m.map(line).ok) mapped++;
    expect(mapped).toBe(100_000);
  });
});

describe('row objects', () => {
  it('keep a column named __proto__ as an own key', () => {
    const m = compileRowMapper([column('__proto__', 'String', { jsonPath: '$.p' }), column('b', 'UInt8', { jsonPath: '$.b' })]);
    const r = m.map('{"p": "x", "b": 1}');
    expect(r.ok && JSON.stringify(r.row)).toBe('{"__proto__":"x","b":1}');
  });
});
