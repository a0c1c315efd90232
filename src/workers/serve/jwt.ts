// Signed endpoint tokens (JWT, spec.auth.jwt). The verification keys come from a Secret mounted
// like the static tokens' (`<tokens-dir>/<secret>/`): key `secret` holds an HS256 shared secret,
// key `jwks.json` a JWKS (RSA and P-256 public keys for RS256/ES256, or oct keys for HS256), each
// chosen by the token's `kid`. The directory is read again on the static tokens' interval and the
// imported key set swapped whole; a JWKS that does not parse keeps the previous set (a rotation
// half-typed by hand must not lock every customer out), a Secret that is gone empties it.
//
// Verification is jose's jwtVerify: the allow-list (HS256, RS256, ES256, narrowed by the spec),
// iss and aud, exp required, a small clock skew. `alg: none` never verifies. What a refusal says
// names the check that failed, never the token or any part of it.
import { createHash } from 'node:crypto';
import { decodeProtectedHeader, errors, importJWK, jwtVerify, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { JWT_ALGORITHMS, type JwtAlgorithm } from '../../api/endpoint.js';
import type { EndpointJwt } from '../../plan/endpoint/compiled.js';
import { errorMessage, type Logger } from '../../runtime/log.js';
import { MountedSecrets, readSecretDir } from './tokens.js';
import { join } from 'node:path';

/** The Secret keys weir reads: an HS256 shared secret, and a JWKS. */
export const HS256_SECRET_KEY = 'secret';
export const JWKS_KEY = 'jwks.json';

/** One verification key, imported. */
export interface SigningKey {
  kid?: string;
  /** The algorithm it verifies. */
  alg: JwtAlgorithm;
  key: CryptoKey | Uint8Array;
  /** Where it came from, for the log: `secret` or `jwks.json#<kid>`. */
  source: string;
}

const KTY_OF: Record<JwtAlgorithm, string> = { HS256: 'oct', RS256: 'RSA', ES256: 'EC' };
/** Private members of RSA and EC JWKs: verification needs none, so they are dropped before import. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth'];

/** The algorithm a JWK verifies, or why weir cannot use it. */
export function jwkAlgorithm(jwk: JWK): JwtAlgorithm | { problem: string } {
  if (jwk.alg !== undefined) {
    if (!(JWT_ALGORITHMS as readonly string[]).includes(jwk.alg)) return { problem: `alg ${jwk.alg} is not one of ${JWT_ALGORITHMS.join(', ')}` };
    const alg = jwk.alg as JwtAlgorithm;
    if (KTY_OF[alg] !== jwk.kty) return { problem: `alg ${alg} needs kty ${KTY_OF[alg]}, not ${String(jwk.kty)}` };
    if (alg === 'ES256' && jwk.crv !== 'P-256') return { problem: `ES256 needs crv P-256, not ${String(jwk.crv)}` };
    return alg;
  }
  if (jwk.kty === 'oct') return 'HS256';
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'EC') return jwk.crv === 'P-256' ? 'ES256' : { problem: `EC keys must be crv P-256 (ES256), not ${String(jwk.crv)}` };
  return { problem: `kty ${String(jwk.kty)} is not oct, RSA or EC` };
}

/** The keys of a Secret's files; problems name the key and say what is wrong, never a key's material. */
export async function importSigningKeys(files: ReadonlyMap<string, string>): Promise<{ keys: SigningKey[]; problems: string[] }> {
  const keys: SigningKey[] = [];
  const problems: string[] = [];
  const secret = files.get(HS256_SECRET_KEY);
  if (secret !== undefined) {
    if (Buffer.byteLength(secret) < 32) problems.push(`${HS256_SECRET_KEY}: an HS256 secret must be at least 32 bytes (RFC 7518 3.2)`);
    // Imported once as a CryptoKey: jose would import raw bytes again on every verification.
    else keys.push({ alg: 'HS256', key: await importJWK({ kty: 'oct', k: Buffer.from(secret).toString('base64url') }, 'HS256'), source: HS256_SECRET_KEY });
  }
  const jwksText = files.get(JWKS_KEY);
  if (jwksText !== undefined) {
    let jwks: unknown;
    try {
      jwks = JSON.parse(jwksText);
    } catch (e) {
      throw new Error(`${JWKS_KEY} is not JSON (${errorMessage(e)})`);
    }
    const list = (jwks as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(list)) throw new Error(`${JWKS_KEY} must be a JWKS: {"keys": [...]}`);
    for (const [i, entry] of list.entries()) {
      const jwk = entry as JWK;
      const where = `${JWKS_KEY} keys[${i}]${typeof jwk?.kid === 'string' ? ` (kid ${jwk.kid})` : ''}`;
      if (typeof jwk !== 'object' || jwk === null) {
        problems.push(`${where}: not an object`);
        continue;
      }
      if (jwk.use !== undefined && jwk.use !== 'sig') {
        problems.push(`${where}: use ${String(jwk.use)}, not sig`);
        continue;
      }
      const alg = jwkAlgorithm(jwk);
      if (typeof alg !== 'string') {
        problems.push(`${where}: ${alg.problem}`);
        continue;
      }
      const publicPart: JWK = Object.fromEntries(Object.entries(jwk).filter(([k]) => alg === 'HS256' || !PRIVATE_MEMBERS.includes(k)));
      try {
        const key = await importJWK({ ...publicPart, ext: true }, alg);
        keys.push({ ...(typeof jwk.kid === 'string' ? { kid: jwk.kid } : {}), alg, key, source: `${JWKS_KEY}#${jwk.kid ?? i}` });
      } catch (e) {
        problems.push(`${where}: ${errorMessage(e)}`);
      }
    }
  }
  return { keys, problems };
}

interface SecretKeys {
  keys: SigningKey[];
  /** Digest of the files read: a reload that changed nothing imports and logs nothing. */
  fingerprint: string;
  problem?: string;
}

/** Verification keys per Secret name, read from `<dir>/<secret>/` for the Secrets `secrets()` names. */
export class SigningKeyStore extends MountedSecrets {
  private sets = new Map<string, SecretKeys>();

  constructor(
    private readonly dir: string | undefined,
    private readonly secrets: () => Iterable<string>,
    private readonly log: Logger,
  ) {
    super();
  }

  keys(secret: string): readonly SigningKey[] {
    return this.sets.get(secret)?.keys ?? [];
  }

  protected async readAll(): Promise<void> {
    const next = new Map<string, SecretKeys>();
    for (const secret of new Set(this.secrets())) next.set(secret, await this.readSecret(secret, this.sets.get(secret)));
    this.sets = next;
  }

  private async readSecret(secret: string, before: SecretKeys | undefined): Promise<SecretKeys> {
    const unreadable = (problem: string): SecretKeys => {
      if (problem !== before?.problem) {
        this.log.error('endpoint signing keys unreadable: every signed token for the endpoints using this Secret gets 401 until it can be read', {
          secret,
          problem,
        });
      }
      return { keys: [], fingerprint: '', problem };
    };
    if (this.dir === undefined) return unreadable('weir serve was started without --tokens-dir');
    const dir = join(this.dir, secret);
    let files: Map<string, string>;
    try {
      const { keys, tokens } = await readSecretDir(dir);
      files = new Map(keys.map((k, i) => [k, tokens[i] ?? '']));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return unreadable(code === 'ENOENT' ? `${dir} does not exist: mount the Secret ${secret} there` : `${dir}: ${errorMessage(e)}`);
    }
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([...files]))
      .digest('hex');
    if (before && before.problem === undefined && before.fingerprint === fingerprint) return before;
    if (!files.has(HS256_SECRET_KEY) && !files.has(JWKS_KEY)) return unreadable(`${dir} holds neither ${HS256_SECRET_KEY} (HS256) nor ${JWKS_KEY} (a JWKS)`);
    let imported: { keys: SigningKey[]; problems: string[] };
    try {
      imported = await importSigningKeys(files);
    } catch (e) {
      // A JWKS that does not parse: the keys that verified a moment ago still do.
      if (before && before.keys.length > 0) {
        this.log.error('endpoint signing keys not reloaded: the Secret does not parse; the previous keys stay in use', { secret, problem: errorMessage(e) });
        return { ...before, fingerprint };
      }
      return unreadable(errorMessage(e));
    }
    for (const problem of imported.problems) this.log.warn('endpoint signing key skipped', { secret, problem });
    this.log.info('endpoint signing keys loaded', {
      secret,
      keys: imported.keys.map((k) => ({ source: k.source, alg: k.alg, ...(k.kid ? { kid: k.kid } : {}) })),
    });
    if (imported.keys.length === 0) this.log.warn('endpoint signing keys: the Secret holds no usable key; every signed token gets 401', { secret });
    return { keys: imported.keys, fingerprint };
  }
}

/** A token that verified: its claims. Or why not, as the 401 says it. */
export type JwtVerdict = { ok: true; claims: JWTPayload } | { ok: false; error: string };

export interface VerifyOptions {
  /** Clock for exp and nbf; tests pass one in. */
  now?: Date;
}

/** A compact JWS has three base64url parts; anything else is not one (and may be a static token). */
export const looksLikeJwt = (token: string): boolean => /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);

/** Checks a token against `keys` and the endpoint's jwt settings. Never throws. */
export async function verifyJwt(token: string, keys: readonly SigningKey[], jwt: EndpointJwt, opts: VerifyOptions = {}): Promise<JwtVerdict> {
  let header: { alg?: unknown; kid?: unknown };
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return { ok: false, error: 'the token is not a valid JWT' };
  }
  const alg = typeof header.alg === 'string' ? header.alg : '';
  if (!(jwt.algorithms as readonly string[]).includes(alg)) {
    // Only a known name is quoted back: the header is the client's text.
    const named = (JWT_ALGORITHMS as readonly string[]).includes(alg) || alg === 'none' ? `alg ${alg}` : 'an algorithm';
    return { ok: false, error: `the token is signed with ${named}, which is not accepted (accepted: ${jwt.algorithms.join(', ')})` };
  }
  const kid = typeof header.kid === 'string' ? header.kid : undefined;
  const candidates = keys.filter((k) => k.alg === alg && (kid === undefined || k.kid === undefined || k.kid === kid));
  // A kid that names a key is that key; keys without a kid are tried only when none has it.
  const named = kid === undefined ? [] : candidates.filter((k) => k.kid === kid);
  const tried = named.length > 0 ? named : candidates;
  if (tried.length === 0) {
    return { ok: false, error: kid !== undefined ? `no ${alg} key has the token's kid; the key may have been rotated out` : `no ${alg} key is configured` };
  }
  let last: unknown;
  for (const k of tried) {
    try {
      const { payload } = await jwtVerify(token, k.key, {
        algorithms: [alg],
        issuer: jwt.issuer,
        audience: jwt.audience,
        clockTolerance: jwt.clockSkewSeconds,
        requiredClaims: ['exp'],
        ...(opts.now ? { currentDate: opts.now } : {}),
      });
      return { ok: true, claims: payload };
    } catch (e) {
      last = e;
      // Another key may be the one: only a signature that does not verify means "try the next".
      if (!(e instanceof errors.JWSSignatureVerificationFailed)) break;
    }
  }
  return { ok: false, error: refusal(last, jwt) };
}

/** What a jose error means for the caller, without any of the token's text. */
export function refusal(e: unknown, jwt: Pick<EndpointJwt, 'issuer' | 'audience'>): string {
  if (e instanceof errors.JWTExpired) return 'the token has expired';
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.reason === 'missing') return e.claim === 'exp' ? 'the token has no exp; signed tokens must expire' : `the token has no ${e.claim} claim`;
    switch (e.claim) {
      case 'iss':
        return `the token's iss is not ${jwt.issuer}`;
      case 'aud':
        return `the token's aud is not ${jwt.audience}`;
      case 'nbf':
        return 'the token is not valid yet (nbf)';
      case 'iat':
        return 'the token was issued in the future (iat)';
      default:
        return `the token's ${e.claim} claim is not valid`;
    }
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
  if (e instanceof errors.JWSInvalid || e instanceof errors.JWTInvalid) return 'the token is not a valid JWT';
  return 'the token cannot be verified';
}

interface Verified {
  keys: readonly SigningKey[];
  jwt: EndpointJwt;
  claims: JWTPayload;
  exp: number;
  nbf?: number;
}

/**
 * Tokens that verified, by a SHA-256 of the token (the token itself is not kept), so that a browser
 * calling again with the same token costs a digest instead of a signature check. An entry holds only
 * while the key set and the endpoint's jwt settings are the very ones it was verified with (a reload
 * that changes the Secret, or a new config, makes new ones) and while exp and nbf still allow it, with
 * the same skew jose applies. Bounded; the least recently used entries go first.
 */
export class VerifiedTokens {
  private readonly entries = new Map<string, Verified>();

  constructor(private readonly max = 10_000) {}

  get size(): number {
    return this.entries.size;
  }

  async verify(token: string, keys: readonly SigningKey[], jwt: EndpointJwt, opts: VerifyOptions = {}): Promise<JwtVerdict> {
    const id = createHash('sha256').update(token, 'utf8').digest('base64url');
    const nowS = (opts.now ?? new Date()).getTime() / 1000;
    const hit = this.entries.get(id);
    if (hit) {
      this.entries.delete(id);
      const current = hit.keys === keys && hit.jwt === jwt;
      // As jose: expired once exp <= now - skew; not yet valid while nbf > now + skew.
      const inTime = hit.exp > nowS - jwt.clockSkewSeconds && (hit.nbf === undefined || hit.nbf <= nowS + jwt.clockSkewSeconds);
      if (current && inTime) {
        this.entries.set(id, hit);
        return { ok: true, claims: hit.claims };
      }
    }
    const verdict = await verifyJwt(token, keys, jwt, opts);
    if (verdict.ok && typeof verdict.claims.exp === 'number') {
      this.entries.set(id, {
        keys,
        jwt,
        claims: verdict.claims,
        exp: verdict.claims.exp,
        ...(typeof verdict.claims.nbf === 'number' ? { nbf: verdict.claims.nbf } : {}),
      });
      for (const oldest of this.entries.keys()) {
        if (this.entries.size <= this.max) break;
        this.entries.delete(oldest);
      }
    }
    return verdict;
  }
}
