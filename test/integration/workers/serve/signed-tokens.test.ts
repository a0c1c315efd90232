// In-product analytics through a real `weir serve` process and the real engine: a product's
// backend mints a JWT per customer (here: jose in the test), the browser calls the endpoint with
// it, the token's weir.dev/params fix the tenant server-side, and usage per customer is read back
// from weir.endpoint_requests by SQL. The signing keys are a Secret mounted the kubelet way.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../../../src/api/endpoint.js';
import type { Pipe } from '../../../../src/api/pipe.js';
import { startClickHouseServer, type ClickHouseServer } from '../../../../src/clickhouse/server.js';
import { connectClickHouse, type ClickHouse } from '../../../../src/clickhouse/connection.js';
import { applyProject } from '../../../../src/execute/apply.js';
import type { CompiledEndpoint } from '../../../../src/plan/endpoint/compile.js';
import type { ProjectResource } from '../../../../src/plan/graph.js';
import { createLogger } from '../../../../src/runtime/log.js';
import { REQUEST_LOG_TABLE } from '../../../../src/workers/serve/request-log.js';
import { waitFor } from '../../../env/wait.js';
import { daysAgo, endpoint, inNamespace, node, pipe, uniqueNamespace, withNodes, withSpec } from '../../../fixtures/builders.js';
import { count } from '../../../fixtures/clickhouse.js';
import { exampleResources } from '../../../fixtures/kube.js';
import { compiled, readyz, startServe, tempDir, writeTokenSecret, type ServeProcess } from '../../../fixtures/serve.js';

const SIGNING = 'analytics-signing';
const STATIC = 'analytics-static';
const STATIC_TOKEN = 'static-dashboard-token-5e1f';
const HS_SECRET = 'hs256-shared-secret-of-the-product-backend-0001';
const ISS = 'https://app.example.com';
const AUD = 'weir-analytics';

/** tenant, path, day, views. acme: /home 8, /pricing 4; globex: /home 7. */
const VIEWS: [string, string, string, number][] = [
  ['acme', '/home', daysAgo(10), 5],
  ['acme', '/home', daysAgo(9), 3],
  ['acme', '/pricing', daysAgo(10), 4],
  ['globex', '/home', daysAgo(10), 7],
];
const ACME = [
  { pathname: '/home', views: '8', visitors: '8' },
  { pathname: '/pricing', views: '4', visitors: '4' },
];
const GLOBEX = [{ pathname: '/home', views: '7', visitors: '7' }];

let engine: ClickHouseServer;
let dataDir: string;
let ch: ClickHouse;
let ns: string;
let db: string;
let tokensDir: string;
let serve: ServeProcess;
let rsa1: { privateKey: CryptoKey; jwk: JWK };
let rsa2: { privateKey: CryptoKey; jwk: JWK };
/** Every token this file sent: none may show up in a log line, the request log or the metrics. */
const sent = new Set<string>();

/** What the request log must hold: `kind id tenant status` → requests. */
const expected = new Map<string, number>();
interface Caller {
  kind?: 'jwt' | 'static';
  id?: string;
  tenant?: string;
}
const tally = (who: Caller, status: number) => {
  const key = `${who.kind ?? ''}|${who.id ?? ''}|${who.tenant ?? ''}|${status}`;
  expected.set(key, (expected.get(key) ?? 0) + 1);
};

const pair = async (kid: string) => {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
};

const now = () => Math.floor(Date.now() / 1000);

interface Mint {
  sub?: string;
  endpoints?: unknown;
  params?: unknown;
  rps?: number;
  aud?: string;
  iss?: string;
  exp?: number | null;
  alg?: 'HS256' | 'RS256';
  kid?: string;
  key?: CryptoKey | Uint8Array;
  claims?: JWTPayload;
}

/** A token as the product's backend mints it for one customer. */
async function mint(o: Mint = {}): Promise<string> {
  const t = new SignJWT({
    ...(o.endpoints !== null ? { 'weir.dev/endpoints': o.endpoints ?? ['top_pages'] } : {}),
    ...(o.params !== undefined ? { 'weir.dev/params': o.params } : {}),
    ...(o.rps !== undefined ? { 'weir.dev/rps': o.rps } : {}),
    ...o.claims,
  })
    .setProtectedHeader({ alg: o.alg ?? 'HS256', typ: 'JWT', ...(o.kid ? { kid: o.kid } : {}) })
    .setIssuer(o.iss ?? ISS)
    .setAudience(o.aud ?? AUD)
    .setIssuedAt();
  if (o.sub !== undefined) t.setSubject(o.sub);
  if (o.exp !== null) t.setExpirationTime(o.exp ?? now() + 3600);
  const token = await t.sign(o.key ?? new TextEncoder().encode(HS_SECRET));
  sent.add(token);
  return token;
}

const tenantToken = (tenant: string, extra: Mint = {}) => mint({ sub: `customer-${tenant}`, params: { tenant }, ...extra });

/** A request to `serve` with `token`, tallied for the request log under `who`. */
async function call(path: string, token: string | undefined, who: Caller, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (token !== undefined) headers.set('authorization', `Bearer ${token}`);
  const res = await fetch(`${serve.base}${path}`, { ...init, headers });
  tally(who, res.status);
  return res;
}

const json = async (res: Response) => (await res.json()) as { data?: unknown[]; error?: string };

beforeAll(async () => {
  dataDir = tempDir('weir-ch-signed-');
  engine = await startClickHouseServer({ dataDir, port: 0 });
  ch = connectClickHouse({ url: engine.url });
  ns = uniqueNamespace('signed');
  db = ns.replace(/-/g, '_');
  const resources = exampleResources(ns) as unknown as ProjectResource[];
  await applyProject(ch, resources, { log: createLogger({ level: 'warn' }) });
  let session = 0;
  await ch.insert(
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
  const jwt = { secretRef: { name: SIGNING }, issuer: ISS, audience: AUD, clockSkewSeconds: 5 };
  // The example's Endpoint with signed tokens instead of static ones, and the binary formats.
  const topPages: CompiledEndpoint = compiled(
    { ...example, spec: { ...example.spec, auth: { jwt }, formats: ['json', 'csv', 'ndjson', 'parquet', 'arrow'] } },
    examplePipe,
    db,
  );
  const totalsPipe = pipe('totals', inNamespace(ns), withNodes(node('main', 'SELECT count() AS views FROM page_views WHERE tenant_id = {tenant:String}')));
  const totals = compiled(endpoint('totals', 'totals', inNamespace(ns), withSpec({ auth: { tokensSecretRef: { name: STATIC }, jwt } })), totalsPipe, db);

  rsa1 = await pair('rsa-1');
  rsa2 = await pair('rsa-2');
  tokensDir = tempDir('weir-signing-');
  writeTokenSecret(tokensDir, SIGNING, { secret: HS_SECRET, 'jwks.json': JSON.stringify({ keys: [rsa1.jwk] }) });
  writeTokenSecret(tokensDir, STATIC, { dashboard: STATIC_TOKEN });
  sent.add(STATIC_TOKEN);
  // Debug logs too: the per-request line must not carry the token either.
  serve = await startServe(engine.url, [topPages, totals], { tokensDir, env: { WEIR_LOG_LEVEL: 'debug' } });
  await readyz(serve, 200);
});

afterAll(async () => {
  await serve?.stop();
  await ch?.close();
  await engine?.stop();
});

describe('signed tokens through weir serve', () => {
  it("a customer's token reads only its tenant's rows, without the client sending the tenant", async () => {
    const acme = await tenantToken('acme');
    const globex = await tenantToken('globex');
    const a = await call('/v0/pipes/top_pages.json', acme, { kind: 'jwt', id: 'customer-acme', tenant: 'acme' });
    expect(a.status).toBe(200);
    expect((await json(a)).data).toEqual(ACME);
    const g = await call('/v0/pipes/top_pages.json', globex, { kind: 'jwt', id: 'customer-globex', tenant: 'globex' });
    expect((await json(g)).data).toEqual(GLOBEX);
    // Sending the token's own value is allowed; other parameters stay the client's.
    const same = await call('/v0/pipes/top_pages.json?tenant=acme&limit=1', acme, { kind: 'jwt', id: 'customer-acme', tenant: 'acme' });
    expect((await json(same)).data).toEqual(ACME.slice(0, 1));
    const posted = await call('/v0/pipes/top_pages.json', acme, { kind: 'jwt', id: 'customer-acme', tenant: 'acme' }, { method: 'POST', body: '{"limit": 1}' });
    expect((await json(posted)).data).toEqual(ACME.slice(0, 1));
    // RS256 from the JWKS, chosen by kid, and the token in ?token= (a browser's <img> or EventSource).
    const rs = await tenantToken('globex', { alg: 'RS256', kid: 'rsa-1', key: rsa1.privateKey });
    const q = await call(`/v0/pipes/top_pages.ndjson?token=${rs}`, undefined, { kind: 'jwt', id: 'customer-globex', tenant: 'globex' });
    expect(q.status).toBe(200);
    expect(
      (await q.text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual(GLOBEX);
    // A static token still works where the Endpoint lists one, recorded by its key name.
    const s = await call('/v0/pipes/totals.json?tenant=globex', STATIC_TOKEN, { kind: 'static', id: 'dashboard' });
    expect((await json(s)).data).toEqual([{ views: '7' }]);
  });

  it('refuses expired, badly signed, alg none, wrong aud or iss, out-of-scope and overriding tokens, with no rows', async () => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'customer-acme', iss: ISS, aud: AUD, exp: now() + 600, 'weir.dev/endpoints': '*' })}.`;
    sent.add(unsigned);
    const anon: Caller = {};
    const acmeCaller: Caller = { kind: 'jwt', id: 'customer-acme' };
    const cases: [string, string, string | undefined, Caller, number, string | RegExp, RequestInit?][] = [
      ['no token', '/v0/pipes/top_pages.json', undefined, anon, 401, 'top_pages needs a token: send Authorization: Bearer <token> (or ?token=<token>)'],
      ['expired', '/v0/pipes/top_pages.json', await tenantToken('acme', { exp: now() - 120 }), anon, 401, 'the token has expired'],
      [
        'wrong signature',
        '/v0/pipes/top_pages.json',
        await tenantToken('acme', { key: new TextEncoder().encode('not-the-product-secret-but-as-long-as-it-0001') }),
        anon,
        401,
        "the token's signature does not verify",
      ],
      ['alg none', '/v0/pipes/top_pages.json', unsigned, anon, 401, 'the token is signed with alg none, which is not accepted (accepted: HS256, RS256, ES256)'],
      ['wrong aud', '/v0/pipes/top_pages.json', await tenantToken('acme', { aud: 'another-app' }), anon, 401, "the token's aud is not weir-analytics"],
      [
        'wrong iss',
        '/v0/pipes/top_pages.json',
        await tenantToken('acme', { iss: 'https://evil.example' }),
        anon,
        401,
        "the token's iss is not https://app.example.com",
      ],
      ['no exp', '/v0/pipes/top_pages.json', await tenantToken('acme', { exp: null }), anon, 401, 'the token has no exp; signed tokens must expire'],
      [
        'a rotated-out kid',
        '/v0/pipes/top_pages.json',
        await tenantToken('acme', { alg: 'RS256', kid: 'rsa-9', key: rsa2.privateKey }),
        anon,
        401,
        /^no RS256 key has the token's kid/,
      ],
      [
        'another endpoint',
        '/v0/pipes/totals.json',
        await tenantToken('acme'),
        acmeCaller,
        403,
        'the token is not allowed to call totals (weir.dev/endpoints: top_pages)',
      ],
      ['no scope', '/v0/pipes/top_pages.json', await tenantToken('acme', { endpoints: null }), acmeCaller, 403, /^the token has no weir\.dev\/endpoints claim/],
      [
        'an override of the fixed tenant',
        '/v0/pipes/top_pages.json?tenant=globex',
        await tenantToken('acme'),
        { ...acmeCaller, tenant: 'acme' },
        403,
        'parameter tenant is fixed by the token (weir.dev/params); leave it out of the request',
      ],
      [
        'an override in a POST body',
        '/v0/pipes/top_pages.json',
        await tenantToken('acme'),
        { ...acmeCaller, tenant: 'acme' },
        403,
        'parameter tenant is fixed by the token (weir.dev/params); leave it out of the request',
        { method: 'POST', body: JSON.stringify({ tenant: 'globex' }) },
      ],
      [
        'a fixed value of the wrong type',
        '/v0/pipes/top_pages.json',
        await tenantToken('acme', { params: { tenant: 'acme', limit: 'all' } }),
        acmeCaller,
        401,
        /^the token's weir\.dev\/params do not fit top_pages: parameter limit: expected UInt32, got "all"$/,
      ],
      [
        'a fixed parameter the endpoint does not take',
        '/v0/pipes/top_pages.json',
        await tenantToken('acme', { params: { tenant: 'acme', region: 'eu' } }),
        acmeCaller,
        403,
        /^the token fixes parameter region, which top_pages does not take/,
      ],
    ];
    for (const [what, path, token, who, status, error, init] of cases) {
      const res = await call(path, token, who, init);
      expect(res.status, what).toBe(status);
      const body = await json(res);
      expect(body.data, what).toBeUndefined();
      if (typeof error === 'string') expect(body.error, what).toBe(error);
      else expect(body.error, what).toMatch(error);
      // RFC 6750: a token refused as a token says how to authenticate.
      if (status === 401) expect(res.headers.get('www-authenticate'), what).toMatch(/^Bearer realm="weir"/);
    }
  });

  it('carries hostile fixed values as values: no rows, nothing changed', async () => {
    const tables = async () => ({
      views: await count(ch, `SELECT count() AS n FROM ${db}.page_views`),
      tables: await count(ch, `SELECT count() AS n FROM system.tables WHERE database = '${db}'`),
    });
    const before = await tables();
    for (const hostile of [
      "x'; DROP TABLE page_views; --",
      "acme' OR '1'='1",
      "acme') OR 1=1 --",
      'acme\\',
      '{tenant:String}',
      "' UNION ALL SELECT name, 1, 1 FROM system.tables --",
    ]) {
      const res = await call('/v0/pipes/top_pages.json', await tenantToken('acme', { sub: 'hostile', params: { tenant: hostile } }), {
        kind: 'jwt',
        id: 'hostile',
        tenant: hostile,
      });
      expect(res.status, hostile).toBe(200);
      expect((await json(res)).data, hostile).toEqual([]);
    }
    // A hostile parameter name is not a parameter: refused, never spliced.
    const named = await call('/v0/pipes/top_pages.json', await mint({ sub: 'hostile', params: { 'tenant} OR 1=1 --': 'acme' } }), {
      kind: 'jwt',
      id: 'hostile',
    });
    expect(named.status).toBe(403);
    expect(await tables()).toEqual(before);
  });

  it('answers .parquet and .arrow that ClickHouse reads back with the same rows and types', async () => {
    const acme = await tenantToken('acme');
    const who: Caller = { kind: 'jwt', id: 'customer-acme', tenant: 'acme' };
    const parquet = await call('/v0/pipes/top_pages.parquet', acme, who);
    expect(parquet.status).toBe(200);
    expect(parquet.headers.get('content-type')).toBe('application/vnd.apache.parquet');
    const bytes = Buffer.from(await parquet.arrayBuffer());
    expect(bytes.subarray(0, 4).toString()).toBe('PAR1');
    writeFileSync(join(dataDir, 'user_files', 'top_pages.parquet'), bytes);
    expect(await ch.query(`SELECT * FROM file('top_pages.parquet', Parquet) ORDER BY views DESC`)).toEqual(ACME);
    const types = await ch.query<{ name: string; type: string }>(`DESCRIBE TABLE file('top_pages.parquet', Parquet)`);
    expect(types.map((c) => [c.name, c.type])).toEqual([
      ['pathname', 'String'],
      ['views', 'UInt64'],
      ['visitors', 'UInt64'],
    ]);
    const arrow = await call('/v0/pipes/top_pages.arrow', acme, who);
    expect(arrow.headers.get('content-type')).toBe('application/vnd.apache.arrow.stream');
    writeFileSync(join(dataDir, 'user_files', 'top_pages.arrows'), Buffer.from(await arrow.arrayBuffer()));
    expect(await ch.query(`SELECT * FROM file('top_pages.arrows', ArrowStream) ORDER BY views DESC`)).toEqual(ACME);
    // Formats not listed are not served.
    const notListed = await call('/v0/pipes/totals.parquet?tenant=acme', STATIC_TOKEN, {});
    expect(notListed.status).toBe(404);
  });

  it('documents the bearer JWT scheme, which parameters a token may fix, and the binary formats, in the OpenAPI document', async () => {
    const res = await fetch(`${serve.base}/v0/pipes/top_pages/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      paths: Record<string, { get: { security?: unknown; 'x-weir-fixable-parameters'?: string[]; responses: Record<string, { content?: object }> } }>;
      components: { securitySchemes?: Record<string, { type: string; scheme?: string; bearerFormat?: string }> };
    };
    expect(doc.components.securitySchemes?.signedToken).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    const get = doc.paths['/v0/pipes/top_pages.json']?.get;
    expect(get?.security).toEqual([{ signedToken: [] }, { queryToken: [] }]);
    expect(get?.['x-weir-fixable-parameters']).toEqual(['tenant', 'date_from', 'date_to', 'limit']);
    expect(Object.keys(get?.responses ?? {})).toEqual(expect.arrayContaining(['401', '403', '429']));
    expect(doc.paths['/v0/pipes/top_pages.parquet']?.get.responses['200']?.content).toHaveProperty(['application/vnd.apache.parquet']);
    expect(doc.paths['/v0/pipes/top_pages.arrow']?.get.responses['200']?.content).toHaveProperty(['application/vnd.apache.arrow.stream']);
  });

  it('takes a new signing key and drops the old one through the mounted Secret while a client loops, with no failed request', async () => {
    const old = await tenantToken('acme', { sub: 'rotating', alg: 'RS256', kid: 'rsa-1', key: rsa1.privateKey });
    const next = await tenantToken('acme', { sub: 'rotating', alg: 'RS256', kid: 'rsa-2', key: rsa2.privateKey });
    const who: Caller = { kind: 'jwt', id: 'rotating', tenant: 'acme' };
    let token = old;
    let stop = false;
    let requests = 0;
    const failures: string[] = [];
    const loop = (async () => {
      while (!stop) {
        const res = await call('/v0/pipes/top_pages.json?limit=1', token, who);
        requests++;
        if (res.status !== 200) failures.push(`${res.status} ${await res.text()}`);
        else expect((await json(res)).data).toEqual(ACME.slice(0, 1));
      }
    })();
    try {
      // The Secret gains rsa-2 (kubelet swaps ..data), clients move to it, rsa-1 goes.
      writeTokenSecret(tokensDir, SIGNING, { secret: HS_SECRET, 'jwks.json': JSON.stringify({ keys: [rsa1.jwk, rsa2.jwk] }) });
      await waitFor('rsa-2 accepted', async () => ((await probeStatus(next)) === 200 ? true : undefined));
      token = next;
      const switchedAt = requests;
      writeTokenSecret(tokensDir, SIGNING, { secret: HS_SECRET, 'jwks.json': JSON.stringify({ keys: [rsa2.jwk] }) });
      await waitFor('rsa-1 refused', async () => ((await probeStatus(old)) === 401 ? true : undefined));
      await waitFor('the client looping past the rotation', () => (requests > switchedAt + 20 ? true : undefined));
    } finally {
      stop = true;
      await loop;
    }
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(20);
    expect(
      serve.weir.logs.some(
        (l) => l.message === 'endpoint signing keys loaded' && JSON.stringify(l.keys).includes('rsa-2') && !JSON.stringify(l.keys).includes('rsa-1'),
      ),
    ).toBe(true);
  });

  it("answers 429 with Retry-After past a token's weir.dev/rps, counted per sub", async () => {
    const busy = await tenantToken('acme', { sub: 'busy-customer', rps: 2 });
    const who: Caller = { kind: 'jwt', id: 'busy-customer', tenant: 'acme' };
    const answers = await Promise.all(Array.from({ length: 10 }, () => call('/v0/pipes/top_pages.json', busy, who)));
    const statuses = answers.map((r) => r.status);
    // The bucket holds 2 and refills at 2 a second: 10 at once cannot all pass, and at least 2 do.
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(2);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(1);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    const limited = answers.find((r) => r.status === 429) as Response;
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await json(limited)).error).toBe('the token may make at most 2 requests per second (weir.dev/rps); slow down');
    // Another token of the same customer shares the bucket; another customer has its own.
    const sameSub = await call('/v0/pipes/top_pages.json', await tenantToken('acme', { sub: 'busy-customer', rps: 2, claims: { jti: 'second' } }), who);
    const other = await call('/v0/pipes/top_pages.json', await tenantToken('globex', { sub: 'calm-customer', rps: 2 }), {
      kind: 'jwt',
      id: 'calm-customer',
      tenant: 'globex',
    });
    expect(other.status).toBe(200);
    expect([200, 429]).toContain(sameSub.status);
    for (const r of [...answers, sameSub, other]) if (!r.bodyUsed) await r.body?.cancel();
  });

  it('records every request in weir.endpoint_requests by sub and fixed tenant, and no token anywhere', async () => {
    const metrics = await (await fetch(`${serve.metrics}/metrics`)).text();
    expect(await serve.stop()).toBe(0);
    const rows = await ch.query<{ kind: string; id: string; tenant: string; status: number; n: string }>(
      `SELECT token_kind AS kind, token_id AS id, fixed_params['tenant'] AS tenant, status, count() AS n
       FROM ${REQUEST_LOG_TABLE} WHERE namespace = {ns:String}
       GROUP BY kind, id, tenant, status ORDER BY kind, id, tenant, status`,
      { params: { ns } },
    );
    const want = [...expected]
      .map(([key, n]) => {
        const [kind = '', id = '', tenant = '', status = ''] = key.split('|');
        return { kind, id, tenant, status: Number(status), n: String(n) };
      })
      .sort((a, b) =>
        a.kind !== b.kind
          ? a.kind < b.kind
            ? -1
            : 1
          : a.id !== b.id
            ? a.id < b.id
              ? -1
              : 1
            : a.tenant !== b.tenant
              ? a.tenant < b.tenant
                ? -1
                : 1
              : a.status - b.status,
      );
    expect(rows).toEqual(want);

    // Usage per customer, as the README's query reads it.
    const usage = await ch.query<{ tenant: string; requests: string }>(
      `SELECT fixed_params['tenant'] AS tenant, count() AS requests
       FROM ${REQUEST_LOG_TABLE} WHERE namespace = {ns:String} AND status = 200 AND tenant IN ('acme', 'globex')
       GROUP BY tenant ORDER BY tenant`,
      { params: { ns } },
    );
    const okFor = (tenant: string) => [...expected].filter(([k]) => k.split('|')[2] === tenant && k.endsWith('|200')).reduce((n, [, v]) => n + v, 0);
    expect(usage).toEqual([
      { tenant: 'acme', requests: String(okFor('acme')) },
      { tenant: 'globex', requests: String(okFor('globex')) },
    ]);

    // Neither a token nor its signature is in the request log, a log line or the metrics.
    const logged = (await ch.queryFormatted?.(`SELECT * FROM ${REQUEST_LOG_TABLE} WHERE namespace = '${ns}'`, 'JSONEachRow')) ?? { body: [] };
    let table = '';
    for await (const chunk of logged.body as AsyncIterable<Buffer>) table += chunk.toString();
    const lines = JSON.stringify(serve.weir.logs) + serve.weir.output.join('\n');
    expect(serve.weir.logs.some((l) => l.message === 'endpoint request')).toBe(true);
    expect(sent.size).toBeGreaterThan(20);
    for (const token of sent) {
      const signature = token.split('.')[2] ?? token;
      for (const [where, text] of [
        ['request log', table],
        ['logs', lines],
        ['metrics', metrics],
      ] as const) {
        expect(text.includes(token), `${where} holds a token`).toBe(false);
        if (signature.length > 10) expect(text.includes(signature), `${where} holds a signature`).toBe(false);
      }
    }
  });
});

/** The status `serve` answers a token with, tallied under the rotating customer or as unattributed. */
async function probeStatus(token: string): Promise<number> {
  const res = await fetch(`${serve.base}/v0/pipes/top_pages.json?limit=1`, { headers: { authorization: `Bearer ${token}` } });
  await res.body?.cancel();
  tally(res.status === 200 ? { kind: 'jwt', id: 'rotating', tenant: 'acme' } : {}, res.status);
  return res.status;
}
