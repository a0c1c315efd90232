// weir dev's auth: the folder's Secrets stand in for mounted ones; an Endpoint's auth is enforced
// once the folder holds a Secret it names, and off (with a note saying so) until then.
import type { IncomingMessage } from 'node:http';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import type { CompiledEndpoint } from '../../../../src/plan/endpoint/compile.js';
import { localAuth, secretValues } from '../../../../src/workers/serve/local-auth.js';

const HS = 'a-local-secret-of-at-least-32-bytes-0001';
const jwt = { secret: 'signing', issuer: 'https://app.local', audience: 'weir-dev', algorithms: ['HS256' as const], clockSkewSeconds: 30 };
const ep = (auth: CompiledEndpoint['auth']): CompiledEndpoint => ({
  name: 'top_pages',
  namespace: 'web',
  resource: 'top-pages',
  pipe: 'top-pages',
  node: 'main',
  sql: 'SELECT 1',
  params: [{ name: 'tenant', type: 'String', required: true }],
  formats: ['json'],
  limits: { maxExecutionTimeMs: 1000, maxResultRows: 10 },
  ...(auth ? { auth } : {}),
  database: 'web',
  version: 'v1',
});
const req = (token?: string) => ({ headers: token ? { authorization: `Bearer ${token}` } : {} }) as IncomingMessage;
const url = new URL('http://localhost/v0/pipes/top_pages.json');
const secret = (name: string, extra: Record<string, unknown>) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name }, ...extra });

describe('secretValues', () => {
  it('reads stringData as written and data base64-decoded, stringData winning; other kinds are not Secrets', () => {
    const s = secretValues(
      secret('s', { data: { a: Buffer.from('from-data\n').toString('base64'), b: Buffer.from('x').toString('base64') }, stringData: { b: 'from-string' } }),
    );
    expect(s).toEqual({
      name: 's',
      values: new Map([
        ['a', 'from-data'],
        ['b', 'from-string'],
      ]),
    });
    expect(secretValues({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } })).toBeUndefined();
    expect(secretValues({ apiVersion: 'weir.dev/v1alpha1', kind: 'Secret', metadata: { name: 'c' } })).toBeUndefined();
  });
});

describe('localAuth', () => {
  it('leaves auth off without the Secrets, and says so', async () => {
    const auth = await localAuth([]);
    const e = ep({ tokensSecret: 'readers' });
    expect(await auth.admit(req(), url, e)).toBeUndefined();
    expect(auth.notes([e, ep(undefined)])).toEqual(['top_pages: auth off locally (the folder holds no Secret readers; add one to try tokens)']);
  });

  it('enforces static and signed tokens once the folder holds a Secret the auth names', async () => {
    const auth = await localAuth([secret('readers', { stringData: { dashboard: 'tok-1' } }), secret('signing', { stringData: { secret: HS } })]);
    const e = ep({ tokensSecret: 'readers', jwt });
    expect(auth.notes([e])).toEqual(['top_pages: auth enforced with Secret readers, signing from the folder']);
    expect((await auth.admit(req(), url, e))?.refused?.status).toBe(401);
    expect((await auth.admit(req('tok-2'), url, e))?.refused?.status).toBe(403);
    expect(await auth.admit(req('tok-1'), url, e)).toEqual({ token: { kind: 'static', id: 'dashboard' } });
    const token = await new SignJWT({ 'weir.dev/endpoints': '*', 'weir.dev/params': { tenant: 'acme' } })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('c1')
      .setIssuer(jwt.issuer)
      .setAudience(jwt.audience)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(HS));
    const admitted = await auth.admit(req(token), url, e);
    expect(admitted?.token).toEqual({ kind: 'jwt', id: 'c1' });
    expect([...(admitted?.fixed ?? new Map()).keys()]).toEqual(['tenant']);
  });

  it('names keys it cannot use', async () => {
    const auth = await localAuth([secret('signing', { stringData: { secret: 'short', 'jwks.json': '{' } })]);
    expect(auth.notes([]).join('\n')).toMatch(/^Secret signing: jwks\.json is not JSON/);
  });
});
