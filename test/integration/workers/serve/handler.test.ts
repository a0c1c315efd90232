// The endpoint server against the real engine: the example project's top-pages Endpoint over
// rows inserted here, served by a real HTTP server, answering with exactly the inserted
// counts in every format; bad parameters and injection attempts get 400 or harmless results
// and change nothing; slow queries get 408; failures get 500 without SQL, values or detail.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import winston from 'winston';
import type { Endpoint } from '../../../../src/api/endpoint.js';
import type { Pipe } from '../../../../src/api/pipe.js';
import { applyProject } from '../../../../src/execute/apply.js';
import type { ProjectResource } from '../../../../src/plan/graph.js';
import { createLogger } from '../../../../src/runtime/log.js';
import { compileEndpoint, type CompiledEndpoint } from '../../../../src/plan/endpoint/compile.js';
import { fixedParams } from '../../../../src/workers/serve/claims.js';
import { createEndpointHandler } from '../../../../src/workers/serve/handler.js';
import { EndpointMetrics } from '../../../../src/workers/serve/metrics.js';
import { daysAgo, endpoint, inNamespace, node, pipe, uniqueNamespace, withNodes, withParams, withSpec } from '../../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../../fixtures/clickhouse.js';
import { exampleResources } from '../../../fixtures/kube.js';

const applyLog = createLogger({ level: 'warn' });
const logLines: string[] = [];
const serveLog = winston.createLogger({
  level: 'debug',
  format: winston.format.json(),
  transports: [
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk: Buffer, _enc, done) {
          logLines.push(chunk.toString());
          done();
        },
      }),
    }),
  ],
});

let server: TestClickHouse;
let http: Server;
let base: string;
let ns: string;
let db: string;
const registry = new Registry();
const endpoints = new Map<string, CompiledEndpoint>();

// Days inside the example's 180-day TTL, so no merge expires the rows under the test.
const DAY1 = daysAgo(10);
const DAY2 = daysAgo(9);
const DAY3 = daysAgo(3);

/** Page views to insert: tenant, path, day, views. acme's totals: /home 8, /pricing 4, /docs 2. */
const VIEWS: [string, string, string, number][] = [
  ['acme', '/home', DAY1, 5],
  ['acme', '/home', DAY2, 3],
  ['acme', '/pricing', DAY1, 4],
  ['acme', '/docs', DAY3, 2],
  ['globex', '/home', DAY1, 7],
  ['globex', '/careers', DAY2, 1],
];

function compiled(ep: Endpoint, p: Pipe): CompiledEndpoint {
  const c = compileEndpoint(ep, p, db);
  if ('problem' in c) throw new Error(c.problem);
  return c;
}

beforeAll(async () => {
  server = await startTestClickHouse();
  ns = uniqueNamespace('serve');
  db = ns.replace(/-/g, '_');
  const resources = exampleResources(ns) as unknown as ProjectResource[];
  await applyProject(server.ch, resources, { log: applyLog });
  let session = 0;
  const rows = VIEWS.flatMap(([tenant, pathname, day, views]) =>
    Array.from({ length: views }, (_, i) => ({
      timestamp: `${day} 12:00:0${i % 10}.000`,
      session_id: `s${session++}`,
      tenant_id: tenant,
      pathname,
      country: 'de',
      duration_ms: 100,
    })),
  );
  await server.ch.insert(`${db}.page_views`, rows);

  const topPages = resources.find((r): r is Endpoint => r.kind === 'Endpoint' && r.metadata.name === 'top-pages');
  const topPagesPipe = resources.find((r): r is Pipe => r.kind === 'Pipe' && r.metadata.name === 'top-pages');
  if (!topPages || !topPagesPipe) throw new Error('the example project has no top-pages Endpoint and Pipe');
  endpoints.set('top_pages', compiled(topPages, topPagesPipe));

  const slowPipe = pipe('slow', inNamespace(ns), withNodes(node('main', 'SELECT count() AS n FROM numbers(100000000000) WHERE number % {m:UInt32} = 0')));
  endpoints.set(
    'slow',
    compiled(endpoint('slow', 'slow', inNamespace(ns), withParams({ name: 'm', default: 7 }), withSpec({ limits: { maxExecutionTimeMs: 500 } })), slowPipe),
  );

  const typesPipe = pipe(
    'types',
    inNamespace(ns),
    withNodes(
      node(
        'main',
        `SELECT {i:Int64} AS i, {u:UInt64} AS u, {f:Float64} AS f, {d:Date} AS d, {dt:DateTime('UTC')} AS dt, {b:Bool} AS b,
                {s:String} AS s, {a:Array(String)} AS a, {ids:Array(UInt64)} AS ids, {n:Nullable(Int32)} AS n, {id:UUID} AS id,
                {c:LowCardinality(String)} AS c -- a trailing comment`,
      ),
    ),
  );
  const typesEndpoint = endpoint(
    'types',
    'types',
    inNamespace(ns),
    withParams(
      { name: 'i', default: 0 },
      { name: 'u', default: 0 },
      { name: 'f', default: 0 },
      { name: 'd', default: '2020-01-01' },
      { name: 'dt', default: '2020-01-01 00:00:00' },
      { name: 'b', default: 'false' },
      { name: 's', default: '' },
      { name: 'a', default: '' },
      { name: 'ids', default: '' },
      { name: 'n', default: '' },
      { name: 'id', default: '00000000-0000-0000-0000-000000000000' },
      { name: 'c', default: 'red', enum: ['red', 'green'] },
    ),
  );
  endpoints.set('types', compiled(typesEndpoint, typesPipe));

  // The parameter types the types endpoint leaves out, each echoed back; pick names a column to sort page_views by.
  const moreTypesPipe = pipe(
    'more-types',
    inNamespace(ns),
    withNodes(
      node(
        'main',
        `SELECT {dec:Decimal(10, 2)} AS dec, {fs:FixedString(8)} AS fs, {dt64:DateTime64(3, 'UTC')} AS dt64, {ip4:IPv4} AS ip4,
                {ip6:IPv6} AS ip6, {e:Enum8('a' = 1, 'b' = 2)} AS e, {ns:Nullable(String)} AS ns,
                (SELECT groupArray(x) FROM (SELECT tenant_id AS x FROM page_views ORDER BY {pick:Identifier} LIMIT 1)) AS picked`,
      ),
    ),
  );
  endpoints.set(
    'more_types',
    compiled(
      endpoint(
        'more-types',
        'more-types',
        inNamespace(ns),
        withParams(
          { name: 'dec', default: '0' },
          { name: 'fs', default: '' },
          { name: 'dt64', default: '2020-01-01 00:00:00.000' },
          { name: 'ip4', default: '0.0.0.0' },
          { name: 'ip6', default: '::' },
          { name: 'e', default: 'a' },
          { name: 'ns', default: '' },
          { name: 'pick', default: 'tenant_id', enum: ['tenant_id', 'pathname'] },
        ),
      ),
      moreTypesPipe,
    ),
  );

  const failingPipe = pipe(
    'failing',
    inNamespace(ns),
    withNodes(node('main', "SELECT throwIf(length({secret:String}) > 0, concat('boom ', {secret:String})) AS x")),
  );
  endpoints.set('failing', compiled(endpoint('failing', 'failing', inNamespace(ns)), failingPipe));

  const handler = createEndpointHandler({ clickhouse: server.ch, endpoints: () => endpoints, log: serveLog, metrics: new EndpointMetrics(registry) });
  // The handler answers its own failures: node's request callback returns nothing.
  http = createServer((req, res) => void handler(req, res));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
  await server?.stop();
});

const get = (path: string, init?: RequestInit) => fetch(`${base}${path}`, init);
const query = (params: Record<string, string>) => new URLSearchParams(params).toString();

interface JsonResult {
  meta: { name: string; type: string }[];
  data: Record<string, unknown>[];
  rows: number;
  statistics: { elapsed: number; rows_read: number; bytes_read: number };
}

async function json<T = JsonResult>(path: string, init?: RequestInit): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await get(path, init);
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
}

async function errorOf(path: string, init?: RequestInit): Promise<{ status: number; error: string; body: Record<string, unknown> }> {
  const res = await get(path, init);
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, error: String(body.error), body };
}

const tableCounts = async () => ({
  views: await count(server.ch, `SELECT count() AS n FROM ${db}.page_views`),
  rollup: await count(server.ch, `SELECT countMerge(views) AS n FROM ${db}.page_views_daily`),
  tables: await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}'`),
});

describe('top_pages over the example project', () => {
  it('answers JSON with ClickHouse meta, exact counts per pathname and statistics', async () => {
    const { status, body, headers } = await json(`/v0/pipes/top_pages.json?tenant=acme`);
    expect(status).toBe(200);
    expect(headers.get('content-type')).toMatch(/^application\/json/);
    expect(headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.meta).toEqual([
      { name: 'pathname', type: 'String' },
      { name: 'views', type: 'UInt64' },
      { name: 'visitors', type: 'UInt64' },
    ]);
    // UInt64 arrives as exact decimal text (output_format_json_quote_64bit_integers=1).
    expect(body.data).toEqual([
      { pathname: '/home', views: '8', visitors: '8' },
      { pathname: '/pricing', views: '4', visitors: '4' },
      { pathname: '/docs', views: '2', visitors: '2' },
    ]);
    expect(body.rows).toBe(3);
    expect(body.statistics).toEqual({ elapsed: expect.any(Number), rows_read: expect.any(Number), bytes_read: expect.any(Number) });
  });

  it('answers CSV with a header line', async () => {
    const res = await get(`/v0/pipes/top_pages.csv?tenant=acme`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(await res.text()).toBe('"pathname","views","visitors"\n"/home",8,8\n"/pricing",4,4\n"/docs",2,2\n');
  });

  it('answers NDJSON, one row a line', async () => {
    const res = await get(`/v0/pipes/top_pages.ndjson?tenant=globex`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(lines).toEqual([
      { pathname: '/home', views: '7', visitors: '7' },
      { pathname: '/careers', views: '1', visitors: '1' },
    ]);
  });

  it('applies the date range and the limit, from the query string or a POST body', async () => {
    const ranged = await json(`/v0/pipes/top_pages.json?${query({ tenant: 'acme', date_from: DAY1, date_to: DAY1 })}`);
    expect(ranged.body.data).toEqual([
      { pathname: '/home', views: '5', visitors: '5' },
      { pathname: '/pricing', views: '4', visitors: '4' },
    ]);
    const limited = await json(`/v0/pipes/top_pages.json?tenant=acme&limit=1`);
    expect(limited.body.data).toEqual([{ pathname: '/home', views: '8', visitors: '8' }]);
    const posted = await json(`/v0/pipes/top-pages.json`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant: 'acme', limit: 2, date_to: DAY2 }),
    });
    expect(posted.status).toBe(200);
    expect(posted.body.data).toEqual([
      { pathname: '/home', views: '8', visitors: '8' },
      { pathname: '/pricing', views: '4', visitors: '4' },
    ]);
  });

  it('refuses bad parameters with 400 and a message naming the parameter', async () => {
    expect(await errorOf('/v0/pipes/top_pages.json')).toMatchObject({ status: 400, error: 'parameter tenant is required (String)' });
    const badDate = await errorOf('/v0/pipes/top_pages.json?tenant=acme&date_from=2024-13-01');
    expect(badDate).toMatchObject({ status: 400, error: 'parameter date_from: expected Date, got "2024-13-01" (write dates as YYYY-MM-DD)' });
    expect(badDate.body.documentation).toBe('/v0/pipes/top_pages/openapi.json');
    expect(await errorOf('/v0/pipes/top_pages.json?tenant=acme&limit=5000')).toMatchObject({
      status: 400,
      error: 'parameter limit: 5000 is above the maximum 1000',
    });
    expect(await errorOf('/v0/pipes/top_pages.json?tenant=acme&limit=-1')).toMatchObject({
      status: 400,
      error: 'parameter limit: expected UInt32, got "-1" (UInt32 holds 0 to 4294967295)',
    });
    expect(await errorOf('/v0/pipes/top_pages.json?tenant=acme&foo=1')).toMatchObject({
      status: 400,
      error: 'unknown parameter foo; top_pages takes tenant, date_from, date_to, limit',
    });
    expect(await errorOf('/v0/pipes/top_pages.json?tenant=a&tenant=b')).toMatchObject({
      status: 400,
      error: expect.stringMatching(/^parameter tenant is given more than once/),
    });
    expect(await errorOf('/v0/pipes/top_pages.json', { method: 'POST', body: '{"tenant":' })).toMatchObject({
      status: 400,
      error: expect.stringMatching(/^the request body is not JSON/),
    });
    expect(await errorOf('/v0/pipes/top_pages.json', { method: 'POST', body: '["acme"]' })).toMatchObject({
      status: 400,
      error: expect.stringMatching(/must be a JSON object/),
    });
  });

  it('treats injection attempts through every parameter as values: 400 or no rows, and nothing changes', async () => {
    const before = await tableCounts();
    const attempts: [Record<string, string>, number][] = [
      [{ tenant: "' OR 1=1 --" }, 200],
      [{ tenant: "acme' OR '1'='1" }, 200],
      [{ tenant: "x'; DROP TABLE page_views; --" }, 200],
      [{ tenant: 'acme', limit: '1; DROP TABLE x' }, 400],
      [{ tenant: 'acme', limit: '1 OR 1=1' }, 400],
      [{ tenant: 'acme', date_from: "2020-01-01') OR ('1'='1" }, 400],
      [{ tenant: 'acme', date_to: '2100-01-01 --' }, 400],
      [{ tenant: '{tenant:String}' }, 200],
      [{ tenant: 'acme\\', date_from: '2020-01-01' }, 200],
    ];
    for (const [params, expected] of attempts) {
      const res = await get(`/v0/pipes/top_pages.json?${query(params)}`);
      expect(res.status, JSON.stringify(params)).toBe(expected);
      const body = (await res.json()) as JsonResult;
      if (expected === 200) expect(body.data, JSON.stringify(params)).toEqual([]);
    }
    // The value reaches ClickHouse whole, as one string, through the types endpoint's every type.
    const hostile = "'; DROP TABLE page_views; -- \\ \t\n{s:String}";
    const echoed = await json(`/v0/pipes/types.json?${query({ s: hostile, a: JSON.stringify([hostile, 'b']) })}`);
    expect(echoed.status).toBe(200);
    expect(echoed.body.data[0]).toMatchObject({ s: hostile, a: [hostile, 'b'] });
    for (const p of ['i', 'u', 'f', 'd', 'dt', 'b', 'ids', 'n', 'id', 'c']) {
      const res = await get(`/v0/pipes/types.json?${query({ [p]: "1') OR ('1'='1" })}`);
      expect(res.status, p).toBe(400);
    }
    // The remaining types: an injection is refused as not of the type, or (Nullable(String)) echoed whole.
    for (const p of ['dec', 'fs', 'dt64', 'ip4', 'ip6', 'e', 'pick']) {
      for (const attempt of ["1') OR ('1'='1", 'tenant_id; DROP TABLE page_views', 'a`, (SELECT 1)']) {
        const res = await get(`/v0/pipes/more_types.json?${query({ [p]: attempt })}`);
        expect(res.status, `${p}=${attempt}`).toBe(400);
      }
    }
    const nullable = await json(`/v0/pipes/more_types.json?${query({ ns: hostile, pick: 'pathname' })}`);
    expect(nullable.status).toBe(200);
    expect(nullable.body.data[0]).toMatchObject({ ns: hostile, e: 'a', ip6: '::', picked: expect.any(Array) });
    // The same through a POST body, values as JSON.
    for (const body of [
      { tenant: "' OR 1=1 --", limit: 1 },
      { tenant: 'acme', limit: '1 OR 1=1' },
      { tenant: 'acme', date_to: ["2100-01-01') --"] },
    ]) {
      const res = await get('/v0/pipes/top_pages.json', { method: 'POST', body: JSON.stringify(body) });
      const answer = (await res.json()) as JsonResult;
      if (res.status === 200) expect(answer.data, JSON.stringify(body)).toEqual([]);
      else expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect(await tableCounts()).toEqual(before);
    expect(before.views).toBe(VIEWS.reduce((n, [, , , v]) => n + v, 0));
  });
});

describe('parameters a token fixes (weir.dev/params)', () => {
  it('treats hostile fixed values as values: echoed whole, refused by type (401), or no rows; an override is 403; nothing changes', async () => {
    // The handler as weir serve mounts it, with the token's claim (already verified) given in a header here.
    const fixedHandler = createEndpointHandler({
      clickhouse: server.ch,
      endpoints: () => endpoints,
      log: serveLog,
      admit: (req, _url, ep) => {
        const r = fixedParams(ep, JSON.parse(String(req.headers['x-claim'])) as unknown);
        return r.ok ? { fixed: r.fixed } : { refused: { status: r.status, error: r.error } };
      },
    });
    const fixedHttp = createServer((req, res) => void fixedHandler(req, res));
    await new Promise<void>((resolve) => fixedHttp.listen(0, '127.0.0.1', resolve));
    const at = `http://127.0.0.1:${(fixedHttp.address() as AddressInfo).port}`;
    const withClaim = async (path: string, claim: unknown) => {
      const res = await fetch(`${at}${path}`, { headers: { 'x-claim': JSON.stringify(claim) } });
      return { status: res.status, body: (await res.json()) as JsonResult & { error?: string } };
    };
    try {
      const before = await tableCounts();
      const hostile = "'; DROP TABLE page_views; -- \\ \t{s:String}";
      for (const tenant of ["' OR 1=1 --", "acme' OR '1'='1", "x'; DROP TABLE page_views; --", '{tenant:String}', 'acme\\', hostile]) {
        const r = await withClaim('/v0/pipes/top_pages.json', { tenant });
        expect(r.status, tenant).toBe(200);
        expect(r.body.data, tenant).toEqual([]);
      }
      const echoed = await withClaim('/v0/pipes/types.json', { s: hostile, a: [hostile, 'b'] });
      expect(echoed.status).toBe(200);
      expect(echoed.body.data[0]).toMatchObject({ s: hostile, a: [hostile, 'b'] });
      for (const p of ['i', 'u', 'f', 'd', 'dt', 'b', 'ids', 'n', 'id', 'c']) {
        const r = await withClaim('/v0/pipes/types.json', { [p]: "1') OR ('1'='1" });
        expect(r.status, p).toBe(401);
        expect(r.body.data, p).toBeUndefined();
      }
      for (const p of ['dec', 'fs', 'dt64', 'ip4', 'ip6', 'e', 'pick']) {
        const r = await withClaim('/v0/pipes/more_types.json', { [p]: 'tenant_id; DROP TABLE page_views' });
        expect(r.status, p).toBe(401);
      }
      // An Identifier fixed by a token is still one of the enum's names, never free SQL.
      const picked = await withClaim('/v0/pipes/more_types.json', { pick: 'pathname', ns: hostile });
      expect(picked.status).toBe(200);
      expect(picked.body.data[0]).toMatchObject({ ns: hostile });
      // The client cannot swap the fixed value for its own, hostile or not.
      const override = await withClaim(`/v0/pipes/top_pages.json?${query({ tenant: "acme' OR '1'='1" })}`, { tenant: 'acme' });
      expect(override.status).toBe(403);
      expect(override.body.error).toBe('parameter tenant is fixed by the token (weir.dev/params); leave it out of the request');
      const acme = await withClaim('/v0/pipes/top_pages.json', { tenant: 'acme' });
      expect(acme.body.data.map((r) => r.pathname)).toEqual(['/home', '/pricing', '/docs']);
      expect(await tableCounts()).toEqual(before);
    } finally {
      fixedHttp.closeAllConnections();
      await new Promise<void>((resolve) => fixedHttp.close(() => resolve()));
    }
  });
});

describe('parameter types reach ClickHouse exactly', () => {
  it('binds 64-bit integers, dates, arrays, NULL, UUIDs and booleans as given', async () => {
    const { status, body } = await json(
      `/v0/pipes/types.json?${query({
        i: '-9223372036854775808',
        u: '18446744073709551615',
        f: '1.5e3',
        d: '2024-02-29',
        dt: '2024-02-29T23:59:59',
        b: 'TRUE',
        s: 'héllo',
        a: 'x,y',
        ids: '[18446744073709551615, 1]',
        n: '',
        id: '61F0C404-5CB3-11E7-907B-A6006AD3DBA0',
        c: 'green',
      })}`,
    );
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.data).toEqual([
      {
        i: '-9223372036854775808',
        u: '18446744073709551615',
        f: 1500,
        d: '2024-02-29',
        dt: '2024-02-29 23:59:59',
        b: true,
        s: 'héllo',
        a: ['x', 'y'],
        ids: ['18446744073709551615', '1'],
        n: null,
        id: '61f0c404-5cb3-11e7-907b-a6006ad3dba0',
        c: 'green',
      },
    ]);
    const posted = await json(`/v0/pipes/types.json`, { method: 'POST', body: JSON.stringify({ i: 42, n: 7, ids: ['5', 6], b: false, c: 'red' }) });
    expect(posted.body.data[0]).toMatchObject({ i: '42', n: 7, ids: ['5', '6'], b: false, c: 'red' });
    expect(await errorOf('/v0/pipes/types.json?c=blue')).toMatchObject({
      status: 400,
      error: 'parameter c: "blue" is not an allowed value (allowed: red, green)',
    });
    expect(await errorOf('/v0/pipes/types.json?d=2023-02-29')).toMatchObject({
      status: 400,
      error: expect.stringMatching(/^parameter d: expected Date, got "2023-02-29"/),
    });
  });
});

describe('routing, limits and failures', () => {
  it('answers 404 for unknown endpoints and formats, and 405 for other methods', async () => {
    expect(await errorOf('/v0/pipes/nope.json')).toMatchObject({ status: 404, error: 'there is no endpoint nope' });
    expect(await errorOf('/v0/pipes/top_pages.xml?tenant=acme')).toMatchObject({
      status: 404,
      error: 'top_pages is not served as .xml; it is served as .json, .csv, .ndjson',
    });
    expect(await errorOf('/elsewhere')).toMatchObject({ status: 404 });
    const put = await get('/v0/pipes/top_pages.json?tenant=acme', { method: 'PUT' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, POST');
  });

  it('answers 408 when the query runs past maxExecutionTimeMs, and ClickHouse stops it', async () => {
    logLines.length = 0;
    const started = Date.now();
    const res = await errorOf('/v0/pipes/slow.json');
    expect(res.status).toBe(408);
    expect(res.error).toMatch(
      /^the query ran for \d+ ms, past slow's limit of 500 ms \(limits\.maxExecutionTimeMs\)(, after waiting \d+ ms for ClickHouse to start it \(which does not count\))?; narrow the request$/,
    );
    // ClickHouse ended it (TIMEOUT_EXCEEDED at max_execution_time), well before weir's own deadline (limit + 2 s).
    expect(Date.now() - started).toBeLessThan(2000);
    expect(logLines.join('')).toContain('"type":"TIMEOUT_EXCEEDED"');
    expect(logLines.join('')).toContain('Timeout exceeded: elapsed');
    // The server answers the next request at once.
    expect((await get('/v0/pipes/top_pages.json?tenant=acme')).status).toBe(200);
  });

  it('answers 500 with a request id and nothing else, and logs no values or SQL', async () => {
    logLines.length = 0;
    const secret = 'alice@example.com';
    const res = await get(`/v0/pipes/failing.json?${query({ secret })}`);
    const text = await res.text();
    expect(res.status).toBe(500);
    const requestId = res.headers.get('x-request-id') ?? '';
    expect(JSON.parse(text)).toEqual({
      error: `the query failed; the server log has the details under request id ${requestId}`,
      documentation: '/v0/pipes/failing/openapi.json',
      request_id: requestId,
    });
    expect(text).not.toMatch(/boom|throwIf|SELECT|alice/);
    const logged = logLines.join('');
    expect(logged).toContain(requestId);
    expect(logged).toContain('FUNCTION_THROW_IF_VALUE_IS_NON_ZERO');
    expect(logged).toContain('boom <value>');
    expect(logged).not.toContain(secret);
    expect(logged).not.toContain('alice');
  });

  it('counts requests by endpoint and status, and times them', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/weir_endpoint_requests_total\{endpoint="top_pages",status="200"\} \d+/);
    expect(text).toMatch(/weir_endpoint_requests_total\{endpoint="top_pages",status="400"\} \d+/);
    expect(text).toMatch(/weir_endpoint_requests_total\{endpoint="slow",status="408"\} 1/);
    expect(text).toMatch(/weir_endpoint_requests_total\{endpoint="_unknown",status="404"\} \d+/);
    expect(text).toMatch(/weir_endpoint_request_duration_seconds_count\{endpoint="top_pages"\} \d+/);
  });
});

describe('OpenAPI', () => {
  interface Doc {
    openapi: string;
    paths: Record<string, { get: { parameters: { name: string; required: boolean; schema: Record<string, unknown> }[] }; post: unknown }>;
    components: { schemas: Record<string, { properties?: Record<string, Record<string, unknown>> }> };
  }

  it("describes top_pages: its 4 parameters with types and bounds, and its rows from the query's columns", async () => {
    const { status, body } = await json<Doc>('/v0/pipes/top_pages/openapi.json');
    expect(status).toBe(200);
    expect(body.openapi).toBe('3.0.3');
    expect(Object.keys(body.paths)).toEqual(['/v0/pipes/top_pages.json', '/v0/pipes/top_pages.csv', '/v0/pipes/top_pages.ndjson']);
    const params = body.paths['/v0/pipes/top_pages.json']?.get.parameters ?? [];
    expect(params.map((p) => [p.name, p.required])).toEqual([
      ['tenant', true],
      ['date_from', false],
      ['date_to', false],
      ['limit', false],
    ]);
    expect(params[0]?.schema).toMatchObject({ type: 'string' });
    expect(params[1]?.schema).toMatchObject({ type: 'string', format: 'date', default: '2020-01-01' });
    expect(params[3]?.schema).toMatchObject({ type: 'integer', minimum: 0, maximum: 1000, default: 10 });
    expect(body.paths['/v0/pipes/top_pages.json']?.post).toBeDefined();
    expect(body.components.schemas.top_pages_row?.properties).toEqual({
      pathname: { type: 'string', 'x-clickhouse-type': 'String' },
      views: { type: 'string', pattern: '^-?[0-9]+$', 'x-clickhouse-type': 'UInt64' },
      visitors: { type: 'string', pattern: '^-?[0-9]+$', 'x-clickhouse-type': 'UInt64' },
    });
  });

  it('describes every endpoint at /v0/pipes/openapi.json', async () => {
    const { status, body } = await json<Doc>('/v0/pipes/openapi.json');
    expect(status).toBe(200);
    expect(Object.keys(body.paths)).toContain('/v0/pipes/types.ndjson');
    expect(Object.keys(body.paths)).toContain('/v0/pipes/top_pages.json');
    expect(Object.keys(body.components.schemas).sort()).toEqual(['Error', 'failing_row', 'more_types_row', 'slow_row', 'top_pages_row', 'types_row']);
  });
});
