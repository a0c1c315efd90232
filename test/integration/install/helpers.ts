// Helpers for the install tests: helm and argocd-health (built by test/env/setup.sh), the chart's
// rendered objects, and an API proxy that records what a client calls in RBAC terms.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { run } from '../../fixtures/processes.js';

export const CHART = join(process.cwd(), 'helm/weir');
const bin = (name: string) => join(process.env.WEIR_TEST_BIN ?? '', name);

export { run, type Run } from '../../fixtures/processes.js';

/** helm with its own config/cache dirs, so tests never read or write the user's. */
export const helm = (args: string[]) =>
  run(bin('helm'), args, {
    env: { HELM_CONFIG_HOME: '/tmp/weir-test-helm/config', HELM_CACHE_HOME: '/tmp/weir-test-helm/cache', HELM_DATA_HOME: '/tmp/weir-test-helm/data' },
  });

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
};

/** `helm template` of the chart; throws with helm's message if it fails. */
export async function renderChart(release: string, namespace: string, set: Record<string, string | number | boolean> = {}): Promise<K8sObject[]> {
  const args = ['template', release, CHART, '--namespace', namespace, ...Object.entries(set).flatMap(([k, v]) => ['--set', `${k}=${v}`])];
  const r = await helm(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr}`);
  return parseObjects(r.stdout);
}

export const parseObjects = (text: string): K8sObject[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);

export const toYaml = (objects: object[]) => objects.map((o) => stringify(o)).join('---\n');

/** Argo CD's health verdict for each object, from the Lua script (manifests/argocd/<kind>-health.lua). */
export async function argocdHealth(kind: string, objects: object[]): Promise<{ status: string; message?: string }[]> {
  const script = join(process.cwd(), 'manifests/argocd', `${kind.toLowerCase()}-health.lua`);
  const r = await run(bin('argocd-health'), [script], { stdin: JSON.stringify(objects) });
  if (r.code !== 0) throw new Error(`argocd-health ${script}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { status: string; message?: string }[];
}

// ---- what a client calls, in RBAC terms ----

export interface Call {
  /** `group/resource[/subresource]:verb`, the core group as '' (e.g. `apps/deployments:patch`, `/events:create`). */
  permission: string;
  status: number;
  method: string;
  path: string;
}

/** The RBAC verb and resource of a request, or undefined for discovery and other non-resource URLs. */
export function permissionOf(method: string, url: string, status: number): string[] {
  const u = new URL(url, 'http://x');
  const parts = u.pathname.split('/').filter(Boolean);
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) [group, rest] = ['', parts.slice(2)];
  else if (parts[0] === 'apis' && parts.length >= 4) [group, rest] = [parts[1] ?? '', parts.slice(3)];
  else return [];
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  else if (rest[0] === 'namespaces') return [`/namespaces:${method === 'GET' ? (rest.length === 2 ? 'get' : 'list') : method.toLowerCase()}`];
  const [resource, name, sub] = rest;
  const res = `${group}/${resource}${sub ? `/${sub}` : ''}`;
  const watch = u.searchParams.get('watch') === 'true' || u.searchParams.get('watch') === '1';
  switch (method) {
    case 'GET':
      return [`${res}:${name ? 'get' : watch ? 'watch' : 'list'}`];
    case 'POST':
      return [`${res}:create`];
    case 'PUT':
      return [`${res}:update`];
    // A server-side apply that creates the object is authorized as patch and create (201).
    case 'PATCH':
      return status === 201 ? [`${res}:patch`, `${res}:create`] : [`${res}:patch`];
    case 'DELETE':
      return [`${res}:${name ? 'delete' : 'deletecollection'}`];
    default:
      return [`${res}:${method.toLowerCase()}`];
  }
}

/** The permissions RBAC rules grant, as `group/resource:verb` strings. */
export function granted(rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[]): string[] {
  return rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`))));
}

export interface RecordingProxy {
  /** http://127.0.0.1:<port>, forwarding to the API server with the caller's own credentials. */
  url: string;
  calls: Call[];
  close(): Promise<void>;
}

/** A plain-HTTP reverse proxy in front of the test API server that records every call (watches stream through). */
export async function recordingProxy(admin: KubeConfig): Promise<RecordingProxy> {
  const cluster = admin.getCurrentCluster();
  if (!cluster?.caFile) throw new Error('the test kubeconfig has no certificate-authority file');
  const ca = readFileSync(cluster.caFile);
  const target = new URL(cluster.server);
  const calls: Call[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const upstream = request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: { ...req.headers, host: target.host }, ca },
      (up) => {
        const status = up.statusCode ?? 0;
        for (const permission of permissionOf(req.method ?? 'GET', req.url ?? '/', status))
          calls.push({ permission, status, method: req.method ?? '', path: req.url ?? '' });
        res.writeHead(status, up.headers);
        res.flushHeaders(); // a watch that has no event yet must still get its headers
        up.pipe(res);
      },
    );
    upstream.on('error', (e) => res.destroy(e));
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A kubeconfig file body for a bearer token against `server`. */
export const tokenKubeconfig = (server: string, token: string) =>
  stringify({
    apiVersion: 'v1',
    kind: 'Config',
    // client-node refuses plain http unless TLS checks are off; the proxy is on loopback.
    clusters: [{ name: 'test', cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'weir-operator', user: { token } }],
    contexts: [{ name: 'weir-operator', context: { cluster: 'test', user: 'weir-operator' } }],
    'current-context': 'weir-operator',
  });
