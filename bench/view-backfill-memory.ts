// Memory of a materialized Pipe's backfill: a high-cardinality GROUP BY over a large table under
// a fixed max_memory_usage, done three ways in one run on the same rows:
//   1. one INSERT … SELECT … GROUP BY with max_memory_usage only (what a hand-written backfill is);
//   2. the same statement with the GROUP BY spilling to disk past half of that memory;
//   3. weir creating the Pipe (its backfill reads the source in chunks, one INSERT each).
// Each is checked exactly: every key once, counts and sums equal to the source's.
//
//   npx tsx bench/view-backfill-memory.ts [--rows N] [--keys K] [--memory-bytes B] [--chunk-rows C] [--skip-single]
//
// One embedded ClickHouse server (chDB over HTTP, temp data dir, port 0). The memory limit is a
// setting of the connection the statements (and weir) use; fill and checks run without it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { API_VERSION } from '../src/api/common.js';
import type { DataSource } from '../src/api/datasource.js';
import type { Pipe } from '../src/api/pipe.js';
import { connectClickHouse, type ClickHouse } from '../src/clickhouse/connection.js';
import { startClickHouseServer } from '../src/clickhouse/server.js';
import { applyProject } from '../src/execute/apply.js';
import { qualified } from '../src/plan/sql.js';
import { createLogger } from '../src/runtime/log.js';

const REQUEST_TIMEOUT_MS = 2 * 3600_000;
// Checks group at most about this many keys at once, so the checks fit where the backfill would not.
const CHECK_BUCKET_KEYS = 5_000_000;

const log = (message: string): void => console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
const seconds = (since: number): number => (performance.now() - since) / 1000;
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toLocaleString('en', { maximumFractionDigits: 0 })} MiB`;

function options(): { rows: number; keys: number; memoryBytes: number; chunkRows: number | undefined; skipSingle: boolean } {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '100000000' },
      keys: { type: 'string' },
      'memory-bytes': { type: 'string', default: String(2 ** 30) },
      'chunk-rows': { type: 'string' },
      'skip-single': { type: 'boolean', default: false },
    },
  });
  const int = (name: string, v: string | undefined): number => {
    const n = Number(v?.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
    return n;
  };
  const rows = int('rows', values.rows);
  return {
    rows,
    // Half as many keys as rows: most keys hold one or two rows, the GROUP BY state is as large as it gets.
    keys: values.keys === undefined ? Math.ceil(rows / 2) : int('keys', values.keys),
    memoryBytes: int('memory-bytes', values['memory-bytes']),
    chunkRows: values['chunk-rows'] === undefined ? undefined : int('chunk-rows', values['chunk-rows']),
    skipSingle: values['skip-single'] ?? false,
  };
}

const events = (namespace: string): DataSource => ({
  apiVersion: API_VERSION,
  kind: 'DataSource',
  metadata: { name: 'events', namespace },
  spec: {
    columns: [
      { name: 'timestamp', type: 'DateTime', jsonPath: '$.timestamp' },
      { name: 'user_id', type: 'String', jsonPath: '$.user_id' },
      { name: 'amount', type: 'UInt32', jsonPath: '$.amount' },
    ],
    engine: { type: 'MergeTree', sortingKey: ['timestamp'], partitionKey: 'toYYYYMM(timestamp)' },
    deletionPolicy: 'Retain',
  },
});

const perUser = (namespace: string): DataSource => ({
  apiVersion: API_VERSION,
  kind: 'DataSource',
  metadata: { name: 'per-user', namespace },
  spec: {
    columns: [
      { name: 'user_id', type: 'String' },
      { name: 'events', type: 'AggregateFunction(count)' },
      { name: 'amount', type: 'SimpleAggregateFunction(sum, UInt64)' },
    ],
    engine: { type: 'AggregatingMergeTree', sortingKey: ['user_id'] },
    deletionPolicy: 'Retain',
  },
});

const ROLLUP_SQL = 'SELECT user_id, countState() AS events, sum(toUInt64(amount)) AS amount FROM events GROUP BY user_id';

const rollup = (namespace: string): Pipe => ({
  apiVersion: API_VERSION,
  kind: 'Pipe',
  metadata: { name: 'per-user-rollup', namespace },
  spec: { nodes: [{ name: 'rollup', sql: ROLLUP_SQL }], materialize: { node: 'rollup', into: 'per-user' } },
});

/** N events over the three months before this one, `keys` distinct user ids. */
async function fill(ch: ClickHouse, table: string, rows: number, keys: number): Promise<void> {
  await ch.command(
    `INSERT INTO ${table} (timestamp, user_id, amount)
     SELECT toStartOfMonth(now()) - toIntervalSecond(1 + cityHash64(number, 3) % (90 * 86400)),
            concat('user-', toString(cityHash64(number) % ${keys})),
            toUInt32(cityHash64(number, 2) % 1000)
     FROM numbers(${rows})`,
  );
}

/** Per bucket of user ids: keys, events and amount, from the source and from an aggregate target; any difference is listed. */
async function mismatches(ch: ClickHouse, source: string, target: string, keys: number): Promise<string[]> {
  const buckets = Math.max(1, Math.ceil(keys / CHECK_BUCKET_KEYS));
  const out: string[] = [];
  for (let b = 0; b < buckets; b++) {
    const where = `cityHash64(user_id) % ${buckets} = ${b}`;
    const [s] = await ch.query<{ k: string; n: string; a: string }>(
      `SELECT uniqExact(user_id) AS k, count() AS n, sum(toUInt64(amount)) AS a FROM ${source} WHERE ${where}`,
    );
    const [t] = await ch.query<{ k: string; n: string; a: string }>(
      `SELECT count() AS k, sum(e) AS n, sum(a) AS a FROM (SELECT user_id, countMerge(events) AS e, sum(amount) AS a FROM ${target} WHERE ${where} GROUP BY user_id)`,
    );
    if (s?.k !== t?.k || s?.n !== t?.n || s?.a !== t?.a)
      out.push(`bucket ${b}: source keys/events/amount ${s?.k}/${s?.n}/${s?.a}, ${target} ${t?.k}/${t?.n}/${t?.a}`);
  }
  return out;
}

/**
 * The most memory a running statement held, sampled from system.processes every 100 ms while
 * `work` runs (the embedded server keeps no query_log, and lists statements under ids of its own,
 * so this is the peak over every statement but the sampler's: weir's other statements are small).
 */
async function peakWhile<T>(ch: ClickHouse, work: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      try {
        const [row] = await ch.query<{ m: string }>(
          "SELECT toString(max(peak_memory_usage)) AS m FROM system.processes WHERE query NOT LIKE '%system.processes%'",
        );
        peak = Math.max(peak, Number(row?.m ?? 0));
      } catch {
        // A sample lost under load: the next one counts.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    return { value: await work(), peak };
  } finally {
    running = false;
    await sampler;
  }
}

const failure = (e: unknown): string => {
  const message = e instanceof Error ? e.message : String(e);
  return `failed: ${/MEMORY_LIMIT_EXCEEDED|memory limit exceeded/i.test(message) ? 'MEMORY_LIMIT_EXCEEDED' : message.split('\n')[0]?.slice(0, 160)}`;
};

interface Outcome {
  way: string;
  result: string;
  seconds: number;
  peak: string;
}

async function single(limited: ClickHouse, plain: ClickHouse, db: string, spill: boolean, memoryBytes: number, keys: number): Promise<Outcome> {
  const target = qualified(db, spill ? 'direct_spill' : 'direct');
  await plain.command(`CREATE TABLE ${target} AS ${qualified(db, 'per_user')}`);
  const started = performance.now();
  const { value: error, peak } = await peakWhile(plain, () =>
    limited
      .command(`INSERT INTO ${target} ${ROLLUP_SQL.replace('FROM events', `FROM ${qualified(db, 'events')}`)}`, {
        settings: { max_bytes_before_external_group_by: spill ? Math.floor(memoryBytes / 2) : 0 },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      ),
  );
  const s = seconds(started);
  let result = error === undefined ? '' : failure(error);
  if (error === undefined) {
    const wrong = await mismatches(plain, qualified(db, 'events'), target, keys);
    result = wrong.length === 0 ? 'completed, exact' : `completed, WRONG: ${wrong.slice(0, 3).join('; ')}`;
  }
  await plain.command(`DROP TABLE ${target} SYNC`);
  return { way: spill ? 'one statement, GROUP BY spilling past half' : 'one statement', result, seconds: s, peak: mib(peak) };
}

async function main(): Promise<void> {
  const opts = options();
  const dataDir = mkdtempSync(join(os.tmpdir(), 'weir-bench-'));
  const server = await startClickHouseServer({ dataDir, port: 0 });
  const plain = connectClickHouse({ url: server.url, requestTimeoutMs: REQUEST_TIMEOUT_MS });
  const limited = connectClickHouse({ url: server.url, requestTimeoutMs: REQUEST_TIMEOUT_MS, settings: { max_memory_usage: opts.memoryBytes } });
  const namespace = `bench-${randomBytes(4).toString('hex')}`;
  const db = namespace.replace(/-/g, '_');
  const weirLog = createLogger({ level: 'warn' });
  try {
    log(`create ${db}.events and ${db}.per_user through weir, fill ${opts.rows.toLocaleString('en')} rows, ${opts.keys.toLocaleString('en')} keys`);
    await applyProject(plain, [events(namespace), perUser(namespace)], { log: weirLog });
    let started = performance.now();
    await fill(plain, qualified(db, 'events'), opts.rows, opts.keys);
    const fillS = seconds(started);
    const [parts] = await plain.query<{ p: string; b: string }>(
      `SELECT count() AS p, sum(bytes_on_disk) AS b FROM system.parts WHERE database = {db:String} AND table = 'events' AND active`,
      { params: { db } },
    );

    const outcomes: Outcome[] = [];
    if (!opts.skipSingle) {
      for (const spill of [false, true]) {
        log(`one statement${spill ? ', spilling' : ''}`);
        outcomes.push(await single(limited, plain, db, spill, opts.memoryBytes, opts.keys));
      }
    }

    log('weir: create the materialized Pipe (chunked backfill)');
    let chunks = 0;
    started = performance.now();
    const { value: error, peak } = await peakWhile(plain, () =>
      applyProject(limited, [events(namespace), perUser(namespace), rollup(namespace)], {
        log: weirLog,
        ...(opts.chunkRows !== undefined ? { backfill: { chunkRows: opts.chunkRows } } : {}),
        hooks: {
          onProgress: (_step, state, detail) => {
            if (state === 'Backfilling' && typeof detail?.chunks === 'number') chunks = detail.chunks;
          },
        },
      }).then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    const weirS = seconds(started);
    let result = error === undefined ? '' : failure(error);
    if (error === undefined) {
      const wrong = await mismatches(plain, qualified(db, 'events'), qualified(db, 'per_user'), opts.keys);
      result = wrong.length === 0 ? 'completed, exact' : `completed, WRONG: ${wrong.slice(0, 3).join('; ')}`;
    }
    outcomes.push({ way: `weir, ${chunks} chunks`, result, seconds: weirS, peak: mib(peak) });

    const [version] = await plain.query<{ v: string }>('SELECT version() AS v');
    console.log(`\nMaterialized Pipe backfill under max_memory_usage = ${mib(opts.memoryBytes)}: ${ROLLUP_SQL}`);
    console.log(
      `source: ${opts.rows.toLocaleString('en')} rows, ${opts.keys.toLocaleString('en')} keys, ${parts?.p} parts, ${mib(Number(parts?.b))} on disk; filled in ${fillS.toFixed(1)} s`,
    );
    console.log(
      `machine: ${os.availableParallelism()} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; ClickHouse ${version?.v} (chdb, embedded); load average ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}\n`,
    );
    console.log('| backfill | result | s | peak memory of a running statement (sampled) |');
    console.log('|---|---|---:|---:|');
    for (const o of outcomes) console.log(`| ${o.way} | ${o.result} | ${o.seconds.toFixed(1)} | ${o.peak} |`);
    if (!outcomes.at(-1)?.result.startsWith('completed, exact')) process.exitCode = 1;
  } finally {
    await plain.close();
    await limited.close();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`view-backfill memory benchmark failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
