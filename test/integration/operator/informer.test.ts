// ResilientInformer against the real API server: it restarts a failed watch with retry() until a
// new one holds (through a TCP proxy that is cut and restored), and an idle restart stays one
// restart (stopping its own watch is not a watch failure).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { CoreV1Api, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import winston from 'winston';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LAST_APPLIED_ANNOTATION, ResilientInformer } from '../../../src/operator/informer.js';
import { waitFor } from '../../env/wait.js';
import { createNamespace, testKubeConfig } from '../../fixtures/kube.js';

interface LogLine {
  level: string;
  message: string;
  [field: string]: unknown;
}

function capturingLogger(lines: LogLine[]): winston.Logger {
  return winston.createLogger({
    level: 'debug',
    format: winston.format.json(),
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk: Buffer, _enc, done) {
            lines.push(JSON.parse(chunk.toString()) as LogLine);
            done();
          },
        }),
      }),
    ],
  });
}

/** A TCP proxy in front of the API server that can be cut (connections dropped, new ones refused) and restored on the same port. */
class CuttableProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly upstream: URL) {}

  async open(): Promise<void> {
    const server = createServer((client) => {
      const up = connect(Number(this.upstream.port), this.upstream.hostname);
      for (const s of [client, up]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(up).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async cut(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server?.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

/** The test cluster's kubeconfig, pointed at `port` on loopback (the serving certificate is for 127.0.0.1). */
function viaPort(kc: KubeConfig, port: number): KubeConfig {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the test kubeconfig has no current cluster');
  const copy = new KubeConfig();
  copy.loadFromOptions({
    clusters: [{ ...cluster, server: `https://127.0.0.1:${port}` }],
    users: kc.getUsers(),
    contexts: kc.getContexts(),
    currentContext: kc.getCurrentContext(),
  });
  return copy;
}

let kc: KubeConfig;
let core: CoreV1Api;
const running: ResilientInformer<V1ConfigMap>[] = [];

beforeAll(async () => {
  kc = testKubeConfig();
  core = kc.makeApiClient(CoreV1Api);
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((i) => i.stop()));
});

/** An informer on the ConfigMaps of `ns` that records the names it is told about in `seen`. */
function configMapInformer(
  config: KubeConfig,
  ns: string,
  log: winston.Logger,
  seen: string[],
  opts: { idleRestartMs?: number } = {},
): ResilientInformer<V1ConfigMap> {
  const api = config.makeApiClient(CoreV1Api);
  const informer = new ResilientInformer<V1ConfigMap>(
    config,
    {
      path: `/api/v1/namespaces/${ns}/configmaps`,
      list: () => api.listNamespacedConfigMap({ namespace: ns }),
      onChange: (cm) => seen.push(cm.metadata?.name ?? ''),
      onDelete: () => undefined,
      // Fast retry settings, as kafkajs's tests swap in: the outage spans several attempts quickly.
      backoff: { initialMs: 50, maxMs: 400, factor: 2, jitter: 0 },
      healthyAfterMs: 300,
      ...opts,
    },
    log,
  );
  running.push(informer);
  return informer;
}

const createConfigMap = (ns: string, name: string) => core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name }, data: { k: 'v' } } });

describe('ResilientInformer', () => {
  it('restarts a watch the API server dropped with growing backoff until one holds, and misses nothing made meanwhile', async () => {
    const ns = await createNamespace(kc, 'informer');
    const upstream = new URL(kc.getCurrentCluster()?.server ?? '');
    const proxy = new CuttableProxy(upstream);
    await proxy.open();
    const lines: LogLine[] = [];
    const seen: string[] = [];
    const informer = configMapInformer(viaPort(kc, proxy.port), ns, capturingLogger(lines), seen);
    await createConfigMap(ns, 'before');
    await informer.start();
    await waitFor('the ConfigMap made before the start', () => (informer.get('before', ns) ? true : undefined));

    await proxy.cut();
    const again = () => lines.filter((l) => l.message === 'watch failed again; restarting');
    await waitFor('three failed restarts while the API server is unreachable', () => (again().length >= 3 ? true : undefined));
    await createConfigMap(ns, 'during');
    await proxy.open();

    await waitFor('the ConfigMap made during the outage', () => (informer.get('during', ns) ? true : undefined));
    await createConfigMap(ns, 'after');
    await waitFor('the ConfigMap made after the outage, from the watch', () => (seen.includes('after') ? true : undefined));

    expect(lines.filter((l) => l.message === 'watch failed; restarting')).toHaveLength(1);
    // The failed attempts of that one restart count up, and their waits double up to the cap.
    const failures = again().slice(0, 4);
    expect(failures.map((l) => l.attempt)).toEqual([1, 2, 3, 4].slice(0, failures.length));
    expect(failures.map((l) => l.retryInMs)).toEqual([50, 100, 200, 400].slice(0, failures.length));
    expect(
      informer
        .list()
        .map((c) => c.metadata?.name)
        .sort(),
    ).toEqual(['after', 'before', 'during']);
  });

  it('restarts an idle watch once each time, not as a failure: its own stop is not a watch error', async () => {
    const ns = await createNamespace(kc, 'informer');
    const lines: LogLine[] = [];
    const seen: string[] = [];
    const informer = configMapInformer(kc, ns, capturingLogger(lines), seen, { idleRestartMs: 300 });
    await informer.start();
    await waitFor('two idle restarts', () => (lines.filter((l) => l.message === 'restarting idle watch').length >= 2 ? true : undefined), {
      timeoutMs: 15_000,
    });
    await createConfigMap(ns, 'after-idle');
    await waitFor('the ConfigMap made after the idle restarts, from the watch', () => (seen.includes('after-idle') ? true : undefined));
    expect(lines.filter((l) => l.message.startsWith('watch failed'))).toEqual([]);
  });

  it('does not call itself started until a list succeeded: a first list that fails is retried, and nothing is missed', async () => {
    const ns = await createNamespace(kc, 'informer');
    const upstream = new URL(kc.getCurrentCluster()?.server ?? '');
    const proxy = new CuttableProxy(upstream);
    await proxy.open();
    const port = proxy.port;
    await proxy.cut();
    await createConfigMap(ns, 'before');
    const lines: LogLine[] = [];
    const informer = configMapInformer(viaPort(kc, port), ns, capturingLogger(lines), []);
    let started = false;
    const starting = informer.start().then(() => (started = true));
    await waitFor('two failed restarts of the first list', () =>
      lines.filter((l) => l.message === 'watch failed again; restarting').length >= 2 ? true : undefined,
    );
    expect(started).toBe(false);
    expect(informer.hasSynced).toBe(false);
    await proxy.open();
    await starting;
    expect(informer.hasSynced).toBe(true);
    expect(informer.list().map((c) => c.metadata?.name)).toEqual(['before']);
  });

  it('keeps objects without managedFields or the last-applied annotation, from the list and from the watch', async () => {
    const ns = await createNamespace(kc, 'informer');
    const applied = (name: string) => ({ metadata: { name, annotations: { [LAST_APPLIED_ANNOTATION]: '{"data":{"k":"v"}}', team: 'a' } }, data: { k: 'v' } });
    await core.createNamespacedConfigMap({ namespace: ns, body: applied('listed') });
    // The API server does keep both: what the cache must not.
    const stored = await core.readNamespacedConfigMap({ namespace: ns, name: 'listed' });
    expect(stored.metadata?.managedFields?.length).toBeGreaterThan(0);
    expect(stored.metadata?.annotations?.[LAST_APPLIED_ANNOTATION]).toBeDefined();

    const seen: string[] = [];
    const informer = configMapInformer(kc, ns, capturingLogger([]), seen);
    await informer.start();
    await core.createNamespacedConfigMap({ namespace: ns, body: applied('watched') });
    await waitFor('the ConfigMap made after the start, from the watch', () => (informer.get('watched', ns) ? true : undefined));
    await core.patchNamespacedConfigMap({ namespace: ns, name: 'listed', body: [{ op: 'add', path: '/data/k2', value: 'v2' }] });
    await waitFor('the patched ConfigMap, from the watch', () => (informer.get('listed', ns)?.data?.k2 === 'v2' ? true : undefined));

    for (const name of ['listed', 'watched']) {
      const cached = informer.get(name, ns);
      expect(cached?.metadata?.managedFields).toBeUndefined();
      expect(cached?.metadata?.annotations).toEqual({ team: 'a' });
      expect(cached?.metadata?.resourceVersion).toBeDefined();
    }
  });
});
