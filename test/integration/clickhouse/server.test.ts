import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ClickHouseLogLevel, createClient, type ClickHouseClientConfigOptions, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClickHouse, type ClickHouse } from '../../../src/clickhouse/connection.js';
import { ClickHouseError } from '../../../src/clickhouse/errors.js';
import { startClickHouseServer, type ClickHouseServer } from '../../../src/clickhouse/server.js';
import { waitFor } from '../../env/wait.js';

/** Wait until `n` statements whose text contains `text` run on the server behind `ch`. */
const runningStatements = (ch: ClickHouse, text: string, n: number) =>
  waitFor(
    `${n} statements with ${text} running`,
    async () => {
      const [row] = await ch.query<{ n: string }>(
        "SELECT count() AS n FROM system.processes WHERE position(query, {text:String}) > 0 AND query NOT LIKE '%system.processes%'",
        { params: { text } },
      );
      return Number(row?.n) === n ? true : undefined;
    },
    { intervalMs: 20 },
  );

const execFileAsync = promisify(execFile);

/** curl in a child process: the server runs in this process, so nothing here may block the event loop. */
async function curl(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('curl', ['-s', ...args]);
  return stdout;
}

/** The error a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<Error & { code?: unknown; type?: unknown }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: unknown; type?: unknown };
  }
  throw new Error('expected a failure');
}

/** The official client as is, minus its console logging of expected failures. */
const officialClient = (config: ClickHouseClientConfigOptions): ClickHouseClient => createClient({ ...config, log: { level: ClickHouseLogLevel.OFF } });

const ROWS = 1000;
const rows = Array.from({ length: ROWS }, (_, i) => ({ id: i + 1, name: `row-${i + 1}`, amount: (i + 1) * 10 }));

describe('embedded ClickHouse server', () => {
  let dataDir: string;
  let server: ClickHouseServer;
  let client: ClickHouseClient;
  let ch: ClickHouse;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'weir-ch-'));
    server = await startClickHouseServer({ dataDir, port: 0 });
    client = officialClient({ url: server.url });
    ch = connectClickHouse({ url: server.url });
  });

  afterAll(async () => {
    await ch?.close();
    await client?.close();
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers pings', async () => {
    expect(await ch.ping()).toBe(true);
    expect((await client.ping()).success).toBe(true);
    expect((await client.ping({ select: true })).success).toBe(true);
    expect(await curl(`${server.url}/ping`)).toBe('Ok.\n');
    expect(await curl(`${server.url}/`)).toBe('Ok.\n');
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
  });

  it('creates a database and a MergeTree table, and inserts JSONEachRow rows', async () => {
    await ch.command('CREATE DATABASE IF NOT EXISTS weir');
    await ch.command('CREATE TABLE weir.events (id UInt64, name String, amount Int64) ENGINE = MergeTree ORDER BY id');
    const result = await client.insert({ table: 'weir.events', values: rows, format: 'JSONEachRow' });
    expect(result.executed).toBe(true);
    expect(result.summary?.written_rows).toBe(String(ROWS));
    const [count] = await ch.query<{ c: string }>('SELECT count() AS c FROM weir.events');
    expect(count).toEqual({ c: String(ROWS) });
  });

  it('inserts through the weir interface and counts exactly', async () => {
    await ch.command('CREATE TABLE weir.more (id UInt64, name String) ENGINE = MergeTree ORDER BY id');
    await ch.insert('weir.more', [
      { id: 1, name: 'a' },
      { id: 2, name: 'b' },
      { id: 3, name: 'c' },
    ]);
    await ch.insert('weir.more', []);
    expect(await ch.query('SELECT id, name FROM weir.more ORDER BY id')).toEqual([
      { id: '1', name: 'a' },
      { id: '2', name: 'b' },
      { id: '3', name: 'c' },
    ]);
  });

  it('answers in JSON, JSONEachRow, CSV and TabSeparated', async () => {
    const sql = 'SELECT id, name FROM weir.events WHERE id <= 2 ORDER BY id';
    const json = await (await client.query({ query: sql, format: 'JSON' })).json<{ id: number; name: string }>();
    expect(json.rows).toBe(2);
    expect(json.meta).toEqual([
      { name: 'id', type: 'UInt64' },
      { name: 'name', type: 'String' },
    ]);
    expect(json.data).toEqual([
      { id: 1, name: 'row-1' },
      { id: 2, name: 'row-2' },
    ]);

    const eachRow = await (await client.query({ query: sql, format: 'JSONEachRow' })).json();
    expect(eachRow).toEqual([
      { id: 1, name: 'row-1' },
      { id: 2, name: 'row-2' },
    ]);
    expect(await (await client.query({ query: sql, format: 'CSV' })).text()).toBe('1,"row-1"\n2,"row-2"\n');
    expect(await (await client.query({ query: sql, format: 'TabSeparated' })).text()).toBe('1\trow-1\n2\trow-2\n');
    expect(await (await client.query({ query: sql, format: 'CSVWithNames' })).text()).toBe('"id","name"\n1,"row-1"\n2,"row-2"\n');
  });

  it('sends the response headers the client relies on', async () => {
    const rs = await client.query({ query: 'SELECT number FROM numbers(5)', format: 'JSONEachRow', query_id: 'weir-headers-1' });
    expect(await rs.json()).toHaveLength(5);
    expect(rs.query_id).toBe('weir-headers-1');
    const headers = rs.response_headers;
    expect(headers['x-clickhouse-query-id']).toBe('weir-headers-1');
    expect(headers['x-clickhouse-format']).toBe('JSONEachRow');
    expect(headers['content-type']).toBe('application/json; charset=UTF-8');
    expect(headers['x-clickhouse-timezone']).toBeTruthy();
    const summary = JSON.parse(String(headers['x-clickhouse-summary'])) as Record<string, string>;
    expect(summary.result_rows).toBe('5');
    expect(summary.written_rows).toBe('0');
  });

  it('binds query parameters on the server: quotes are data, not SQL', async () => {
    const hostile = "O'Brien'); DROP TABLE weir.events; --";
    await ch.insert('weir.more', [{ id: 100, name: hostile }]);
    const found = await ch.query<{ id: string }>('SELECT id FROM weir.more WHERE name = {name:String}', { params: { name: hostile } });
    expect(found).toEqual([{ id: '100' }]);
    const [echo] = await ch.query<{ s: string; n: string; a: string[]; missing: null }>(
      'SELECT {s:String} AS s, {n:UInt64} AS n, {a:Array(String)} AS a, {m:Nullable(String)} AS missing',
      { params: { s: "tab\there\\back'slash\nnewline", n: '18446744073709551615', a: ["x'y", 'z\\w', 'plain'], m: null } },
    );
    expect(echo).toEqual({ s: "tab\there\\back'slash\nnewline", n: '18446744073709551615', a: ["x'y", 'z\\w', 'plain'], missing: null });
    const [count] = await ch.query<{ c: string }>('SELECT count() AS c FROM weir.events');
    expect(count?.c).toBe(String(ROWS));
  });

  it('never lets a request read a parameter value set by an earlier one', async () => {
    expect(await ch.query('SELECT {secret:String} AS v', { params: { secret: 'from request 1' } })).toEqual([{ v: 'from request 1' }]);
    const e = await failure(ch.query('SELECT {secret:String} AS v'));
    expect(e).toMatchObject({ code: 456, type: 'UNKNOWN_QUERY_PARAMETER' });
    expect(e.message).toContain('`secret`');
    const bad = await failure(ch.query('SELECT {n:UInt8} AS v', { params: { n: 'abc' } }));
    expect(bad).toMatchObject({ code: 457, type: 'BAD_QUERY_PARAMETER' });
    expect(bad.message).toContain("query parameter 'n'");
  });

  it('binds long parameter lists sent as multipart form data', async () => {
    const ids = Array.from({ length: 2000 }, (_, i) => i + 1);
    const [count] = await ch.query<{ c: string }>('SELECT count() AS c FROM weir.events WHERE id IN {ids:Array(UInt64)}', { params: { ids } });
    expect(count?.c).toBe('1000');
  });

  it('reports syntax errors as code 62 with HTTP 400', async () => {
    const raw = await failure(client.query({ query: 'SELEC 1' }));
    expect(raw.code).toBe('62');
    const e = await failure(ch.query('SELEC 1'));
    expect(e).toBeInstanceOf(ClickHouseError);
    expect(e).toMatchObject({ code: 62, type: 'SYNTAX_ERROR', retriable: false });
    const res = await fetch(server.url, { method: 'POST', body: 'SELEC 1' });
    expect(res.status).toBe(400);
    expect(res.headers.get('x-clickhouse-exception-code')).toBe('62');
    expect(await res.text()).toMatch(/^Code: 62\. DB::Exception: Syntax error: .* \(SYNTAX_ERROR\) \(version 26\.7[\d.]*\)\n$/s);
  });

  it('reports unknown tables as code 60 UNKNOWN_TABLE with HTTP 404', async () => {
    const raw = await failure(client.query({ query: 'SELECT * FROM weir.nope' }));
    expect(raw).toMatchObject({ code: '60', type: 'UNKNOWN_TABLE' });
    const e = await failure(ch.query('SELECT * FROM weir.nope'));
    expect(e).toMatchObject({ code: 60, type: 'UNKNOWN_TABLE', retriable: false });
    const unknownColumn = await failure(ch.query('SELECT nope FROM weir.events'));
    expect(unknownColumn).toMatchObject({ code: 47, type: 'UNKNOWN_IDENTIFIER' });
    const res = await fetch(`${server.url}/?query=${encodeURIComponent('SELECT * FROM weir.nope')}`);
    expect(res.status).toBe(404);
    expect(res.headers.get('x-clickhouse-exception-code')).toBe('60');
  });

  it('refuses what ClickHouse refuses over HTTP', async () => {
    expect(await failure(ch.query('SELECT 1; SELECT 2'))).toMatchObject({ code: 62 });
    expect(await failure(ch.command("SELECT 1 INTO OUTFILE '/tmp/weir-outfile'"))).toMatchObject({ code: 358 });
    expect(await failure(ch.query('SELECT 1', { settings: { no_such_setting: 1 } }))).toMatchObject({ code: 115, type: 'UNKNOWN_SETTING' });
    const res = await fetch(`${server.url}/?query=${encodeURIComponent('CREATE TABLE weir.x (a UInt8) ENGINE = Memory')}`);
    expect(res.status).toBe(500);
    expect(res.headers.get('x-clickhouse-exception-code')).toBe('164');
    expect(await res.text()).toContain('method GET implies readonly');
    const empty = await fetch(server.url, { method: 'POST', body: '' });
    expect(empty.status).toBe(400);
  });

  it('keeps 64-bit integers exact', async () => {
    await ch.command('CREATE TABLE weir.big (id UInt64, v Int64) ENGINE = MergeTree ORDER BY id');
    await ch.insert('weir.big', [{ id: '18446744073709551615', v: '-9223372036854775808' }]);
    expect(await ch.query('SELECT id, v FROM weir.big')).toEqual([{ id: '18446744073709551615', v: '-9223372036854775808' }]);
    // ClickHouse 26.7 defaults to unquoted 64-bit integers, as here; weir's connection asks for them quoted.
    const text = await (await client.query({ query: 'SELECT id FROM weir.big', format: 'JSONEachRow' })).text();
    expect(text).toBe('{"id":18446744073709551615}\n');
  });

  it('applies settings to one request only', async () => {
    const sql = 'SELECT number FROM numbers(10)';
    const e = await failure(ch.query(sql, { settings: { max_result_rows: 1, result_overflow_mode: 'throw' } }));
    expect(e).toMatchObject({ code: 396, type: 'TOO_MANY_ROWS_OR_BYTES' });
    expect(await ch.query(sql)).toHaveLength(10);
    const threads = "SELECT toString(getSetting('max_threads')) AS v";
    const [limited] = await ch.query<{ v: string }>(threads, { settings: { max_threads: 1 } });
    expect(limited?.v).toBe('1');
    const [unlimited] = await ch.query<{ v: string }>(threads);
    expect(unlimited?.v).not.toBe('1');
  });

  it('uses the database a client names, for that client only', async () => {
    const inWeir = connectClickHouse({ url: server.url, database: 'weir' });
    try {
      expect(await inWeir.query('SELECT count() AS c FROM more')).toEqual([{ c: '4' }]);
      expect(await failure(ch.query('SELECT count() FROM more'))).toMatchObject({ code: 60 });
      const missing = connectClickHouse({ url: server.url, database: 'no_such_db' });
      expect(await failure(missing.query('SELECT 1'))).toMatchObject({ code: 81, type: 'UNKNOWN_DATABASE' });
      await missing.close();
    } finally {
      await inWeir.close();
    }
  });

  it('takes gzip request bodies and sends gzip responses', async () => {
    const gz = officialClient({ url: server.url, compression: { request: true, response: true } });
    try {
      await gz.command({ query: 'CREATE TABLE weir.gz (id UInt64, s String) ENGINE = MergeTree ORDER BY id' });
      await gz.insert({ table: 'weir.gz', values: rows.map((r) => ({ id: r.id, s: r.name.repeat(10) })), format: 'JSONEachRow' });
      const rs = await gz.query({ query: 'SELECT count() AS c, sum(length(s)) AS l FROM weir.gz', format: 'JSONEachRow' });
      expect(await rs.json()).toEqual([{ c: ROWS, l: rows.reduce((n, r) => n + r.name.length * 10, 0) }]);
      expect(rs.response_headers['content-encoding']).toBe('gzip');
    } finally {
      await gz.close();
    }

    const body = gzipSync('SELECT number FROM numbers(3)');
    const res = await fetch(`${server.url}/?enable_http_compression=1`, {
      method: 'POST',
      body,
      headers: { 'Content-Encoding': 'gzip', 'Accept-Encoding': 'gzip' },
    });
    expect(res.headers.get('content-encoding')).toBe('gzip');
    expect(await res.text()).toBe('0\n1\n2\n');
    const plain = await curl('--compressed', `${server.url}/?enable_http_compression=1&query=SELECT%2042`);
    expect(plain).toBe('42\n');
    const raw = await execFileAsync('curl', ['-s', '-H', 'Accept-Encoding: gzip', `${server.url}/?enable_http_compression=1&query=SELECT%2043`], {
      encoding: 'buffer',
    });
    expect(gunzipSync(raw.stdout).toString()).toBe('43\n');
  });

  it('works with curl', async () => {
    expect(await curl(`${server.url}/?query=SELECT%201`)).toBe('1\n');
    expect(await curl('--data-binary', 'SELECT count() FROM weir.events', `${server.url}/`)).toBe(`${ROWS}\n`);
    expect(await curl('--data-binary', '5\tfive\n6\tsix\n', `${server.url}/?query=${encodeURIComponent('INSERT INTO weir.more FORMAT TabSeparated')}`)).toBe(
      '',
    );
    expect(await curl('--data-binary', "(7, 'seven')", `${server.url}/?query=${encodeURIComponent('INSERT INTO weir.more VALUES')}`)).toBe('');
    expect(await curl(`${server.url}/?query=${encodeURIComponent('SELECT count() FROM weir.more')}`)).toBe('7\n');
    expect(await curl(`${server.url}/?query=${encodeURIComponent('SELECT {n:UInt8} + 1')}&param_n=41`)).toBe('42\n');

    const error = await curl('-i', `${server.url}/?query=${encodeURIComponent('SELECT * FROM weir.nope')}`);
    expect(error).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
    expect(error).toMatch(/\r\nX-ClickHouse-Exception-Code: 60\r\n/i);
    expect(error).toMatch(/\r\n\r\nCode: 60\. DB::Exception: .*\(UNKNOWN_TABLE\) \(version [\d.]+\)\n$/);
  });

  it('answers pings while long queries run, and runs queries in parallel', async () => {
    const started = Date.now();
    // Parameterised, to show bound queries run in parallel too (chdb's own queryBind would run them in turn).
    const slow = [1, 2].map((i) => ch.query<{ s: number }>('SELECT sleep(2) AS s, {i:UInt8} AS i', { params: { i } }));
    await runningStatements(ch, 'sleep(2)', 2);
    for (let i = 0; i < 5; i++) {
      const t = Date.now();
      expect(await ch.ping()).toBe(true);
      expect(Date.now() - t).toBeLessThan(250);
    }
    expect(await curl(`${server.url}/?query=SELECT%207`)).toBe('7\n'); // a third query has a free session
    expect(Date.now() - started).toBeLessThan(1800);
    const results = await Promise.all(slow);
    expect(results).toEqual([[{ s: 0, i: 1 }], [{ s: 0, i: 2 }]]);
    // Both slept 2 s at the same time.
    expect(Date.now() - started).toBeLessThan(3500);
  });

  it('stops once running requests are answered', async () => {
    const other = await startClickHouseServer({ dataDir, port: 0 });
    const c = connectClickHouse({ url: other.url });
    const running = c.query<{ s: number }>('SELECT sleep(1) AS s');
    await runningStatements(c, 'sleep(1)', 1);
    await other.stop();
    expect(await running).toEqual([{ s: 0 }]);
    expect(await c.ping()).toBe(false);
    await c.close();
  });

  describe('with a user and password', () => {
    let secured: ClickHouseServer;

    beforeAll(async () => {
      secured = await startClickHouseServer({ dataDir, port: 0, user: 'weir', password: 's3cret' });
    });
    afterAll(async () => {
      await secured?.stop();
    });

    it('refuses wrong credentials with AUTHENTICATION_FAILED (HTTP 403, as ClickHouse)', async () => {
      const wrong = connectClickHouse({ url: secured.url, username: 'weir', password: 'nope' });
      const e = await failure(wrong.query('SELECT 1'));
      expect(e).toMatchObject({ code: 516, type: 'AUTHENTICATION_FAILED', retriable: false });
      await wrong.close();
      const res = await fetch(`${secured.url}/?query=SELECT%201`);
      expect(res.status).toBe(403);
      expect(res.headers.get('x-clickhouse-exception-code')).toBe('516');
      expect(await res.text()).toMatch(
        /^Code: 516\. DB::Exception: default: Authentication failed: password is incorrect, or there is no user with such name\. \(AUTHENTICATION_FAILED\)/,
      );
      // Health checks stay open.
      expect(await curl(`${secured.url}/ping`)).toBe('Ok.\n');
    });

    it('accepts basic auth and X-ClickHouse-User/Key', async () => {
      const right = connectClickHouse({ url: secured.url, username: 'weir', password: 's3cret' });
      expect(await right.query('SELECT count() AS c FROM weir.events')).toEqual([{ c: String(ROWS) }]);
      await right.close();
      expect(await curl('-u', 'weir:s3cret', `${secured.url}/?query=SELECT%201`)).toBe('1\n');
      const res = await fetch(`${secured.url}/?query=SELECT%202`, { headers: { 'X-ClickHouse-User': 'weir', 'X-ClickHouse-Key': 's3cret' } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('2\n');
    });
  });

  it('keeps data across a restart on the same directory', async () => {
    await ch.command('CREATE TABLE weir.durable (id UInt64) ENGINE = MergeTree ORDER BY id');
    await ch.command('INSERT INTO weir.durable SELECT number FROM numbers(12345)');
    await ch.insert('weir.durable', [{ id: 1 }, { id: 2 }]);
    const before = await ch.query<{ c: string }>('SELECT count() AS c FROM weir.durable');
    expect(before).toEqual([{ c: '12347' }]);

    await ch.close();
    await client.close();
    await server.stop();
    server = await startClickHouseServer({ dataDir, port: 0 });
    ch = connectClickHouse({ url: server.url });
    client = officialClient({ url: server.url });

    expect(await ch.query('SELECT count() AS c FROM weir.durable')).toEqual(before);
    expect(await ch.query('SELECT count() AS c FROM weir.events')).toEqual([{ c: String(ROWS) }]);
    expect(await ch.query('SELECT sum(amount) AS s FROM weir.events')).toEqual([{ s: String(rows.reduce((n, r) => n + r.amount, 0)) }]);
    await ch.insert('weir.durable', [{ id: 3 }]);
    expect(await ch.query('SELECT count() AS c FROM weir.durable')).toEqual([{ c: '12348' }]);
  });
});
