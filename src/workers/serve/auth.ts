// Who may call an endpoint with `auth`, shared by `weir serve` and `weir dev`: a static token from
// the tokens Secret, or a signed token (JWT) that verifies against the jwt Secret's keys and whose
// claims grant the endpoint (claims.ts). A verified token's sub (or a static token's key name) and
// its fixed parameters go with the request to the request log; the token itself goes nowhere.
//
//   no token                                     401
//   static token not in the Secret               403 (as before signed tokens)
//   JWT that does not verify (signature, exp,
//   iss, aud, alg, a fixed value of a wrong type) 401
//   JWT without the endpoint in its scope, or
//   fixing a parameter the endpoint lacks         403
//   past the token's weir.dev/rps                 429 with Retry-After
import type { IncomingMessage } from 'node:http';
import { TOKEN_PARAM, type CompiledEndpoint } from '../../plan/endpoint/compiled.js';
import { CLAIM_RPS, grantOf } from './claims.js';
import type { Admission, Failure } from './handler.js';
import { looksLikeJwt, VerifiedTokens, type SigningKeyStore } from './jwt.js';
import type { RateLimiter } from './rate-limit.js';
import { presentedToken, type TokenStore } from './tokens.js';

const REALM = 'Bearer realm="weir"';

export const unauthorized = (ep: CompiledEndpoint): Failure => ({
  status: 401,
  error: `${ep.name} needs a token: send Authorization: Bearer <token> (or ?${TOKEN_PARAM}=<token>)`,
  headers: { 'WWW-Authenticate': REALM },
});
export const forbidden = (ep: CompiledEndpoint): Failure => ({
  status: 403,
  error: `the token is not allowed to call ${ep.name}`,
  headers: { 'WWW-Authenticate': `${REALM}, error="invalid_token"` },
});
const invalid = (error: string): Failure => ({ status: 401, error, headers: { 'WWW-Authenticate': `${REALM}, error="invalid_token"` } });
const insufficient = (error: string): Failure => ({ status: 403, error, headers: { 'WWW-Authenticate': `${REALM}, error="insufficient_scope"` } });

export interface EndpointAuthenticatorOptions {
  tokens: Pick<TokenStore, 'match'>;
  keys: Pick<SigningKeyStore, 'keys'>;
  /** Buckets of weir.dev/rps, by sub or jti. */
  tokenLimiter: Pick<RateLimiter, 'take'>;
  /** Clock for exp and nbf (tests). */
  now?: () => Date;
}

export class EndpointAuthenticator {
  /** A browser sends the same token again and again: its signature is checked once while the keys stay. */
  private readonly verified = new VerifiedTokens();

  constructor(private readonly opts: EndpointAuthenticatorOptions) {}

  /** The Secrets the endpoints' auth reads: static tokens, and signing keys. */
  static secretsOf(endpoints: readonly CompiledEndpoint[]): { tokens: string[]; keys: string[] } {
    return {
      tokens: endpoints.flatMap((ep) => (ep.auth?.tokensSecret !== undefined ? [ep.auth.tokensSecret] : [])),
      keys: endpoints.flatMap((ep) => (ep.auth?.jwt ? [ep.auth.jwt.secret] : [])),
    };
  }

  /** undefined when `ep` has no auth; otherwise the refusal, or who is calling and what their token fixes. */
  async admit(req: IncomingMessage, url: URL, ep: CompiledEndpoint): Promise<Admission | undefined> {
    const auth = ep.auth;
    if (!auth) return undefined;
    const token = presentedToken(req.headers.authorization, url.searchParams.get(TOKEN_PARAM));
    if (token === undefined) return { refused: unauthorized(ep) };
    if (auth.tokensSecret !== undefined) {
      const key = this.opts.tokens.match(auth.tokensSecret, token);
      if (key !== undefined) return { token: { kind: 'static', id: key } };
    }
    if (!auth.jwt || !looksLikeJwt(token)) return { refused: auth.tokensSecret !== undefined ? forbidden(ep) : invalid('the token is not a JWT') };
    const verdict = await this.verified.verify(token, this.opts.keys.keys(auth.jwt.secret), auth.jwt, this.opts.now ? { now: this.opts.now() } : {});
    if (!verdict.ok) return { refused: invalid(verdict.error) };
    const granted = grantOf(ep, verdict.claims);
    const identity = { kind: 'jwt' as const, id: typeof verdict.claims.sub === 'string' ? verdict.claims.sub : '' };
    if (!granted.ok) return { token: identity, refused: granted.status === 401 ? invalid(granted.error) : insufficient(granted.error) };
    const { grant } = granted;
    const admission: Admission = { token: identity, ...(grant.fixed.size > 0 ? { fixed: grant.fixed } : {}) };
    if (grant.rps !== undefined && grant.rateKey !== undefined) {
      const decision = this.opts.tokenLimiter.take(grant.rateKey, grant.rps);
      if (!decision.allowed) {
        admission.refused = {
          status: 429,
          error: `the token may make at most ${grant.rps} requests per second (${CLAIM_RPS}); slow down`,
          retryAfterSeconds: decision.retryAfterSeconds ?? 1,
        };
      }
    }
    return admission;
  }
}
