import { describe, expect, it } from 'vitest';
import { bindParameters } from '../../../src/clickhouse/query-params.js';
import { analyzeStatement, quoteIdentifier, quoteStringLiteral } from '../../../src/plan/sql-text.js';

describe('analyzeStatement', () => {
  it('finds the kind and a trailing FORMAT', () => {
    expect(analyzeStatement('SELECT 1 \nFORMAT JSONEachRow')).toMatchObject({ kind: 'SELECT', outputFormat: 'JSONEachRow' });
    expect(analyzeStatement('  -- comment\n/* x /* nested */ */ with 1 as x select x format CSV;')).toMatchObject({ kind: 'WITH', outputFormat: 'CSV' });
    expect(analyzeStatement('SELECT 1 FORMAT JSON SETTINGS max_threads = 1')).toMatchObject({ outputFormat: 'JSON' });
    expect(analyzeStatement('SELECT 1').outputFormat).toBeUndefined();
    expect(analyzeStatement('').kind).toBe('');
    expect(analyzeStatement('-- only a comment').kind).toBe('');
  });

  it('does not take FORMAT from strings, function calls or subqueries', () => {
    expect(analyzeStatement("SELECT 'x FORMAT CSV'").outputFormat).toBeUndefined();
    expect(analyzeStatement("SELECT format('{}', 1)").outputFormat).toBeUndefined();
    expect(analyzeStatement('SELECT * FROM (SELECT 1 FORMAT CSV)').outputFormat).toBeUndefined();
    expect(analyzeStatement('SELECT format FROM t').outputFormat).toBeUndefined();
  });

  it('sees a second statement only outside strings, quoted names and comments', () => {
    expect(analyzeStatement('SELECT 1; SELECT 2').secondStatementAt).toBe(10);
    expect(analyzeStatement('SELECT 1;').secondStatementAt).toBeUndefined();
    expect(analyzeStatement('SELECT 1; -- trailing comment\n').secondStatementAt).toBeUndefined();
    expect(analyzeStatement('SELECT \'a;b\', `c;d`, "e;f" -- ;x\n').secondStatementAt).toBeUndefined();
    expect(analyzeStatement("SELECT 'it\\'s; fine', 'it''s; fine'").secondStatementAt).toBeUndefined();
    expect(analyzeStatement('SELECT $$a;b$$').secondStatementAt).toBeUndefined();
  });

  it('parses an INSERT head and stops where its data starts', () => {
    const sql = 'INSERT INTO db.events (id, `name`) FORMAT JSONEachRow';
    const info = analyzeStatement(`${sql}\n{"id":1,"name":"a;b"}; SELECT 2`);
    expect(info.kind).toBe('INSERT');
    expect(info.insert).toEqual({ table: 'db.events', columns: ['id', 'name'], format: 'JSONEachRow', dataOffset: sql.length, hasSettings: false });
    expect(info.secondStatementAt).toBeUndefined();
    expect(info.outputFormat).toBeUndefined();
  });

  it('recognises INSERT forms the fast insert path does not take', () => {
    const values = analyzeStatement('INSERT INTO t VALUES (1)').insert;
    expect(values).toMatchObject({ table: 't', dataOffset: 20 });
    expect(values?.format).toBeUndefined();
    expect(analyzeStatement('INSERT INTO t SETTINGS async_insert=1 FORMAT CSV').insert).toMatchObject({ hasSettings: true, format: 'CSV' });
    expect(analyzeStatement("INSERT INTO FUNCTION file('x.csv') FORMAT CSV").insert?.table).toBeUndefined();
    expect(analyzeStatement('INSERT INTO `odd name` FORMAT CSV').insert?.table).toBeUndefined();
    const select = analyzeStatement('INSERT INTO t SELECT * FROM values(1)').insert;
    expect(select?.table).toBe('t');
    expect(select?.format).toBeUndefined();
  });

  it('collects {name:Type} placeholders outside strings', () => {
    const info = analyzeStatement("SELECT {a:String}, { b : Array(Tuple(String, UInt8)) }, '{c:String}', map('k', 1)");
    expect(info.placeholders.map((p) => [p.name, p.type])).toEqual([
      ['a', 'String'],
      ['b', 'Array(Tuple(String, UInt8))'],
    ]);
  });

  it('flags statements that leave state on a session, and INTO OUTFILE', () => {
    expect(analyzeStatement('SET max_threads = 1').changesSessionState).toBe(true);
    expect(analyzeStatement('USE db').changesSessionState).toBe(true);
    expect(analyzeStatement('CREATE TEMPORARY TABLE t (a UInt8)').changesSessionState).toBe(true);
    expect(analyzeStatement('CREATE TABLE t (a UInt8) ENGINE = Memory').changesSessionState).toBe(false);
    expect(analyzeStatement("SELECT 1 INTO OUTFILE '/tmp/x'").intoOutfile).toBe(true);
    expect(analyzeStatement("SELECT 'INTO OUTFILE'").intoOutfile).toBe(false);
  });
});

describe('quoting', () => {
  it('quotes string literals and identifiers', () => {
    expect(quoteStringLiteral("O'Brien \\ x")).toBe("'O\\'Brien \\\\ x'");
    expect(quoteIdentifier('my`db')).toBe('`my\\`db`');
  });
});

describe('bindParameters', () => {
  it('sets provided values as session parameters, exactly as sent over HTTP, under a reserved prefix', () => {
    const sql = "SELECT {s:String}, { a : Array(String) }, '{s:String}'";
    const bound = bindParameters(sql, analyzeStatement(sql), { s: "O\\'Brien", a: "['x\\'y']", 'not-a-name': '1' });
    expect(bound.sql).toBe("SELECT {__http_s:String}, {__http_a:Array(String)}, '{s:String}'");
    expect(bound.assignments).toEqual(["param___http_s = 'O\\\\\\'Brien'", "param___http_a = '[\\'x\\\\\\'y\\']'"]);
  });

  it('leaves placeholders without a value unrenamed, so they fail instead of reading an old value', () => {
    const sql = 'SELECT {a:UInt8}, {b:UInt8}';
    const bound = bindParameters(sql, analyzeStatement(sql), { a: '1' });
    expect(bound.sql).toBe('SELECT {__http_a:UInt8}, {b:UInt8}');
    expect(bound.assignments).toEqual(["param___http_a = '1'"]);
  });
});
