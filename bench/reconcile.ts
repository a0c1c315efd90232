// Reconcile benchmark: N resources (70% DataSources, 30% Pipes, over 10 namespaces) applied at once
// with `kubectl apply --server-side` to a real kube-apiserver, converged by one `weir operator
// --no-workers` (the built dist/, its own process) against `weir clickhouse` (its own process):
// time from the apply to every resource Ready, the operator's RSS at rest before and after,
// reconciles per second, and ClickHouse requests per reconcile (counted by a proxy in front of
// ClickHouse, so the figure does not depend on the operator's own metrics).
//
//   npm run build && npx tsx bench/reconcile.ts [--sizes 0,1000,10000] [--operator-node-options "--cpu-prof --cpu-prof-dir=/tmp/prof"]
//
// Each size runs on a fresh control plane, ClickHouse and operator. See bench/README.md.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, Agent, type Server } from 'node:http';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { API_VERSION, GROUP, VERSION } from '../src/api/common.js';
import { startTestCluster } from '../test/env/cluster.js';
import { freePorts } from '../test/env/processes.js';
import { startClickHouseProcess } from '../test/fixtures/ingest.js';
import { run, startWeir } from '../test/fixtures/processes.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '0,1000' },
    namespaces: { type: 'string', default: '10' },
    'rest-s': { type: 'string', default: '15' },
    'timeout-s': { type: 'string', default: '1800' },
    'operator-node-options': { type: 'string', default: '' },
    'operator-args': { type: 'string', default: '' },
    'operator-env': { type: 'string', default: '' },
    'gc-at-rest': { type: 'boolean', default: false },
  },
});
const SIZES = values.sizes.split(',').map(Number);
const NAMESPACES = Number(values.namespaces);
const REST_MS = Number(values['rest-s']) * 1000;
const TIMEOUT_MS = Number(values['timeout-s']) * 1000;
const GC_AT_REST = values['gc-at-rest'];
const SNAPSHOT_DIR = mkdtempSync(join(tmpdir(), 'weir-bench-snapshots-'));
// --gc-at-rest: a heap snapshot (SIGUSR2) runs a full GC first, so the RSS after it is the live set's.
const NODE_OPTIONS = [
  ...values['operator-node-options'].split(' ').filter(Boolean),
  ...(GC_AT_REST ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${SNAPSHOT_DIR}`] : []),
];
const EXTRA_ARGS = values['operator-args'].split(' ').filter(Boolean);
const EXTRA_ENV = Object.fromEntries(
  values['operator-env']
    .split(',')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rssMiB = (pid: number, field = 'VmRSS') =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A statement's shape: its first words, names and literals blanked, so the same statement of every resource adds up. */
const shape = (sql: string) =>
  sql
    .replace(/\s+/g, ' ')
    .replace(/`[^`]*`/g, '`…`')
    .replace(/'[^']*'/g, "'…'")
    .replace(/\b\d+\b/g, 'N')
    .slice(0, 90);

/** An HTTP proxy in front of ClickHouse that counts the requests passing (pings aside), and times them by statement shape. */
async function countingProxy(upstream: string) {
  const target = new URL(upstream);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  let n = 0;
  const byShape = new Map<string, { n: number; ms: number }>();
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/ping'))
      return void req.pipe(request({ host: target.hostname, port: target.port, path: req.url, agent }, (r) => r.pipe(res)).end());
    n++;
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://x');
    let head = url.searchParams.get('query') ?? '';
    const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers, agent }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
      r.on('end', () => {
        const key = shape(head);
        const s = byShape.get(key) ?? { n: 0, ms: 0 };
        s.n++;
        s.ms += performance.now() - started;
        byShape.set(key, s);
      });
    });
    up.on('error', () => res.destroy());
    req.on('data', (chunk: Buffer) => {
      if (head.length < 400) head += chunk.toString('utf8', 0, Math.min(chunk.length, 400));
      up.write(chunk);
    });
    req.on('end', () => up.end());
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => n,
    byShape,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The load: per namespace, DataSources events-<i> and Pipes counts-<i> reading events-<i>. */
function load(n: number): { namespaces: string[]; yaml: string; dataSources: number; pipes: number } {
  const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `bench-${i}`);
  const dataSources = Math.round(n * 0.7);
  const pipes = n - dataSources;
  const docs: object[] = [];
  for (let i = 0; i < dataSources; i++) {
    docs.push({
      apiVersion: API_VERSION,
      kind: 'DataSource',
      metadata: { name: `events-${i}`, namespace: namespaces[i % NAMESPACES] },
      spec: {
        columns: [
          { name: 'timestamp', type: 'DateTime64(3)', jsonPath: '$.timestamp' },
          { name: 'tenant_id', type: 'LowCardinality(String)', jsonPath: '$.tenant_id' },
          { name: 'value', type: 'Float64', jsonPath: '$.value' },
        ],
        engine: { type: 'MergeTree', sortingKey: ['tenant_id', 'timestamp'], partitionKey: 'toYYYYMM(timestamp)' },
      },
    });
  }
  for (let i = 0; i < pipes; i++) {
    docs.push({
      apiVersion: API_VERSION,
      kind: 'Pipe',
      metadata: { name: `counts-${i}`, namespace: namespaces[i % NAMESPACES] },
      spec: { nodes: [{ name: 'per_tenant', sql: `SELECT tenant_id, count() AS n, avg(value) AS v FROM events_${i} GROUP BY tenant_id` }] },
    });
  }
  return { namespaces, yaml: docs.map((d) => stringify(d)).join('---\n'), dataSources, pipes };
}

interface Listed {
  metadata: { generation?: number };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
}
const ready = (o: Listed) =>
  o.status?.observedGeneration === o.metadata.generation && o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/** Sum of a metric's samples in Prometheus text, optionally only those whose labels contain `match`. */
function metricSum(text: string, name: string, match = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !(line[name.length] === '{' || line[name.length] === ' ')) continue;
    if (match && !line.includes(match)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Signal a heap snapshot (a full GC runs first), wait for it to be written, and read RSS and heap used. */
async function afterFullGc(pid: number, metrics: () => Promise<string>): Promise<{ gcRssMiB: number; gcHeapMiB: number }> {
  const before = readdirSync(SNAPSHOT_DIR).length;
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 120 && readdirSync(SNAPSHOT_DIR).length === before; i++) await sleep(500);
  await sleep(3000);
  for (const f of readdirSync(SNAPSHOT_DIR)) rmSync(join(SNAPSHOT_DIR, f), { force: true });
  return { gcRssMiB: rssMiB(pid), gcHeapMiB: metricSum(await metrics(), 'nodejs_heap_size_used_bytes') / 2 ** 20 };
}

interface Result {
  size: number;
  applyS: number;
  readyS: number;
  restBeforeMiB: number;
  restAfterMiB: number;
  peakMiB: number;
  reconciles: number;
  reconcilesPerS: number;
  queries: number;
  queriesPerReconcile: number;
  statusWrites: number | undefined;
  cpuS: number;
  clickhouseCpuS: number;
  heapAfterMiB: number;
  /** JSON size of the objects as the cache keeps them (no managedFields, no last-applied annotation). */
  objectsMiB: number;
  /** With --gc-at-rest: RSS and heap used after a full GC. */
  gcRssMiB?: number;
  gcHeapMiB?: number;
}

async function runSize(size: number): Promise<Result> {
  const cluster = await startTestCluster({ crdDir: join(process.cwd(), 'crds') });
  const clickhouse = await startClickHouseProcess();
  const proxy = await countingProxy(clickhouse.url);
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigPath);
  const { namespaces, yaml, dataSources, pipes } = load(size);
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of namespaces) await core.createNamespace({ body: { metadata: { name } } });
  const [metricsPort] = (await freePorts(1)) as [number];
  const operator = startWeir(
    [
      'operator',
      '--kubeconfig',
      cluster.kubeconfigPath,
      '--no-leader-election',
      '--no-workers',
      '--clickhouse-url',
      proxy.url,
      '--metrics-port',
      String(metricsPort),
      '--metrics-host',
      '127.0.0.1',
      ...EXTRA_ARGS,
    ],
    EXTRA_ENV,
    NODE_OPTIONS,
  );
  const pid = operator.child.pid as number;
  const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  try {
    await operator.waitForLog('controllers started', (l) => l.message === 'controllers started', 60_000);
    await sleep(REST_MS);
    const restBeforeMiB = rssMiB(pid);
    const gcBefore = GC_AT_REST && size === 0 ? await afterFullGc(pid, metrics) : {};
    const q0 = proxy.requests();
    const cpu0 = cpuSeconds(pid);
    const chPid = clickhouse.proc.child.pid as number;
    const chCpu0 = cpuSeconds(chPid);
    if (size === 0)
      return {
        ...gcBefore,
        size,
        applyS: 0,
        readyS: 0,
        restBeforeMiB,
        restAfterMiB: restBeforeMiB,
        peakMiB: rssMiB(pid, 'VmHWM'),
        reconciles: 0,
        reconcilesPerS: 0,
        queries: 0,
        queriesPerReconcile: 0,
        statusWrites: undefined,
        cpuS: 0,
        clickhouseCpuS: 0,
        heapAfterMiB: metricSum(await metrics(), 'nodejs_heap_size_used_bytes') / 2 ** 20,
        objectsMiB: 0,
      };

    const file = join(mkdtempSync(join(tmpdir(), 'weir-bench-reconcile-')), 'load.yaml');
    writeFileSync(file, yaml);
    const api = kc.makeApiClient(CustomObjectsApi);
    const t0 = performance.now();
    const applied = await run(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, 'apply', '--server-side', '-f', file]);
    if (applied.code !== 0) throw new Error(`kubectl apply failed: ${applied.stderr.slice(0, 2000)}`);
    const applyS = (performance.now() - t0) / 1000;
    const pollMs = Math.max(1000, size / 5);
    let readyS = 0;
    let lastLine = 0;
    for (;;) {
      const counts = await Promise.all(
        ['datasources', 'pipes'].map(async (plural) => {
          const list = (await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as { items: Listed[] };
          return list.items.filter(ready).length;
        }),
      );
      const elapsed = (performance.now() - t0) / 1000;
      if (counts[0] === dataSources && counts[1] === pipes) {
        readyS = elapsed;
        break;
      }
      if (elapsed - lastLine > 15) {
        lastLine = elapsed;
        console.log(`  ${elapsed.toFixed(0)} s: ${counts[0]}/${dataSources} DataSources, ${counts[1]}/${pipes} Pipes Ready; RSS ${rssMiB(pid).toFixed(0)} MiB`);
      }
      if (elapsed * 1000 > TIMEOUT_MS) throw new Error(`not all Ready after ${elapsed.toFixed(0)} s: ${counts.join(', ')}`);
      await sleep(pollMs);
    }
    const atReady = await metrics();
    const reconciles = metricSum(atReady, 'weir_reconcile_total');
    const queries = proxy.requests() - q0;
    const cpuS = cpuSeconds(pid) - cpu0;
    const clickhouseCpuS = cpuSeconds(chPid) - chCpu0;
    console.log('  ClickHouse statements (count, total ms as the proxy saw them, shape), the top 12 by time:');
    for (const [key, v] of [...proxy.byShape.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12))
      console.log(`    ${String(v.n).padStart(6)} ${v.ms.toFixed(0).padStart(8)} ms  ${key}`);
    const lookups = ['hit', 'shared', 'miss'].map((r) => `${r} ${metricSum(atReady, 'weir_catalog_lookups_total', `result="${r}"`)}`);
    if (atReady.includes('weir_catalog_lookups_total')) console.log(`  catalog lookups: ${lookups.join(', ')}`);
    const statusWrites = atReady.includes('weir_status_writes_total') ? metricSum(atReady, 'weir_status_writes_total') : undefined;
    await sleep(REST_MS);
    let objectsBytes = 0;
    for (const plural of ['datasources', 'pipes']) {
      const list = (await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as { items: { metadata: Record<string, unknown> }[] };
      for (const item of list.items) {
        delete item.metadata.managedFields;
        objectsBytes += JSON.stringify(item).length;
      }
    }
    const rest = await metrics();
    const mib = (name: string, match = '') => f(metricSum(rest, name, match) / 2 ** 20, 0);
    console.log(
      `  at rest: RSS ${f(rssMiB(pid), 0)} MiB; V8 heap used ${mib('nodejs_heap_size_used_bytes')} of ${mib('nodejs_heap_size_total_bytes')} MiB committed (old space ${mib('nodejs_heap_space_size_total_bytes', 'space="old"')}, new space ${mib('nodejs_heap_space_size_total_bytes', 'space="new"')}, large objects ${mib('nodejs_heap_space_size_total_bytes', 'space="large_object"')}); external ${mib('nodejs_external_memory_bytes')} MiB`,
    );
    const gc = GC_AT_REST ? await afterFullGc(pid, metrics) : {};
    return {
      ...gc,
      size,
      applyS,
      readyS,
      restBeforeMiB,
      restAfterMiB: rssMiB(pid),
      peakMiB: rssMiB(pid, 'VmHWM'),
      reconciles,
      reconcilesPerS: reconciles / readyS,
      queries,
      queriesPerReconcile: queries / reconciles,
      statusWrites,
      cpuS,
      clickhouseCpuS,
      heapAfterMiB: metricSum(await metrics(), 'nodejs_heap_size_used_bytes') / 2 ** 20,
      objectsMiB: objectsBytes / 2 ** 20,
    };
  } finally {
    await operator.kill('SIGTERM');
    await proxy.close();
    await clickhouse.stop();
    await cluster.stop();
  }
}

function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim();
    return dirty ? `${head} (src/ had uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

const f = (n: number, d = 1) => n.toFixed(d);

async function main() {
  console.log(`versions: node ${process.version}, weir ${commit()}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`);
  const results: Result[] = [];
  for (const size of SIZES) {
    console.log(`size ${size}: starting a fresh control plane, ClickHouse and operator`);
    const r = await runSize(size);
    results.push(r);
    console.log(`size ${size}: ${JSON.stringify(r)}`);
  }
  console.log(
    '\n| resources | apply s | apply → all Ready s | RSS at rest before MiB | RSS at rest after MiB | peak RSS MiB | reconciles | reconciles/s | ClickHouse requests/reconcile | status writes | operator CPU s | ClickHouse CPU s | heap used at rest MiB | objects as JSON MiB |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    console.log(
      `| ${r.size} | ${f(r.applyS)} | ${f(r.readyS)} | ${f(r.restBeforeMiB, 0)} | ${f(r.restAfterMiB, 0)} | ${f(r.peakMiB, 0)} | ${r.reconciles} | ${f(r.reconcilesPerS)} | ${f(r.queriesPerReconcile, 2)} | ${r.statusWrites ?? '—'} | ${f(r.cpuS)} | ${f(r.clickhouseCpuS)} | ${f(r.heapAfterMiB, 0)} | ${f(r.objectsMiB)} |`,
    );
  }
  const base = results.find((r) => r.size === 0);
  for (const r of results.filter((x) => x.size > 0 && base)) {
    console.log(
      `RSS per 1,000 resources at ${r.size}: ${f(((r.restAfterMiB - (base as Result).restAfterMiB) / r.size) * 1000)} MiB (at rest, over the 0-resource run)`,
    );
    const g = base as Result;
    if (r.gcRssMiB !== undefined && g.gcRssMiB !== undefined)
      console.log(
        `after a full GC at ${r.size}: RSS ${f(r.gcRssMiB, 0)} MiB, heap ${f(r.gcHeapMiB ?? 0, 0)} MiB; per 1,000 resources ${f(((r.gcRssMiB - g.gcRssMiB) / r.size) * 1000)} MiB RSS, ${f((((r.gcHeapMiB ?? 0) - (g.gcHeapMiB ?? 0)) / r.size) * 1000)} MiB heap`,
      );
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
