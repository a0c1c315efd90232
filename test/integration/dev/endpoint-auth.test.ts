// `weir dev` and endpoint auth: off while the folder holds no Secret an Endpoint's auth names (the
// example project names only a production Secret), enforced as `weir serve` enforces it once the
// folder holds one: static tokens by key, and signed tokens minted with `weir token create`.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { waitFor } from '../../env/wait.js';
import { startExampleDev, type ExampleDev } from '../../fixtures/dev.js';
import { tempDir } from '../../fixtures/serve.js';
import { WEIR_BIN } from '../../fixtures/processes.js';

const HS_SECRET = 'a-local-hs256-secret-for-weir-dev-000001';
const STATIC_TOKEN = 'dev-static-token-77';

let dev: ExampleDev;

/** `weir token create …`: the token it prints. */
function weirToken(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [WEIR_BIN, 'token', 'create', ...args]);
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(err))));
  });
}

const get = (path: string, token?: string) => fetch(`${dev.base}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
const rowsOf = async (res: Response) => ((await res.json()) as { data: { pathname: string; views: string }[] }).data;

beforeAll(async () => {
  dev = await startExampleDev('weir-dev-auth');
  const now = new Date().toISOString().replace('T', ' ').replace('Z', '');
  const events = [
    ...Array.from({ length: 3 }, (_, i) => ({ timestamp: now, session_id: `a${i}`, tenant_id: 'acme', payload: { pathname: '/home' } })),
    ...Array.from({ length: 5 }, (_, i) => ({ timestamp: now, session_id: `g${i}`, tenant_id: 'globex', payload: { pathname: '/pricing' } })),
  ];
  const res = await fetch(`${dev.base}/v0/events?name=page_views`, { method: 'POST', body: events.map((e) => JSON.stringify(e)).join('\n') });
  expect(res.status).toBe(200);
});

afterAll(async () => {
  await dev?.stop();
});

describe('weir dev: endpoint auth', () => {
  it('stays off while the folder holds no Secret the Endpoint names, and says so', async () => {
    expect(dev.output()).toContain('top_pages: auth off locally (the folder holds no Secret top-pages-readers; add one to try tokens)');
    const res = await get('/v0/pipes/top_pages.json?tenant=acme');
    expect(res.status).toBe(200);
    expect(await rowsOf(res)).toEqual([{ pathname: '/home', views: '3', visitors: '3' }]);
  });

  it('enforces static and signed tokens once the folder holds the Secrets, as weir serve does', async () => {
    const endpoints = join(dev.project, 'endpoints.yaml');
    writeFileSync(
      endpoints,
      readFileSync(endpoints, 'utf8').replace(
        'tokensSecretRef: {name: top-pages-readers}',
        'tokensSecretRef: {name: top-pages-readers}\n    jwt: {secretRef: {name: analytics-signing}, issuer: "https://app.local", audience: weir-dev}',
      ),
    );
    writeFileSync(
      join(dev.project, 'secrets.yaml'),
      [
        { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'top-pages-readers', namespace: 'web' }, stringData: { dashboard: STATIC_TOKEN } },
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'analytics-signing', namespace: 'web' },
          data: { secret: Buffer.from(HS_SECRET).toString('base64') },
        },
      ]
        .map((d) => stringify(d))
        .join('---\n'),
    );
    await waitFor(
      'auth enforced',
      () => (dev.output().includes('top_pages: auth enforced with Secret top-pages-readers, analytics-signing') ? true : undefined),
      {
        timeoutMs: 60_000,
      },
    );

    expect((await get('/v0/pipes/top_pages.json?tenant=acme')).status).toBe(401);
    expect((await get('/v0/pipes/top_pages.json?tenant=acme', 'not-a-token')).status).toBe(403);
    const byStatic = await get('/v0/pipes/top_pages.json?tenant=globex', STATIC_TOKEN);
    expect(byStatic.status).toBe(200);
    expect(await rowsOf(byStatic)).toEqual([{ pathname: '/pricing', views: '5', visitors: '5' }]);

    const secretFile = join(tempDir('weir-dev-secret-'), 'hs.secret');
    writeFileSync(secretFile, HS_SECRET);
    const common = ['--secret-file', secretFile, '--issuer', 'https://app.local', '--audience', 'weir-dev', '--sub', 'customer-acme'];
    const acme = await weirToken(['--endpoint', 'top_pages', '--param', 'tenant=acme', '--ttl', '10m', ...common]);
    const signed = await get('/v0/pipes/top_pages.json', acme);
    expect(signed.status).toBe(200);
    expect(await rowsOf(signed)).toEqual([{ pathname: '/home', views: '3', visitors: '3' }]);
    const override = await get('/v0/pipes/top_pages.json?tenant=globex', acme);
    expect(override.status).toBe(403);
    expect(((await override.json()) as { error: string }).error).toBe('parameter tenant is fixed by the token (weir.dev/params); leave it out of the request');
    const elsewhere = await weirToken(['--endpoint', 'other_endpoint', '--param', 'tenant=acme', ...common]);
    expect((await get('/v0/pipes/top_pages.json', elsewhere)).status).toBe(403);
    const wrongAudience = await weirToken(['--endpoint', '*', '--param', 'tenant=acme', ...common.slice(0, 4), '--audience', 'prod']);
    expect((await get('/v0/pipes/top_pages.json', wrongAudience)).status).toBe(401);
  });
});
