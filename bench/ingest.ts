// Ingestion benchmark, decomposed: the same rows into ClickHouse five ways, in the same run.
//
//   (a) the engine's own insert of the NDJSON bytes (`INSERT … FORMAT JSONEachRow` over HTTP): the physical limit here
//   (b) @clickhouse/client inserting the rows (objects), in batches of the worker's size: the baseline
//   (c) a hand-written kafkajs consumer inserting each fetched batch (bench/ingest-kafkajs-consumer.ts)
//   (d) `weir ingest`, draining the same topic
//   (e) the events API as `weir dev` serves it (POST /v0/events), at concurrency 1 and 16, with (b)
//       again against `weir dev`'s own embedded ClickHouse as its baseline
//
//   npm run build && npx tsx bench/ingest.ts [--rows N] [--repeat K] [--paths a,b,c,d,e] ...
//
// Every path fails the run unless its table ends with exactly the rows sent. The order of the paths
// rotates each repeat. See bench/README.md for what the figures mean.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { API_VERSION } from '../src/api/common.js';
import type { DataSource } from '../src/api/datasource.js';
import { connectClickHouse, type ClickHouse } from '../src/clickhouse/connection.js';
import { deduplicationOff } from '../src/clickhouse/dedup.js';
import { applyProject } from '../src/execute/apply.js';
import { createLogger } from '../src/runtime/log.js';
import { MAPPED_ROW_SETTINGS } from '../src/workers/rows.js';
import { createTopic, kafkaClient, startClickHouseProcess, startIngester, writeConfig } from '../test/fixtures/ingest.js';
import { startKafka } from '../test/fixtures/kafka.js';
import { startWeir, type WeirProcess } from '../test/fixtures/processes.js';
import { freePorts } from '../test/env/processes.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '4' },
    'batch-rows': { type: 'string', default: '100000' },
    repeat: { type: 'string', default: '1' },
    paths: { type: 'string', default: 'a,b,c,d,e' },
    'request-rows': { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '1,16' },
  },
});
const ROWS = Number(values.rows);
const PARTITIONS = Number(values.partitions);
const BATCH = Number(values['batch-rows']);
const REPEAT = Number(values.repeat);
const PATHS = new Set(values.paths.split(','));
const REQUEST_ROWS = Number(values['request-rows']);
const CONCURRENCY = values.concurrency.split(',').map(Number);

const PAGES = Array.from({ length: 500 }, (_, i) => `/page/${i}`);
const COUNTRIES = ['DE', 'FR', 'US', 'GB', 'ES', 'IT', 'NL'];

/** The i-th event, as a producer would send it (the example's page view shape, about 130 bytes of JSON). */
function event(i: number, base: number) {
  return {
    timestamp: new Date(base - (i % 86_400) * 1000).toISOString(),
    session_id: `s-${i}`,
    tenant_id: `t${i % 50}`,
    pathname: PAGES[i % PAGES.length],
    country: COUNTRIES[i % COUNTRIES.length],
    duration_ms: i % 5000,
  };
}

function dataSource(name: string, namespace: string, ingestion?: { bootstrap: string; topic: string }): DataSource {
  return {
    apiVersion: API_VERSION,
    kind: 'DataSource',
    metadata: { name, namespace },
    spec: {
      columns: [
        { name: 'timestamp', type: "DateTime64(3, 'UTC')", jsonPath: '$.timestamp' },
        { name: 'session_id', type: 'String', jsonPath: '$.session_id' },
        { name: 'tenant_id', type: 'LowCardinality(String)', jsonPath: '$.tenant_id' },
        { name: 'pathname', type: 'String', jsonPath: '$.pathname' },
        { name: 'country', type: 'LowCardinality(String)', jsonPath: '$.country' },
        { name: 'duration_ms', type: 'UInt32', jsonPath: '$.duration_ms' },
      ],
      engine: { type: 'MergeTree', sortingKey: ['tenant_id', 'timestamp'], partitionKey: 'toYYYYMM(timestamp)' },
      ...(ingestion
        ? {
            ingestion: {
              kafka: { bootstrapServers: [ingestion.bootstrap], topic: ingestion.topic },
              batch: { maxRows: BATCH, maxBytes: 256 * 1024 * 1024, maxDelayMs: 1000 },
            },
          }
        : {}),
    },
  };
}

const count = async (ch: ClickHouse, table: string) => Number((await ch.query<{ n: string }>(`SELECT count() AS n FROM ${table}`))[0]?.n ?? 0);

/** CPU seconds (user + system) a process used so far; 0 once it is gone. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** The Kafka broker's JVM (started by the test fixture). */
const kafkaPid = () =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('kafka.Kafka');
      } catch {
        return false;
      }
    });

const peakRssMiB = (pid: number) => {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
};

/** One path's figures: rows/s, and CPU seconds per million rows of each process that did work. */
interface Figure {
  path: string;
  rowsPerS: number;
  cpuPerM: Record<string, number>;
  load: number;
  rssMiB?: number;
}

/** CPU of named processes over a timed window, per million rows. */
function cpuWindow(pids: Record<string, number | undefined>): { stop(rows: number): Record<string, number> } {
  const start = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, pid === process.pid ? selfCpu() : cpuSeconds(pid)]));
  return {
    stop: (rows) =>
      Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, (((pid === process.pid ? selfCpu() : cpuSeconds(pid)) - (start[k] ?? 0)) * 1e6) / rows])),
  };
}

/**
 * Poll `table` every 200 ms until it holds `rows` (each count() is ClickHouse CPU in the window).
 * The rate is from the first rows landing to the last (a consumer group's join is not counted);
 * the CPU is from `window` (started once the consumer was ready to consume) to the last row, over
 * all rows.
 */
async function drain(ch: ClickHouse, table: string, window: ReturnType<typeof cpuWindow>, watchRss?: number) {
  let first = 0;
  let firstCount = 0;
  let rss = 0;
  for (;;) {
    const n = await count(ch, table);
    const now = performance.now();
    if (watchRss !== undefined) rss = Math.max(rss, peakRssMiB(watchRss));
    if (n > 0 && first === 0) {
      first = now;
      firstCount = n;
    }
    if (n >= ROWS) {
      if (n !== ROWS) throw new Error(`${table}: ${n} rows, expected ${ROWS}`);
      return { rowsPerS: (ROWS - firstCount) / ((now - first) / 1000), cpuPerM: window.stop(ROWS), rss };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function timed(ch: ClickHouse, table: string, pids: Record<string, number | undefined>, work: () => Promise<void>) {
  const window = cpuWindow(pids);
  const started = performance.now();
  await work();
  const s = (performance.now() - started) / 1000;
  const cpuPerM = window.stop(ROWS);
  const n = await count(ch, table);
  if (n !== ROWS) throw new Error(`${table}: ${n} rows, expected ${ROWS}`);
  return { rowsPerS: ROWS / s, cpuPerM };
}

/** Run `tasks` with at most `concurrency` at once. */
async function pool(tasks: (() => Promise<void>)[], concurrency: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < tasks.length) await (tasks[next++] as () => Promise<void>)();
    }),
  );
}

/** `weir dev` on a folder of the DataSources path (e) writes into; its ClickHouse is embedded. */
async function startDev(): Promise<{ proc: WeirProcess; url: string; ch: ClickHouse; chUrl: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-dev-'));
  const resources = ['views-b', ...CONCURRENCY.map((c) => `views-e${c}`)].map((n) => dataSource(n, 'benchdev'));
  writeFileSync(join(dir, 'datasources.yaml'), resources.map((r) => stringify(r)).join('---\n'));
  const [port, chPort] = await freePorts(2);
  const proc = startWeir(['dev', '-f', dir, '--port', String(port), '--clickhouse-port', String(chPort), '--data-dir', join(dir, 'data')]);
  const chUrl = `http://127.0.0.1:${chPort}`;
  const ch = connectClickHouse({ url: chUrl, requestTimeoutMs: 600_000 });
  for (let i = 0; ; i++) {
    const ok = await count(ch, 'benchdev.views_b').then(
      () => true,
      () => false,
    );
    if (ok) break;
    if (i > 600 || proc.child.exitCode !== null) throw new Error(`weir dev did not start: ${proc.output.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { proc, url: `http://127.0.0.1:${port}`, ch, chUrl };
}

async function postEvents(url: string, name: string, body: Buffer): Promise<void> {
  const res = await fetch(`${url}/v0/events?name=${encodeURIComponent(name)}`, { method: 'POST', body });
  if (res.status !== 200) throw new Error(`events API answered ${res.status}: ${await res.text()}`);
  await res.text();
}

async function main() {
  const log = createLogger({ format: 'pretty', level: 'warn' });
  const [kafka, clickhouse, dev] = await Promise.all([startKafka(), startClickHouseProcess(), PATHS.has('e') ? startDev() : undefined]);
  const ch = clickhouse.ch;
  const chPid = clickhouse.proc.child.pid;
  const admin = kafkaClient(kafka.bootstrap).admin();
  await admin.connect();
  const base = Date.now();
  const rows = Array.from({ length: ROWS }, (_, i) => event(i, base));
  const lines = rows.map((r) => JSON.stringify(r));
  const ndjson = (from: number, to: number) => Buffer.from(`${lines.slice(from, to).join('\n')}\n`);
  const batches = Array.from({ length: Math.ceil(ROWS / BATCH) }, (_, i) => ndjson(i * BATCH, (i + 1) * BATCH));
  const requests = Array.from({ length: Math.ceil(ROWS / REQUEST_ROWS) }, (_, i) => ndjson(i * REQUEST_ROWS, (i + 1) * REQUEST_ROWS));
  const settings = { ...MAPPED_ROW_SETTINGS, ...(await deduplicationOff(ch)) };
  const figures: Figure[][] = [];
  const children: ChildProcess[] = [];
  try {
    for (let run = 1; run <= REPEAT; run++) {
      const namespace = `bench${run}_${Date.now() % 100_000}`;
      const topic = `bench-${run}-${Date.now()}`;
      await createTopic(admin, topic, PARTITIONS);
      const ds = dataSource('views', namespace, { bootstrap: kafka.bootstrap, topic });
      await applyProject(ch, [ds, dataSource('views-a', namespace), dataSource('views-b', namespace), dataSource('views-c', namespace)], { log });
      if (PATHS.has('c') || PATHS.has('d')) {
        const producer = kafkaClient(kafka.bootstrap).producer();
        await producer.connect();
        for (let i = 0; i < ROWS; i += 10_000) {
          await producer.send({ topic, messages: lines.slice(i, i + 10_000).map((value, j) => ({ key: String((i + j) % PARTITIONS), value })) });
        }
        await producer.disconnect();
      }
      const phases: Record<string, () => Promise<Figure[]>> = {
        a: async () => {
          const query = new URLSearchParams({
            query: `INSERT INTO ${namespace}.views_a FORMAT JSONEachRow`,
            ...Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, String(v)])),
          });
          const r = await timed(ch, `${namespace}.views_a`, { bench: process.pid, clickhouse: chPid }, async () => {
            for (const body of batches) {
              const res = await fetch(`${clickhouse.url}/?${query.toString()}`, { method: 'POST', body });
              if (res.status !== 200) throw new Error(`(a) ${res.status}: ${await res.text()}`);
              await res.text();
            }
          });
          return [{ path: '(a) engine: NDJSON bytes, INSERT … FORMAT JSONEachRow', ...r, load: os.loadavg()[0] ?? 0 }];
        },
        b: async () => {
          const r = await timed(ch, `${namespace}.views_b`, { bench: process.pid, clickhouse: chPid }, async () => {
            for (let i = 0; i < ROWS; i += BATCH) await ch.insert(`${namespace}.views_b`, rows.slice(i, i + BATCH), { settings });
          });
          return [{ path: '(b) @clickhouse/client insert of the rows', ...r, load: os.loadavg()[0] ?? 0 }];
        },
        c: async () => {
          const child = spawn(
            process.execPath,
            ['--import', 'tsx', 'bench/ingest-kafkajs-consumer.ts', kafka.bootstrap, topic, `bench-c-${topic}`, `${namespace}.views_c`, clickhouse.url],
            { stdio: ['ignore', 'pipe', 'inherit'] },
          );
          children.push(child);
          await new Promise<void>((resolve, reject) => {
            child.stdout?.on('data', (d: Buffer) => d.toString().includes('consuming') && resolve());
            child.once('exit', () => reject(new Error('(c) consumer exited')));
          });
          const load = os.loadavg()[0] ?? 0;
          const window = cpuWindow({ consumer: child.pid, clickhouse: chPid, kafka: kafkaPid() });
          const r = await drain(ch, `${namespace}.views_c`, window, child.pid);
          child.kill('SIGTERM');
          return [{ path: '(c) hand-written kafkajs consumer', rowsPerS: r.rowsPerS, cpuPerM: r.cpuPerM, load, rssMiB: r.rss }];
        },
        d: async () => {
          // WEIR_BENCH_PROFILE=<dir> writes the worker's CPU profile there (node --cpu-prof).
          const profile = process.env.WEIR_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.WEIR_BENCH_PROFILE}`] : [];
          const extraEnv: Record<string, string> = {};
          if (process.env.WEIR_BENCH_NODE_OPTIONS) extraEnv.NODE_OPTIONS = process.env.WEIR_BENCH_NODE_OPTIONS;
          const worker = await startIngester(writeConfig(ds), clickhouse.url, extraEnv, profile);
          const load = os.loadavg()[0] ?? 0;
          const window = cpuWindow({ worker: worker.child.pid, clickhouse: chPid, kafka: kafkaPid() });
          const r = await drain(ch, `${namespace}.views`, window, worker.child.pid);
          await worker.kill('SIGTERM');
          return [{ path: '(d) weir ingest', rowsPerS: r.rowsPerS, cpuPerM: r.cpuPerM, load, rssMiB: r.rss }];
        },
        e: async () => {
          if (!dev) return [];
          const devPid = dev.proc.child.pid;
          const out: Figure[] = [];
          await dev.ch.command('TRUNCATE TABLE benchdev.views_b');
          const b = await timed(dev.ch, 'benchdev.views_b', { bench: process.pid, 'weir dev': devPid }, async () => {
            for (let i = 0; i < ROWS; i += BATCH) await dev.ch.insert('benchdev.views_b', rows.slice(i, i + BATCH), { settings });
          });
          out.push({ path: "(b') @clickhouse/client insert into weir dev's ClickHouse", ...b, load: os.loadavg()[0] ?? 0 });
          for (const c of CONCURRENCY) {
            const table = `benchdev.views_e${c}`;
            await dev.ch.command(`TRUNCATE TABLE ${table}`);
            const r = await timed(dev.ch, table, { bench: process.pid, 'weir dev': devPid }, () =>
              pool(
                requests.map((body) => () => postEvents(dev.url, `views-e${c}`, body)),
                c,
              ),
            );
            out.push({
              path: `(e) events API (weir dev), concurrency ${c}, ${REQUEST_ROWS.toLocaleString('en')} rows a request`,
              ...r,
              load: os.loadavg()[0] ?? 0,
            });
          }
          return out;
        },
      };
      const order = ['a', 'b', 'c', 'd', 'e'].filter((p) => PATHS.has(p));
      const rotated = [...order.slice((run - 1) % order.length), ...order.slice(0, (run - 1) % order.length)];
      const round: Figure[] = [];
      for (const p of rotated) round.push(...(await (phases[p] as () => Promise<Figure[]>)()));
      figures.push(round);
      const b = round.find((f) => f.path.startsWith('(b)'))?.rowsPerS;
      const bDev = round.find((f) => f.path.startsWith("(b')"))?.rowsPerS;
      const c = round.find((f) => f.path.startsWith('(c)'))?.rowsPerS;
      console.log(`run ${run} (order ${rotated.join(',')}):`);
      for (const f of [...round].sort((x, y) => x.path.localeCompare(y.path))) {
        const vsB = f.path.startsWith('(e)') ? bDev : b;
        console.log(
          `  ${f.path}: ${Math.round(f.rowsPerS).toLocaleString('en')} rows/s` +
            (vsB ? `, ${(f.rowsPerS / vsB).toFixed(2)} of ${f.path.startsWith('(e)') ? "(b')" : '(b)'}` : '') +
            (c && f.path.startsWith('(d)') ? `, ${(f.rowsPerS / c).toFixed(2)} of (c)` : '') +
            `; CPU s per 1M rows: ${Object.entries(f.cpuPerM)
              .map(([k, v]) => `${k} ${v.toFixed(2)}`)
              .join(', ')}` +
            (f.rssMiB ? `; peak RSS ${f.rssMiB.toFixed(0)} MiB` : '') +
            `; load ${f.load.toFixed(1)}`,
        );
      }
    }
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await admin.disconnect();
    await clickhouse.stop();
    if (dev) {
      await dev.ch.close();
      await dev.proc.kill('SIGTERM');
    }
    await kafka.stop();
  }
  if (figures.length > 1) {
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    console.log('median over runs:');
    for (const f of figures[0] ?? []) {
      const same = figures.map((r) => r.find((g) => g.path === f.path)).filter((g): g is Figure => g !== undefined);
      console.log(
        `  ${f.path}: ${Math.round(median(same.map((g) => g.rowsPerS))).toLocaleString('en')} rows/s; CPU s per 1M rows: ${Object.keys(f.cpuPerM)
          .map((k) => `${k} ${median(same.map((g) => g.cpuPerM[k] ?? NaN)).toFixed(2)}`)
          .join(', ')}`,
      );
    }
  }
  console.log(
    `${ROWS.toLocaleString('en')} rows, ${PARTITIONS} partitions, batch ${BATCH.toLocaleString('en')} rows; ${os.cpus().length} CPUs, Node ${process.version}; load average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
