// `weir test` on the example project next to the same work done by hand, in the same run
// (rounds alternate: weir test, by hand, weir test, …):
//
//   weir test   `node dist/cli/main.js test -f manifests/examples/web-analytics -o json` as CI runs
//               it: its own embedded engine, the project applied by weir's planner and executor
//               (ledger, table locks, fences), the fixtures through the events API's mapping, the
//               cases over HTTP through the endpoint handler. Its JSON report gives the times.
//   by hand     in this process, on one embedded engine started once, a fresh database per round:
//               the example's tables and view created with hand-written DDL, the fixture lines
//               inserted as JSONEachRow (mapped by the same row mapper, outside the timing), and
//               the cases' queries sent straight to ClickHouse with their parameters.
//
//   npm run build && npx tsx bench/weir-test.ts [--rounds 5]
//
// The ratio compares the time after the engine is up (apply + fixtures + cases). See bench/README.md.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import type { DataSource } from '../src/api/datasource.js';
import { connectClickHouse } from '../src/clickhouse/connection.js';
import { startClickHouseServer } from '../src/clickhouse/server.js';
import { splitLines } from '../src/workers/events-body.js';
import { compileRowMapper, MAPPED_ROW_SETTINGS } from '../src/workers/rows.js';

const WEIR = join(process.cwd(), 'dist/cli/main.js');
const EXAMPLE = join(process.cwd(), 'manifests/examples/web-analytics');
const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const ROUNDS = Number(args.rounds);

interface WeirRun {
  wallMs: number;
  engineMs: number;
  afterEngineMs: number;
  applyMs: number;
  fixturesMs: number;
  testsMs: number;
  passed: number;
}

interface HandRun {
  totalMs: number;
  ddlMs: number;
  insertMs: number;
  casesMs: number;
}

function runWeirTest(): Promise<WeirRun> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WEIR, 'test', '-f', EXAMPLE, '-o', 'json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const wallMs = performance.now() - started;
      if (code !== 0) return reject(new Error(`weir test exited ${code}: ${out}`));
      const doc = JSON.parse(out) as { passed: number; timings: { engineMs: number; applyMs: number; fixturesMs: number; testsMs: number } };
      const t = doc.timings;
      resolve({ wallMs, ...t, afterEngineMs: t.applyMs + t.fixturesMs + t.testsMs, passed: doc.passed });
    });
  });
}

const DDL = (db: string) => [
  `CREATE DATABASE ${db}`,
  `CREATE TABLE ${db}.page_views (timestamp DateTime64(3), session_id String, tenant_id LowCardinality(String), pathname String,
     country LowCardinality(String) DEFAULT 'unknown', duration_ms UInt32 DEFAULT 0)
   ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (tenant_id, timestamp) TTL toDateTime(timestamp) + INTERVAL 180 DAY`,
  `CREATE TABLE ${db}.page_views_quarantine (source String, raw String, error String, at DateTime64(3) DEFAULT now64(3)) ENGINE = MergeTree ORDER BY at`,
  `CREATE TABLE ${db}.page_views_daily (day Date, tenant_id LowCardinality(String), pathname String, views AggregateFunction(count), visitors AggregateFunction(uniq, String))
   ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(day) ORDER BY (tenant_id, day, pathname)`,
  `CREATE MATERIALIZED VIEW ${db}.daily_rollup TO ${db}.page_views_daily AS
   SELECT toDate(timestamp) AS day, tenant_id, pathname, countState() AS views, uniqState(session_id) AS visitors FROM ${db}.page_views GROUP BY day, tenant_id, pathname`,
];

const TOP_PAGES = `WITH scoped AS (SELECT day, pathname, countMerge(views) AS views, uniqMerge(visitors) AS visitors FROM page_views_daily
  WHERE tenant_id = {tenant:String} AND day BETWEEN {date_from:Date} AND {date_to:Date} GROUP BY day, pathname)
  SELECT pathname, sum(views) AS views, sum(visitors) AS visitors FROM scoped GROUP BY pathname ORDER BY views DESC LIMIT {limit:UInt32}`;
const DEFAULTS = { date_from: '2020-01-01', date_to: '2100-01-01', limit: 10 };

/** The example's cases as direct queries (the two 400s are refused by weir before any query: none here). */
const CASES: { sql: string; params?: Record<string, unknown> }[] = [
  {
    sql: 'SELECT (SELECT count() FROM page_views) AS landed, (SELECT count() FROM page_views_quarantine) AS quarantined WHERE landed != 18 OR quarantined != 3',
  },
  { sql: "SELECT session_id FROM page_views WHERE country = ''" },
  { sql: 'SELECT (SELECT count() FROM page_views) AS events, (SELECT countMerge(views) FROM page_views_daily) AS rolled_up WHERE events != rolled_up' },
  { sql: TOP_PAGES, params: { ...DEFAULTS, tenant: 'acme', limit: 2 } },
  { sql: 'SELECT tenant_id, day, pathname FROM page_views_daily GROUP BY tenant_id, day, pathname HAVING countMerge(views) < 0' },
  { sql: TOP_PAGES, params: { ...DEFAULTS, tenant: 'globex' } },
  { sql: TOP_PAGES, params: { ...DEFAULTS, tenant: 'initech', date_from: '2099-06-03', date_to: '2099-06-03' } },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main() {
  const ds = parseAllDocuments(readFileSync(join(EXAMPLE, 'datasources.yaml'), 'utf8'))
    .map((d) => d.toJS() as DataSource)
    .find((d) => d.metadata.name === 'page-views');
  if (!ds) throw new Error('page-views not found in the example');
  const mapper = compileRowMapper(ds.spec.columns);
  const rows: object[] = [];
  const bad: object[] = [];
  for (const line of splitLines(readFileSync(join(EXAMPLE, 'fixtures/page_views.ndjson')))) {
    if (!('text' in line)) continue;
    const r = mapper.map(line.text);
    if (r.ok) rows.push(r.row);
    else bad.push({ source: 'http', raw: line.text, error: r.error });
  }

  const dataDir = mkdtempSync(join(os.tmpdir(), 'weir-bench-test-'));
  const server = await startClickHouseServer({ dataDir, port: 0 });
  const ch = connectClickHouse({ url: server.url });
  const byHand = async (round: number): Promise<HandRun> => {
    const db = `bench_test_${process.pid}_${round}`;
    const started = performance.now();
    for (const sql of DDL(db)) await ch.command(sql);
    const ddl = performance.now();
    await ch.insert(`${db}.page_views`, rows, { settings: MAPPED_ROW_SETTINGS });
    await ch.insert(`${db}.page_views_quarantine`, bad);
    const inserted = performance.now();
    for (const c of CASES) await ch.query(c.sql, { database: db, ...(c.params ? { params: c.params } : {}), settings: { readonly: 2 } });
    const done = performance.now();
    await ch.command(`DROP DATABASE ${db} SYNC`);
    return { totalMs: done - started, ddlMs: ddl - started, insertMs: inserted - ddl, casesMs: done - inserted };
  };

  const weir: WeirRun[] = [];
  const hand: HandRun[] = [];
  await byHand(ROUNDS); // warm-up
  for (let i = 0; i < ROUNDS; i++) {
    weir.push(await runWeirTest());
    hand.push(await byHand(i));
    const w = weir[i] as WeirRun;
    console.error(
      `round ${i + 1}: weir test ${Math.round(w.afterEngineMs)} ms after the engine (wall ${Math.round(w.wallMs)} ms), by hand ${Math.round((hand[i] as HandRun).totalMs)} ms`,
    );
  }
  await ch.close();
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });

  const med = <T>(xs: T[], f: (x: T) => number) => Math.round(median(xs.map(f)));
  const m = {
    rounds: ROUNDS,
    cases: weir[0]?.passed,
    weir: {
      afterEngineMs: med(weir, (w) => w.afterEngineMs),
      applyMs: med(weir, (w) => w.applyMs),
      fixturesMs: med(weir, (w) => w.fixturesMs),
      testsMs: med(weir, (w) => w.testsMs),
      engineMs: med(weir, (w) => w.engineMs),
      wallMs: med(weir, (w) => w.wallMs),
    },
    byHand: {
      totalMs: med(hand, (h) => h.totalMs),
      ddlMs: med(hand, (h) => h.ddlMs),
      insertMs: med(hand, (h) => h.insertMs),
      casesMs: med(hand, (h) => h.casesMs),
    },
  };
  const ratio = (a: number, b: number) => Number((a / b).toFixed(1));
  console.log(
    JSON.stringify({
      ...m,
      ratios: {
        afterEngine: ratio(m.weir.afterEngineMs, m.byHand.totalMs),
        apply: ratio(m.weir.applyMs, m.byHand.ddlMs),
        fixtures: ratio(m.weir.fixturesMs, m.byHand.insertMs),
        cases: ratio(m.weir.testsMs, m.byHand.casesMs),
      },
      loadAverage: os.loadavg().map((x) => Number(x.toFixed(1))),
    }),
  );
}

void main();
