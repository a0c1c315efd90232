import { describe, expect, it } from 'vitest';
import { ClickHouseError } from '../../../src/clickhouse/errors.js';
import {
  authenticate,
  contentTypeFor,
  exceptionText,
  httpStatusFor,
  multipartFields,
  readHttpQuery,
  summaryHeader,
} from '../../../src/clickhouse/http-protocol.js';

describe('readHttpQuery', () => {
  it('separates query parameters, settings and what the HTTP layer reads itself', () => {
    const params = new URLSearchParams({
      query: 'SELECT {x:UInt8}',
      database: 'db',
      default_format: 'JSON',
      query_id: 'q1',
      param_x: '7',
      max_threads: '2',
      wait_end_of_query: '1',
      enable_http_compression: '1',
      send_progress_in_http_headers: '1',
      http_zlib_compression_level: '5',
      user: 'u',
      password: 'p',
    });
    const q = readHttpQuery(params, {});
    expect(q).toMatchObject({
      query: 'SELECT {x:UInt8}',
      database: 'db',
      defaultFormat: 'JSON',
      queryId: 'q1',
      params: { x: '7' },
      compressResponse: true,
      compressionLevel: 5,
      nativeCompression: false,
    });
    expect([...q.settings]).toEqual([['max_threads', '2']]);
  });

  it('defaults, and takes database, format and query id from headers first', () => {
    expect(readHttpQuery(new URLSearchParams(), {})).toMatchObject({ database: 'default', defaultFormat: 'TabSeparated', compressResponse: false });
    const q = readHttpQuery(new URLSearchParams({ database: 'a' }), {
      'x-clickhouse-database': 'b',
      'x-clickhouse-format': 'CSV',
      'x-clickhouse-query-id': 'qid',
    });
    expect(q).toMatchObject({ database: 'b', defaultFormat: 'CSV', queryId: 'qid' });
  });
});

describe('authenticate', () => {
  const expected = { user: 'weir', password: 's3cret' };
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const none = new URLSearchParams();

  it('accepts basic auth, X-ClickHouse headers and URL parameters', () => {
    expect(() => authenticate({ authorization: basic('weir', 's3cret') }, none, expected)).not.toThrow();
    expect(() => authenticate({ 'x-clickhouse-user': 'weir', 'x-clickhouse-key': 's3cret' }, none, expected)).not.toThrow();
    expect(() => authenticate({}, new URLSearchParams({ user: 'weir', password: 's3cret' }), expected)).not.toThrow();
  });

  it('refuses wrong or missing credentials and mixed methods with AUTHENTICATION_FAILED', () => {
    const attempts = [
      () => authenticate({ authorization: basic('weir', 'wrong') }, none, expected),
      () => authenticate({}, none, expected),
      () => authenticate({ authorization: 'Bearer abc' }, none, expected),
      () => authenticate({ authorization: basic('weir', 's3cret'), 'x-clickhouse-user': 'weir' }, none, expected),
    ];
    for (const attempt of attempts) {
      expect(attempt).toThrow(ClickHouseError);
      try {
        attempt();
      } catch (e) {
        expect((e as ClickHouseError).code).toBe(516);
        expect((e as ClickHouseError).type).toBe('AUTHENTICATION_FAILED');
      }
    }
    expect(() => authenticate({}, none, expected)).toThrow('default: Authentication failed: password is incorrect, or there is no user with such name');
  });
});

describe('responses', () => {
  it('maps exception codes to HTTP statuses as ClickHouse does', () => {
    expect(httpStatusFor(62)).toBe(400);
    expect(httpStatusFor(27)).toBe(400);
    expect(httpStatusFor(60)).toBe(404);
    expect(httpStatusFor(81)).toBe(404);
    expect(httpStatusFor(115)).toBe(404);
    expect(httpStatusFor(516)).toBe(403);
    expect(httpStatusFor(194)).toBe(401);
    expect(httpStatusFor(159)).toBe(408);
    expect(httpStatusFor(48)).toBe(501);
    expect(httpStatusFor(164)).toBe(500);
    expect(httpStatusFor(241)).toBe(500);
  });

  it('writes exceptions as ClickHouse does', () => {
    expect(exceptionText(new ClickHouseError('Empty query', { code: 62 }), '26.7.2.1')).toBe(
      'Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR) (version 26.7.2.1)',
    );
    expect(exceptionText(new ClickHouseError('Maybe you meant system.one?.', { code: 60 }), '26.7.2.1')).toBe(
      'Code: 60. DB::Exception: Maybe you meant system.one?. (UNKNOWN_TABLE) (version 26.7.2.1)',
    );
  });

  it('names content types by format', () => {
    expect(contentTypeFor('JSONEachRow')).toBe('application/json; charset=UTF-8');
    expect(contentTypeFor('TabSeparated')).toBe('text/tab-separated-values; charset=UTF-8');
    expect(contentTypeFor('CSVWithNames')).toBe('text/csv; charset=UTF-8; header=present');
    expect(contentTypeFor('RowBinary')).toBe('application/octet-stream');
    expect(contentTypeFor(undefined)).toBe('text/plain; charset=UTF-8');
  });

  it('writes the summary counters as strings', () => {
    const header = summaryHeader({ readRows: 3, readBytes: 30, writtenRows: 3, writtenBytes: 24, resultRows: 0, resultBytes: 0, elapsedNs: 1500 });
    expect(JSON.parse(header)).toEqual({
      read_rows: '3',
      read_bytes: '30',
      written_rows: '3',
      written_bytes: '24',
      total_rows_to_read: '3',
      result_rows: '0',
      result_bytes: '0',
      elapsed_ns: '1500',
    });
  });
});

describe('multipartFields', () => {
  it('reads the form fields clients send long query parameters in', () => {
    const boundary = '----clickhouse-js-1';
    const body =
      `--${boundary}\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT {v:Array(String)}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="param_v"\r\n\r\n['a\r\nb','c']\r\n` +
      `--${boundary}--\r\n`;
    const fields = multipartFields(Buffer.from(body), `multipart/form-data; boundary=${boundary}`);
    expect([...fields]).toEqual([
      ['query', 'SELECT {v:Array(String)}'],
      ['param_v', "['a\r\nb','c']"],
    ]);
  });

  it('refuses external tables (file parts)', () => {
    const body = '--b\r\nContent-Disposition: form-data; name="t"; filename="t.tsv"\r\n\r\n1\r\n--b--\r\n';
    expect(() => multipartFields(Buffer.from(body), 'multipart/form-data; boundary=b')).toThrow(ClickHouseError);
  });
});
