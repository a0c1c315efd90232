// `weir dev` against a clumsy or hostile folder: a bad file is a message naming it while the
// last good project keeps serving; saves by rename and in place are both seen; an endpoint
// whose SQL does not compile answers 503 with the reason from the save on; a materialized Pipe
// that does not compile is named with its node and the summary says what was applied; a
// start that cannot happen is one line; SIGTERM lets go of keep-alive clients and exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClickHouse, type ClickHouse } from '../../../src/clickhouse/connection.js';
import { waitFor } from '../../env/wait.js';
import { count } from '../../fixtures/clickhouse.js';
import { WEIR_BIN } from '../../fixtures/processes.js';

const EXAMPLE = join(process.cwd(), 'manifests/examples/web-analytics');

/** Nine levels of nine aliases: 9^9 strings once expanded. */
const BILLION_LAUGHS = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  .concat('bcdefghi'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`))
  .join('\n');

const EVENT = (path: string) => `{"timestamp":"2026-11-01T00:00:00Z","session_id":"s","tenant_id":"acme","payload":{"pathname":"${path}"}}`;

interface Dev {
  child: ChildProcess;
  output: () => string;
  exitCode: () => number | null;
  exited: Promise<number | null>;
  base: string;
  ch: ClickHouse;
  /** Waits until output written after `mark` matches. */
  waitForOutput(what: string, mark: number, pattern: RegExp, timeoutMs?: number): Promise<string>;
}

function spawnDev(target: string, extra: string[] = []) {
  const dataDir = mkdtempSync(join(tmpdir(), 'weir-dev-robust-data-'));
  const child = spawn(process.execPath, [WEIR_BIN, 'dev', '-f', target, '--data-dir', dataDir, ...extra]);
  let output = '';
  let code: number | null = null;
  let exitedAt = false;
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (c) => {
      code = c;
      exitedAt = true;
      resolve(c);
    }),
  );
  return { child, output: () => output, exitCode: () => code, hasExited: () => exitedAt, exited };
}

async function startDev(target: string): Promise<Dev> {
  const p = spawnDev(target, ['--port', '0', '--clickhouse-port', '0']);
  const abortIf = () => {
    if (p.hasExited()) throw new Error(`weir dev exited (${String(p.exitCode())}):\n${p.output()}`);
  };
  await waitFor('weir dev ready', () => (/endpoints: /.test(p.output()) ? true : undefined), { timeoutMs: 60_000, abortIf });
  const base = /events at POST (http:\/\/[^/]+)/.exec(p.output())?.[1] ?? '';
  const ch = connectClickHouse({ url: /ClickHouse \(chDB\) at (http:\/\/\S+),/.exec(p.output())?.[1] ?? '' });
  return {
    ...p,
    base,
    ch,
    waitForOutput: (what, mark, pattern, timeoutMs = 30_000) => waitFor(what, () => pattern.exec(p.output().slice(mark))?.[0], { timeoutMs, abortIf }),
  };
}

async function stopDev(dev: Dev | undefined): Promise<void> {
  if (!dev) return;
  await dev.ch.close();
  if (dev.child.exitCode === null) dev.child.kill('SIGTERM');
  await dev.exited;
}

const copyExample = () => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-dev-robust-'));
  cpSync(EXAMPLE, dir, { recursive: true });
  return dir;
};

const columnsOf = async (ch: ClickHouse, table: string) =>
  (await ch.query<{ name: string }>(`SELECT name FROM system.columns WHERE database = 'web' AND table = '${table}' ORDER BY position`)).map((c) => c.name);

/** The DataSources file with one more column on page_views. */
const withColumn = (text: string, name: string) =>
  text.replace(
    '    - {name: duration_ms, type: "UInt32",                jsonPath: "$.payload.duration_ms", default: "0"}\n',
    (line) => `${line}    - {name: ${name}, type: String, jsonPath: "$.payload.${name}", default: "''"}\n`,
  );

/** A save as editors and `sed -i` do it: a new file renamed over the old one (a new inode). */
const renameSave = (file: string, text: string) => {
  const temp = join(file, '..', `.${Date.now()}.tmp`);
  writeFileSync(temp, text);
  renameSync(temp, file);
};

/** Rename-save, in-place save, rename-save: each adds a column, and each must reach ClickHouse. */
async function savesOfBothKinds(dev: Dev, file: string): Promise<void> {
  const saves: [string, (f: string, t: string) => void][] = [
    ['by_rename_1', renameSave],
    ['in_place', (f, t) => writeFileSync(f, t)],
    ['by_rename_2', renameSave],
  ];
  const expected = await columnsOf(dev.ch, 'page_views');
  for (const [column, save] of saves) {
    save(file, withColumn(readFileSync(file, 'utf8'), column));
    // Each new column is written right after duration_ms, and ClickHouse adds it there.
    expected.splice(expected.indexOf('duration_ms') + 1, 0, column);
    await waitFor(`column ${column} added after its save`, async () => {
      const columns = await columnsOf(dev.ch, 'page_views');
      return columns.includes(column) ? columns : undefined;
    });
    expect(await columnsOf(dev.ch, 'page_views')).toEqual(expected);
  }
}

const postEvents = async (base: string, body: string) => {
  const res = await fetch(`${base}/v0/events?name=page_views`, { method: 'POST', body });
  return { status: res.status, body: await res.json() };
};

describe('weir dev with bad files, saves and SQL that does not compile', () => {
  let dev: Dev;
  let project: string;
  beforeAll(async () => {
    project = copyExample();
    dev = await startDev(project);
  });
  afterAll(async () => stopDev(dev));

  it('names a YAML bomb and a dangling symlink, keeps serving the last good project, and applies again once they are gone', async () => {
    expect(await postEvents(dev.base, EVENT('/before'))).toEqual({ status: 200, body: { successful_rows: 1, quarantined_rows: 0 } });
    let mark = dev.output().length;
    writeFileSync(join(project, 'bomb.yaml'), `${BILLION_LAUGHS}\n`);
    await dev.waitForOutput(
      'the bomb reported',
      mark,
      /bomb\.yaml:1: <yaml>: its aliases expand past 100 nodes \(a "billion laughs" YAML bomb\?\); the document is not read\n1 error\(s\); nothing applied/,
    );

    mark = dev.output().length;
    symlinkSync(join(project, 'moved-away.yaml'), join(project, 'linked.yaml'));
    await dev.waitForOutput(
      'the dangling symlink reported',
      mark,
      /linked\.yaml: is a symlink to \S+moved-away\.yaml, which does not exist\n.*\n2 error\(s\); nothing applied/,
    );

    // Everything still runs on the project as it was.
    expect(dev.exitCode()).toBeNull();
    expect(await postEvents(dev.base, EVENT('/during'))).toEqual({ status: 200, body: { successful_rows: 1, quarantined_rows: 0 } });
    expect((await fetch(`${dev.base}/v0/pipes/top_pages.json?tenant=acme`)).status).toBe(200);
    expect(await count(dev.ch, 'SELECT count() AS n FROM web.page_views')).toBe(2);

    mark = dev.output().length;
    rmSync(join(project, 'bomb.yaml'));
    rmSync(join(project, 'linked.yaml'));
    await dev.waitForOutput('applied again', mark, /up to date; endpoints: http/);
  });

  it('warns about a weir kind under another apiVersion, naming the file, and applies the rest', async () => {
    const mark = dev.output().length;
    writeFileSync(
      join(project, 'typo.yaml'),
      'apiVersion: weir.io/v1alpha1\nkind: DataSource\nmetadata: {name: typo, namespace: web}\nspec: {columns: [{name: a, type: String}], engine: {type: MergeTree, sortingKey: [a]}}\n',
    );
    const warned = await dev.waitForOutput('the warning', mark, /warning: .*\n(.*\n)*up to date; endpoints: http/);
    expect(warned).toMatch(
      /warning: \S*typo\.yaml: DataSource web\/typo: \.apiVersion: has apiVersion weir\.io\/v1alpha1, so weir ignores it; weir's DataSource is apiVersion weir\.dev\/v1alpha1\n/,
    );
    expect(await count(dev.ch, "SELECT count() AS n FROM system.tables WHERE database = 'web' AND name = 'typo'")).toBe(0);
    rmSync(join(project, 'typo.yaml'));
  });

  it('sees a save by rename, then one in place, then one by rename again, and applies each', async () => {
    await savesOfBothKinds(dev, join(project, 'datasources.yaml'));
  });

  it('says at save that an endpoint does not compile (unknown column, missing table), answers 503 with the reason, and 200 once fixed', async () => {
    expect(await postEvents(dev.base, EVENT('/endpoint'))).toEqual({ status: 200, body: { successful_rows: 1, quarantined_rows: 0 } });
    const file = join(project, 'pipes.yaml');
    const good = readFileSync(file, 'utf8');
    const broken = async (edit: string, pattern: RegExp) => {
      const mark = dev.output().length;
      renameSave(file, edit);
      const said = await dev.waitForOutput('the compile error at save', mark, /Endpoint web\/top-pages .*\n(.*\n)*.*not served \(503\): top_pages\n/);
      expect(said).toMatch(pattern);
      const res = await fetch(`${dev.base}/v0/pipes/top_pages.json?tenant=acme`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toMatch(pattern);
    };
    await broken(
      good.replace('sum(visitors) AS visitors', 'sum(visitorz) AS visitors'),
      /Endpoint web\/top-pages \(Pipe top-pages, node ranked\): the query does not compile: UNKNOWN_IDENTIFIER: .*visitorz/,
    );
    await broken(
      good.replace('FROM page_views_daily', 'FROM page_views_hourly'),
      /Endpoint web\/top-pages \(Pipe top-pages, node ranked\): the query does not compile: UNKNOWN_TABLE: .*page_views_hourly/,
    );

    const mark = dev.output().length;
    renameSave(file, good);
    await dev.waitForOutput('served again', mark, /up to date; endpoints: http\S+top_pages\.json\n/);
    const res = await fetch(`${dev.base}/v0/pipes/top_pages.json?tenant=acme`);
    expect(res.status).toBe(200);
    const paths = await dev.ch.query<{ pathname: string }>("SELECT DISTINCT pathname FROM web.page_views WHERE tenant_id = 'acme' ORDER BY pathname");
    expect(((await res.json()) as { data: { pathname: string }[] }).data.map((r) => r.pathname).sort()).toEqual(paths.map((p) => p.pathname));
    expect(paths.map((p) => p.pathname)).toContain('/endpoint');
  });

  it('names the materialized Pipe and node whose SQL does not compile, and says what the save applied and what not', async () => {
    const target =
      'apiVersion: weir.dev/v1alpha1\nkind: DataSource\nmetadata: {name: hourly, namespace: web}\nspec:\n  columns: [{name: day, type: Date}, {name: views, type: "AggregateFunction(count)"}]\n  engine: {type: AggregatingMergeTree, sortingKey: [day]}\n';
    const rollup = (groupBy: string) =>
      `apiVersion: weir.dev/v1alpha1\nkind: Pipe\nmetadata: {name: hourly-rollup, namespace: web}\nspec:\n  nodes:\n    - name: counted\n      sql: |\n        SELECT toDate(timestamp) AS day, countState() AS views\n        FROM page_views\n        GROUP BY ${groupBy}\n  materialize: {node: counted, into: hourly}\n`;
    expect(await postEvents(dev.base, EVENT('/rollup'))).toEqual({ status: 200, body: { successful_rows: 1, quarantined_rows: 0 } });
    let mark = dev.output().length;
    writeFileSync(join(project, 'hourly.yaml'), `${target}---\n${rollup('day,')}`);
    const said = await dev.waitForOutput('the failure', mark, /save partly applied: .*\n.*\n.*\nFix and save to try again\.\n/);
    const [first, ...rest] = said.split('\n');
    expect(first).toMatch(
      /^save partly applied: Pipe web\/hourly-rollup: node counted: the SQL does not compile: Syntax error: failed at end of query \(line \d+, col \d+\): \. Expected one of: /,
    );
    expect(rest.join('\n')).toBe(
      '  applied: create table web.hourly (2 columns, AggregatingMergeTree ORDER BY (day)) as version 1; create quarantine table web.hourly_quarantine\n' +
        '  not applied: create materialized view web.hourly_rollup TO web.hourly, backfilling rows already in web.page_views exactly once\n' +
        'Fix and save to try again.\n',
    );
    expect(said).not.toMatch(/weir-pipe:/);
    expect(await count(dev.ch, "SELECT count() AS n FROM system.tables WHERE database = 'web' AND name = 'hourly_rollup'")).toBe(0);

    mark = dev.output().length;
    writeFileSync(join(project, 'hourly.yaml'), `${target}---\n${rollup('day')}`);
    await dev.waitForOutput('applied once fixed', mark, /applied 1 change\(s\); endpoints: http/);
    // The backfill counted every row there is.
    expect(await count(dev.ch, 'SELECT countMerge(views) AS n FROM web.hourly')).toBe(await count(dev.ch, 'SELECT count() AS n FROM web.page_views'));
    expect(await count(dev.ch, 'SELECT count() AS n FROM web.page_views')).toBeGreaterThan(0);
  });
});

describe('weir dev -f on one file', () => {
  let dev: Dev;
  let file: string;
  beforeAll(async () => {
    file = join(mkdtempSync(join(tmpdir(), 'weir-dev-file-')), 'project.yaml');
    writeFileSync(file, readFileSync(join(EXAMPLE, 'datasources.yaml'), 'utf8'));
    dev = await startDev(file);
  });
  afterAll(async () => stopDev(dev));

  it('sees a save by rename, then one in place, then one by rename again, and applies each', async () => {
    await savesOfBothKinds(dev, file);
  });
});

describe('weir dev and weir validate refusing to start or to read', () => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [WEIR_BIN, ...args]);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', (code) => resolve({ code, out }));
    });

  it('says in one line that the folder does not exist, and exits 1', async () => {
    const missing = join(tmpdir(), `weir-no-such-project-${Date.now()}`);
    expect(await run(['dev', '-f', missing, '--port', '0', '--clickhouse-port', '0', '--data-dir', mkdtempSync(join(tmpdir(), 'weir-dev-data-'))])).toEqual({
      code: 1,
      out: `weir dev: ${missing} does not exist\n`,
    });
  });

  it('says in one line which port is in use, and exits 1 with the embedded ClickHouse stopped', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as AddressInfo).port;
    try {
      const data = () => mkdtempSync(join(tmpdir(), 'weir-dev-data-'));
      const events = await run(['dev', '-f', EXAMPLE, '--port', String(port), '--clickhouse-port', '0', '--data-dir', data()]);
      expect(events.code).toBe(1);
      // Exited on its own (the embedded ClickHouse stopped, nothing left running), after one line.
      expect(events.out).toMatch(
        new RegExp(
          `^weir dev: ClickHouse \\(chDB\\) at http://127\\.0\\.0\\.1:\\d+, data in \\S+\\nweir dev: port ${port} is in use on 127\\.0\\.0\\.1; pass --port\\n$`,
        ),
      );
      expect(await run(['dev', '-f', EXAMPLE, '--port', '0', '--clickhouse-port', String(port), '--data-dir', data()])).toEqual({
        code: 1,
        out: `weir dev: port ${port} is in use on 127.0.0.1 (the embedded ClickHouse); pass --clickhouse-port\n`,
      });
    } finally {
      taken.close();
    }
  });

  it('weir validate names the YAML bomb and the misplaced apiVersion, and exits 1 without a crash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-validate-bomb-'));
    writeFileSync(join(dir, 'bomb.yaml'), `${BILLION_LAUGHS}\n`);
    writeFileSync(join(dir, 'typo.yaml'), 'apiVersion: weir.io/v1alpha1\nkind: Pipe\nmetadata: {name: p}\nspec: {nodes: [{name: n, sql: SELECT 1}]}\n');
    const r = await run(['validate', '-f', dir]);
    expect(r.code).toBe(1);
    expect(r.out.replaceAll(`${dir}/`, '').replace(/\S*(bomb|typo)\.yaml/g, '$1.yaml')).toBe(
      "warning: typo.yaml: Pipe p: .apiVersion: has apiVersion weir.io/v1alpha1, so weir ignores it; weir's Pipe is apiVersion weir.dev/v1alpha1\n" +
        'bomb.yaml:1: <yaml>: its aliases expand past 100 nodes (a "billion laughs" YAML bomb?); the document is not read\n' +
        '\n1 error(s); nothing was applied.\n',
    );
  });
});

describe('weir dev stopping on SIGTERM', () => {
  it('answers the request in flight, lets go of keep-alive clients at once, and exits', async () => {
    const dev = await startDev(copyExample());
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const url = new URL(dev.base);
    const call = (method: string, path: string, headers: Record<string, string> = {}) =>
      request({ host: url.hostname, port: url.port, method, path, agent, headers });
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = call('GET', path);
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await get('/healthz')).toBe(200);
      // In flight on the same keep-alive connection: the server has its headers (100 Continue), not yet its body.
      const inFlight = call('POST', '/v0/events?name=page_views', { Expect: '100-continue', 'Content-Type': 'application/x-ndjson' });
      const answered = new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
        inFlight.on('response', (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
        });
        inFlight.on('error', reject);
      });
      await new Promise<void>((resolve) => {
        inFlight.on('continue', resolve);
        inFlight.flushHeaders();
      });
      const mark = dev.output().length;
      dev.child.kill('SIGTERM');
      await dev.waitForOutput('stopping', mark, /weir dev: SIGTERM, stopping\n/);
      inFlight.end(`${EVENT('/a')}\n${EVENT('/b')}\n`);
      expect(await answered).toEqual({ status: 200, connection: 'close', body: '{"successful_rows":2,"quarantined_rows":0}\n' });

      // The client keeps calling; weir dev must stop serving it and exit anyway.
      let servedAfter = 0;
      const code = await waitFor(
        'weir dev exited',
        async () => {
          if (dev.child.exitCode !== null) return dev.child.exitCode;
          await get('/healthz').then(
            () => servedAfter++,
            () => undefined,
          );
          return undefined;
        },
        { timeoutMs: 30_000 },
      );
      expect({ code, servedAfter }).toEqual({ code: 0, servedAfter: 0 });
    } finally {
      agent.destroy();
      await dev.ch.close();
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
      await dev.exited;
    }
  });
});
