// Events API benchmark (issue 17, section 1): many small concurrent POSTs through `weir events`
// with its two ways of inserting them, next to the same requests' rows inserted straight into
// ClickHouse with @clickhouse/client, in the same run on the same rows:
//
//   direct         one insert per request (what a client writing to ClickHouse would do)
//   direct-async   one insert per request with async_insert=1, wait_for_async_insert=1 (ClickHouse coalesces)
//   coalesce       weir events --insert-mode coalesce: requests queued while an insert runs go in the next one
//   async_insert   weir events --insert-mode async_insert: one insert per request, async_insert + wait
//   coalesce+key   coalesce, every request with an Idempotency-Key (its own insert under its token, the key claimed)
//
//   npm run build && npx tsx bench/events.ts [--requests N] [--rows-per-request R] [--concurrency 1,16] [--rounds K]
//
// Three processes, as in a cluster: ClickHouse (`weir clickhouse`: chDB behind the ClickHouse HTTP
// protocol), `weir events` (dist/cli/main.js), and this one, which generates the load. Every phase
// is checked exactly afterwards: its rows in the table, by count and by distinct id.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createClient } from '@clickhouse/client';
import { stringify } from 'yaml';
import type { DataSource } from '../src/api/datasource.js';
import { connectClickHouse } from '../src/clickhouse/connection.js';
import { applyProject } from '../src/execute/apply.js';
import { holderName } from '../src/execute/table-lock.js';
import { createLogger } from '../src/runtime/log.js';

const WEIR = join(process.cwd(), 'dist/cli/main.js');
const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000' },
    'rows-per-request': { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '1,16' },
    rounds: { type: 'string', default: '2' },
    paths: { type: 'string', default: 'direct,direct-async,coalesce,async_insert,coalesce+key' },
  },
});
const REQUESTS = Number(args.requests);
const ROWS = Number(args['rows-per-request']);
const LEVELS = args.concurrency.split(',').map(Number);
const ROUNDS = Number(args.rounds);
const PATHS = args.paths.split(',');
const log = (line: string) => console.error(`[bench] ${line}`);

function startProcess(argv: string[], match: (l: Record<string, unknown>) => boolean, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [WEIR, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise<{ child: ChildProcess; line: Record<string, unknown> }>((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      for (const l of buf.split('\n').slice(0, -1)) {
        try {
          const j = JSON.parse(l) as Record<string, unknown>;
          if (match(j)) resolve({ child, line: j });
        } catch {
          /* not JSON */
        }
      }
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${argv[0]} exited ${code}`)));
  });
}

/** CPU seconds a process has used (utime + stime from /proc). */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(parts[11]) + Number(parts[12])) / 100;
  } catch {
    return NaN;
  }
}

const rowsOf = (phase: string, r: number) => {
  const ts = new Date().toISOString().replace('T', ' ').replace('Z', '');
  return Array.from({ length: ROWS }, (_, i) => ({ id: `${phase}-${r}-${i}`, n: i, page: `/p${i % 17}`, ts }));
};
const body = (phase: string, r: number) =>
  rowsOf(phase, r)
    .map((o) => `${JSON.stringify(o)}\n`)
    .join('');

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'weir-bench-events-'));
  const ch = await startProcess(['clickhouse', '--data-dir', dataDir, '--port', '0'], (l) => l.message === 'clickhouse listening');
  const chUrl = String(ch.line.url);
  const weirCh = connectClickHouse({ url: chUrl });
  const ds: DataSource = {
    apiVersion: 'weir.dev/v1alpha1',
    kind: 'DataSource',
    metadata: { name: 'clicks', namespace: 'bench' },
    spec: {
      database: 'bench',
      columns: [
        { name: 'id', type: 'String', jsonPath: '$.id' },
        { name: 'n', type: 'UInt32', jsonPath: '$.n' },
        { name: 'page', type: 'LowCardinality(String)', jsonPath: '$.page' },
        { name: 'ts', type: "DateTime64(3, 'UTC')", jsonPath: '$.ts' },
      ],
      engine: { type: 'MergeTree', sortingKey: ['page', 'id'] },
      ingestion: { http: {} },
    },
  };
  await applyProject(weirCh, [ds], { log: createLogger({ level: 'error' }), holder: holderName('bench') });
  const config = join(mkdtempSync(join(os.tmpdir(), 'weir-bench-events-cfg-')), 'datasource.yaml');
  writeFileSync(config, stringify(ds));
  const servers = new Map<string, { child: ChildProcess; port: number }>();
  for (const mode of ['coalesce', 'async_insert']) {
    const s = await startProcess(
      ['events', '--config', config, '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--insert-mode', mode],
      (l) => l.message === 'events server listening',
      { WEIR_CLICKHOUSE_URL: chUrl, POD_NAME: `bench-${mode}` },
    );
    servers.set(mode, { child: s.child, port: Number(s.line.port) });
  }
  const client = createClient({ url: chUrl, max_open_connections: 32 });
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });

  const post = (port: number, text: string, key?: string) =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/v0/events?name=clicks', method: 'POST', agent, headers: key ? { 'idempotency-key': key } : {} },
        (res) => {
          let t = '';
          res.on('data', (d: Buffer) => (t += d.toString()));
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${res.statusCode}: ${t}`))));
        },
      );
      req.on('error', reject);
      req.end(text);
    });

  const send: Record<string, (phase: string, r: number) => Promise<void>> = {
    direct: (phase, r) =>
      client.insert({ table: 'bench.clicks', values: rowsOf(phase, r), format: 'JSONEachRow', clickhouse_settings: { async_insert: 0 } }).then(() => undefined),
    'direct-async': (phase, r) =>
      client
        .insert({
          table: 'bench.clicks',
          values: rowsOf(phase, r),
          format: 'JSONEachRow',
          clickhouse_settings: { async_insert: 1, wait_for_async_insert: 1, async_insert_deduplicate: 0 },
        })
        .then(() => undefined),
    coalesce: (phase, r) => post(servers.get('coalesce')?.port ?? 0, body(phase, r)),
    async_insert: (phase, r) => post(servers.get('async_insert')?.port ?? 0, body(phase, r)),
    'coalesce+key': (phase, r) => post(servers.get('coalesce')?.port ?? 0, body(phase, r), randomUUID()),
  };
  const pidOf: Record<string, number | undefined> = {
    coalesce: servers.get('coalesce')?.child.pid,
    async_insert: servers.get('async_insert')?.child.pid,
    'coalesce+key': servers.get('coalesce')?.child.pid,
  };

  const results: { path: string; c: number; rowsPerS: number; weirCpuPerM: number; chCpuPerM: number }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of LEVELS) {
      for (const path of PATHS) {
        const phase = `${path}-c${c}-r${round}-${randomUUID().slice(0, 6)}`;
        let next = 0;
        const chCpu0 = cpuSeconds(ch.child.pid ?? 0);
        const pid = pidOf[path];
        const weirCpu0 = pid ? cpuSeconds(pid) : 0;
        const t0 = performance.now();
        await Promise.all(
          Array.from({ length: c }, async () => {
            while (next < REQUESTS) await (send[path] as (p: string, r: number) => Promise<void>)(phase, next++);
          }),
        );
        const s = (performance.now() - t0) / 1000;
        const rows = REQUESTS * ROWS;
        const [got] = await weirCh.query<{ n: string; u: string }>(
          `SELECT count() AS n, uniqExact(id) AS u FROM bench.clicks WHERE startsWith(id, {p:String})`,
          { params: { p: `${phase}-` } },
        );
        if (Number(got?.n) !== rows || Number(got?.u) !== rows) throw new Error(`${phase}: ${got?.n}/${got?.u} rows in the table, ${rows} sent`);
        const perM = 1e6 / rows;
        results.push({
          path,
          c,
          rowsPerS: rows / s,
          weirCpuPerM: pid ? (cpuSeconds(pid) - weirCpu0) * perM : 0,
          chCpuPerM: (cpuSeconds(ch.child.pid ?? 0) - chCpu0) * perM,
        });
        log(`${path} c=${c} round ${round + 1}: ${Math.round(rows / s)} rows/s (${((REQUESTS / s) | 0).toLocaleString()} requests/s), ${rows} rows checked`);
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  console.log(`\n${REQUESTS} requests of ${ROWS} rows per phase, ${ROUNDS} round(s), median; ratio against direct at the same concurrency\n`);
  console.log('| path | concurrency | rows/s | requests/s | ÷ direct | weir CPU s / M rows | ClickHouse CPU s / M rows |');
  console.log('|---|---|---|---|---|---|---|');
  for (const c of LEVELS) {
    const direct = median(results.filter((r) => r.path === 'direct' && r.c === c).map((r) => r.rowsPerS));
    for (const path of PATHS) {
      const rs = results.filter((r) => r.path === path && r.c === c);
      const v = median(rs.map((r) => r.rowsPerS));
      console.log(
        `| ${path} | ${c} | ${Math.round(v).toLocaleString('en')} | ${Math.round(v / ROWS).toLocaleString('en')} | ${(v / direct).toFixed(2)} | ${path.startsWith('direct') ? '—' : median(rs.map((r) => r.weirCpuPerM)).toFixed(1)} | ${median(rs.map((r) => r.chCpuPerM)).toFixed(1)} |`,
      );
    }
  }
  await client.close();
  agent.destroy();
  for (const s of servers.values()) s.child.kill('SIGTERM');
  await weirCh.close();
  ch.child.kill('SIGTERM');
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
