// `weir token create`: the token it prints verifies with the key the Endpoint's Secret holds and
// carries the scope, fixed parameters, rate, sub and expiry asked for.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader, exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { createToken, paramClaim, projectJwt, ttlSeconds, type TokenFlags } from '../../../src/cli/token.js';
import { importSigningKeys, verifyJwt } from '../../../src/workers/serve/jwt.js';

const dir = mkdtempSync(join(tmpdir(), 'weir-token-cli-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const SECRET = 'an-hs256-secret-of-at-least-32-bytes!!';
const NOW = new Date('2026-06-01T12:00:00Z');
const jwt = {
  secret: 's',
  issuer: 'https://app.example',
  audience: 'weir',
  algorithms: ['HS256', 'RS256', 'ES256'] as ('HS256' | 'RS256' | 'ES256')[],
  clockSkewSeconds: 0,
};
const flags = (extra: Partial<TokenFlags> = {}): TokenFlags => ({
  endpoint: ['top_pages'],
  ttl: '1h',
  secretFile: file('hs.secret', `${SECRET}\n`),
  issuer: jwt.issuer,
  audience: jwt.audience,
  ...extra,
});

describe('weir token create', () => {
  it('mints an HS256 token the Secret key `secret` verifies, with scope, fixed parameters, rate, sub and exp', async () => {
    const token = await createToken(flags({ param: ['tenant=acme', 'ids=[1,2]'], sub: 'customer-42', rps: 5 }), NOW);
    const { keys } = await importSigningKeys(new Map([['secret', SECRET]]));
    const verdict = await verifyJwt(token, keys, jwt, { now: new Date(NOW.getTime() + 3599_000) });
    expect(verdict).toEqual({
      ok: true,
      claims: {
        'weir.dev/endpoints': ['top_pages'],
        'weir.dev/params': { tenant: 'acme', ids: [1, 2] },
        'weir.dev/rps': 5,
        sub: 'customer-42',
        iss: jwt.issuer,
        aud: jwt.audience,
        iat: NOW.getTime() / 1000,
        exp: NOW.getTime() / 1000 + 3600,
      },
    });
    expect(await verifyJwt(token, keys, jwt, { now: new Date(NOW.getTime() + 3601_000) })).toEqual({ ok: false, error: 'the token has expired' });
  });

  it("scopes '*' as any endpoint", async () => {
    const token = await createToken(flags({ endpoint: ['*'] }), NOW);
    const { keys } = await importSigningKeys(new Map([['secret', SECRET]]));
    expect(await verifyJwt(token, keys, jwt, { now: NOW })).toMatchObject({ ok: true, claims: { 'weir.dev/endpoints': '*' } });
  });

  it('signs RS256 with a PKCS#8 PEM and ES256 with a private JWK (its kid in the header)', async () => {
    const rsa = await generateKeyPair('RS256', { extractable: true });
    const ec = await generateKeyPair('ES256', { extractable: true });
    const pem = file('rsa.pem', await exportPKCS8(rsa.privateKey));
    const ecJwk = file('ec.jwk', JSON.stringify({ ...(await exportJWK(ec.privateKey)), kid: 'ec-1' }));
    const jwks = JSON.stringify({
      keys: [
        { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1' },
        { ...(await exportJWK(ec.publicKey)), kid: 'ec-1' },
      ],
    });
    const { keys } = await importSigningKeys(new Map([['jwks.json', jwks]]));
    const rs = await createToken(flags({ secretFile: pem, kid: 'rsa-1' }), NOW);
    expect(decodeProtectedHeader(rs)).toEqual({ alg: 'RS256', typ: 'JWT', kid: 'rsa-1' });
    expect(await verifyJwt(rs, keys, jwt, { now: NOW })).toMatchObject({ ok: true });
    const es = await createToken(flags({ secretFile: ecJwk }), NOW);
    expect(decodeProtectedHeader(es)).toEqual({ alg: 'ES256', typ: 'JWT', kid: 'ec-1' });
    expect(await verifyJwt(es, keys, jwt, { now: NOW })).toMatchObject({ ok: true });
  });

  it('refuses what would make a useless or weak token', async () => {
    await expect(createToken(flags({ secretFile: file('short', 'short') }))).rejects.toThrow(/an HS256 secret must be at least 32 bytes/);
    await expect(createToken(flags({ rps: 5 }))).rejects.toThrow('--rps needs --sub: the rate is counted per sub');
    await expect(createToken(flags({ alg: 'RS256' }))).rejects.toThrow(/--alg RS256 needs a private key/);
    const pub = await generateKeyPair('ES256', { extractable: true });
    await expect(createToken(flags({ secretFile: file('pub.jwk', JSON.stringify(await exportJWK(pub.publicKey))) }))).rejects.toThrow(/no private part/);
  });

  it.each([
    ['90', 90],
    ['30s', 30],
    ['15m', 900],
    ['1h', 3600],
    ['7d', 604800],
  ])('reads --ttl %s as %d seconds', (text, seconds) => expect(ttlSeconds(text)).toBe(seconds));

  it.each(['', '0', '1w', '-5m', '1.5h'])('refuses --ttl %j', (text) => expect(() => ttlSeconds(text)).toThrow(/^--ttl/));

  it('reads --param as name=value, a [..] value as a JSON array', () => {
    expect(paramClaim('tenant=acme')).toEqual(['tenant', 'acme']);
    expect(paramClaim('q=a=b')).toEqual(['q', 'a=b']);
    expect(paramClaim('ids=[1, 2]')).toEqual(['ids', [1, 2]]);
    expect(() => paramClaim('=x')).toThrow('--param =x: expected name=value');
    expect(() => paramClaim('ids=[1,')).toThrow('--param ids: [1, is not a JSON array');
  });
});

describe('weir token create -f DIR', () => {
  /** The example project with signed tokens on top-pages and its signing Secret in the folder. */
  const project = (withSecret: boolean) => {
    const p = mkdtempSync(join(tmpdir(), 'weir-token-project-'));
    cpSync(join(process.cwd(), 'manifests/examples/web-analytics'), p, { recursive: true });
    const endpoints = join(p, 'endpoints.yaml');
    writeFileSync(
      endpoints,
      readFileSync(endpoints, 'utf8').replace(
        'tokensSecretRef: {name: top-pages-readers}',
        'tokensSecretRef: {name: top-pages-readers}\n    jwt: {secretRef: {name: analytics-signing}, issuer: "https://app.local", audience: weir-dev}',
      ),
    );
    if (withSecret)
      writeFileSync(
        join(p, 'secret.yaml'),
        `apiVersion: v1\nkind: Secret\nmetadata: {name: analytics-signing, namespace: web}\nstringData: {secret: ${SECRET}}\n`,
      );
    return p;
  };
  const local = { ...jwt, issuer: 'https://app.local', audience: 'weir-dev' };

  it("takes issuer, audience and the HS256 secret from the folder's Endpoint and Secret", async () => {
    const dir = project(true);
    expect(projectJwt(dir, ['top_pages'])).toEqual({ issuer: 'https://app.local', audience: 'weir-dev', secret: SECRET });
    const token = await createToken({ endpoint: ['top_pages'], ttl: '5m', filename: dir, param: ['tenant=acme'] }, NOW);
    const { keys } = await importSigningKeys(new Map([['secret', SECRET]]));
    expect(await verifyJwt(token, keys, local, { now: NOW })).toMatchObject({ ok: true, claims: { 'weir.dev/params': { tenant: 'acme' } } });
  });

  it('says what is missing: the Endpoint, its jwt, or the key', async () => {
    const dir = project(false);
    await expect(createToken({ endpoint: ['top_pages'], ttl: '5m', filename: dir })).rejects.toThrow(
      `pass --secret-file: ${dir} holds no Secret with key secret for these Endpoints`,
    );
    expect(() => projectJwt(dir, ['nope'])).toThrow(/holds no Endpoint nope \(Endpoints: top-pages\)/);
    expect(() => projectJwt(join(process.cwd(), 'manifests/examples/web-analytics'), ['top-pages'])).toThrow(
      /Endpoint top-pages in .* has no spec.auth.jwt: it takes no signed tokens/,
    );
    // --secret-file and the flags still win over the folder.
    const token = await createToken({ endpoint: ['top_pages'], ttl: '5m', filename: dir, secretFile: flags().secretFile ?? '', audience: 'other' }, NOW);
    const { keys } = await importSigningKeys(new Map([['secret', SECRET]]));
    expect(await verifyJwt(token, keys, { ...local, audience: 'other' }, { now: NOW })).toMatchObject({ ok: true });
  });
});
