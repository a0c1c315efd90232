// `weir token create`: mints a signed endpoint token (JWT) the way a product's backend would, for
// trying an Endpoint with spec.auth.jwt locally and in tests. The key file is what the Endpoint's
// jwt Secret holds (an HS256 secret, as in its key `secret`), or the private half of a key whose
// public half is in its `jwks.json` (a PKCS#8 PEM, or a private JWK).
import { readFileSync } from 'node:fs';
import { importJWK, importPKCS8, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { JwtAlgorithm } from '../api/endpoint.js';
import { CLAIM_ENDPOINTS, CLAIM_PARAMS, CLAIM_RPS } from '../workers/serve/claims.js';
import { jwkAlgorithm } from '../workers/serve/jwt.js';

export interface TokenFlags {
  endpoint: string[];
  param?: string[];
  ttl: string;
  secretFile: string;
  issuer: string;
  audience: string;
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
    return { key: (await importJWK(jwk, a)) as CryptoKey | Uint8Array, alg: a, ...(typeof jwk.kid === 'string' ? { kid: jwk.kid } : {}) };
  }
  if (alg !== undefined && alg !== 'HS256') throw new Error(`${file}: --alg ${alg} needs a private key (PKCS#8 PEM or JWK), not a shared secret`);
  // As weir serve reads the Secret's key `secret`: trimmed.
  if (Buffer.byteLength(trimmed) < 32) throw new Error(`${file}: an HS256 secret must be at least 32 bytes`);
  return { key: new TextEncoder().encode(trimmed), alg: 'HS256' };
}

/** The token `weir token create` prints. */
export async function createToken(flags: TokenFlags, now: Date = new Date()): Promise<string> {
  const endpoints = flags.endpoint.includes('*') ? '*' : flags.endpoint;
  const params = Object.fromEntries((flags.param ?? []).map(paramClaim));
  const ttl = ttlSeconds(flags.ttl);
  if (flags.rps !== undefined && (!Number.isFinite(flags.rps) || flags.rps <= 0)) throw new Error('--rps: expected a positive number');
  if (flags.rps !== undefined && flags.sub === undefined) throw new Error('--rps needs --sub: the rate is counted per sub');
  const { key, alg, kid } = await signingKey(readFileSync(flags.secretFile, 'utf8'), flags.alg, flags.secretFile);
  const iat = Math.floor(now.getTime() / 1000);
  const jwt = new SignJWT({
    [CLAIM_ENDPOINTS]: endpoints,
    ...(Object.keys(params).length > 0 ? { [CLAIM_PARAMS]: params } : {}),
    ...(flags.rps !== undefined ? { [CLAIM_RPS]: flags.rps } : {}),
  })
    .setProtectedHeader({ alg, typ: 'JWT', ...((flags.kid ?? kid) !== undefined ? { kid: flags.kid ?? kid } : {}) })
    .setIssuer(flags.issuer)
    .setAudience(flags.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl);
  if (flags.sub !== undefined) jwt.setSubject(flags.sub);
  return jwt.sign(key);
}
