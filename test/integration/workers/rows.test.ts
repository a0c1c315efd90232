// What the row mapper sends, ClickHouse takes: events mapped into a table with most column types,
// inserted as JSONEachRow with MAPPED_ROW_SETTINGS, read back value for value.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Column } from '../../../src/api/datasource.js';
import { compileRowMapper, MAPPED_ROW_SETTINGS, type MappedRow } from '../../../src/workers/rows.js';
import { column } from '../../fixtures/builders.js';
import { startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';

const fed = (name: string, type: string, extra: Partial<Column> = {}): Column => column(name, type, { jsonPath: `$.${name}`, ...extra });

const COLUMNS: Column[] = [
  fed('id', 'UInt32'),
  fed('i8', 'Int8', { default: '0' }),
  fed('u8', 'UInt8', { default: '0' }),
  fed('i32', 'Int32', { default: '0' }),
  fed('i64', 'Int64', { default: '0' }),
  fed('u64', 'UInt64', { default: '0' }),
  fed('i128', 'Int128', { default: '0' }),
  fed('u256', 'UInt256', { default: '0' }),
  fed('f32', 'Float32', { default: '0' }),
  fed('f64', 'Float64', { default: '0' }),
  fed('dec', 'Decimal(10, 2)', { default: '0' }),
  fed('dec128', 'Decimal128(4)', { default: '0' }),
  fed('flag', 'Bool', { default: 'false' }),
  column('s', 'String', { jsonPath: '$.payload.s', default: "''" }),
  fed('fs', 'FixedString(4)', { default: "''" }),
  fed('lc', 'LowCardinality(String)', { default: "'unknown'" }),
  fed('uuid', 'UUID', { default: "toUUID('00000000-0000-0000-0000-000000000000')" }),
  fed('d', 'Date', { default: "'2000-01-01'" }),
  fed('d32', 'Date32', { default: "'2000-01-01'" }),
  fed('dt', "DateTime('UTC')"),
  fed('dt_tokyo', "DateTime('Asia/Tokyo')", { default: "toDateTime('2000-01-01 00:00:00', 'Asia/Tokyo')" }),
  fed('dt64', "DateTime64(3, 'UTC')"),
  fed('dt64_6', "DateTime64(6, 'UTC')", { default: '0' }),
  fed('e', "Enum8('view' = 1, 'click' = 2)", { default: "'view'" }),
  fed('ip4', 'IPv4', { default: "'0.0.0.0'" }),
  fed('ip6', 'IPv6', { default: "'::'" }),
  fed('n', 'Nullable(String)'),
  fed('n_default', 'Nullable(UInt32)', { default: '7' }),
  column('dur', 'UInt32', { jsonPath: '$.payload.items[1].dur', default: '42' }),
  fed('arr', 'Array(Nullable(Int64))', { default: '[]' }),
  fed('m', 'Map(String, UInt64)', { default: 'map()' }),
  fed('t', "Tuple(a UInt8, at DateTime64(3, 'UTC'))", { default: "tuple(0, toDateTime64(0, 3, 'UTC'))" }),
  fed('attrs', 'JSON', { default: "'{}'" }),
  column('inserted', 'UInt8', { default: '1' }),
];

const EVENTS: object[] = [
  {
    id: 1,
    i8: -128,
    u8: '255',
    i32: 2147483647,
    i64: '-9223372036854775808',
    u64: '18446744073709551615',
    i128: '-170141183460469231731687303715884105728',
    u256: (2n ** 256n - 1n).toString(),
    f32: 1.5,
    f64: 'inf',
    dec: '12345678.91',
    dec128: '-1234567890123456789012345678901234.5678',
    flag: 'true',
    payload: { s: { nested: [1, 'x'] }, items: [{ dur: 1 }, { dur: '4294967295' }] },
    fs: 'a€',
    lc: 'de',
    uuid: '6F9619FF-8B86-D011-B42D-00C04FC964FF',
    d: '2024-02-29',
    d32: '1900-01-01',
    dt: '2024-01-01T10:00:00+02:00',
    dt_tokyo: '2024-01-01T10:00:00Z',
    dt64: '2024-05-01T12:34:56.789Z',
    dt64_6: 1714566896.123456,
    e: 2,
    ip4: '10.1.2.3',
    ip6: '1.2.3.4',
    n: 'x',
    n_default: 5,
    arr: ['9223372036854775807', null, -1],
    m: { a: '18446744073709551615', 'b c': 2 },
    t: { a: 255, at: 1714566896.5 },
    attrs: { a: { b: 1 }, tags: ['x'] },
  },
  // Only what is required: everything else takes its DEFAULT, n is NULL.
  { id: 2, dt: 0, dt64: '1900-01-01 00:00:00' },
  {
    id: 3,
    i64: 9007199254740991,
    f64: 'nan',
    f32: '-2.5e10',
    dec: 0.1,
    flag: 0,
    payload: { s: 12.5 },
    d: '2024-01-01T23:30:00-05:00',
    dt: '2024-01-01 10:00:00',
    dt_tokyo: '2024-01-01 10:00:00',
    dt64: 1714566896.789,
    dt64_6: '2299-12-31T23:59:59.999999Z',
    e: 'click',
    n: null,
    n_default: null,
    arr: [],
    t: [1, '2024-01-01 00:00:00.5'],
  },
];

describe('mapped rows in ClickHouse', () => {
  let server: TestClickHouse;
  const db = `rows_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    server = await startTestClickHouse();
    const body = COLUMNS.map((c) => `${c.name} ${c.type}${c.default !== undefined ? ` DEFAULT ${c.default}` : ''}`).join(',\n  ');
    await server.ch.command(`CREATE DATABASE ${db}`);
    await server.ch.command(`CREATE TABLE ${db}.events (\n  ${body}\n) ENGINE = MergeTree ORDER BY id`);
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('stores every value as sent, defaults where left out', async () => {
    const mapper = compileRowMapper(COLUMNS);
    const rows: MappedRow[] = EVENTS.map((e) => {
      const r = mapper.map(JSON.stringify(e));
      if (!r.ok) throw new Error(r.error);
      return r.row;
    });
    await server.ch.insert(`${db}.events`, rows, { settings: MAPPED_ROW_SETTINGS });

    const back = await server.ch.query<Record<string, unknown>>(
      `SELECT * EXCEPT (f32, f64), toString(f32) AS f32, toString(f64) AS f64, toUnixTimestamp64Milli(dt64) AS dt64_ms FROM ${db}.events ORDER BY id`,
      { settings: { output_format_json_quote_decimals: 1, output_format_json_named_tuples_as_objects: 1 } },
    );
    expect(back).toHaveLength(3);
    const [one, two, three] = back;

    expect(one).toEqual({
      id: 1,
      i8: -128,
      u8: 255,
      i32: 2147483647,
      i64: '-9223372036854775808',
      u64: '18446744073709551615',
      i128: '-170141183460469231731687303715884105728',
      u256: '115792089237316195423570985008687907853269984665640564039457584007913129639935',
      f32: '1.5',
      f64: 'inf',
      dec: '12345678.91',
      dec128: '-1234567890123456789012345678901234.5678',
      flag: true,
      s: '{"nested":[1,"x"]}',
      fs: 'a€',
      lc: 'de',
      uuid: '6f9619ff-8b86-d011-b42d-00c04fc964ff',
      d: '2024-02-29',
      d32: '1900-01-01',
      dt: '2024-01-01 08:00:00',
      dt_tokyo: '2024-01-01 19:00:00',
      dt64: '2024-05-01 12:34:56.789',
      dt64_ms: '1714566896789',
      dt64_6: '2024-05-01 12:34:56.123456',
      e: 'click',
      ip4: '10.1.2.3',
      ip6: '::ffff:1.2.3.4',
      n: 'x',
      n_default: 5,
      dur: 4294967295,
      arr: ['9223372036854775807', null, '-1'],
      m: { a: '18446744073709551615', 'b c': '2' },
      t: { a: 255, at: '2024-05-01 12:34:56.500' },
      attrs: { a: { b: '1' }, tags: ['x'] },
      inserted: 1,
    });

    expect(two).toEqual({
      id: 2,
      i8: 0,
      u8: 0,
      i32: 0,
      i64: '0',
      u64: '0',
      i128: '0',
      u256: '0',
      f32: '0',
      f64: '0',
      dec: '0',
      dec128: '0',
      flag: false,
      s: '',
      fs: '\0\0\0\0',
      lc: 'unknown',
      uuid: '00000000-0000-0000-0000-000000000000',
      d: '2000-01-01',
      d32: '2000-01-01',
      dt: '1970-01-01 00:00:00',
      dt_tokyo: '2000-01-01 00:00:00',
      dt64: '1900-01-01 00:00:00.000',
      dt64_ms: '-2208988800000',
      dt64_6: '1970-01-01 00:00:00.000000',
      e: 'view',
      ip4: '0.0.0.0',
      ip6: '::',
      n: null,
      n_default: 7,
      dur: 42,
      arr: [],
      m: {},
      t: { a: 0, at: '1970-01-01 00:00:00.000' },
      attrs: {},
      inserted: 1,
    });

    expect(three).toMatchObject({
      id: 3,
      i64: '9007199254740991',
      f64: 'nan',
      f32: '-25000000000',
      dec: '0.1',
      flag: false,
      s: '12.5',
      d: '2024-01-01',
      // A wall-clock time is read in the column's time zone.
      dt: '2024-01-01 10:00:00',
      dt_tokyo: '2024-01-01 10:00:00',
      dt64: '2024-05-01 12:34:56.789',
      dt64_ms: '1714566896789',
      dt64_6: '2299-12-31 23:59:59.999999',
      e: 'click',
      n: null,
      n_default: 7,
      arr: [],
      t: { a: 1, at: '2024-01-01 00:00:00.500' },
    });
  });

  it('refuses what ClickHouse would silently wrap, clamp or truncate', () => {
    const mapper = compileRowMapper(COLUMNS);
    const base = { id: 9, dt: 0, dt64: 0 };
    expect(mapper.mapValue({ ...base, u8: 256 })).toEqual({ ok: false, error: 'column u8 ($.u8): expected UInt8, got 256' });
    expect(mapper.mapValue({ ...base, dec: '1.234' })).toMatchObject({ ok: false, error: expect.stringContaining('more than 2 decimal places') });
    expect(mapper.mapValue({ ...base, dt: '2106-02-08T00:00:00Z' })).toMatchObject({ ok: false, error: expect.stringContaining('out of range') });
    expect(mapper.mapValue({ ...base, arr: [1, 'x'] })).toEqual({ ok: false, error: 'column arr ($.arr[1]): expected Int64, got "x"' });
  });
});
