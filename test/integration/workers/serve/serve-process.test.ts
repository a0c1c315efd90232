// `weir serve` as the query Deployment runs it: its own process (dist/cli/main.js) with a config
// file, token Secrets mounted as kubelet mounts them, and the real ClickHouse engine. Every
// status comes from a real request; the request log is read back from weir.endpoint_requests.
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../../../src/api/endpoint.js';
import type { Pipe } from '../../../../src/api/pipe.js';
import { applyProject } from '../../../../src/execute/apply.js';
import type { ProjectResource } from '../../../../src/plan/graph.js';
import { createLogger } from '../../../../src/runtime/log.js';
import type { CompiledEndpoint } from '../../../../src/plan/endpoint/compile.js';
import { REQUEST_LOG_TABLE } from '../../../../src/workers/serve/request-log.js';
import { waitFor } from '../../../env/wait.js';
import { daysAgo, endpoint, inNamespace, node, pipe, uniqueNamespace, withNodes, withParams, withSpec } from '../../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../../fixtures/clickhouse.js';
import { exampleResources } from '../../../fixtures/kube.js';
import { compiled, readyz, removeTokenKey, startServe, tempDir, writeServeConfig, writeTokenSecret, type ServeProcess } from '../../../fixtures/serve.js';

const SECRET = 'top-pages-readers';
const TOKEN_A = 'token-a-3f9c1d7e';
const TOKEN_B = 'token-b-81be02aa';

let server: TestClickHouse;
let ns: string;
let db: string;
let tokensDir: string;
let serve: ServeProcess;
let topPages: CompiledEndpoint;
const endpoints: CompiledEndpoint[] = [];
/** Every answer from `serve` to a request for one of this file's endpoints: endpoint → status → count. */
const answered = new Map<string, Map<number, number>>();

/** tenant, path, day, views. acme: /home 8, /pricing 4; globex: /home 7. */
const VIEWS: [string, string, string, number][] = [
  ['acme', '/home', daysAgo(10), 5],
  ['acme', '/home', daysAgo(9), 3],
  ['acme', '/pricing', daysAgo(10), 4],
  ['globex', '/home', daysAgo(10), 7],
];

beforeAll(async () => {
  server = await startTestClickHouse();
  ns = uniqueNamespace('serve-proc');
  db = ns.replace(/-/g, '_');
  const resources = exampleResources(ns) as unknown as ProjectResource[];
  await applyProject(server.ch, resources, { log: createLogger({ level: 'warn' }) });
  let session = 0;
  await server.ch.insert(
    `${db}.page_views`,
    VIEWS.flatMap(([tenant, pathname, day, views]) =>
      Array.from({ length: views }, (_, i) => ({
        timestamp: `${day} 12:00:0${i}.000`,
        session_id: `s${session++}`,
        tenant_id: tenant,
        pathname,
        country: 'de',
        duration_ms: 1,
      })),
    ),
  );

  const example = resources.find((r): r is Endpoint => r.kind === 'Endpoint' && r.metadata.name === 'top-pages');
  const examplePipe = resources.find((r): r is Pipe => r.kind === 'Pipe' && r.metadata.name === 'top-pages');
  if (!example || !examplePipe) throw new Error('the example project has no top-pages Endpoint and Pipe');
  // The example's Endpoint as it is: auth with the Secret top-pages-readers.
  topPages = compiled(example, examplePipe, db);
  const limitedPipe = pipe('limited', inNamespace(ns), withNodes(node('main', 'SELECT {n:UInt8} AS n')));
  const slowPipe = pipe('slow', inNamespace(ns), withNodes(node('main', 'SELECT count() AS n FROM numbers(100000000000) WHERE number % {m:UInt32} = 0')));
  const napPipe = pipe('nap', inNamespace(ns), withNodes(node('main', 'SELECT sleep(1) AS slept, {n:UInt8} AS n')));
  endpoints.push(
    topPages,
    compiled(
      endpoint('limited', 'limited', inNamespace(ns), withParams({ name: 'n', default: 1 }), withSpec({ limits: { requestsPerSecond: 2 } })),
      limitedPipe,
      db,
    ),
    compiled(endpoint('slow', 'slow', inNamespace(ns), withParams({ name: 'm', default: 7 }), withSpec({ limits: { maxExecutionTimeMs: 500 } })), slowPipe, db),
    compiled(endpoint('nap', 'nap', inNamespace(ns), withParams({ name: 'n', default: 1 })), napPipe, db),
  );
  tokensDir = tempDir('weir-tokens-');
  writeTokenSecret(tokensDir, SECRET, { reader: TOKEN_A });
  serve = await startServe(server.url, endpoints, { tokensDir });
  await readyz(serve, 200);
});

afterAll(async () => {
  await serve?.stop();
  await server?.stop();
});

/** A request to `serve`, its answer counted for the request log check. */
async function call(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  const res = await fetch(`${serve.base}${path}`, { ...init, headers });
  const name = /^\/v0\/pipes\/([a-z_]+)/.exec(path)?.[1] ?? '';
  const byStatus = answered.get(name) ?? new Map<number, number>();
  byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
  answered.set(name, byStatus);
  return res;
}

const errorOf = async (res: Response) => ((await res.json()) as { error: string }).error;

describe('weir serve, a real process', () => {
  it('answers the example top_pages in JSON, CSV and NDJSON with exact rows', async () => {
    const jsonRes = await call('/v0/pipes/top_pages.json?tenant=acme', { token: TOKEN_A });
    expect(jsonRes.status).toBe(200);
    const body = (await jsonRes.json()) as { data: unknown[]; rows: number; statistics: { rows_read: number } };
    expect(body.data).toEqual([
      { pathname: '/home', views: '8', visitors: '8' },
      { pathname: '/pricing', views: '4', visitors: '4' },
    ]);
    expect(body.rows).toBe(2);
    const csv = await call('/v0/pipes/top_pages.csv?tenant=acme', { token: TOKEN_A });
    expect(await csv.text()).toBe('"pathname","views","visitors"\n"/home",8,8\n"/pricing",4,4\n');
    // The token may come as ?token= instead (and is then not a parameter of the query).
    const ndjson = await call(`/v0/pipes/top_pages.ndjson?tenant=globex&token=${TOKEN_A}`);
    expect(ndjson.status).toBe(200);
    expect(ndjson.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    expect(
      (await ndjson.text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([{ pathname: '/home', views: '7', visitors: '7' }]);
  });

  it('answers 401 without a token and 403 with a token the Secret does not hold', async () => {
    const none = await call('/v0/pipes/top_pages.json?tenant=acme');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await errorOf(none)).toBe('top_pages needs a token: send Authorization: Bearer <token> (or ?token=<token>)');
    const wrong = await call('/v0/pipes/top_pages.json?tenant=acme', { token: `${TOKEN_A}x` });
    expect(wrong.status).toBe(403);
    expect(await errorOf(wrong)).toBe('the token is not allowed to call top_pages');
    const prefix = await call('/v0/pipes/top_pages.json?tenant=acme', { token: TOKEN_A.slice(0, -1) });
    expect(prefix.status).toBe(403);
    const basic = await call('/v0/pipes/top_pages.json?tenant=acme', { headers: { authorization: `Basic ${Buffer.from(`u:${TOKEN_A}`).toString('base64')}` } });
    expect(basic.status).toBe(401);
    // Endpoints without auth need no token.
    expect((await call('/v0/pipes/limited.json?n=3')).status).toBe(200);
  });

  it('answers 429 with Retry-After past limits.requestsPerSecond', async () => {
    // The bucket holds 2 requests and refills at 2 a second: 10 at once cannot all pass.
    const answers = await Promise.all(Array.from({ length: 10 }, () => call('/v0/pipes/limited.json')));
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(1);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    const limited = answers.find((r) => r.status === 429);
    expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await errorOf(limited as Response)).toBe('limited takes at most 2 requests per second per server (limits.requestsPerSecond); slow down');
    for (const r of answers) if (!r.bodyUsed) await r.body?.cancel();
  });

  it('answers 408 when a query runs past limits.maxExecutionTimeMs', async () => {
    const res = await call('/v0/pipes/slow.json');
    expect(res.status).toBe(408);
    expect(await errorOf(res)).toMatch(
      /^the query ran for \d+ ms, past slow's limit of 500 ms \(limits\.maxExecutionTimeMs\)(, after waiting \d+ ms for ClickHouse to start it \(which does not count\))?; narrow the request$/,
    );
  });

  it('treats injection attempts as values through a real process, and changes nothing', async () => {
    const tables = async () => ({
      views: await count(server.ch, `SELECT count() AS n FROM ${db}.page_views`),
      tables: await count(server.ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}'`),
    });
    const before = await tables();
    const q = (params: Record<string, string>) => new URLSearchParams(params).toString();
    for (const [params, status] of [
      [{ tenant: "x'; DROP TABLE page_views; --" }, 200],
      [{ tenant: "' OR 1=1 --" }, 200],
      [{ tenant: 'acme', limit: '1; DROP TABLE page_views' }, 400],
      [{ tenant: 'acme', date_from: "2020-01-01') OR ('1'='1" }, 400],
      [{ tenant: 'acme', token: "' OR 1=1 --" }, 403],
    ] as const) {
      const res = await call(`/v0/pipes/top_pages.json?${q(params)}`, params.token === undefined ? { token: TOKEN_A } : {});
      expect(res.status, JSON.stringify(params)).toBe(status);
      const body = (await res.json()) as { data?: unknown[] };
      if (status === 200) expect(body.data, JSON.stringify(params)).toEqual([]);
    }
    const posted = await call('/v0/pipes/top_pages.json', { method: 'POST', token: TOKEN_A, body: JSON.stringify({ tenant: "acme' OR '1'='1", limit: 1 }) });
    expect(posted.status).toBe(200);
    expect(((await posted.json()) as { data: unknown[] }).data).toEqual([]);
    expect(await tables()).toEqual(before);
  });

  it('takes a new token and drops an old one without failing a request of a client that loops', async () => {
    let stop = false;
    let token = TOKEN_A;
    const failures: string[] = [];
    let requests = 0;
    const loop = (async () => {
      while (!stop) {
        const res = await call('/v0/pipes/top_pages.json?tenant=acme&limit=1', { token });
        requests++;
        if (res.status !== 200) failures.push(`${res.status} ${await res.text()}`);
        else await res.body?.cancel();
      }
    })();
    const statusWith = async (t: string) => {
      const res = await call('/v0/pipes/top_pages.json?tenant=acme&limit=1', { token: t });
      await res.body?.cancel();
      return res.status;
    };
    try {
      // Rotation as kubelet delivers it: the Secret gains key `next`, clients move to it, `reader` goes.
      expect(await statusWith(TOKEN_B)).toBe(403);
      writeTokenSecret(tokensDir, SECRET, { reader: TOKEN_A, next: TOKEN_B });
      await waitFor('token B allowed', async () => ((await statusWith(TOKEN_B)) === 200 ? true : undefined));
      token = TOKEN_B;
      const switchedAt = requests;
      writeTokenSecret(tokensDir, SECRET, { next: TOKEN_B });
      removeTokenKey(tokensDir, SECRET, 'reader');
      await waitFor('token A refused', async () => ((await statusWith(TOKEN_A)) === 403 ? true : undefined));
      await waitFor('the client looping past the rotation', () => (requests > switchedAt + 20 ? true : undefined));
    } finally {
      stop = true;
      await loop;
    }
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(20);
    expect(serve.weir.logs.some((l) => l.message === 'endpoint tokens loaded' && JSON.stringify(l.keys) === '["next"]')).toBe(true);
  });

  it('logs every request into weir.endpoint_requests, and on SIGTERM finishes the request in flight and flushes the log', async () => {
    const inFlight = call('/v0/pipes/nap.json?n=5');
    await waitFor('the nap query running in ClickHouse', async () =>
      (await count(server.ch, `SELECT count() AS n FROM system.processes WHERE query LIKE '%sleep(1)%' AND query NOT LIKE '%system.processes%'`)) > 0
        ? true
        : undefined,
    );
    const exited = serve.stop();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: unknown[] }).data).toEqual([{ slept: 0, n: 5 }]);
    expect(await exited).toBe(0);
    expect(serve.weir.logs.map((l) => l.message)).toContain('endpoint server stopped');

    const rows = await server.ch.query<{ endpoint: string; status: number; n: string }>(
      `SELECT endpoint, status, count() AS n FROM ${REQUEST_LOG_TABLE} WHERE namespace = {ns:String} GROUP BY endpoint, status ORDER BY endpoint, status`,
      { params: { ns } },
    );
    const expected = [...answered]
      .flatMap(([endpointName, byStatus]) => [...byStatus].map(([status, n]) => ({ endpoint: endpointName, status, n: String(n) })))
      .sort((a, b) => (a.endpoint === b.endpoint ? a.status - b.status : a.endpoint < b.endpoint ? -1 : 1));
    expect(rows).toEqual(expected);
    // Each kind of answer this file provoked is in there, with what ClickHouse read for the 200s.
    expect(rows.map((r) => `${r.endpoint} ${r.status}`)).toEqual(
      expect.arrayContaining(['top_pages 200', 'top_pages 401', 'top_pages 403', 'top_pages 400', 'limited 429', 'slow 408', 'nap 200']),
    );
    const read = await server.ch.query<{ rows_read: string; error: string }>(
      `SELECT rows_read, error FROM ${REQUEST_LOG_TABLE} WHERE namespace = {ns:String} AND endpoint = 'top_pages' AND status IN (200, 400) ORDER BY time`,
      { params: { ns } },
    );
    expect(Number(read[0]?.rows_read)).toBeGreaterThan(0);
    // The 400's error is recorded without the value that was sent.
    const rejected = read.find((r) => r.error !== '');
    expect(rejected?.error).toMatch(/^parameter (limit|date_from)/);
    expect(read.map((r) => r.error).join('\n')).not.toMatch(/DROP TABLE|OR \('1'='1/);
  });
});

describe('stopping', () => {
  it('a keep-alive client whose request is in flight at SIGTERM is told to reconnect, and its next request on the same agent is answered', async () => {
    const nap = endpoints.find((e) => e.name === 'nap');
    if (!nap) throw new Error('no nap endpoint');
    const proc = await startServe(server.url, [nap], { args: ['--shutdown-delay', '3000'] });
    // One socket, kept alive: the next request reuses the connection unless the answer said close.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
        const req = request(`${proc.base}${path}`, { agent }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect((await get('/v0/pipes/nap.json?n=1')).connection).toBe('keep-alive');
      const inFlight = get('/v0/pipes/nap.json?n=2');
      await waitFor('the nap query running in ClickHouse', async () =>
        (await count(server.ch, `SELECT count() AS n FROM system.processes WHERE query LIKE '%sleep(1)%' AND query NOT LIKE '%system.processes%'`)) > 0
          ? true
          : undefined,
      );
      const exited = proc.stop();
      await waitFor('readiness false', () => proc.weir.logs.find((l) => l.message === 'endpoint server stopping: readiness false'));
      // Begun before the stop, answered after it: Connection: close, so the client does not reuse a socket the server is about to close.
      expect(await inFlight).toMatchObject({ status: 200, connection: 'close' });
      const next = await get('/v0/pipes/nap.json?n=3');
      expect(next).toMatchObject({ status: 200, connection: 'close' });
      expect(JSON.parse(next.body)).toMatchObject({ data: [{ slept: 0, n: 3 }] });
      expect(await exited).toBe(0);
    } finally {
      agent.destroy();
      await proc.stop();
    }
  });
});

describe('readiness', () => {
  it('stays unready while an endpoint does not compile, answers 503 for it, and becomes ready when the config drops it', async () => {
    const good = compiled(
      endpoint('fine', 'fine', inNamespace(ns)),
      pipe('fine', inNamespace(ns), withNodes(node('main', 'SELECT count() AS n FROM page_views'))),
      db,
    );
    const broken = compiled(
      endpoint('broken', 'broken', inNamespace(ns)),
      pipe('broken', inNamespace(ns), withNodes(node('main', 'SELECT n FROM no_such_table'))),
      db,
    );
    const proc = await startServe(server.url, [good, broken]);
    try {
      const why = await readyz(proc, 503, '/readyz to name the broken endpoint');
      await waitFor('the broken endpoint to be judged', async () =>
        (await (await fetch(`${proc.metrics}/readyz`)).text()).includes('does not compile') ? true : undefined,
      );
      expect(await (await fetch(`${proc.metrics}/readyz`)).text()).toMatch(/^endpoint broken: its query does not compile \(UNKNOWN_TABLE: /);
      expect(why).toContain('endpoint broken');
      const refused = await fetch(`${proc.base}/v0/pipes/broken.json`);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('5');
      expect(await errorOf(refused)).toBe('broken is not served: its query does not compile against ClickHouse (UNKNOWN_TABLE); try again later');
      // The endpoint that compiles is served all along.
      const fine = await fetch(`${proc.base}/v0/pipes/fine.json`);
      expect(fine.status).toBe(200);
      expect(((await fine.json()) as { data: unknown[] }).data).toEqual([{ n: String(VIEWS.reduce((n, [, , , v]) => n + v, 0)) }]);
      expect(
        proc.weir.logs.find(
          (l) => l.message === 'endpoint query does not compile against ClickHouse; the endpoint answers 503 and the server is not ready until it does',
        ),
      ).toMatchObject({
        endpoint: 'broken',
        level: 'error',
      });

      writeServeConfig(proc.configPath, [good]);
      await readyz(proc, 200);
      expect((await fetch(`${proc.base}/v0/pipes/broken.json`)).status).toBe(404);

      // A reloaded config with a new broken version of an endpoint: unready again, and that endpoint 503.
      const fineBroken = compiled(
        endpoint('fine', 'fine', inNamespace(ns)),
        pipe('fine', inNamespace(ns), withNodes(node('main', 'SELECT nope FROM page_views'))),
        db,
      );
      writeServeConfig(proc.configPath, [fineBroken]);
      await waitFor('the new fine version judged', async () =>
        (await (await fetch(`${proc.metrics}/readyz`)).text()).includes('does not compile') ? true : undefined,
      );
      expect((await fetch(`${proc.base}/v0/pipes/fine.json`)).status).toBe(503);
    } finally {
      expect(await proc.stop()).toBe(0);
    }
  });

  it('refuses every token with 403 when the Secret is not mounted, and says so', async () => {
    const proc = await startServe(server.url, [topPages], { tokensDir: tempDir('weir-no-tokens-') });
    try {
      await readyz(proc, 200);
      const res = await fetch(`${proc.base}/v0/pipes/top_pages.json?tenant=acme`, { headers: { authorization: `Bearer ${TOKEN_A}` } });
      expect(res.status).toBe(403);
      expect(
        proc.weir.logs.find((l) => l.message === 'endpoint tokens unreadable: every request to the endpoints using this Secret gets 403 until it can be read'),
      ).toMatchObject({
        secret: SECRET,
        problem: expect.stringMatching(/top-pages-readers does not exist: mount the Secret top-pages-readers there$/),
      });
    } finally {
      await proc.stop();
    }
  });
});
