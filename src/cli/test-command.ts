// `weir test -f DIR`: the data tests of a project, run in CI before anything reaches a cluster.
// One embedded engine (chDB) for the run, in a temporary directory; the project applied with the
// same plan and executor as the operator; fixtures/<datasource>.ndjson loaded through the events
// API's mapping (lines that do not map land in the quarantine); then every case of tests/*.yaml:
// endpoint cases over HTTP through the real endpoint handler (the same parameter validation), SQL
// cases as queries that must return no rows.
//
// --from DIR builds the previous project first, loads the fixtures into it, and applies this one
// as a migration (copy-and-swap, views recomputed) before the tests; then each DataSource must
// hold exactly the rows it held before. --clickhouse URL runs in scratch databases of a live
// server, dropped at the end whatever happens.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import type { DataSource } from '../api/datasource.js';
import type { Endpoint, Format } from '../api/endpoint.js';
import { clickhouseName, databaseOf, namespaceDatabase, resourceName, tableOf } from '../api/names.js';
import { formatValidationError } from '../api/validate.js';
import { connectClickHouse, type ClickHouse } from '../clickhouse/connection.js';
import { toClickHouseError } from '../clickhouse/errors.js';
import { startClickHouseServer, type ClickHouseServer } from '../clickhouse/server.js';
import { ApplyFailedError, applyProject } from '../execute/apply.js';
import { DEFAULT_FENCE_TIMING } from '../execute/fence.js';
import { holderName } from '../execute/table-lock.js';
import { compileEndpoint, TOKEN_PARAM } from '../plan/endpoint/compile.js';
import type { ProjectResource } from '../plan/graph.js';
import { queryDatabaseIn } from '../plan/project-checks.js';
import type { Pipe } from '../api/pipe.js';
import { describeAnyStep, pendingChanges } from '../plan/project-plan.js';
import { quarantineTableName } from '../plan/sql.js';
import { quoteIdentifier } from '../plan/sql-text.js';
import { createLogger, errorMessage, type Logger } from '../runtime/log.js';
import { splitLines } from '../workers/events-body.js';
import { EventsApi } from '../workers/events.js';
import { createEndpointHandler } from '../workers/serve/handler.js';
import { compileEndpoints } from './dev.js';
import { loadResources } from './load.js';
import {
  formatProblem,
  matchesFilter,
  parseTestFile,
  queryString,
  unknownEndpoints,
  unknownParams,
  type EndpointCase,
  type Row,
  type SqlCase,
  type TestCase,
  type TestFileProblem,
} from './test-cases.js';
import { renderDiff, sameRows, showValue } from './test-diff.js';
import { counts, jsonReport, junitReport, type RunSummary, type TestResult } from './test-report.js';
import {
  defaultDatabase,
  fingerprintQuery,
  fixtureTarget,
  inScratchDatabases,
  isMaterializedInto,
  projectDatabases,
  sameFeed,
  scratchDatabase,
  sharedColumns,
} from './test-project.js';
import { updateExpectedRows } from './test-update.js';

export interface TestFlags {
  filename: string;
  namespace: string;
  from?: string;
  update?: boolean;
  junit?: string;
  output: 'text' | 'json';
  filter?: string;
  clickhouse?: string;
  user?: string;
  password?: string;
}

/** A problem that stops the run before or while setting up (not a failed test): said in one line or a few, exit 1. */
class RunError extends Error {}

interface Fixture {
  /** As shown: relative to the working directory. */
  file: string;
  name: string;
  lines: ReturnType<typeof splitLines>;
}

interface LoadedFixture {
  file: string;
  datasource: string;
  lines: number;
  accepted: number;
  quarantined: number;
}

/** A path as the user reads it: relative to the working directory when inside it, else absolute. */
const shown = (path: string) => {
  const rel = relative(process.cwd(), path);
  return rel === '' ? path : rel.startsWith('..') ? resolve(path) : rel;
};

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function filesIn(dir: string, pattern: RegExp): string[] {
  if (!isDirectory(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    if (entry.startsWith('.')) continue;
    const path = join(dir, entry);
    if (isDirectory(path)) out.push(...filesIn(path, pattern));
    else if (pattern.test(entry)) out.push(path);
  }
  return out;
}

function loadProject(dir: string, namespace: string, what: string): ProjectResource[] {
  if (!isDirectory(dir)) throw new RunError(`${dir} is not a folder; weir test -f takes the project folder (with fixtures/ and tests/)`);
  const loaded = loadResources(dir, { defaultNamespace: namespace });
  for (const w of loaded.warnings) console.error(`warning: ${formatValidationError(w)}`);
  if (loaded.errors.length > 0) {
    throw new RunError([...loaded.errors.map(formatValidationError), `${loaded.errors.length} error(s) in ${what}; nothing ran`].join('\n'));
  }
  return loaded.resources.map((r) => r.object as unknown as ProjectResource);
}

/** The test cases of the folder, or every problem in them (each naming the file and the case). */
function readCases(dir: string, resources: readonly ProjectResource[]): { cases: TestCase[]; problems: TestFileProblem[] } {
  const cases: TestCase[] = [];
  const problems: TestFileProblem[] = [];
  for (const path of filesIn(join(dir, 'tests'), /\.ya?ml$/)) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      problems.push({ file: shown(path), message: `cannot be read (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})` });
      continue;
    }
    const parsed = parseTestFile(text, shown(path));
    cases.push(...parsed.cases);
    problems.push(...parsed.problems);
  }
  const endpoints = resources.filter((r): r is Endpoint => r.kind === 'Endpoint');
  problems.push(
    ...unknownEndpoints(
      cases,
      endpoints.map((e) => e.metadata.name),
    ),
  );
  // The parameters each Endpoint takes, compiled as the endpoint server compiles them (no ClickHouse needed).
  const params = new Map<string, { params: string[]; alsoAccepted: string[] }>();
  for (const ep of endpoints) {
    const pipe = resources.find(
      (r): r is Pipe => r.kind === 'Pipe' && r.metadata.name === resourceName(ep.spec.pipe) && r.metadata.namespace === ep.metadata.namespace,
    );
    const compiled = pipe ? compileEndpoint(ep, pipe, queryDatabaseIn(pipe, resources)) : undefined;
    if (compiled && !('problem' in compiled))
      params.set(compiled.name, { params: compiled.params.map((p) => p.name), alsoAccepted: compiled.auth ? [TOKEN_PARAM] : [] });
  }
  problems.push(...unknownParams(cases, (name) => params.get(name)));
  return { cases, problems };
}

function readFixtures(dir: string): Fixture[] {
  const folder = join(dir, 'fixtures');
  const out: Fixture[] = [];
  for (const path of filesIn(folder, /./)) {
    if (!path.endsWith('.ndjson')) {
      console.error(`warning: ${shown(path)}: not loaded; fixtures are fixtures/<datasource>.ndjson`);
      continue;
    }
    const name = path.slice(folder.length + 1, -'.ndjson'.length);
    out.push({ file: shown(path), name, lines: splitLines(readFileSync(path)) });
  }
  return out;
}

/** A logger that keeps what the endpoint handler logs of a failed query (ClickHouse's message), by request id. */
function capturingLogger(): { log: Logger; detail: Map<string, string> } {
  const detail = new Map<string, string>();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        try {
          const entry = JSON.parse(line) as { requestId?: string; detail?: string; type?: string; code?: number; error?: string };
          if (entry.requestId && (entry.detail || entry.error)) {
            detail.set(entry.requestId, entry.detail ? `${entry.type || `code ${entry.code ?? '?'}`}: ${entry.detail}` : (entry.error ?? ''));
          }
        } catch {
          // Not one of the handler's entries.
        }
      }
      done();
    },
  });
  const log = winston.createLogger({ level: 'info', format: winston.format.json(), transports: [new winston.transports.Stream({ stream: sink })] });
  return { log, detail };
}

/** What a failed apply says: the resource and reason, then which steps were applied and which not. */
function applyFailure(e: unknown, what: string): RunError {
  if (!(e instanceof ApplyFailedError)) return new RunError(`${what} does not apply: ${errorMessage(e)}`);
  return new RunError(
    [
      `${what} does not apply: ${e.resource}: ${e.problem}`,
      ...(e.applied.length > 0 ? [`  applied: ${e.applied.join('; ')}`] : []),
      `  not applied: ${e.notApplied.join('; ')}`,
    ].join('\n'),
  );
}

const ms = (start: number) => Math.round(performance.now() - start);

/** Lines of a fixture file sent to the events API's ingest at once. */
const FIXTURE_BATCH_LINES = 10_000;

export async function runTest(flags: TestFlags): Promise<number> {
  const json = flags.output === 'json';
  const say = (line: string) => {
    if (!json) console.log(line);
  };
  const runId = randomBytes(4).toString('hex');
  let engine: ClickHouseServer | undefined;
  let dataDir: string | undefined;
  let ch: ClickHouse | undefined;
  let http: Server | undefined;
  const events: EventsApi[] = [];
  const scratch = new Set<string>();
  let cleaned: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaned ??= (async () => {
      if (http) await new Promise<void>((r) => http?.close(() => r())).catch(() => undefined);
      http?.closeAllConnections();
      for (const e of events) await e.close().catch(() => undefined);
      for (const db of scratch) {
        await ch?.command(`DROP DATABASE IF EXISTS ${quoteIdentifier(db)} SYNC`).catch((e: unknown) => {
          console.error(`weir test: the scratch database ${db} was not dropped (${errorMessage(e)}); drop it by hand`);
        });
      }
      if (ch && scratch.size > 0) await forgetScratch(ch, [...scratch]);
      await ch?.close().catch(() => undefined);
      await engine?.stop().catch(() => undefined);
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    })());
  // Ctrl-C or a CI runner's stop: the scratch databases go all the same.
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`weir test: ${signal}, cleaning up`);
    setTimeout(() => process.exit(1), 15_000).unref();
    void cleanUp().then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    let current = loadProject(flags.filename, flags.namespace, flags.filename);
    let previous = flags.from !== undefined ? loadProject(flags.from, flags.namespace, `the previous project (--from ${flags.from})`) : undefined;

    // Every problem in the test files and fixtures is found before anything starts.
    const { cases, problems } = readCases(flags.filename, current);
    const fixtures = readFixtures(flags.filename);
    const fixtureProblems: string[] = [];
    for (const f of fixtures) {
      const target = fixtureTarget(f.name, current);
      if ('problem' in target) fixtureProblems.push(`${f.file}: ${target.problem}`);
    }
    if (problems.length > 0 || fixtureProblems.length > 0) {
      const all = [...problems.map(formatProblem), ...fixtureProblems];
      for (const p of all) console.error(p);
      console.error(`${all.length} problem(s) in the tests and fixtures of ${flags.filename}; nothing ran`);
      if (json) console.log(JSON.stringify({ ok: false, error: `${all.length} problem(s) in the tests and fixtures; nothing ran`, problems: all }, null, 2));
      return 1;
    }
    const selected = cases.filter((c) => matchesFilter(c, flags.filter));
    if (cases.length === 0) console.error(`warning: no test cases in ${join(flags.filename, 'tests')} (tests/*.yaml); see docs/testing.md for the format`);

    // The engine: embedded, or scratch databases of a live server.
    const engineStarted = performance.now();
    let against: string;
    if (flags.clickhouse !== undefined) {
      const rename = (db: string) => scratchDatabase(runId, db);
      const sqlCases = cases.filter((c): c is SqlCase => c.kind === 'sql').map((c) => ({ what: `${c.file}: case "${c.name}"`, sql: c.sql }));
      const moved = inScratchDatabases(current, rename, sqlCases);
      const movedPrevious = previous ? inScratchDatabases(previous, rename) : undefined;
      const refused = [...('problems' in moved ? moved.problems : []), ...(movedPrevious && 'problems' in movedPrevious ? movedPrevious.problems : [])];
      if (refused.length > 0) throw new RunError(refused.join('\n'));
      current = (moved as { resources: ProjectResource[] }).resources;
      previous = movedPrevious ? (movedPrevious as { resources: ProjectResource[] }).resources : undefined;
      for (const db of [...projectDatabases(current), ...(previous ? projectDatabases(previous) : [])]) scratch.add(db);
      ch = connectClickHouse({ url: flags.clickhouse, ...(flags.user ? { username: flags.user, password: flags.password ?? '' } : {}) });
      if (!(await ch.ping())) throw new RunError(`ClickHouse at ${flags.clickhouse} does not answer /ping`);
      against = `${flags.clickhouse}, scratch database(s) ${[...scratch].join(', ')}`;
    } else {
      dataDir = mkdtempSync(join(tmpdir(), 'weir-test-'));
      engine = await startClickHouseServer({ dataDir, port: 0 });
      ch = connectClickHouse({ url: engine.url });
      against = 'the embedded engine (chDB)';
    }
    const conn = ch;
    const engineMs = flags.clickhouse !== undefined ? 0 : ms(engineStarted);
    say(flags.clickhouse !== undefined ? `weir test: against ${against}` : `weir test: ClickHouse (chDB) started in ${(engineMs / 1000).toFixed(1)} s`);

    const log = createLogger({ component: 'test', format: 'pretty', level: process.env.WEIR_LOG_LEVEL ?? 'warn' });
    const apply = async (resources: ProjectResource[], what: string, everyStep = false) => {
      const started = performance.now();
      try {
        const { plan } = await applyProject(conn, resources, {
          log,
          holder: holderName('weir test'),
          // No writer writes during a run's migration (the fixtures are in before it), and the only writers the
          // scratch tables ever had are this process's, gone by then: the fence need not wait 5 s for their heartbeats to age.
          fenceTiming: { ...DEFAULT_FENCE_TIMING, livenessMs: 300 },
          hooks: {
            onProgress: (step, state) => {
              if (state === 'Done' && (everyStep || 'fromVersion' in step)) say(`  ✓ ${describeAnyStep(step)}`);
            },
          },
        });
        say(`applied ${what}: ${pendingChanges(plan)} change(s) in ${(ms(started) / 1000).toFixed(1)} s`);
      } catch (e) {
        throw applyFailure(e, what);
      }
      return ms(started);
    };

    const loadFixtures = async (resources: ProjectResource[], which: Fixture[]): Promise<LoadedFixture[]> => {
      const api = new EventsApi(conn, (name) => resources.find((r): r is DataSource => r.kind === 'DataSource' && r.metadata.name === resourceName(name)), log);
      events.push(api);
      const out: LoadedFixture[] = [];
      for (const f of which) {
        const target = fixtureTarget(f.name, resources);
        if ('problem' in target) throw new RunError(`${f.file}: ${target.problem}`);
        const r = { successful_rows: 0, quarantined_rows: 0 };
        try {
          // In requests of a size the events API takes, as a client would send a large file.
          for (let i = 0; i < f.lines.length; i += FIXTURE_BATCH_LINES) {
            const part = await api.ingest(target.ds.metadata.name, f.lines.slice(i, i + FIXTURE_BATCH_LINES));
            r.successful_rows += part.successful_rows;
            r.quarantined_rows += part.quarantined_rows;
          }
        } catch (e) {
          throw new RunError(`${f.file}: not loaded into ${databaseOf(target.ds)}.${tableOf(target.ds)}: ${errorMessage(e)}`);
        }
        out.push({ file: f.file, datasource: target.ds.metadata.name, lines: f.lines.length, accepted: r.successful_rows, quarantined: r.quarantined_rows });
        say(`fixtures: ${f.file} → ${tableOf(target.ds)}: ${r.successful_rows} row(s), ${r.quarantined_rows} quarantined`);
      }
      // Stop being a writer a migration's fence waits for.
      await api.close();
      return out;
    };

    const results: TestResult[] = [];
    const record = (r: TestResult) => {
      results.push(r);
      if (json) return;
      const mark = r.outcome === 'passed' ? '✓' : r.outcome === 'updated' ? '↻' : '✗';
      console.log(`${mark} ${r.file}: ${r.name} (${r.durationMs} ms)${r.outcome === 'updated' ? ' updated' : ''}`);
      for (const line of r.failure ?? []) console.log(line);
    };

    let applyMs: number;
    let fixturesMs: number;
    let migrationMs: number | undefined;
    let loaded: LoadedFixture[];
    if (previous) {
      applyMs = await apply(previous, `the previous project (${flags.from ?? ''})`);
      const fixturesStarted = performance.now();
      const before = fixtures.filter((f) => !('problem' in fixtureTarget(f.name, previous)));
      loaded = await loadFixtures(previous, before);
      fixturesMs = ms(fixturesStarted);
      const fingerprints = await migrationFingerprints(conn, previous, current);
      const migrationStarted = performance.now();
      await apply(current, `${flags.filename} as a migration`, true);
      // An in-place change may go on as a mutation (a TTL materialized, a column filled): its rows are what the checks count.
      await settleMutations(conn, projectDatabases(current));
      migrationMs = ms(migrationStarted);
      const after = fixtures.filter((f) => !before.includes(f));
      const fixturesAfter = performance.now();
      if (after.length > 0) loaded.push(...(await loadFixtures(current, after)));
      fixturesMs += ms(fixturesAfter);
      for (const r of await migrationChecks(conn, fingerprints, loaded, previous, current, flags.from ?? '')) record(r);
    } else {
      applyMs = await apply(current, flags.filename);
      const fixturesStarted = performance.now();
      loaded = await loadFixtures(current, fixtures);
      fixturesMs = ms(fixturesStarted);
    }
    // Views run within the insert that feeds them and backfills within the apply; mutations (ALTER … UPDATE of an in-place change) may still run.
    await settleMutations(conn, projectDatabases(current));

    // The endpoints, served as `weir dev` serves them: the real handler on a local port.
    const endpoints = await compileEndpoints(conn, current, flags.namespace);
    const capture = capturingLogger();
    const handler = createEndpointHandler({ clickhouse: conn, endpoints: () => endpoints.served, log: capture.log });
    http = createServer((req, res) => {
      const name = /^\/v0\/pipes\/([A-Za-z0-9_-]+)/.exec(req.url ?? '')?.[1];
      const unserved = name === undefined ? undefined : endpoints.unserved.get(clickhouseName(name));
      if (unserved !== undefined)
        return void res.writeHead(503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ error: `not served: ${unserved}` })}\n`);
      void handler(req, res);
    });
    const server = http;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const sqlDatabase = defaultDatabase(
      current,
      flags.clickhouse !== undefined ? scratchDatabase(runId, namespaceDatabase(flags.namespace)) : namespaceDatabase(flags.namespace),
    );

    const testsStarted = performance.now();
    const updates = new Map<string, Map<number, Row[]>>();
    for (const c of selected) {
      const started = performance.now();
      const outcome =
        c.kind === 'endpoint'
          ? await runEndpointCase(base, c, endpoints.served.get(clickhouseName(c.endpoint))?.formats, capture.detail, flags.update === true)
          : await runSqlCase(conn, c, sqlDatabase);
      if (outcome.update) {
        const perFile = updates.get(c.file) ?? new Map<number, Row[]>();
        perFile.set(c.index, outcome.update);
        updates.set(c.file, perFile);
      }
      record({ file: c.file, name: c.name, durationMs: ms(started), ...outcome.result });
    }
    const testsMs = ms(testsStarted);
    for (const [file, rows] of updates) writeFileSync(file, updateExpectedRows(readFileSync(file, 'utf8'), rows));

    const run: RunSummary = {
      project: flags.filename,
      ...(flags.from !== undefined ? { from: flags.from } : {}),
      clickhouse: against,
      timings: { engineMs, applyMs, fixturesMs, ...(migrationMs !== undefined ? { migrationMs } : {}), testsMs },
      fixtures: loaded,
      results,
    };
    if (flags.junit) writeFileSync(flags.junit, junitReport(run));
    const n = counts(results);
    if (json) console.log(JSON.stringify(jsonReport(run), null, 2));
    else {
      const afterEngine = applyMs + fixturesMs + (migrationMs ?? 0) + testsMs;
      const skipped = cases.length - selected.length;
      console.log(
        `${n.passed} passed, ${n.failed} failed${n.updated ? `, ${n.updated} updated` : ''}${skipped ? `, ${skipped} not selected by --filter` : ''}` +
          ` in ${(afterEngine / 1000).toFixed(2)} s after the engine started (apply ${(applyMs / 1000).toFixed(2)} s` +
          `${migrationMs !== undefined ? `, migration ${(migrationMs / 1000).toFixed(2)} s` : ''}, fixtures ${(fixturesMs / 1000).toFixed(2)} s, tests ${(testsMs / 1000).toFixed(2)} s)`,
      );
      if (updates.size > 0) console.log(`rewrote expect.rows in ${[...updates.keys()].join(', ')}; review the diff`);
    }
    return n.failed > 0 ? 1 : 0;
  } catch (e) {
    const message = e instanceof RunError ? e.message : `weir test: ${errorMessage(e)}`;
    if (json) console.log(JSON.stringify({ ok: false, error: message }, null, 2));
    console.error(message);
    return 1;
  } finally {
    await cleanUp();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Deletes what weir's own tables (weir.migrations, table_locks, fences, writers…) recorded of the
 * scratch databases, so runs against a shared server leave nothing behind; best effort.
 */
async function forgetScratch(ch: ClickHouse, databases: string[]): Promise<void> {
  try {
    const tables = await ch.query<{ table: string }>("SELECT table FROM system.columns WHERE database = 'weir' AND name = 'database'");
    for (const { table } of tables) {
      await ch.command(`DELETE FROM weir.${quoteIdentifier(table)} WHERE has({dbs:Array(String)}, database)`, { params: { dbs: databases } });
    }
  } catch (e) {
    console.error(`weir test: weir's bookkeeping rows of ${databases.join(', ')} were not deleted (${errorMessage(e)}); they hold no data`);
  }
}

interface CaseOutcome {
  result: Pick<TestResult, 'outcome' | 'failure' | 'status' | 'error' | 'clickhouse' | 'expectedRows' | 'actualRows'>;
  /** The rows to write into expect.rows (--update). */
  update?: Row[];
}

const INDENT = '    ';

async function runEndpointCase(
  base: string,
  c: EndpointCase,
  formats: readonly Format[] | undefined,
  detail: ReadonlyMap<string, string>,
  update: boolean,
): Promise<CaseOutcome> {
  // The JSON format's rows; an endpoint served as NDJSON but not JSON gives the same rows a line each.
  const format = formats !== undefined && !formats.includes('json') && formats.includes('ndjson') ? 'ndjson' : 'json';
  const url = `${base}/v0/pipes/${clickhouseName(c.endpoint)}.${format}${queryString(c.params)}`;
  let status: number;
  let body: { data?: Row[]; error?: string; request_id?: string } = {};
  try {
    const res = await fetch(url);
    status = res.status;
    const text = await res.text();
    try {
      body =
        status === 200 && format === 'ndjson'
          ? {
              data: text
                .split('\n')
                .filter((l) => l.trim() !== '')
                .map((l) => JSON.parse(l) as Row),
            }
          : (JSON.parse(text) as typeof body);
    } catch {
      body = { error: text.slice(0, 500) };
    }
  } catch (e) {
    return { result: { outcome: 'failed', failure: [`${INDENT}the request failed: ${errorMessage(e)}`] } };
  }
  const rows = Array.isArray(body.data) ? body.data : [];
  const clickhouse = body.request_id !== undefined ? detail.get(body.request_id) : undefined;
  // The handler points a client at its server log for ClickHouse's message; here that message is at hand.
  const error =
    body.error === undefined ? undefined : clickhouse ? body.error.replace(/; the server log has the details under request id \S+$/, '') : body.error;
  const seen = { status, ...(error !== undefined ? { error } : {}), ...(clickhouse ? { clickhouse } : {}), actualRows: rows };
  if (status !== c.expect.status) {
    return {
      result: {
        outcome: 'failed',
        ...seen,
        failure: [
          `${INDENT}expected status ${c.expect.status}, got ${status}${error !== undefined ? `: ${error}` : ''}`,
          ...(clickhouse ? [`${INDENT}ClickHouse: ${clickhouse}`] : []),
          ...(status === 200 ? rowLines(rows) : []),
        ],
      },
    };
  }
  const wantsRows = c.expect.rows !== undefined || (c.expect.rowCount === undefined && c.expect.status === 200);
  if (update && status === 200 && wantsRows && !(c.expect.rows !== undefined && sameRows(c.expect.rows, rows))) {
    return { result: { outcome: 'updated', ...seen }, update: rows };
  }
  const failure: string[] = [];
  if (c.expect.rowCount !== undefined && rows.length !== c.expect.rowCount) {
    failure.push(`${INDENT}expected ${c.expect.rowCount} row(s), got ${rows.length}`, ...(c.expect.rows === undefined ? rowLines(rows) : []));
  }
  if (c.expect.rows !== undefined && !sameRows(c.expect.rows, rows)) failure.push(...renderDiff(c.expect.rows, rows, INDENT));
  return {
    result: {
      outcome: failure.length > 0 ? 'failed' : 'passed',
      ...seen,
      ...(c.expect.rows ? { expectedRows: c.expect.rows } : {}),
      ...(failure.length ? { failure } : {}),
    },
  };
}

/** Rows answered, for a failure that has no expected rows to diff against (at most 20). */
const rowLines = (rows: readonly Row[]): string[] => [
  `${INDENT}rows answered:`,
  ...rows.slice(0, 20).map((r) => `${INDENT}+ ${showValue(r)}`),
  ...(rows.length > 20 ? [`${INDENT}… ${rows.length - 20} more`] : []),
];

async function runSqlCase(ch: ClickHouse, c: SqlCase, database: string): Promise<CaseOutcome> {
  let rows: Row[];
  try {
    rows = await ch.query<Row>(c.sql, { database, settings: { readonly: 2 } });
  } catch (e) {
    const error = toClickHouseError(e);
    const message = `${error.type || `code ${error.code}`}: ${error.message.split('\n')[0] ?? ''}`;
    return { result: { outcome: 'failed', error: message, failure: [`${INDENT}the query failed: ${message}`] } };
  }
  if (rows.length === 0) return { result: { outcome: 'passed', actualRows: [] } };
  return {
    result: {
      outcome: 'failed',
      actualRows: rows,
      failure: [`${INDENT}the assertion returned ${rows.length} row(s); it passes when it returns none:`, ...rowLines(rows).slice(1)],
    },
  };
}

/** Waits (up to a minute) until no mutation of the project's databases is running. */
async function settleMutations(ch: ClickHouse, databases: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [row] = await ch.query<{ n: string }>(
      'SELECT toString(count()) AS n FROM system.mutations WHERE NOT is_done AND has({dbs:Array(String)}, database)',
      {
        params: { dbs: databases },
      },
    );
    if (Number(row?.n ?? 0) === 0 || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Fingerprint {
  ds: DataSource;
  columns: string[];
  rows: string;
  hash: string;
  quarantined: string;
}

/** Before a --from migration: each DataSource's rows, on the columns both versions share. */
async function migrationFingerprints(ch: ClickHouse, previous: ProjectResource[], current: ProjectResource[]): Promise<Fingerprint[]> {
  const out: Fingerprint[] = [];
  for (const ds of previous.filter((r): r is DataSource => r.kind === 'DataSource')) {
    const next = current.find(
      (r): r is DataSource => r.kind === 'DataSource' && r.metadata.name === ds.metadata.name && r.metadata.namespace === ds.metadata.namespace,
    );
    if (!next || databaseOf(next) !== databaseOf(ds)) continue;
    // A rollup's rows change with the Pipe that writes them; compared only when that Pipe did not change.
    if (isMaterializedInto(ds, previous) && !sameFeed(ds.metadata.name, previous, current)) continue;
    const columns = sharedColumns(ds, next);
    const [fp] = await ch.query<{ rows: string; hash: string }>(fingerprintQuery(ds, columns));
    out.push({ ds: next, columns, rows: fp?.rows ?? '0', hash: fp?.hash ?? '0', quarantined: await quarantineCount(ch, ds) });
  }
  return out;
}

/** The lines in a DataSource's quarantine table ('none' when it has none). */
async function quarantineCount(ch: ClickHouse, ds: DataSource): Promise<string> {
  try {
    const [q] = await ch.query<{ n: string }>(
      `SELECT toString(count()) AS n FROM ${quoteIdentifier(databaseOf(ds))}.${quoteIdentifier(quarantineTableName(tableOf(ds)))}`,
    );
    return q?.n ?? '0';
  } catch {
    return 'none';
  }
}

/** After a --from migration: no fixture row lost or doubled, per DataSource, as tests of the run. */
async function migrationChecks(
  ch: ClickHouse,
  before: Fingerprint[],
  loaded: LoadedFixture[],
  previous: ProjectResource[],
  current: ProjectResource[],
  from: string,
): Promise<TestResult[]> {
  const results: TestResult[] = [];
  const file = `migration from ${from}`;
  for (const b of before) {
    const started = performance.now();
    const table = `${databaseOf(b.ds)}.${tableOf(b.ds)}`;
    const [fp] = await ch.query<{ rows: string; hash: string }>(fingerprintQuery(b.ds, b.columns));
    const quarantineAfter = await quarantineCount(ch, b.ds);
    const fixture = loaded.filter((l) => l.datasource === b.ds.metadata.name);
    const fed = fixture.length > 0 && !isMaterializedInto(b.ds, previous) && !isMaterializedInto(b.ds, current);
    const accepted = fixture.reduce((n, l) => n + l.accepted, 0);
    const quarantined = fixture.reduce((n, l) => n + l.quarantined, 0);
    const failure: string[] = [];
    const rowsAfter = fp?.rows ?? '0';
    if (fed && Number(b.rows) !== accepted)
      failure.push(`${INDENT}before the migration ${table} held ${b.rows} row(s), not the ${accepted} fixture line(s) accepted`);
    if (rowsAfter !== b.rows) {
      const by = Number(rowsAfter) - Number(b.rows);
      failure.push(`${INDENT}${table} held ${b.rows} row(s) before the migration and ${rowsAfter} after: ${Math.abs(by)} ${by < 0 ? 'lost' : 'doubled'}`);
    } else if (fp?.hash !== b.hash) {
      failure.push(`${INDENT}${table} holds ${rowsAfter} row(s) as before, but not the same ones (compared on ${b.columns.join(', ')})`);
    }
    if (quarantineAfter !== b.quarantined) failure.push(`${INDENT}its quarantine held ${b.quarantined} line(s) before and ${quarantineAfter} after`);
    if (fed && Number(b.quarantined) !== quarantined)
      failure.push(`${INDENT}its quarantine held ${b.quarantined} line(s), not the ${quarantined} fixture line(s) quarantined`);
    const name = fed
      ? `${tableOf(b.ds)} keeps its ${accepted} fixture row(s) and ${quarantined} quarantined line(s)`
      : `${tableOf(b.ds)} keeps its ${b.rows} row(s)${b.columns.length < b.ds.spec.columns.length ? ` (on ${b.columns.join(', ')})` : ''}`;
    results.push({ file, name, outcome: failure.length > 0 ? 'failed' : 'passed', durationMs: ms(started), ...(failure.length ? { failure } : {}) });
  }
  return results;
}
