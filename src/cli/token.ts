// `weir token create`: mints a signed endpoint token (JWT) the way a product's backend would, for
// trying an Endpoint with spec.auth.jwt locally and in tests. The key file is what the Endpoint's
// jwt Secret holds (an HS256 secret, as in its key `secret`), or the private half of a key whose
// public half is in its `jwks.json` (a PKCS#8 PEM, or a private JWK). With `-f DIR`, the issuer, the
// audience and the HS256 secret come from the project folder (its Endpoint and its `kind: Secret`).
import { readFileSync } from 'node:fs';
import { importJWK, importPKCS8, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { Endpoint, JwtAlgorithm } from '../api/endpoint.js';
import { clickhouseName } from '../api/names.js';
import { formatValidationError } from '../api/validate.js';
import { loadResources } from './load.js';
import { HS256_SECRET_KEY } from '../workers/serve/jwt.js';
import { secretValues } from '../workers/serve/local-auth.js';
import { CLAIM_ENDPOINTS, CLAIM_PARAMS, CLAIM_RPS } from '../workers/serve/claims.js';
import { jwkAlgorithm } from '../workers/serve/jwt.js';

export interface TokenFlags {
  endpoint: string[];
  param?: string[];
  ttl: string;
  /** A project folder: issuer, audience and the HS256 secret default to its Endpoint's and Secret's. */
  filename?: string;
  namespace?: string;
  secretFile?: string;
  issuer?: string;
  audience?: string;
  sub?: string;
  rps?: number;
  kid?: string;
  alg?: JwtAlgorithm;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90`, `30s`, `15m`, `1h`, `7d` → seconds. */
export function ttlSeconds(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  const seconds = m ? Number(m[1]) * (UNITS[m[2] || 's'] ?? 1) : NaN;
  if (!Number.isSafeInteger(seconds) || seconds <= 0) throw new Error(`--ttl ${text}: expected a duration such as 90s, 15m, 1h or 7d`);
  return seconds;
}

/** `tenant=acme` → ['tenant', 'acme']; a value in [...] is a JSON array (`ids=[1,2]`). */
export function paramClaim(text: string): [string, unknown] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error(`--param ${text}: expected name=value`);
  const name = text.slice(0, eq);
  const value = text.slice(eq + 1);
  if (!value.trimStart().startsWith('[')) return [name, value];
  try {
    return [name, JSON.parse(value) as unknown];
  } catch {
    throw new Error(`--param ${name}: ${value} is not a JSON array`);
  }
}

/** The signing key of a key file, the algorithm it signs with, and its kid when the file names one. */
export async function signingKey(
  text: string,
  alg: JwtAlgorithm | undefined,
  file: string,
): Promise<{ key: CryptoKey | Uint8Array; alg: JwtAlgorithm; kid?: string }> {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) {
    if (!/-----BEGIN PRIVATE KEY-----/.test(trimmed))
      throw new Error(`${file}: a PEM key must be PKCS#8 (BEGIN PRIVATE KEY); convert it with openssl pkcs8 -topk8 -nocrypt`);
    const candidates: JwtAlgorithm[] = alg ? [alg] : ['RS256', 'ES256'];
    for (const a of candidates) {
      try {
        return { key: await importPKCS8(trimmed, a), alg: a };
      } catch {
        // the next algorithm, or the error below
      }
    }
    throw new Error(`${file}: not a ${candidates.join(' or ')} private key`);
  }
  if (trimmed.startsWith('{')) {
    const jwk = JSON.parse(trimmed) as JWK;
    const fromJwk = jwkAlgorithm(jwk);
    if (typeof fromJwk !== 'string') throw new Error(`${file}: ${fromJwk.problem}`);
    const a = alg ?? fromJwk;
    if (a !== 'HS256' && jwk.d === undefined) throw new Error(`${file}: the JWK has no private part (d); signing needs the private key`);
    return { key: await importJWK(jwk, a), alg: a, ...(typeof jwk.kid === 'string' ? { kid: jwk.kid } : {}) };
  }
  if (alg !== undefined && alg !== 'HS256') throw new Error(`${file}: --alg ${alg} needs a private key (PKCS#8 PEM or JWK), not a shared secret`);
  // As weir serve reads the Secret's key `secret`: trimmed.
  if (Buffer.byteLength(trimmed) < 32) throw new Error(`${file}: an HS256 secret must be at least 32 bytes`);
  return { key: new TextEncoder().encode(trimmed), alg: 'HS256' };
}

/** What a project folder says about the endpoints' signed tokens: iss, aud, and the HS256 secret if the folder holds it. */
export function projectJwt(dir: string, endpoints: readonly string[], namespace = 'default'): { issuer: string; audience: string; secret?: string } {
  const loaded = loadResources(dir, { defaultNamespace: namespace });
  if (loaded.errors.length > 0) throw new Error(`${dir}: ${loaded.errors.map(formatValidationError).join('; ')}`);
  const all = loaded.resources.map((r) => r.object as unknown as Endpoint).filter((o) => o.kind === 'Endpoint');
  const named = endpoints.includes('*')
    ? all.filter((e) => e.spec.auth?.jwt)
    : all.filter((e) => endpoints.some((n) => clickhouseName(n) === clickhouseName(e.metadata.name)));
  const missing = endpoints.filter((n) => n !== '*' && !all.some((e) => clickhouseName(n) === clickhouseName(e.metadata.name)));
  if (missing.length > 0)
    throw new Error(`${dir} holds no Endpoint ${missing.join(', ')} (Endpoints: ${all.map((e) => e.metadata.name).join(', ') || 'none'})`);
  const withoutJwt = named.filter((e) => !e.spec.auth?.jwt).map((e) => e.metadata.name);
  if (withoutJwt.length > 0) throw new Error(`Endpoint ${withoutJwt.join(', ')} in ${dir} has no spec.auth.jwt: it takes no signed tokens`);
  const jwts = named.flatMap((e) => (e.spec.auth?.jwt ? [e.spec.auth.jwt] : []));
  const first = jwts[0];
  if (!first) throw new Error(`no Endpoint in ${dir} has spec.auth.jwt`);
  if (jwts.some((j) => j.issuer !== first.issuer || j.audience !== first.audience || j.secretRef.name !== first.secretRef.name)) {
    throw new Error('the Endpoints named expect different issuers, audiences or signing Secrets: mint one token per Endpoint');
  }
  const secret = loaded.others.map((o) => secretValues(o.object)).find((s) => s?.name === first.secretRef.name);
  const hs = secret?.values.get(HS256_SECRET_KEY);
  return { issuer: first.issuer, audience: first.audience, ...(hs !== undefined ? { secret: hs } : {}) };
}

/** The token `weir token create` prints. */
export async function createToken(flags: TokenFlags, now: Date = new Date()): Promise<string> {
  const project = flags.filename !== undefined ? projectJwt(flags.filename, flags.endpoint, flags.namespace) : undefined;
  const issuer = flags.issuer ?? project?.issuer;
  const audience = flags.audience ?? project?.audience;
  if (issuer === undefined || audience === undefined) throw new Error('pass --issuer and --audience, or -f with the project folder whose Endpoint sets them');
  const keyText = flags.secretFile !== undefined ? readFileSync(flags.secretFile, 'utf8') : project?.secret;
  if (keyText === undefined) {
    throw new Error(
      flags.filename !== undefined
        ? `pass --secret-file: ${flags.filename} holds no Secret with key ${HS256_SECRET_KEY} for these Endpoints`
        : 'pass --secret-file (or -f with a project folder holding the signing Secret)',
    );
  }
  const endpoints = flags.endpoint.includes('*') ? '*' : flags.endpoint;
  const params = Object.fromEntries((flags.param ?? []).map(paramClaim));
  const ttl = ttlSeconds(flags.ttl);
  if (flags.rps !== undefined && (!Number.isFinite(flags.rps) || flags.rps <= 0)) throw new Error('--rps: expected a positive number');
  if (flags.rps !== undefined && flags.sub === undefined) throw new Error('--rps needs --sub: the rate is counted per sub');
  const { key, alg, kid } = await signingKey(keyText, flags.alg, flags.secretFile ?? `the Secret in ${flags.filename ?? ''}`);
  const iat = Math.floor(now.getTime() / 1000);
  const jwt = new SignJWT({
    [CLAIM_ENDPOINTS]: endpoints,
    ...(Object.keys(params).length > 0 ? { [CLAIM_PARAMS]: params } : {}),
    ...(flags.rps !== undefined ? { [CLAIM_RPS]: flags.rps } : {}),
  })
    .setProtectedHeader({ alg, typ: 'JWT', ...((flags.kid ?? kid) !== undefined ? { kid: flags.kid ?? kid } : {}) })
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl);
  if (flags.sub !== undefined) jwt.setSubject(flags.sub);
  return jwt.sign(key);
}
