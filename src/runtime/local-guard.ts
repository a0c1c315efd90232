// What a local HTTP server (the embedded ClickHouse, `weir dev`'s events and endpoints) accepts from a browser,
// the way local dev servers defend themselves:
// - Host must name this machine. DNS rebinding makes a page's own name (attacker.example) resolve to 127.0.0.1,
//   so the browser sends `Host: attacker.example`; an IP address in Host cannot be rebound and is accepted.
// - A request that a browser marks as coming from a web page (an Origin header, or Sec-Fetch-Site other than
//   same-origin/none) is refused unless its origin was allowed, so no page can POST SQL or read answers.

import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { hostname } from 'node:os';

export interface LocalGuardPolicy {
  /** Host names (lower-case, no port) a request may send in Host, besides IP addresses. */
  hosts: ReadonlySet<string>;
  /** `--allow-host '*'`: any Host. */
  anyHost: boolean;
  /** Origins (scheme://host[:port]) that browsers may send requests from; '*' allows any. */
  origins: ReadonlySet<string>;
  /** The flags that open it wider, for the refusal messages. */
  hostFlag: string;
  /** Undefined where the server has no such flag (the Origin check is off there). */
  originFlag?: string;
}

export interface LocalGuardOptions {
  /** The address the server listens on. */
  bindHost: string;
  /** Extra Host names; '*' allows any. */
  allowHosts?: readonly string[];
  /** Origins browsers may send requests from; '*' allows any. Undefined: no Origin check at all. */
  allowOrigins?: readonly string[];
  /** Names of this machine accepted when bound to every address (0.0.0.0 or ::); see machineNames(). */
  machineNames?: readonly string[];
  hostFlag?: string;
  originFlag?: string;
}

export interface Refusal {
  kind: 'host' | 'origin';
  message: string;
}

const WILDCARD_BINDS = new Set(['', '0.0.0.0', '::', '[::]']);
const LOOPBACK_NAMES = ['localhost', 'localhost.localdomain', 'ip6-localhost'];

const bareHost = (host: string): string =>
  host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');

/** This machine's host name, for servers bound to every address. */
export const machineNames = (): string[] => [hostname()];

/** The names a server bound to `bindHost` answers to. */
export function localGuardPolicy(opts: LocalGuardOptions): LocalGuardPolicy {
  const extra = (opts.allowHosts ?? []).map(bareHost);
  const bind = bareHost(opts.bindHost);
  const wildcard = WILDCARD_BINDS.has(bind);
  const hosts = new Set([...LOOPBACK_NAMES, ...(wildcard ? (opts.machineNames ?? []).map(bareHost) : [bind]), ...extra]);
  const origins = new Set((opts.allowOrigins ?? []).map((o) => (o === '*' ? o : o.trim().toLowerCase().replace(/\/+$/, ''))));
  return {
    hosts,
    anyHost: extra.includes('*'),
    origins,
    hostFlag: opts.hostFlag ?? '--allow-host',
    ...(opts.allowOrigins !== undefined ? { originFlag: opts.originFlag ?? '--allow-origin' } : {}),
  };
}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
};

/** The host name of a Host header value (`name:port`, `[v6]:port`, `name`). */
export function hostOfHeader(value: string): string {
  const v = value.trim();
  if (v.startsWith('[')) return bareHost(v.slice(0, v.indexOf(']') + 1));
  const colon = v.indexOf(':');
  return bareHost(colon >= 0 && v.indexOf(':', colon + 1) < 0 ? v.slice(0, colon) : v);
}

function refuseHost(headers: IncomingHttpHeaders, policy: LocalGuardPolicy): Refusal | undefined {
  const value = header(headers, 'host');
  if (value === undefined || policy.anyHost) return undefined; // HTTP/1.0 clients send none; browsers always do
  const name = hostOfHeader(value);
  if (isIP(name) !== 0 || policy.hosts.has(name)) return undefined;
  return {
    kind: 'host',
    message:
      `Refused a request for Host '${value}': this server answers to ${[...policy.hosts].join(', ')} and IP addresses ` +
      `(a page on another name may be DNS rebinding). Start it with ${policy.hostFlag} ${name} to allow that name`,
  };
}

function refuseOrigin(headers: IncomingHttpHeaders, policy: LocalGuardPolicy): Refusal | undefined {
  if (policy.originFlag === undefined || policy.origins.has('*')) return undefined;
  const origin = header(headers, 'origin');
  const fetchSite = header(headers, 'sec-fetch-site')?.toLowerCase();
  if (origin !== undefined) {
    if (policy.origins.has(origin.trim().toLowerCase().replace(/\/+$/, ''))) return undefined;
    return {
      kind: 'origin',
      message: `Refused a request from the web page at Origin '${origin}': browsers may not send queries here. Start the server with ${policy.originFlag} ${origin} to allow it`,
    };
  }
  if (fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none') {
    return {
      kind: 'origin',
      message: `Refused a request a browser sent from another site (Sec-Fetch-Site: ${fetchSite}): browsers may not send queries here. Start the server with ${policy.originFlag} <origin> to allow a page`,
    };
  }
  return undefined;
}

/** Why a request is refused, or undefined when it may be served. */
export function refuseLocalRequest(headers: IncomingHttpHeaders, policy: LocalGuardPolicy): Refusal | undefined {
  return refuseHost(headers, policy) ?? refuseOrigin(headers, policy);
}
