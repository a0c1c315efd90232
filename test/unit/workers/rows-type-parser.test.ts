import { describe, expect, it } from 'vitest';
import { parseType, TypeSyntaxError, type TypeArg } from '../../../src/workers/rows/type-parser.js';

const typeOf = (arg: TypeArg | undefined) => (arg?.kind === 'type' ? arg.type : undefined);

describe('parseType', () => {
  it('reads a bare family name', () => {
    expect(parseType('UInt32')).toEqual({ name: 'UInt32', args: [], text: 'UInt32' });
    expect(parseType('  String ')).toEqual({ name: 'String', args: [], text: 'String' });
  });

  it('reads nested parentheses and keeps each level’s text', () => {
    const t = parseType('Map(String, Array(Nullable(UInt8)))');
    expect(t.name).toBe('Map');
    expect(t.args).toHaveLength(2);
    expect(typeOf(t.args[0])?.text).toBe('String');
    const arr = typeOf(t.args[1]);
    expect(arr?.text).toBe('Array(Nullable(UInt8))');
    expect(typeOf(typeOf(arr?.args[0])?.args[0])).toEqual({ name: 'UInt8', args: [], text: 'UInt8' });
  });

  it('reads numbers and quoted time zones', () => {
    expect(parseType("DateTime64(3, 'Europe/Berlin')").args).toEqual([
      { kind: 'number', value: '3' },
      { kind: 'string', value: 'Europe/Berlin' },
    ]);
    expect(parseType('Decimal(38,10)').args).toEqual([
      { kind: 'number', value: '38' },
      { kind: 'number', value: '10' },
    ]);
  });

  it('reads enum elements with escapes, doubled quotes, commas, parentheses and negative values', () => {
    expect(parseType(String.raw`Enum8('a' = 1, 'it''s' = -2, 'b\'c' = 3, 'x, (y)' = 4, '\n' = 5)`).args).toEqual([
      { kind: 'enum', name: 'a', value: '1' },
      { kind: 'enum', name: "it's", value: '-2' },
      { kind: 'enum', name: "b'c", value: '3' },
      { kind: 'enum', name: 'x, (y)', value: '4' },
      { kind: 'enum', name: '\n', value: '5' },
    ]);
    expect(parseType("Enum('a', 'b')").args).toEqual([
      { kind: 'string', value: 'a' },
      { kind: 'string', value: 'b' },
    ]);
  });

  it('reads named tuple elements, including quoted names', () => {
    const t = parseType('Tuple(id UInt64, `at time` DateTime64(3), tags Array(String))');
    expect(t.args.map((a) => (a.kind === 'type' ? [a.field, a.type.text] : a.kind))).toEqual([
      ['id', 'UInt64'],
      ['at time', 'DateTime64(3)'],
      ['tags', 'Array(String)'],
    ]);
    expect(parseType('Tuple(UInt8, String)').args.map((a) => a.kind === 'type' && a.field)).toEqual([undefined, undefined]);
  });

  it('reads aggregate functions with parameters', () => {
    const t = parseType('AggregateFunction(quantiles(0.5, 0.9), Float64)');
    expect(typeOf(t.args[0])).toMatchObject({
      name: 'quantiles',
      args: [
        { kind: 'number', value: '0.5' },
        { kind: 'number', value: '0.9' },
      ],
    });
    expect(typeOf(t.args[1])?.name).toBe('Float64');
  });

  it('keeps arguments it does not model as raw text', () => {
    const t = parseType("JSON(max_dynamic_paths=10, a.b UInt32, SKIP a.c, SKIP REGEXP 'x.*')");
    expect(t.name).toBe('JSON');
    expect(t.args[0]).toEqual({ kind: 'raw', text: 'max_dynamic_paths=10' });
    expect(t.args[1]).toMatchObject({ kind: 'type', field: 'a.b', type: { name: 'UInt32' } });
    expect(t.args[3]).toEqual({ kind: 'raw', text: "SKIP REGEXP 'x.*'" });
  });

  it('joins multi-word names', () => {
    expect(parseType('DOUBLE PRECISION').name).toBe('DOUBLE PRECISION');
    expect(parseType('INT UNSIGNED').name).toBe('INT UNSIGNED');
  });

  it('refuses what is not a type', () => {
    for (const bad of ['', 'Array(', 'Array(String))', 'Array((String)', "Enum8('a = 1)", 'Map(String,, UInt8)', '(String)', "'x'", 'UInt8 (3) x']) {
      expect(() => parseType(bad), bad).toThrow(TypeSyntaxError);
    }
    expect(() => parseType('Array(')).toThrow(/cannot parse ClickHouse type "Array\(": unbalanced parentheses/);
  });
});
