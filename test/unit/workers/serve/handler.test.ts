// The handler's routing, status mapping and limits, over a stand-in for ClickHouse (the
// integration test runs the same handler against the real engine).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import winston from 'winston';
import type { FormattedResult, OutputFormat, QueryOptions } from '../../../../src/clickhouse/connection.js';
import { ClickHouseError, ErrorCode } from '../../../../src/clickhouse/errors.js';
import type { CompiledEndpoint, EndpointParameter } from '../../../../src/plan/endpoint/compile.js';
import {
  createEndpointHandler,
  endpointQueryId,
  killStatement,
  queryFailure,
  querySettings,
  redactValues,
  type EndpointClickHouse,
} from '../../../../src/workers/serve/handler.js';
import { EndpointMetrics } from '../../../../src/workers/serve/metrics.js';
import type { GivenValue } from '../../../../src/plan/endpoint/params.js';
import { waitFor } from '../../../env/wait.js';

const p = (name: string, type: string, extra: Partial<EndpointParameter> = {}): EndpointParameter => ({
  name,
  type,
  required: extra.default === undefined,
  ...extra,
});

const topPages: CompiledEndpoint = {
  name: 'top_pages',
  namespace: 'web',
  resource: 'top-pages',
  pipe: 'top-pages',
  node: 'ranked',
  sql: 'SELECT pathname FROM t WHERE tenant_id = {tenant:String} LIMIT {limit:UInt32}',
  params: [p('tenant', 'String'), p('limit', 'UInt32', { default: '10', max: 1000 })],
  formats: ['json', 'csv', 'ndjson'],
  limits: { maxExecutionTimeMs: 2000, maxResultRows: 500 },
  database: 'web',
  version: 'v1',
};

interface Call {
  sql: string;
  format: OutputFormat;
  opts: QueryOptions;
}

/** Answers queryFormatted with `respond`, and DESCRIBE with `described`; records commands (KILL QUERY). */
class StandIn implements EndpointClickHouse {
  calls: Call[] = [];
  queries: { sql: string; opts: QueryOptions | undefined }[] = [];
  commands: { sql: string; opts: QueryOptions | undefined }[] = [];
  respond: (call: Call) => Promise<FormattedResult> = async () => ({ body: Readable.from(['{"rows":0}']), queryId: 'q' });
  described: () => Promise<unknown[]> = async () => [{ name: 'pathname', type: 'String' }];

  async query<T>(sql: string, opts?: QueryOptions): Promise<T[]> {
    this.queries.push({ sql, opts });
    return (await this.described()) as T[];
  }

  async command(sql: string, opts?: QueryOptions): Promise<void> {
    this.commands.push({ sql, opts });
  }

  queryFormatted(sql: string, format: OutputFormat, opts: QueryOptions = {}): Promise<FormattedResult> {
    const call = { sql, format, opts };
    this.calls.push(call);
    return this.respond(call);
  }
}

const logLines: Record<string, unknown>[] = [];
const log = winston.createLogger({
  level: 'debug',
  format: winston.format.json(),
  transports: [
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk: Buffer, _enc, done) {
          logLines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    }),
  ],
});

const ch = new StandIn();
const registry = new Registry();
let endpoints = new Map<string, CompiledEndpoint>([['top_pages', topPages]]);
let http: Server;
let base: string;

beforeAll(async () => {
  const handler = createEndpointHandler({
    clickhouse: ch,
    endpoints: () => endpoints,
    log,
    metrics: new EndpointMetrics(registry),
    maxBodyBytes: 200,
    deadlineGraceMs: 50,
  });
  // The handler answers its own failures: node's request callback returns nothing.
  http = createServer((req, res) => void handler(req, res));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});
afterAll(async () => {
  http.closeAllConnections();
  await new Promise<void>((resolve) => http.close(() => resolve()));
});
afterEach(() => {
  ch.calls = [];
  ch.queries = [];
  ch.commands = [];
  ch.respond = async () => ({ body: Readable.from(['{"rows":0}']), queryId: 'q' });
  endpoints = new Map([['top_pages', topPages]]);
  logLines.length = 0;
});

/** Waits until the metrics match `pattern` (the handler records a request once it settles). */
const waitForMetric = (pattern: RegExp) =>
  waitFor(`metrics matching ${pattern}`, async () => (pattern.test(await registry.metrics()) ? true : undefined), { intervalMs: 5 });

const call = async (path: string, init?: RequestInit) => {
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  return { status: res.status, text, headers: res.headers, json: () => JSON.parse(text) as Record<string, unknown> };
};

describe('a request that gets an answer', () => {
  it('runs the compiled SQL as it is, with the values as query parameters and the limits as settings', async () => {
    const res = await call('/v0/pipes/top_pages.json?tenant=acme');
    expect(res.status).toBe(200);
    expect(ch.calls).toHaveLength(1);
    const [c] = ch.calls;
    expect(c?.sql).toBe(topPages.sql);
    expect(c?.format).toBe('JSON');
    expect(c?.opts).toMatchObject({
      params: { tenant: 'acme', limit: '10' },
      database: 'web',
      queryId: `weir-ep-top_pages-${res.headers.get('x-request-id')}`,
    });
    expect(c?.opts.settings).toEqual({
      readonly: 2,
      max_execution_time: 2,
      max_result_rows: 500,
      result_overflow_mode: 'throw',
      output_format_json_quote_64bit_integers: 1,
      wait_end_of_query: 1,
      cancel_http_readonly_queries_on_client_close: 1,
    });
  });

  it('passes max_result_bytes when the endpoint sets it', () => {
    expect(querySettings({ ...topPages, limits: { maxExecutionTimeMs: 250, maxResultRows: 1, maxResultBytes: 2048 } })).toMatchObject({
      max_execution_time: 0.25,
      max_result_bytes: 2048,
    });
  });

  it('streams what ClickHouse wrote, in the format of the path, with its content type', async () => {
    ch.respond = async () => ({ body: Readable.from(['"a","b"\n', '1,2\n']), queryId: 'q' });
    const csv = await call('/v0/pipes/top_pages.csv?tenant=acme');
    expect(csv).toMatchObject({ status: 200, text: '"a","b"\n1,2\n' });
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8; header=present');
    expect(ch.calls[0]?.format).toBe('CSVWithNames');
    await call('/v0/pipes/top_pages.ndjson?tenant=acme');
    expect(ch.calls[1]?.format).toBe('JSONEachRow');
  });

  it('takes parameters from a POST body and the name with dashes', async () => {
    const res = await call('/v0/pipes/top-pages.json', { method: 'POST', body: JSON.stringify({ tenant: 'acme', limit: 3 }) });
    expect(res.status).toBe(200);
    expect(ch.calls[0]?.opts.params).toEqual({ tenant: 'acme', limit: '3' });
  });

  it('reads the endpoints on every request', async () => {
    expect((await call('/v0/pipes/fresh.json')).status).toBe(404);
    endpoints = new Map([...endpoints, ['fresh', { ...topPages, name: 'fresh', params: [] }]]);
    expect((await call('/v0/pipes/fresh.json')).status).toBe(200);
  });
});

describe('requests refused before ClickHouse is asked', () => {
  it('400 for bad parameters, 404 for unknown endpoints and formats, 405 for other methods, 413 for large bodies', async () => {
    expect((await call('/v0/pipes/top_pages.json')).json()).toMatchObject({
      error: 'parameter tenant is required (String)',
      documentation: '/v0/pipes/top_pages/openapi.json',
    });
    expect((await call('/v0/pipes/nope.json')).json()).toMatchObject({ error: 'there is no endpoint nope', documentation: '/v0/pipes/openapi.json' });
    expect(await call('/v0/pipes/top_pages?tenant=a')).toMatchObject({
      status: 404,
      text: expect.stringContaining('top_pages needs a format; it is served as .json, .csv, .ndjson'),
    });
    endpoints = new Map([['top_pages', { ...topPages, formats: ['json'] }]]);
    expect(await call('/v0/pipes/top_pages.csv?tenant=a')).toMatchObject({
      status: 404,
      text: expect.stringContaining('top_pages is not served as .csv; it is served as .json'),
    });
    const del = await call('/v0/pipes/top_pages.json?tenant=a', { method: 'DELETE' });
    expect(del.status).toBe(405);
    expect(del.headers.get('allow')).toBe('GET, POST');
    const postDoc = await call('/v0/pipes/openapi.json', { method: 'POST' });
    expect(postDoc.status).toBe(405);
    expect(postDoc.headers.get('allow')).toBe('GET');
    expect(await call('/v0/pipes/top_pages.json', { method: 'POST', body: JSON.stringify({ tenant: 'x'.repeat(300) }) })).toMatchObject({ status: 413 });
    expect(await call('/')).toMatchObject({ status: 404 });
    expect(ch.calls).toEqual([]);
  });

  it('gives every answer a request id, also in error bodies', async () => {
    const res = await call('/v0/pipes/nope.json');
    expect(res.json().request_id).toBe(res.headers.get('x-request-id'));
  });
});

describe('queryFailure: what a ClickHouse failure tells the client', () => {
  const given = new Map<string, GivenValue>([['tenant', { value: 'acme', from: 'query' }]]);
  const failure = (code: number, message = 'detail') => queryFailure(new ClickHouseError(message, { code }), topPages, given, 'rid');

  it('408 for TIMEOUT_EXCEEDED, naming the limit', () => {
    expect(failure(ErrorCode.TIMEOUT_EXCEEDED)).toEqual({
      status: 408,
      error: "the query ran longer than top_pages's limit of 2000 ms (limits.maxExecutionTimeMs); narrow the request",
      log: 'warn',
    });
  });

  it("408 says how long the query ran, by ClickHouse's count from its start, and how long it waited before", () => {
    const timeout = (message: string, waitedMs?: number) =>
      queryFailure(
        new ClickHouseError(message, { code: ErrorCode.TIMEOUT_EXCEEDED }),
        topPages,
        given,
        'rid',
        waitedMs === undefined ? undefined : { waitedMs },
      ).error;
    expect(timeout('Timeout exceeded: elapsed 2000.4 ms, maximum: 2000 ms.', 2010)).toBe(
      "the query ran for 2000 ms, past top_pages's limit of 2000 ms (limits.maxExecutionTimeMs); narrow the request",
    );
    expect(timeout('Timeout exceeded: elapsed 2.0012 seconds, maximum: 2', 5301)).toBe(
      "the query ran for 2001 ms, past top_pages's limit of 2000 ms (limits.maxExecutionTimeMs), after waiting 3300 ms for ClickHouse to start it (which does not count); narrow the request",
    );
  });

  it('408 when weir gave up waiting says it was waiting or running, not that it ran that long', () => {
    const gaveUp = queryFailure(new ClickHouseError('no answer', { code: ErrorCode.TIMEOUT_EXCEEDED }), topPages, given, 'rid', {
      waitedMs: 4000.6,
      graceMs: 2000,
    });
    expect(gaveUp).toEqual({
      status: 408,
      error:
        "ClickHouse did not answer within 4001 ms (top_pages's limit of 2000 ms (limits.maxExecutionTimeMs) plus 2000 ms): the query was still waiting for ClickHouse to start it or still running, and was cancelled; try again, or narrow the request",
      log: 'warn',
    });
  });

  it('400 for a result over the limits', () => {
    expect(queryFailure(new ClickHouseError('Limit for result exceeded', { code: 396, type: 'TOO_MANY_ROWS_OR_BYTES' }), topPages, given, 'rid')).toEqual({
      status: 400,
      error: 'the result is larger than top_pages serves: at most 500 rows (limits.maxResultRows); narrow the request',
    });
  });

  it('400 when ClickHouse could not read a parameter, in weir words and without its text', () => {
    const e = failure(ErrorCode.BAD_QUERY_PARAMETER, "Value x cannot be parsed as String for query parameter 'tenant' because SELECT secret");
    expect(e).toEqual({ status: 400, error: 'parameter tenant: expected String, got "acme"' });
    expect(failure(ErrorCode.CANNOT_PARSE_QUOTED_STRING, "value [x] cannot be parsed as Array(String) for query parameter 'limit'")).toEqual({
      status: 400,
      error: 'parameter limit: expected UInt32, got "10"',
    });
  });

  it('500 when a placeholder has no value or anything else fails: no detail', () => {
    expect(failure(ErrorCode.UNKNOWN_QUERY_PARAMETER, "Substitution for query parameter 'tenant' is not set")).toMatchObject({ status: 500 });
    expect(failure(ErrorCode.UNKNOWN_TABLE, 'Table web.t does not exist')).toEqual({
      status: 500,
      error: 'the query failed; the server log has the details under request id rid',
      log: 'error',
    });
    expect(failure(ErrorCode.SYNTAX_ERROR, 'Syntax error near SELECT')).toMatchObject({ status: 500 });
  });

  it('503 with Retry-After for an unavailable or overloaded ClickHouse, 504 when it does not answer', () => {
    for (const code of [ErrorCode.NETWORK_ERROR, ErrorCode.TOO_MANY_SIMULTANEOUS_QUERIES, ErrorCode.SERVER_OVERLOADED, ErrorCode.MEMORY_LIMIT_EXCEEDED]) {
      expect(failure(code)).toMatchObject({ status: 503, retryAfterSeconds: 1 });
    }
    expect(failure(ErrorCode.SOCKET_TIMEOUT)).toMatchObject({ status: 504 });
  });

  it('sends these statuses, with Retry-After, and logs the detail without values', async () => {
    ch.respond = () => Promise.reject(new ClickHouseError('Too many simultaneous queries', { code: ErrorCode.TOO_MANY_SIMULTANEOUS_QUERIES }));
    const busy = await call('/v0/pipes/top_pages.json?tenant=acme');
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('1');
    ch.respond = () => Promise.reject(new ClickHouseError("boom for 'customer-42' in SELECT", { code: ErrorCode.UNKNOWN_EXCEPTION }));
    const failed = await call('/v0/pipes/top_pages.json?tenant=customer-42');
    expect(failed.status).toBe(500);
    expect(failed.text).not.toMatch(/boom|customer-42|SELECT/);
    const logged = logLines.find((l) => l.message === 'endpoint query failed' && l.status === 500);
    expect(logged).toMatchObject({ endpoint: 'top_pages', code: ErrorCode.UNKNOWN_EXCEPTION, detail: "boom for '<value>' in SELECT" });
    expect(JSON.stringify(logLines)).not.toContain('customer-42');
  });
});

describe('killStatement', () => {
  it('names the query id as a quoted literal, whatever it holds', () => {
    expect(killStatement('weir-ep-top_pages-1')).toBe("KILL QUERY WHERE query_id = 'weir-ep-top_pages-1' ASYNC");
    expect(killStatement("x' OR 1=1 --\\")).toBe("KILL QUERY WHERE query_id = 'x\\' OR 1=1 --\\\\' ASYNC");
  });
});

describe('redactValues', () => {
  it('takes out every value given or bound, also as ClickHouse and JSON escape it', () => {
    const given = new Map<string, GivenValue>([
      ['a', { value: "it's", from: 'query' }],
      ['b', { value: ['x\\y', 12345], from: 'body' }],
      ['c', { value: '1', from: 'query' }],
    ]);
    expect(redactValues("got 'it\\'s' and it's, x\\\\y, x\\y, 12345 at row 1", given, { d: ['bound-value'] })).toBe(
      "got '<value>' and <value>, <value>, <value>, <value> at row 1",
    );
    expect(redactValues('see bound-value', new Map(), { d: ['bound-value'] })).toBe('see <value>');
  });
});

describe('time limits and clients that leave', () => {
  /** A query that only ends when its signal aborts it. */
  const hanging = (c: Call) =>
    new Promise<FormattedResult>((_resolve, reject) => {
      c.opts.signal?.addEventListener('abort', () => reject(new Error('The user aborted a request.')));
    });

  it('answers 408 itself when ClickHouse does not stop at the limit, and cancels the query', async () => {
    endpoints = new Map([['top_pages', { ...topPages, limits: { maxExecutionTimeMs: 100, maxResultRows: 10 } }]]);
    ch.respond = hanging;
    const started = Date.now();
    const res = await call('/v0/pipes/top_pages.json?tenant=acme');
    expect(res.status).toBe(408);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(res.json().error).toMatch(/^ClickHouse did not answer within \d+ ms \(top_pages's limit of 100 ms \(limits.maxExecutionTimeMs\) plus 50 ms\)/);
    expect(ch.calls[0]?.opts.signal?.aborted).toBe(true);
    // The query itself is killed by its id, not only the HTTP request to ClickHouse.
    const queryId = endpointQueryId(topPages, res.headers.get('x-request-id') ?? '');
    expect(ch.commands).toEqual([{ sql: `KILL QUERY WHERE query_id = '${queryId}' ASYNC`, opts: { signal: expect.any(AbortSignal) as unknown } }]);
    expect(logLines.filter((l) => l.message === 'endpoint query cancelled: ClickHouse did not answer in time')).toEqual([
      expect.objectContaining({ endpoint: 'top_pages', queryId, level: 'info' }),
    ]);
  });

  it('cancels the query when the client goes away, and counts it as 499', async () => {
    ch.respond = hanging;
    const client = new AbortController();
    const pending = fetch(`${base}/v0/pipes/top_pages.json?tenant=gone`, { signal: client.signal }).catch(() => undefined);
    await waitFor('the query sent to ClickHouse', () => (ch.calls.length > 0 ? true : undefined), { intervalMs: 5 });
    client.abort();
    await pending;
    const signal = ch.calls[0]?.opts.signal;
    await waitFor('the query aborted', () => (signal?.aborted ? true : undefined), { intervalMs: 5 });
    await waitForMetric(/weir_endpoint_requests_total\{endpoint="top_pages",status="499"\} 1/);
    const queryId = ch.calls[0]?.opts.queryId;
    expect(queryId).toMatch(/^weir-ep-top_pages-[0-9a-f-]{36}$/);
    expect(ch.commands.map((c) => c.sql)).toEqual([`KILL QUERY WHERE query_id = '${queryId}' ASYNC`]);
    const cancelled = logLines.filter((l) => l.message === 'endpoint query cancelled: the client went away before the answer');
    expect(cancelled).toEqual([expect.objectContaining({ endpoint: 'top_pages', queryId })]);
    // No parameter value in the log line.
    expect(JSON.stringify(cancelled)).not.toContain('gone');
  });

  it('kills a query ClickHouse stopped at its limit too (an embedded engine may go on running it), and says how long it ran', async () => {
    ch.respond = () => Promise.reject(new ClickHouseError('Timeout exceeded: elapsed 2000.2 ms, maximum: 2000 ms', { code: ErrorCode.TIMEOUT_EXCEEDED }));
    const res = await call('/v0/pipes/top_pages.json?tenant=acme');
    expect(res.status).toBe(408);
    expect(res.json().error).toBe("the query ran for 2000 ms, past top_pages's limit of 2000 ms (limits.maxExecutionTimeMs); narrow the request");
    expect(ch.commands.map((c) => c.sql)).toEqual([killStatement(endpointQueryId(topPages, res.headers.get('x-request-id') ?? ''))]);
    expect(logLines.filter((l) => String(l.message).startsWith('endpoint query cancelled'))).toEqual([]);
  });

  it('sends no KILL when the query answered and the client left while the result streamed', async () => {
    ch.respond = async () => ({
      body: new Readable({
        read() {
          // Never ends: the client leaves halfway.
          this.push('{"a":1}\n');
        },
      }),
      queryId: 'q',
    });
    const client = new AbortController();
    const res = await fetch(`${base}/v0/pipes/top_pages.ndjson?tenant=acme`, { signal: client.signal });
    const reader = res.body?.getReader();
    await reader?.read();
    client.abort();
    await waitForMetric(/weir_endpoint_requests_total\{endpoint="top_pages",status="499"\} 2/);
    expect(ch.commands).toEqual([]);
  });

  it('ends the response short when the result stream fails midway', async () => {
    ch.respond = async () => ({
      body: new Readable({
        read() {
          this.push('{"a":1}\n');
          this.destroy(new Error('socket hang up'));
        },
      }),
      queryId: 'q',
    });
    await expect(fetch(`${base}/v0/pipes/top_pages.ndjson?tenant=acme`).then((r) => r.text())).rejects.toThrow();
  });
});

describe('OpenAPI documents', () => {
  it('describes output columns with DESCRIBE, binding defaults or values of the type', async () => {
    const doc = (await call('/v0/pipes/top_pages/openapi.json')).json() as { components: { schemas: Record<string, unknown> } };
    expect(ch.queries).toHaveLength(1);
    expect(ch.queries[0]?.sql).toBe(`DESCRIBE TABLE (\n${topPages.sql}\n)`);
    expect(ch.queries[0]?.opts).toMatchObject({ params: { tenant: '', limit: '10' }, database: 'web', settings: { readonly: 2 } });
    expect(doc.components.schemas.top_pages_row).toMatchObject({ properties: { pathname: { type: 'string' } } });
    // Reused while the endpoint is unchanged.
    await call('/v0/pipes/openapi.json');
    expect(ch.queries).toHaveLength(1);
  });

  it('falls back to generic rows when DESCRIBE fails', async () => {
    endpoints = new Map([['other', { ...topPages, name: 'other', version: 'v2' }]]);
    ch.described = () => Promise.reject(new ClickHouseError('Table web.t does not exist', { code: ErrorCode.UNKNOWN_TABLE }));
    const doc = (await call('/v0/pipes/other/openapi.json')).json() as { components: { schemas: Record<string, unknown> } };
    expect(doc.components.schemas.other_row).toMatchObject({ type: 'object', additionalProperties: true });
    expect(logLines.find((l) => l.level === 'warn')).toMatchObject({ endpoint: 'other', type: 'UNKNOWN_TABLE' });
    expect((await call('/v0/pipes/nope/openapi.json')).status).toBe(404);
  });
});

describe('createEndpointHandler', () => {
  it('refuses a ClickHouse that cannot return formatted results', () => {
    expect(() => createEndpointHandler({ clickhouse: { query: async () => [], command: async () => undefined }, endpoints: () => new Map(), log })).toThrow(
      /queryFormatted/,
    );
  });
});
