// Endpoint benchmark: the example project's top_pages endpoint through `weir serve` next to the
// same parameterised query sent straight to ClickHouse with @clickhouse/client, at the same
// concurrency, in the same run (phases alternate: direct, weir, direct, weir, …). The same endpoint
// is also served with signed tokens (spec.auth.jwt; the tenant fixed by the token's weir.dev/params)
// and timed in the same alternation, HS256 and ES256, so that the cost of JWT verification is the
// difference to the static-token phases; an in-process loop times one verification by itself.
//
//   npm run build && npx tsx bench/endpoint.ts [--rows N] [--concurrency C] [--phase-s S] [--rounds R]
//
// Three processes, as in a cluster: ClickHouse (`weir clickhouse`: chDB behind the ClickHouse
// HTTP protocol), `weir serve` (dist/cli/main.js, with the example's auth on, its request log
// and metrics), and this process, which generates the load. See bench/README.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createClient } from '@clickhouse/client';
import { parseAllDocuments } from 'yaml';
import type { Endpoint } from '../src/api/endpoint.js';
import type { Pipe } from '../src/api/pipe.js';
import { applyProject } from '../src/execute/apply.js';
import { connectClickHouse } from '../src/clickhouse/connection.js';
import type { ProjectResource } from '../src/plan/graph.js';
import { sleep } from '../src/runtime/backoff.js';
import { createLogger } from '../src/runtime/log.js';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { compileEndpoint } from '../src/plan/endpoint/compile.js';
import { querySettings } from '../src/workers/serve/handler.js';
import { importSigningKeys, VerifiedTokens, verifyJwt } from '../src/workers/serve/jwt.js';
import { TokenStore } from '../src/workers/serve/tokens.js';

const WEIR = join(process.cwd(), 'dist/cli/main.js');
const EXAMPLE = join(process.cwd(), 'manifests/examples/web-analytics');
const DAY_MS = 86_400_000;
const TENANTS = 50;
const TOKEN = randomBytes(16).toString('hex');
const HS_SECRET = randomBytes(32).toString('hex');
const ISSUER = 'https://bench.example';
const AUDIENCE = 'weir-bench';
const SIGNING_SECRET = 'bench-signing';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    // One or more levels, e.g. 1,8: every level runs both paths.
    concurrency: { type: 'string', default: '1,8' },
    'phase-s': { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    // e.g. --serve-node-options="--cpu-prof --cpu-prof-dir=/tmp/prof": profile weir serve while it is measured.
    'serve-node-options': { type: 'string', default: '' },
  },
});
const ROWS = Number(args.rows);
const LEVELS = args.concurrency.split(',').map(Number);
const MAX_CONCURRENCY = Math.max(...LEVELS);
const PHASE_MS = Number(args['phase-s']) * 1000;
const ROUNDS = Number(args.rounds);

const log = (line: string) => console.error(`[bench] ${line}`);

/** Starts `node dist/cli/main.js <args>` and resolves with the first JSON log line `match` accepts. */
function startProcess(
  argv: string[],
  match: (l: Record<string, unknown>) => boolean,
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<{ child: ChildProcess; line: Record<string, unknown> }> {
  const child = spawn(process.execPath, [...nodeArgs, WEIR, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      for (const text of chunk.toString().split('\n')) {
        if (!text.trim()) continue;
        tail.push(text);
        if (tail.length > 20) tail.shift();
        try {
          const line = JSON.parse(text) as Record<string, unknown>;
          if (match(line)) resolve({ child, line });
        } catch {
          // not a log line
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`weir ${argv[0]} exited (${code}) before it was up:\n${tail.join('\n')}`)));
  });
}

const stop = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });

/** Resident set size of a process, in MiB (Linux). */
function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/** CPU seconds a process has used (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime, in clock ticks (USER_HZ, 100 on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

type Path = 'direct' | 'weir' | 'weir-hs256' | 'weir-es256';

interface Phase {
  path: Path;
  concurrency: number;
  requests: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
  /** weir serve's CPU seconds and peak RSS during the phase (weir phases only). */
  serveCpuS?: number;
  servePeakRssMiB?: number;
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** Runs `one(i)` from CONCURRENCY loops for PHASE_MS; each call is one request, its latency recorded. */
async function runPhase(path: Path, concurrency: number, one: (i: number) => Promise<void>, servePid?: number, phaseMs = PHASE_MS): Promise<Phase> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const end = started + phaseMs;
  const cpuBefore = servePid ? cpuSeconds(servePid) : 0;
  let peak = 0;
  const sampler = servePid ? setInterval(() => (peak = Math.max(peak, rssMiB(servePid))), 100) : undefined;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const i = next++;
        const t0 = performance.now();
        try {
          await one(i);
          latenciesMs.push(performance.now() - t0);
        } catch (e) {
          errors++;
          if (errors <= 3) log(`${path} request failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }),
  );
  clearInterval(sampler);
  const seconds = (performance.now() - started) / 1000;
  const phase: Phase = { path, concurrency, requests: latenciesMs.length, errors, seconds, latenciesMs };
  if (servePid) {
    phase.serveCpuS = cpuSeconds(servePid) - cpuBefore;
    phase.servePeakRssMiB = Math.max(peak, rssMiB(servePid));
  }
  return phase;
}

async function main(): Promise<void> {
  if (!existsSync(WEIR)) throw new Error(`${WEIR} is missing: run npm run build first`);
  const benchStarted = performance.now();
  const work = mkdtempSync(join(os.tmpdir(), 'weir-bench-endpoint-'));
  const children: ChildProcess[] = [];
  try {
    // 1. ClickHouse in its own process.
    const clickhouse = await startProcess(
      ['clickhouse', '--data-dir', join(work, 'data'), '--port', '0', '--host', '127.0.0.1'],
      (l) => l.message === 'clickhouse listening',
      {
        WEIR_LOG_LEVEL: 'info',
      },
    );
    children.push(clickhouse.child);
    const url = String(clickhouse.line.url);
    const ch = connectClickHouse({ url });

    // 2. The example project, and page views over the last 29 days (inside the 180-day TTL).
    const namespace = `bench-${randomBytes(3).toString('hex')}`;
    const database = namespace.replace(/-/g, '_');
    const resources: ProjectResource[] = ['datasources.yaml', 'pipes.yaml', 'endpoints.yaml'].flatMap((f) =>
      parseAllDocuments(readFileSync(join(EXAMPLE, f), 'utf8'))
        .map((d) => d.toJS() as ProjectResource)
        .filter(Boolean)
        .map((o) => ({ ...o, metadata: { ...o.metadata, namespace } })),
    );
    await applyProject(ch, resources, { log: createLogger({ level: 'warn' }) });
    const filled = performance.now();
    await ch.command(
      `INSERT INTO ${database}.page_views (timestamp, session_id, tenant_id, pathname, country, duration_ms)
       SELECT now64(3) - toIntervalMillisecond(cityHash64(number) % ${29 * DAY_MS}), concat('s-', toString(number % 200000)),
              concat('t', toString(number % ${TENANTS})), concat('/page/', toString(cityHash64(number, 1) % 500)),
              ['de', 'us', 'fr', 'gb', 'jp', 'br', 'in'][number % 7 + 1], toUInt32(cityHash64(number, 2) % 30000)
       FROM numbers(${ROWS})`,
    );
    await ch.command(`OPTIMIZE TABLE ${database}.page_views_daily FINAL`);
    const dailyRows = Number((await ch.query<{ n: string }>(`SELECT count() AS n FROM ${database}.page_views_daily`))[0]?.n);
    log(
      `filled ${ROWS.toLocaleString('en')} page views (${dailyRows.toLocaleString('en')} rollup rows) in ${((performance.now() - filled) / 1000).toFixed(1)} s`,
    );

    // 3. weir serve with the example's top-pages Endpoint as compiled, auth on.
    const endpoint = resources.find((r): r is Endpoint => r.kind === 'Endpoint' && r.metadata.name === 'top-pages');
    const pipe = resources.find((r): r is Pipe => r.kind === 'Pipe' && r.metadata.name === 'top-pages');
    if (!endpoint || !pipe) throw new Error('the example project has no top-pages Endpoint and Pipe');
    const compiled = compileEndpoint(endpoint, pipe, database);
    if ('problem' in compiled) throw new Error(compiled.problem);
    // The same Endpoint with signed tokens: the browser's token fixes the tenant.
    const signedEndpoint: Endpoint = {
      ...endpoint,
      metadata: { ...endpoint.metadata, name: 'top-pages-signed' },
      spec: { ...endpoint.spec, auth: { jwt: { secretRef: { name: SIGNING_SECRET }, issuer: ISSUER, audience: AUDIENCE } } },
    };
    const signed = compileEndpoint(signedEndpoint, pipe, database);
    if ('problem' in signed) throw new Error(signed.problem);
    const config = join(work, 'endpoints.json');
    writeFileSync(config, JSON.stringify({ endpoints: [compiled, signed] }));
    const tokensDir = join(work, 'tokens');
    mkdirSync(join(tokensDir, compiled.auth?.tokensSecret ?? 'none'), { recursive: true });
    writeFileSync(join(tokensDir, compiled.auth?.tokensSecret ?? 'none', 'bench'), TOKEN);
    const es = await generateKeyPair('ES256', { extractable: true });
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(es.publicKey)), kid: 'es-1', alg: 'ES256' }] });
    mkdirSync(join(tokensDir, SIGNING_SECRET), { recursive: true });
    writeFileSync(join(tokensDir, SIGNING_SECRET, 'secret'), HS_SECRET);
    writeFileSync(join(tokensDir, SIGNING_SECRET, 'jwks.json'), jwks);
    const mint = (tenant: string, alg: 'HS256' | 'ES256', key: CryptoKey | Uint8Array) =>
      new SignJWT({ 'weir.dev/endpoints': ['top_pages_signed'], 'weir.dev/params': { tenant } })
        .setProtectedHeader({ alg, ...(alg === 'ES256' ? { kid: 'es-1' } : {}) })
        .setSubject(`customer-${tenant}`)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime('2h')
        .sign(key);
    const hsKey = new TextEncoder().encode(HS_SECRET);
    const hsTokens = await Promise.all(Array.from({ length: TENANTS }, (_, i) => mint(`t${i}`, 'HS256', hsKey)));
    const esTokens = await Promise.all(Array.from({ length: TENANTS }, (_, i) => mint(`t${i}`, 'ES256', es.privateKey)));
    const serve = await startProcess(
      ['serve', '--config', config, '--port', '0', '--metrics-port', '0', '--host', '127.0.0.1', '--tokens-dir', tokensDir],
      (l) => l.message === 'endpoint server listening',
      { WEIR_CLICKHOUSE_URL: url },
      args['serve-node-options'] ? args['serve-node-options'].split(' ') : [],
    );
    children.push(serve.child);
    const servePid = serve.child.pid ?? 0;
    const metricsPort = Number(serve.line.metricsPort);
    const servePort = Number(serve.line.port);
    for (;;) {
      const status = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).then((r) => r.status);
      if (status === 200) break;
      await sleep(100);
    }
    await sleep(500);
    const idleRss = rssMiB(servePid);

    // 4. The two clients, each with a keep-alive pool of CONCURRENCY connections.
    const direct = createClient({
      url,
      max_open_connections: MAX_CONCURRENCY,
      request_timeout: 30_000,
      clickhouse_settings: { output_format_json_quote_64bit_integers: 1 },
    });
    const settings = querySettings(compiled);
    const tenant = (i: number) => `t${i % TENANTS}`;
    const viaDirect = async (i: number) => {
      const rs = await direct.query({
        query: compiled.sql,
        format: 'JSON',
        query_params: { tenant: tenant(i), date_from: '2020-01-01', date_to: '2100-01-01', limit: 10 },
        clickhouse_settings: settings,
        http_headers: { 'X-ClickHouse-Database': database },
      });
      const body = await rs.text();
      if (!body.includes('"rows": 10')) throw new Error(`direct: unexpected answer ${body.slice(0, 200)}`);
    };
    const agent = new Agent({ keepAlive: true, maxSockets: MAX_CONCURRENCY });
    const viaServe = (path: string, token: string) =>
      new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: servePort, path, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString();
            if (res.statusCode === 200 && body.includes('"rows": 10')) resolve();
            else reject(new Error(`weir: ${res.statusCode} ${body.slice(0, 200)}`));
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
    const viaWeir = (i: number) => viaServe(`/v0/pipes/top_pages.json?tenant=${tenant(i)}`, TOKEN);
    const viaHs256 = (i: number) => viaServe('/v0/pipes/top_pages_signed.json', hsTokens[i % TENANTS] ?? '');
    const viaEs256 = (i: number) => viaServe('/v0/pipes/top_pages_signed.json', esTokens[i % TENANTS] ?? '');
    const paths: [Path, (i: number) => Promise<void>][] = [
      ['direct', viaDirect],
      ['weir', viaWeir],
      ['weir-hs256', viaHs256],
      ['weir-es256', viaEs256],
    ];

    // Same answer every way, before anything is timed.
    for (const [, one] of paths) await one(0);

    // 5. Warm up both, then alternate timed phases.
    const phaseMs = PHASE_MS;
    log(`concurrency ${LEVELS.join(', ')}: ${ROUNDS} rounds of ${phaseMs / 1000} s per path, alternating`);
    // The one checked request above, then every phase's.
    let weirRequests = 1;
    weirRequests += paths.length - 1;
    for (const [path, one] of paths) {
      const warmup = await runPhase(path, MAX_CONCURRENCY, one, undefined, 2000);
      if (path !== 'direct') weirRequests += warmup.requests + warmup.errors;
    }
    const phases: Phase[] = [];
    for (const concurrency of LEVELS) {
      for (let r = 0; r < ROUNDS; r++) {
        for (const [path, one] of paths) {
          const phase = await runPhase(path, concurrency, one, path !== 'direct' ? servePid : undefined);
          phases.push(phase);
          if (path !== 'direct') weirRequests += phase.requests + phase.errors;
          log(`concurrency ${concurrency}, ${path}: ${(phase.requests / phase.seconds).toFixed(0)} req/s, ${phase.errors} errors`);
        }
      }
    }
    const loadedRss = Math.max(...phases.map((p) => p.servePeakRssMiB ?? 0));
    // The request log flushes every second, off the request path.
    await sleep(1500);
    const logged = Number(
      (
        await ch
          .query<{ n: string }>(`SELECT count() AS n FROM weir.endpoint_requests WHERE namespace = {ns:String}`, { params: { ns: namespace } })
          .catch(() => [{ n: 'NaN' }])
      )[0]?.n,
    );

    // 6. Figures.
    const summary = (path: Path, concurrency: number) => {
      const ps = phases.filter((p) => p.path === path && p.concurrency === concurrency);
      const all = ps.flatMap((p) => p.latenciesMs).sort((a, b) => a - b);
      const requests = ps.reduce((n, p) => n + p.requests, 0);
      const seconds = ps.reduce((n, p) => n + p.seconds, 0);
      const cpu = ps.reduce((n, p) => n + (p.serveCpuS ?? 0), 0);
      return {
        requests,
        errors: ps.reduce((n, p) => n + p.errors, 0),
        rps: requests / seconds,
        p50: percentile(all, 50),
        p99: percentile(all, 99),
        serveCpuPerRequestMs: (cpu / requests) * 1000,
      };
    };
    console.log(
      `\n${ROUNDS} × ${phaseMs / 1000} s per path and level, alternating; ${ROWS.toLocaleString('en')} page views, ${dailyRows.toLocaleString('en')} rollup rows\n`,
    );
    console.log(
      '| concurrency | path | requests | errors | req/s | p50 ms | p99 ms | weir/direct req/s | p50 overhead ms | p99 overhead ms | weir serve CPU ms/request |',
    );
    console.log('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of LEVELS) {
      const d = summary('direct', c);
      const cells = (s: typeof d) => `${s.requests.toLocaleString('en')} | ${s.errors} | ${s.rps.toFixed(0)} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)}`;
      console.log(`| ${c} | direct (@clickhouse/client) | ${cells(d)} | | | | |`);
      for (const [path, label] of [
        ['weir', 'weir serve, static token'],
        ['weir-hs256', 'weir serve, JWT HS256'],
        ['weir-es256', 'weir serve, JWT ES256'],
      ] as const) {
        const w = summary(path, c);
        console.log(
          `| ${c} | ${label} | ${cells(w)} | ${(w.rps / d.rps).toFixed(2)} | ${(w.p50 - d.p50).toFixed(2)} | ${(w.p99 - d.p99).toFixed(2)} | ${w.serveCpuPerRequestMs.toFixed(2)} |`,
        );
      }
    }
    console.log('\nJWT verification per request, against the static token on the same endpoint (same run, phases alternating):');
    console.log('| concurrency | algorithm | p50 with JWT ms | p50 static token ms | p50 overhead ms | weir serve CPU ms/request: JWT − static |');
    console.log('|---:|---|---:|---:|---:|---:|');
    for (const c of LEVELS) {
      const w = summary('weir', c);
      for (const [path, alg] of [
        ['weir-hs256', 'HS256'],
        ['weir-es256', 'ES256'],
      ] as const) {
        const j = summary(path, c);
        console.log(
          `| ${c} | ${alg} | ${j.p50.toFixed(2)} | ${w.p50.toFixed(2)} | ${(j.p50 - w.p50).toFixed(3)} | ${(j.serveCpuPerRequestMs - w.serveCpuPerRequestMs).toFixed(3)} |`,
        );
      }
    }
    // The auth step by itself, in this process: a JWT verification (jose's jwtVerify plus weir's key
    // choice) against the static token's digest check. CPU time as well as wall time: on a loaded
    // machine the wall time of a loop measures the scheduler too. Median of 5 rounds.
    const { keys } = await importSigningKeys(
      new Map([
        ['secret', HS_SECRET],
        ['jwks.json', jwks],
      ]),
    );
    const settingsJwt = signed.auth?.jwt;
    if (!settingsJwt) throw new Error('the signed endpoint has no jwt settings');
    const staticStore = new TokenStore(tokensDir, () => [compiled.auth?.tokensSecret ?? 'none'], createLogger({ level: 'warn' }));
    await staticStore.reload();
    const timeAuth = async (check: (i: number) => Promise<boolean> | boolean) => {
      const n = 2000;
      for (let i = 0; i < 200; i++) await check(i);
      const rounds: { wallUs: number; cpuUs: number }[] = [];
      for (let r = 0; r < 5; r++) {
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        for (let i = 0; i < n; i++) if (!(await check(i))) throw new Error('a bench token was refused');
        const cpu = process.cpuUsage(cpu0);
        rounds.push({ wallUs: ((performance.now() - t0) / n) * 1000, cpuUs: (cpu.user + cpu.system) / n });
      }
      const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN;
      return { wallUs: median(rounds.map((r) => r.wallUs)), cpuUs: median(rounds.map((r) => r.cpuUs)) };
    };
    const staticCost = await timeAuth(() => staticStore.match(compiled.auth?.tokensSecret ?? 'none', TOKEN) !== undefined);
    const hsCost = await timeAuth(async (i) => (await verifyJwt(hsTokens[i % TENANTS] ?? '', keys, settingsJwt)).ok);
    const esCost = await timeAuth(async (i) => (await verifyJwt(esTokens[i % TENANTS] ?? '', keys, settingsJwt)).ok);
    // What weir serve does: a token seen before (each bench client repeats its tenant's token) is not checked again.
    const cache = new VerifiedTokens();
    const cachedCost = await timeAuth(async (i) => (await cache.verify(hsTokens[i % TENANTS] ?? '', keys, settingsJwt)).ok);
    console.log('\nThe auth step alone, in-process (median of 5 rounds of 2,000; the first three rows check every signature):');
    console.log('| check | wall µs | CPU µs | CPU µs over the static token |');
    console.log('|---|---:|---:|---:|');
    for (const [label, c] of [
      ['static token (SHA-256 + timingSafeEqual)', staticCost],
      ['JWT HS256', hsCost],
      ['JWT ES256', esCost],
      ['JWT seen before (VerifiedTokens, as weir serve runs)', cachedCost],
    ] as const) {
      console.log(`| ${label} | ${c.wallUs.toFixed(1)} | ${c.cpuUs.toFixed(1)} | ${(c.cpuUs - staticCost.cpuUs).toFixed(1)} |`);
    }
    console.log(
      `load average at the end: ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(', ')} (${os.cpus().length} CPUs)`,
    );
    console.log('\ngoals: weir/direct req/s ≥ 0.8, p50 overhead ≤ 2 ms');
    console.log(`weir serve RSS: idle ${idleRss.toFixed(0)} MiB, peak under load ${loadedRss.toFixed(0)} MiB`);
    console.log(`request log rows for the run: ${logged.toLocaleString('en')} of ${weirRequests.toLocaleString('en')} weir requests`);
    console.log(
      `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, Node ${process.version}; bench took ${((performance.now() - benchStarted) / 1000).toFixed(0)} s`,
    );
    await direct.close();
    agent.destroy();
    await ch.close();
  } finally {
    for (const child of children.reverse()) await stop(child);
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
