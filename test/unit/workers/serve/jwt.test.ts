// Signed tokens: verification with jose (allow-list, iss, aud, exp required, clock skew, keys by
// kid), the signing-key Secret as kubelet mounts it and its reloads, and EndpointAuthenticator's
// statuses. Tokens are minted with jose in the test, as a product's backend would.
import type { IncomingMessage } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import winston from 'winston';
import type { CompiledEndpoint, EndpointJwt, EndpointParameter } from '../../../../src/plan/endpoint/compile.js';
import { EndpointAuthenticator } from '../../../../src/workers/serve/auth.js';
import {
  importSigningKeys,
  jwkAlgorithm,
  looksLikeJwt,
  SigningKeyStore,
  VerifiedTokens,
  verifyJwt,
  type SigningKey,
} from '../../../../src/workers/serve/jwt.js';
import { RateLimiter } from '../../../../src/workers/serve/rate-limit.js';
import { TokenStore } from '../../../../src/workers/serve/tokens.js';
import { writeTokenSecret } from '../../../fixtures/serve.js';

const quiet = winston.createLogger({ silent: true });
const SECRET = 'an-hs256-secret-of-at-least-32-bytes!!';
const NOW = new Date('2026-06-01T12:00:00Z');
const at = (d: Date) => Math.floor(d.getTime() / 1000);

const jwt: EndpointJwt = { secret: 'signing', issuer: 'https://app.example', audience: 'weir', algorithms: ['HS256', 'RS256', 'ES256'], clockSkewSeconds: 30 };

const p = (name: string, type: string, extra: Partial<EndpointParameter> = {}): EndpointParameter => ({
  name,
  type,
  required: extra.default === undefined,
  ...extra,
});
const ep: CompiledEndpoint = {
  name: 'top_pages',
  namespace: 'web',
  resource: 'top-pages',
  pipe: 'top-pages',
  node: 'ranked',
  sql: 'SELECT 1',
  params: [p('tenant', 'String'), p('limit', 'UInt32', { default: '10' })],
  formats: ['json'],
  limits: { maxExecutionTimeMs: 1000, maxResultRows: 10 },
  auth: { jwt },
  database: 'web',
  version: 'v1',
};

let rsa: { privateKey: CryptoKey; publicKey: CryptoKey; jwk: JWK };
let rsa2: { privateKey: CryptoKey; publicKey: CryptoKey; jwk: JWK };
let ec: { privateKey: CryptoKey; publicKey: CryptoKey; jwk: JWK };
let keys: SigningKey[];

const pair = async (alg: 'RS256' | 'ES256', kid: string) => {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg } };
};

beforeAll(async () => {
  rsa = await pair('RS256', 'rsa-1');
  rsa2 = await pair('RS256', 'rsa-2');
  ec = await pair('ES256', 'ec-1');
  const imported = await importSigningKeys(
    new Map([
      ['secret', SECRET],
      ['jwks.json', JSON.stringify({ keys: [rsa.jwk, ec.jwk] })],
    ]),
  );
  expect(imported.problems).toEqual([]);
  keys = imported.keys;
});

interface MintOptions {
  alg?: 'HS256' | 'RS256' | 'ES256';
  key?: CryptoKey | Uint8Array;
  kid?: string;
  iss?: string;
  aud?: string | string[];
  exp?: number | null;
  nbf?: number;
  claims?: JWTPayload;
}

function mint(o: MintOptions = {}): Promise<string> {
  const alg = o.alg ?? 'HS256';
  const t = new SignJWT({ sub: 'customer-42', 'weir.dev/endpoints': ['top_pages'], ...o.claims })
    .setProtectedHeader({ alg, ...(o.kid ? { kid: o.kid } : {}) })
    .setIssuer(o.iss ?? jwt.issuer)
    .setAudience(o.aud ?? jwt.audience)
    .setIssuedAt(at(NOW) - 10);
  if (o.exp !== null) t.setExpirationTime(o.exp ?? at(NOW) + 3600);
  if (o.nbf !== undefined) t.setNotBefore(o.nbf);
  return t.sign(o.key ?? new TextEncoder().encode(SECRET));
}

const verify = (token: string, k: readonly SigningKey[] = keys, settings: EndpointJwt = jwt) => verifyJwt(token, k, settings, { now: NOW });
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('verifyJwt', () => {
  it('accepts HS256, RS256 and ES256 tokens from the configured keys', async () => {
    expect(await verify(await mint())).toMatchObject({ ok: true, claims: { sub: 'customer-42' } });
    expect(await verify(await mint({ alg: 'RS256', key: rsa.privateKey, kid: 'rsa-1' }))).toMatchObject({ ok: true });
    expect(await verify(await mint({ alg: 'ES256', key: ec.privateKey, kid: 'ec-1' }))).toMatchObject({ ok: true });
    // Without a kid, the keys of the algorithm are tried.
    expect(await verify(await mint({ alg: 'RS256', key: rsa.privateKey }))).toMatchObject({ ok: true });
    // aud as a list holding the expected one.
    expect(await verify(await mint({ aud: ['other', 'weir'] }))).toMatchObject({ ok: true });
  });

  it.each([
    ['expired', { exp: at(NOW) - 31 }, 'the token has expired'],
    ['without exp', { exp: null }, 'the token has no exp; signed tokens must expire'],
    ['for another audience', { aud: 'someone-else' }, "the token's aud is not weir"],
    ['from another issuer', { iss: 'https://evil.example' }, "the token's iss is not https://app.example"],
    ['not valid yet', { nbf: at(NOW) + 60 }, 'the token is not valid yet (nbf)'],
    ['signed with another secret', { key: new TextEncoder().encode('another-secret-of-at-least-32-bytes!!!') }, "the token's signature does not verify"],
  ] as [string, MintOptions, string][])('refuses a token %s', async (_what, o, error) => {
    expect(await verify(await mint(o))).toEqual({ ok: false, error });
  });

  it('allows the clock skew on exp and nbf, and no more', async () => {
    expect(await verify(await mint({ exp: at(NOW) - 29 }))).toMatchObject({ ok: true });
    expect(await verify(await mint({ nbf: at(NOW) + 29 }))).toMatchObject({ ok: true });
    expect(await verify(await mint({ exp: at(NOW) - 5 }), keys, { ...jwt, clockSkewSeconds: 0 })).toEqual({ ok: false, error: 'the token has expired' });
  });

  it('refuses alg none, whatever the payload says', async () => {
    const payload = { sub: 'x', iss: jwt.issuer, aud: jwt.audience, exp: at(NOW) + 60, 'weir.dev/endpoints': '*' };
    for (const token of [`${b64({ alg: 'none' })}.${b64(payload)}.`, `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.c2ln`]) {
      expect(await verify(token)).toEqual({ ok: false, error: 'the token is signed with alg none, which is not accepted (accepted: HS256, RS256, ES256)' });
    }
    expect(await verify(`${b64({ alg: 'NONE' })}.${b64(payload)}.`)).toEqual({
      ok: false,
      error: 'the token is signed with an algorithm, which is not accepted (accepted: HS256, RS256, ES256)',
    });
  });

  it('refuses algorithms outside the allow-list, and the ones the spec leaves out', async () => {
    const hs512 = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS512' })
      .setExpirationTime(at(NOW) + 60)
      .sign(new TextEncoder().encode(SECRET.repeat(2)));
    expect(await verify(hs512)).toMatchObject({ ok: false, error: expect.stringMatching(/^the token is signed with an algorithm, which is not accepted/) });
    expect(await verify(await mint(), keys, { ...jwt, algorithms: ['RS256'] })).toEqual({
      ok: false,
      error: 'the token is signed with alg HS256, which is not accepted (accepted: RS256)',
    });
  });

  it('refuses an RS256 token whose public key is presented as an HS256 secret (key confusion)', async () => {
    // The classic attack: sign HS256 with the RSA public key's text. Only the oct keys verify HS256.
    const confused = await mint({ alg: 'HS256', key: new TextEncoder().encode(JSON.stringify(rsa.jwk)), kid: 'rsa-1' });
    expect(await verify(confused)).toMatchObject({ ok: false });
  });

  it('picks the key by kid, and says so when no key has it', async () => {
    expect(await verify(await mint({ alg: 'RS256', key: rsa2.privateKey, kid: 'rsa-2' }))).toEqual({
      ok: false,
      error: "no RS256 key has the token's kid; the key may have been rotated out",
    });
    expect(await verify(await mint({ alg: 'RS256', key: rsa2.privateKey, kid: 'rsa-1' }))).toEqual({
      ok: false,
      error: "the token's signature does not verify",
    });
    expect(await verify(await mint(), [])).toEqual({ ok: false, error: 'no HS256 key is configured' });
  });

  it.each(['', 'abc', 'a.b', 'a.b.c', '....', `${b64({ alg: 'HS256' })}.not-json.sig`])('refuses malformed %j without throwing', async (token) => {
    expect(await verify(token)).toEqual({
      ok: false,
      error: expect.stringMatching(/^the token(( is not a valid JWT| is signed with an algorithm)|'s signature does not verify)/),
    });
  });

  it('never quotes the token back', async () => {
    const token = await mint({ exp: at(NOW) - 100 });
    const verdict = await verify(token);
    expect(JSON.stringify(verdict)).not.toContain(token.split('.')[2]);
  });
});

describe('importSigningKeys', () => {
  it('reads the HS256 secret and a JWKS, dropping private parts of key pairs', async () => {
    const withPrivate = { ...(await exportJWK(rsa.privateKey)), kid: 'rsa-priv', alg: 'RS256' };
    const r = await importSigningKeys(new Map([['jwks.json', JSON.stringify({ keys: [withPrivate] })]]));
    expect(r.problems).toEqual([]);
    expect(r.keys.map((k) => [k.kid, k.alg, k.source])).toEqual([['rsa-priv', 'RS256', 'jwks.json#rsa-priv']]);
    expect(await verify(await mint({ alg: 'RS256', key: rsa.privateKey, kid: 'rsa-priv' }), r.keys)).toMatchObject({ ok: true });
  });

  it('takes HS256 secrets as oct keys with kids, so that two can overlap during a rotation', async () => {
    const oldSecret = new TextEncoder().encode('old-hs256-secret-of-at-least-32-bytes!!');
    const newSecret = new TextEncoder().encode('new-hs256-secret-of-at-least-32-bytes!!');
    const oct = (kid: string, k: Uint8Array) => ({ kty: 'oct', kid, k: Buffer.from(k).toString('base64url') });
    const r = await importSigningKeys(new Map([['jwks.json', JSON.stringify({ keys: [oct('hs-old', oldSecret), oct('hs-new', newSecret)] })]]));
    expect(r.keys.map((k) => [k.kid, k.alg])).toEqual([
      ['hs-old', 'HS256'],
      ['hs-new', 'HS256'],
    ]);
    expect(await verify(await mint({ key: oldSecret, kid: 'hs-old' }), r.keys)).toMatchObject({ ok: true });
    expect(await verify(await mint({ key: newSecret, kid: 'hs-new' }), r.keys)).toMatchObject({ ok: true });
    expect(await verify(await mint({ key: newSecret, kid: 'hs-old' }), r.keys)).toEqual({ ok: false, error: "the token's signature does not verify" });
  });

  it('skips keys it cannot use, saying which and why', async () => {
    const r = await importSigningKeys(
      new Map([
        ['secret', 'short'],
        [
          'jwks.json',
          JSON.stringify({
            keys: [
              { kty: 'OKP', crv: 'Ed25519', x: 'AA', kid: 'ed' },
              { ...ec.jwk, use: 'enc' },
              { kty: 'EC', crv: 'P-256', kid: 'broken', x: 'AA', y: 'AA' },
              rsa.jwk,
            ],
          }),
        ],
      ]),
    );
    expect(r.keys.map((k) => k.kid)).toEqual(['rsa-1']);
    expect(r.problems).toEqual([
      'secret: an HS256 secret must be at least 32 bytes (RFC 7518 3.2)',
      'jwks.json keys[0] (kid ed): kty OKP is not oct, RSA or EC',
      'jwks.json keys[1] (kid ec-1): use enc, not sig',
      expect.stringMatching(/^jwks\.json keys\[2\] \(kid broken\): /),
    ]);
  });

  it('throws on a JWKS that does not parse', async () => {
    await expect(importSigningKeys(new Map([['jwks.json', '{"keys": [']]))).rejects.toThrow(/^jwks\.json is not JSON/);
    await expect(importSigningKeys(new Map([['jwks.json', '[]']]))).rejects.toThrow('jwks.json must be a JWKS: {"keys": [...]}');
  });

  it.each([
    [{ kty: 'oct' }, 'HS256'],
    [{ kty: 'RSA' }, 'RS256'],
    [{ kty: 'EC', crv: 'P-256' }, 'ES256'],
    [{ kty: 'EC', crv: 'P-384' }, { problem: 'EC keys must be crv P-256 (ES256), not P-384' }],
    [{ kty: 'RSA', alg: 'PS256' }, { problem: 'alg PS256 is not one of HS256, RS256, ES256' }],
    [{ kty: 'oct', alg: 'RS256' }, { problem: 'alg RS256 needs kty RSA, not oct' }],
  ] as [JWK, unknown][])('jwkAlgorithm(%j)', (jwk, expected) => {
    expect(jwkAlgorithm(jwk)).toEqual(expected);
  });
});

describe('SigningKeyStore: the Secret as kubelet mounts it', () => {
  it('loads the keys, swaps them whole on rotation, keeps them through a JWKS that does not parse, and drops them with the Secret', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-keys-'));
    const store = new SigningKeyStore(dir, () => ['signing'], quiet);
    await store.reload();
    expect(store.keys('signing')).toEqual([]);
    writeTokenSecret(dir, 'signing', { 'jwks.json': JSON.stringify({ keys: [rsa.jwk] }) });
    await store.reload();
    expect(store.keys('signing').map((k) => k.kid)).toEqual(['rsa-1']);
    const before = store.keys('signing');
    await store.reload();
    expect(store.keys('signing')).toBe(before); // nothing changed: nothing imported again
    writeTokenSecret(dir, 'signing', { 'jwks.json': JSON.stringify({ keys: [rsa.jwk, rsa2.jwk] }) });
    await store.reload();
    expect(store.keys('signing').map((k) => k.kid)).toEqual(['rsa-1', 'rsa-2']);
    writeTokenSecret(dir, 'signing', { 'jwks.json': '{"keys": [' });
    await store.reload();
    expect(store.keys('signing').map((k) => k.kid)).toEqual(['rsa-1', 'rsa-2']);
    const other = new SigningKeyStore(join(dir, 'nothing'), () => ['signing'], quiet);
    await other.reload();
    expect(other.keys('signing')).toEqual([]);
  });

  it('reads nothing without --tokens-dir', async () => {
    const store = new SigningKeyStore(undefined, () => ['signing'], quiet);
    await store.reload();
    expect(store.keys('signing')).toEqual([]);
  });
});

describe('VerifiedTokens: a token verified once, while its keys and exp allow', () => {
  const later = (s: number) => new Date(NOW.getTime() + s * 1000);

  it('answers a repeated token from the cache, with the same claims', async () => {
    const cache = new VerifiedTokens();
    const token = await mint({ claims: { 'weir.dev/params': { tenant: 'acme' } } });
    const first = await cache.verify(token, keys, jwt, { now: NOW });
    expect(first).toMatchObject({ ok: true, claims: { sub: 'customer-42', 'weir.dev/params': { tenant: 'acme' } } });
    expect(cache.size).toBe(1);
    // A different secret would fail the signature: equal claims show the check was not made again.
    expect(await cache.verify(token, keys, jwt, { now: NOW })).toEqual(first);
  });

  it('refuses a cached token once it expires, with the same skew as jose', async () => {
    const cache = new VerifiedTokens();
    const token = await mint({ exp: at(NOW) + 60 });
    expect((await cache.verify(token, keys, jwt, { now: NOW })).ok).toBe(true);
    expect((await cache.verify(token, keys, jwt, { now: later(60 + 29) })).ok).toBe(true);
    expect(await cache.verify(token, keys, jwt, { now: later(60 + 30) })).toEqual({ ok: false, error: 'the token has expired' });
    expect(cache.size).toBe(0);
  });

  it('checks again when the keys change: a rotated-out key no longer verifies', async () => {
    const cache = new VerifiedTokens();
    const token = await mint({ alg: 'RS256', key: rsa.privateKey, kid: 'rsa-1' });
    expect((await cache.verify(token, keys, jwt, { now: NOW })).ok).toBe(true);
    const rotated = (await importSigningKeys(new Map([['jwks.json', JSON.stringify({ keys: [rsa2.jwk] })]]))).keys;
    expect(await cache.verify(token, rotated, jwt, { now: NOW })).toEqual({
      ok: false,
      error: "no RS256 key has the token's kid; the key may have been rotated out",
    });
    // And other settings (a new config) are checked anew too.
    expect(await cache.verify(token, keys, { ...jwt, audience: 'other' }, { now: NOW })).toEqual({ ok: false, error: "the token's aud is not other" });
  });

  it('keeps no refusal and at most max entries, dropping the least recently used', async () => {
    const cache = new VerifiedTokens(2);
    const [a, b, c] = await Promise.all([mint({ claims: { jti: 'a' } }), mint({ claims: { jti: 'b' } }), mint({ claims: { jti: 'c' } })]);
    await cache.verify(await mint({ exp: at(NOW) - 100 }), keys, jwt, { now: NOW });
    expect(cache.size).toBe(0);
    for (const t of [a, b, a, c]) await cache.verify(t ?? '', keys, jwt, { now: NOW });
    expect(cache.size).toBe(2);
  });
});

describe('looksLikeJwt', () => {
  it.each([
    ['a.b.c', true],
    ['a.b.', true],
    ['static-token-123', false],
    ['a.b', false],
    ['a.b.c.d', false],
    ['a+b.c.d', false],
  ])('%s → %s', (t, ok) => expect(looksLikeJwt(t)).toBe(ok));
});

describe('EndpointAuthenticator', () => {
  const request = (token?: string) => ({ headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }) as IncomingMessage;
  const url = new URL('http://x/v0/pipes/top_pages.json');
  let now = 0;
  const make = (endpoint: CompiledEndpoint = ep) => {
    const tokens = { match: (secret: string, t: string) => (secret === 'static' && t === 'static-token' ? 'reader' : undefined) } as Pick<TokenStore, 'match'>;
    const authenticator = new EndpointAuthenticator({ tokens, keys: { keys: () => keys }, tokenLimiter: new RateLimiter(() => now), now: () => NOW });
    return (token?: string) => authenticator.admit(request(token), url, endpoint);
  };

  it('lets endpoints without auth through untouched', async () => {
    expect(await make({ ...ep, auth: undefined } as unknown as CompiledEndpoint)()).toBeUndefined();
  });

  it('answers 401 without a token, and with one that does not verify', async () => {
    const admit = make();
    expect((await admit())?.refused).toMatchObject({ status: 401, error: 'top_pages needs a token: send Authorization: Bearer <token> (or ?token=<token>)' });
    expect((await admit(await mint({ exp: at(NOW) - 3600 })))?.refused).toMatchObject({
      status: 401,
      error: 'the token has expired',
      headers: { 'WWW-Authenticate': 'Bearer realm="weir", error="invalid_token"' },
    });
    expect((await admit('static-token'))?.refused).toMatchObject({ status: 401, error: 'the token is not a JWT' });
  });

  it('admits a verified token with its sub and fixed parameters; refuses another endpoint with 403', async () => {
    const admit = make();
    const admitted = await admit(await mint({ claims: { 'weir.dev/params': { tenant: 'acme' } } }));
    expect(admitted?.refused).toBeUndefined();
    expect(admitted?.token).toEqual({ kind: 'jwt', id: 'customer-42' });
    expect([...(admitted?.fixed ?? new Map()).keys()]).toEqual(['tenant']);
    const other = await admit(await mint({ claims: { 'weir.dev/endpoints': ['other'] } }));
    expect(other?.refused).toMatchObject({ status: 403, headers: { 'WWW-Authenticate': 'Bearer realm="weir", error="insufficient_scope"' } });
    // The refusal is attributed: the token verified.
    expect(other?.token).toEqual({ kind: 'jwt', id: 'customer-42' });
    const wrongType = await admit(await mint({ claims: { 'weir.dev/params': { limit: 'all' } } }));
    expect(wrongType?.refused).toMatchObject({ status: 401 });
  });

  it('takes static tokens next to signed ones, by their key name', async () => {
    const both = make({ ...ep, auth: { tokensSecret: 'static', jwt } });
    expect(await both('static-token')).toEqual({ token: { kind: 'static', id: 'reader' } });
    expect((await both('other-static'))?.refused).toMatchObject({ status: 403, error: 'the token is not allowed to call top_pages' });
    expect((await both(await mint()))?.token).toEqual({ kind: 'jwt', id: 'customer-42' });
  });

  it("answers 429 with Retry-After past the token's weir.dev/rps, per sub", async () => {
    const admit = make();
    now = 0;
    const a = await mint({ claims: { 'weir.dev/rps': 2 } });
    const b = await mint({ claims: { sub: 'customer-7', 'weir.dev/rps': 2 } });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await admit(a))?.refused?.status ?? 200);
    expect(statuses).toEqual([200, 200, 429]);
    expect((await admit(a))?.refused).toMatchObject({
      status: 429,
      retryAfterSeconds: 1,
      error: 'the token may make at most 2 requests per second (weir.dev/rps); slow down',
    });
    // Another sub has its own bucket; a new token of the same sub shares it.
    expect((await admit(b))?.refused).toBeUndefined();
    expect((await admit(await mint({ claims: { 'weir.dev/rps': 2, jti: 'new' } })))?.refused?.status).toBe(429);
    now = 600;
    expect((await admit(a))?.refused).toBeUndefined();
  });
});
