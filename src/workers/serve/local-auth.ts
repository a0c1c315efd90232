// Endpoint auth for `weir dev`, where there is no kubelet to mount Secrets: the project folder's own
// `kind: Secret` documents stand in for them. An Endpoint's auth is enforced, exactly as `weir serve`
// enforces it (EndpointAuthenticator), once the folder holds a Secret its auth names; until then it
// stays off, so a project that only names a production Secret runs locally as before.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { CompiledEndpoint } from '../../plan/endpoint/compiled.js';
import { errorMessage } from '../../runtime/log.js';
import { EndpointAuthenticator } from './auth.js';
import type { Admission } from './handler.js';
import { HS256_SECRET_KEY, importSigningKeys, JWKS_KEY, type SigningKey } from './jwt.js';
import { RateLimiter } from './rate-limit.js';

/** A Secret's keys and values, from stringData as written or data base64-decoded. */
export function secretValues(object: Record<string, unknown>): { name: string; values: Map<string, string> } | undefined {
  if (object.kind !== 'Secret' || object.apiVersion !== 'v1') return undefined;
  const name = (object.metadata as { name?: unknown } | undefined)?.name;
  if (typeof name !== 'string') return undefined;
  const values = new Map<string, string>();
  for (const [k, v] of Object.entries((object.data as Record<string, unknown> | undefined) ?? {})) {
    if (typeof v === 'string') values.set(k, Buffer.from(v, 'base64').toString('utf8').trim());
  }
  // stringData wins over data, as the API server merges them.
  for (const [k, v] of Object.entries((object.stringData as Record<string, unknown> | undefined) ?? {})) if (typeof v === 'string') values.set(k, v.trim());
  return { name, values };
}

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

export interface LocalAuth {
  admit(req: IncomingMessage, url: URL, ep: CompiledEndpoint): Promise<Admission | undefined>;
  /** One line per Endpoint with auth: enforced, or off and why; and keys that could not be read. */
  notes(endpoints: Iterable<CompiledEndpoint>): string[];
}

/** Auth from the folder's Secrets (documents of any kind; the rest are ignored). */
export async function localAuth(documents: readonly Record<string, unknown>[]): Promise<LocalAuth> {
  const secrets = new Map<string, Map<string, string>>();
  for (const d of documents) {
    const s = secretValues(d);
    if (s) secrets.set(s.name, s.values);
  }
  const keys = new Map<string, SigningKey[]>();
  const problems: string[] = [];
  for (const [name, values] of secrets) {
    if (!values.has(HS256_SECRET_KEY) && !values.has(JWKS_KEY)) continue;
    try {
      const imported = await importSigningKeys(values);
      keys.set(name, imported.keys);
      problems.push(...imported.problems.map((p) => `Secret ${name}: ${p}`));
    } catch (e) {
      problems.push(`Secret ${name}: ${errorMessage(e)}`);
    }
  }
  const authenticator = new EndpointAuthenticator({
    tokens: {
      match: (secret, token) => {
        const given = digest(token);
        let found: string | undefined;
        for (const [key, value] of secrets.get(secret) ?? []) if (timingSafeEqual(digest(value), given) && found === undefined && value !== '') found = key;
        return found;
      },
    },
    keys: { keys: (secret) => keys.get(secret) ?? [] },
    tokenLimiter: new RateLimiter(),
  });
  const enforced = (ep: CompiledEndpoint): boolean =>
    ep.auth !== undefined && [ep.auth.tokensSecret, ep.auth.jwt?.secret].some((s) => s !== undefined && secrets.has(s));
  return {
    admit: (req, url, ep) => (enforced(ep) ? authenticator.admit(req, url, ep) : Promise.resolve(undefined)),
    notes: (endpoints) => [
      ...problems,
      ...[...endpoints].flatMap((ep) => {
        if (!ep.auth) return [];
        const named = [ep.auth.tokensSecret, ep.auth.jwt?.secret].filter((s): s is string => s !== undefined);
        return enforced(ep)
          ? [`${ep.name}: auth enforced with Secret ${named.filter((s) => secrets.has(s)).join(', ')} from the folder`]
          : [`${ep.name}: auth off locally (the folder holds no Secret ${named.join(' or ')}; add one to try tokens)`];
      }),
    ],
  };
}
