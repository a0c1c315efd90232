// What a verified signed token allows, from its claims (pure; no I/O):
//
//   weir.dev/endpoints  ["top_pages", …] or "*"   the endpoints it may call; any other gets 403
//   weir.dev/params     {"tenant": "acme", …}      parameters fixed server-side (row-level security)
//   weir.dev/rps        5                          requests per second for its sub (or jti)
//
// A fixed value is checked like any parameter value (as in a JSON body); one that does not fit
// the parameter makes the token invalid for the endpoint (401). A request that sends another value
// for a fixed parameter gets 403 naming it: the client can never widen what its token reads. A
// token that fixes a parameter the endpoint does not take is refused (403) rather than ignored:
// a tenant's token must not read an endpoint that cannot be narrowed to the tenant.
import { clickhouseName } from '../../api/names.js';
import type { CompiledEndpoint } from '../../plan/endpoint/compiled.js';
import { checkParam, paramType, type BoundElement, type BoundValue, type GivenValue } from '../../plan/endpoint/params.js';

export const CLAIM_ENDPOINTS = 'weir.dev/endpoints';
export const CLAIM_PARAMS = 'weir.dev/params';
export const CLAIM_RPS = 'weir.dev/rps';

/** A fixed parameter: the claim's value (bound as a JSON body value would be) and its canonical form. */
export interface FixedParam {
  value: unknown;
  bound: BoundValue;
  /** As the request log's fixed_params column holds it. */
  text: string;
}

/** What a token grants on one endpoint. */
export interface TokenGrant {
  /** `sub`, the non-secret identifier the request log records ('' when the token has none). */
  subject: string;
  /** Whose bucket weir.dev/rps fills: `sub:<sub>` or `jti:<jti>`. */
  rateKey?: string;
  rps?: number;
  fixed: ReadonlyMap<string, FixedParam>;
}

export type GrantResult = { ok: true; grant: TokenGrant } | { ok: false; status: 401 | 403; error: string };

type Claims = Readonly<Record<string, unknown>>;

const MAX_LISTED = 5;
const listed = (names: readonly string[]): string =>
  names.length > MAX_LISTED ? `${names.slice(0, MAX_LISTED).join(', ')} and ${names.length - MAX_LISTED} more` : names.join(', ');
/** A name from a claim, as shown in an error: short, and printable. */
const named = (name: string): string => {
  const cut = name.length > 64 ? `${name.slice(0, 64)}…` : name;
  return JSON.stringify(cut).slice(1, -1);
};

/** The canonical text of a bound value: a scalar as is, NULL as \\N, an array as JSON (64-bit integers as bare digits). */
export function boundText(bound: BoundValue): string {
  if (bound === null) return '\\N';
  if (typeof bound === 'string') return bound;
  const element = (e: BoundElement): string => (Array.isArray(e) ? `[${e.map(element).join(',')}]` : typeof e === 'bigint' ? e.toString() : JSON.stringify(e));
  return element(bound);
}

const sameBound = (a: BoundValue, b: BoundValue): boolean => (a === null || b === null ? a === b : boundText(a) === boundText(b));

/** Whether weir.dev/endpoints lets the token call `ep`; names match as written in the resource or as the path segment. */
export function scopeAllows(ep: Pick<CompiledEndpoint, 'name' | 'resource'>, claim: unknown): { ok: true } | { ok: false; status: 401 | 403; error: string } {
  if (claim === undefined) return { ok: false, status: 403, error: `the token has no ${CLAIM_ENDPOINTS} claim, so it may call no endpoint` };
  if (claim === '*') return { ok: true };
  if (!Array.isArray(claim) || !claim.every((n): n is string => typeof n === 'string')) {
    return { ok: false, status: 401, error: `the token's ${CLAIM_ENDPOINTS} claim must be "*" or a list of endpoint names` };
  }
  if (claim.some((n) => n === '*' || n === ep.name || n === ep.resource || clickhouseName(n) === ep.name)) return { ok: true };
  return {
    ok: false,
    status: 403,
    error: `the token is not allowed to call ${ep.name} (${CLAIM_ENDPOINTS}: ${claim.length === 0 ? 'none' : listed(claim.map(named))})`,
  };
}

/** The parameters weir.dev/params fixes for `ep`, each checked against the parameter's type and bounds. */
export function fixedParams(
  ep: Pick<CompiledEndpoint, 'name' | 'params'>,
  claim: unknown,
): { ok: true; fixed: Map<string, FixedParam> } | { ok: false; status: 401 | 403; error: string } {
  const fixed = new Map<string, FixedParam>();
  if (claim === undefined) return { ok: true, fixed };
  if (typeof claim !== 'object' || claim === null || Array.isArray(claim)) {
    return { ok: false, status: 401, error: `the token's ${CLAIM_PARAMS} claim must be an object of parameter values, e.g. {"tenant": "acme"}` };
  }
  const entries = Object.entries(claim as Record<string, unknown>);
  const unknown = entries.map(([name]) => name).filter((name) => !ep.params.some((p) => p.name === name));
  if (unknown.length > 0) {
    return {
      ok: false,
      status: 403,
      error: `the token fixes ${unknown.length > 1 ? 'parameters' : 'parameter'} ${listed(unknown.map(named))}, which ${ep.name} does not take; it cannot be narrowed as the token requires`,
    };
  }
  const problems: string[] = [];
  for (const [name, value] of entries) {
    const param = ep.params.find((p) => p.name === name);
    if (!param) continue;
    const type = paramType(param.type);
    // JSON null fixes NULL for a Nullable parameter; for any other it fixes nothing, which is not what the issuer meant.
    if (value === null && type.kind !== 'nullable') {
      problems.push(`parameter ${name}: expected ${param.type}, got null`);
      continue;
    }
    const checked = checkParam(param, type, value, 'body');
    if (!checked.ok) problems.push(...checked.errors);
    else fixed.set(name, { value, bound: checked.value, text: boundText(checked.value) });
  }
  if (problems.length > 0) return { ok: false, status: 401, error: `the token's ${CLAIM_PARAMS} do not fit ${ep.name}: ${problems.join('; ')}` };
  return { ok: true, fixed };
}

/** weir.dev/rps and whose bucket it fills. */
export function tokenRate(claims: Claims): { ok: true; rps?: number; rateKey?: string } | { ok: false; status: 401; error: string } {
  const rps = claims[CLAIM_RPS];
  if (rps === undefined) return { ok: true };
  if (typeof rps !== 'number' || !Number.isFinite(rps) || rps <= 0) {
    return { ok: false, status: 401, error: `the token's ${CLAIM_RPS} claim must be a positive number of requests per second` };
  }
  const sub = typeof claims.sub === 'string' && claims.sub !== '' ? claims.sub : undefined;
  const jti = typeof claims.jti === 'string' && claims.jti !== '' ? claims.jti : undefined;
  if (sub === undefined && jti === undefined)
    return { ok: false, status: 401, error: `a token with ${CLAIM_RPS} needs a sub or a jti to count its requests by` };
  return { ok: true, rps, rateKey: sub !== undefined ? `sub:${sub}` : `jti:${jti ?? ''}` };
}

/** Everything a verified token's claims grant on `ep`, or the first reason they do not. */
export function grantOf(ep: Pick<CompiledEndpoint, 'name' | 'resource' | 'params'>, claims: Claims): GrantResult {
  const scope = scopeAllows(ep, claims[CLAIM_ENDPOINTS]);
  if (!scope.ok) return scope;
  const fixed = fixedParams(ep, claims[CLAIM_PARAMS]);
  if (!fixed.ok) return fixed;
  const rate = tokenRate(claims);
  if (!rate.ok) return rate;
  const subject = typeof claims.sub === 'string' ? claims.sub : '';
  return {
    ok: true,
    grant: {
      subject,
      fixed: fixed.fixed,
      ...(rate.rps !== undefined ? { rps: rate.rps } : {}),
      ...(rate.rateKey !== undefined ? { rateKey: rate.rateKey } : {}),
    },
  };
}

/**
 * The request's parameters with the fixed ones put in. A request may leave a fixed parameter out or
 * send the token's own value; any other value (or one that is not of the type) is a 403 naming it.
 */
export function withFixedParams(
  ep: Pick<CompiledEndpoint, 'params'>,
  given: ReadonlyMap<string, GivenValue>,
  fixed: ReadonlyMap<string, FixedParam>,
): { ok: true; given: Map<string, GivenValue> } | { ok: false; status: 403; error: string } {
  const merged = new Map(given);
  const overridden: string[] = [];
  for (const [name, f] of fixed) {
    const sent = given.get(name);
    const param = ep.params.find((p) => p.name === name);
    if (sent !== undefined && param) {
      const checked = checkParam(param, paramType(param.type), sent.value, sent.from);
      if (!checked.ok || !sameBound(checked.value, f.bound)) overridden.push(name);
    }
    merged.set(name, { value: f.value, from: 'body' });
  }
  if (overridden.length > 0) {
    const which = overridden.length > 1 ? `parameters ${overridden.join(', ')} are` : `parameter ${overridden[0] ?? ''} is`;
    return {
      ok: false,
      status: 403,
      error: `${which} fixed by the token (${CLAIM_PARAMS}); leave ${overridden.length > 1 ? 'them' : 'it'} out of the request`,
    };
  }
  return { ok: true, given: merged };
}
