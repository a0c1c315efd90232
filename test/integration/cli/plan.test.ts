// `weir validate`, `weir plan` and `weir apply` as CI would run them: exit codes and what
// they print, against the real engine.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import type { Endpoint } from '../../../src/api/endpoint.js';
import type { Pipe } from '../../../src/api/pipe.js';
import { loadResources } from '../../../src/cli/load.js';
import { reconcileDataSource } from '../../../src/controllers/datasource.js';
import { reconcileEndpoint } from '../../../src/controllers/endpoint.js';
import { listLookup } from '../../../src/controllers/lookup.js';
import { acquireTableLock } from '../../../src/execute/table-lock.js';
import type { ReconcileContext } from '../../../src/controllers/types.js';
import { uniqueNamespace } from '../../fixtures/builders.js';
import { startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
import { condition } from '../../fixtures/kube.js';
import { WEIR_BIN } from '../../fixtures/processes.js';

let server: TestClickHouse;
let project: string;
// Asynchronous on purpose: the ClickHouse server runs in this process and must keep answering.
const weir = (...args: string[]) =>
  new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [WEIR_BIN, ...args]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });

beforeAll(async () => {
  server = await startTestClickHouse();
  project = mkdtempSync(join(tmpdir(), 'weir-cli-'));
  cpSync(join(process.cwd(), 'manifests/examples/web-analytics'), project, { recursive: true });
  // A namespace of its own, so the shared engine holds nothing of it yet.
  for (const f of ['datasources.yaml', 'pipes.yaml', 'endpoints.yaml']) {
    const path = join(project, f);
    writeFileSync(path, readFileSync(path, 'utf8').replace(/namespace: web/g, 'namespace: cli'));
  }
});
afterAll(async () => {
  await server?.stop();
});

describe('weir validate', () => {
  it('exits 0 on the example and 1 with file, resource and field on a bad one', async () => {
    expect(await weir('validate', '-f', project)).toMatchObject({ code: 0, out: expect.stringMatching(/valid: 2 DataSources, 1 Endpoint, 2 Pipes/) });
    const bad = mkdtempSync(join(tmpdir(), 'weir-bad-'));
    writeFileSync(
      join(bad, 'ds.yaml'),
      'apiVersion: weir.dev/v1alpha1\nkind: DataSource\nmetadata: {name: t}\nspec:\n  columns: [{name: a, type: String}]\n  engine: {type: LogTree, sortingKey: [b]}\n',
    );
    const r = await weir('validate', '-f', bad);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/ds\.yaml: DataSource default\/t: \.spec\.engine\.type: must be one of: MergeTree/);
  });
});

describe('weir plan exit codes', () => {
  it('2 with changes pending, 0 when up to date, 2 again after an edit, 1 on a refused plan', async () => {
    const pending = await weir('plan', '-f', project, '--clickhouse', server.url);
    expect(pending.code).toBe(2);
    expect(pending.out).toMatch(/create table cli\.page_views/);
    expect((await weir('apply', '-f', project, '--clickhouse', server.url)).code).toBe(0);
    expect(await weir('plan', '-f', project, '--clickhouse', server.url)).toMatchObject({ code: 0, out: expect.stringMatching(/0 change\(s\) pending/) });

    const file = join(project, 'datasources.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('sortingKey: [tenant_id, timestamp]', 'sortingKey: [tenant_id, pathname, timestamp]'));
    const migration = await weir('plan', '-f', project, '--clickhouse', server.url);
    expect(migration.code).toBe(2);
    expect(migration.out).toMatch(/migrate cli\.page_views v1 → v2 by copy-and-swap/);

    writeFileSync(file, readFileSync(file, 'utf8').replace(/\n {4}- \{name: country, [^\n]+/, ''));
    const refused = await weir('plan', '-f', project, '--clickhouse', server.url);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/REFUSED: dropping column country loses data; set spec\.migration\.allowDestructive: true/);
  });
});

describe('weir validate, plan and apply on a project whose names clash or whose SQL cannot be embedded', () => {
  /** The example in a namespace of its own, plus `extra` files. */
  const projectWith = (extra: Record<string, string>, ns: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-clash-'));
    for (const f of ['datasources.yaml', 'pipes.yaml', 'endpoints.yaml']) {
      writeFileSync(
        join(dir, f),
        readFileSync(join(process.cwd(), 'manifests/examples/web-analytics', f), 'utf8').replace(/namespace: web/g, `namespace: ${ns}`),
      );
    }
    for (const [f, text] of Object.entries(extra)) writeFileSync(join(dir, f), text);
    return dir;
  };
  const databaseCount = async (db: string) => (await server.ch.query<{ n: string }>(`SELECT count() AS n FROM system.databases WHERE name = '${db}'`))[0]?.n;

  it('a DataSource named like the rollup view: each command exits 1 naming both resources and both files, and nothing is created', async () => {
    const ns = uniqueNamespace('names');
    const dir = projectWith(
      {
        'extra.yaml': `apiVersion: weir.dev/v1alpha1\nkind: DataSource\nmetadata: {name: daily-rollup, namespace: ${ns}}\nspec:\n  columns: [{name: day, type: Date, jsonPath: $.day}]\n  engine: {type: MergeTree, sortingKey: [day]}\n`,
      },
      ns,
    );
    const db = ns.replace(/-/g, '_');
    const message =
      `pipes.yaml: Pipe ${ns}/daily-rollup: .metadata.name: ${db}.daily_rollup would be both the table of DataSource ${ns}/daily-rollup and the materialized view of Pipe ${ns}/daily-rollup; ` +
      `two ClickHouse objects cannot share a name: rename one of them (DataSource ${ns}/daily-rollup is in extra.yaml, Pipe ${ns}/daily-rollup in pipes.yaml)`;
    for (const args of [
      ['validate', '-f', dir],
      ['plan', '-f', dir, '--clickhouse', server.url],
      ['apply', '-f', dir, '--clickhouse', server.url],
    ]) {
      const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [WEIR_BIN, ...args], { cwd: dir });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        child.on('exit', (code) => resolve({ code, out }));
      });
      expect(r.code, `${args[0]}: ${r.out}`).toBe(1);
      expect(r.out.split('\n')).toContain(message);
    }
    expect(await databaseCount(db)).toBe('0');
  });

  it('a node ending with FORMAT JSON: weir validate names the file, the Pipe and the node', async () => {
    const ns = uniqueNamespace('fmt');
    const dir = projectWith({}, ns);
    const file = join(dir, 'pipes.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('LIMIT {limit:UInt32}', 'LIMIT {limit:UInt32}\n        FORMAT JSON'));
    const r = await weir('validate', '-f', dir);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      `pipes.yaml: Pipe ${ns}/top-pages: .spec.nodes[1].sql: node ranked ends with FORMAT JSON; remove it: weir picks the output format (an endpoint takes it from its URL)`,
    );
  });
});

describe('weir plan refuses what the copy-and-swap would refuse, before anything is created', () => {
  /** The example in a namespace of its own, applied, with three page views. */
  const applied = async (prefix: string) => {
    const ns = uniqueNamespace(prefix);
    const dir = mkdtempSync(join(tmpdir(), 'weir-preflight-'));
    for (const f of ['datasources.yaml', 'pipes.yaml', 'endpoints.yaml']) {
      writeFileSync(
        join(dir, f),
        readFileSync(join(process.cwd(), 'manifests/examples/web-analytics', f), 'utf8').replace(/namespace: web/g, `namespace: ${ns}`),
      );
    }
    expect((await weir('apply', '-f', dir, '--clickhouse', server.url)).code).toBe(0);
    const db = ns.replace(/-/g, '_');
    await server.ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname) VALUES (now(), 's1', 't', '/home'), (now(), 's2', 't', '/about'), (now(), 's3', 't', '42')`,
    );
    return { dir, db, file: join(dir, 'datasources.yaml') };
  };
  const versions = async (db: string) =>
    (await server.ch.query<{ name: string }>(`SELECT name FROM system.tables WHERE database = '${db}' AND startsWith(name, 'page_views__') ORDER BY name`)).map(
      (r) => r.name,
    );

  it('a type change some rows cannot take: exit 1 with the count and the values, not copy-and-swap', async () => {
    const { dir, db, file } = await applied('unconv');
    writeFileSync(file, readFileSync(file, 'utf8').replace('{name: pathname,   type: "String"', '{name: pathname,   type: "UInt32"'));
    const r = await weir('plan', '-f', dir, '--clickhouse', server.url);
    expect(r.code, r.out).toBe(1);
    const refused = r.out.split('\n').filter((l) => l.includes('REFUSED'));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(
      new RegExp(
        `^  DataSource/[\\w-]+/page-views: REFUSED: 2 row\\(s\\) of ${db}\\.page_views have a pathname that does not convert from String to UInt32 \\(e\\.g\\. "(/home|/about)", "(/home|/about)"\\); handle them with spec\\.migration\\.forwardQuery\\. Nothing was changed\\.$`,
      ),
    );
    expect(r.out).toMatch(/\n1 change\(s\) pending, 1 refused\.\n$/);
    const json = await weir('plan', '-f', dir, '--clickhouse', server.url, '-o', 'json');
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.out) as { resources: { key: string; refusals: string[] }[]; refused: number };
    expect(doc.refused).toBe(1);
    expect(doc.resources.flatMap((x) => x.refusals)).toEqual([refused[0]?.replace(/^.*?: REFUSED: /, '')]);
    expect(await versions(db)).toEqual([]);
  });

  it('a change a dependent materialized view cannot follow: exit 1 naming the view', async () => {
    const { dir, db, file } = await applied('views');
    writeFileSync(
      file,
      readFileSync(file, 'utf8')
        .replace(/\n {4}- \{name: session_id, [^\n]+/, '')
        // A new sorting key, so the change is a copy-and-swap.
        .replace('sortingKey: [tenant_id, timestamp]', 'sortingKey: [timestamp]')
        .replace('keepPreviousVersions: 1 ', 'keepPreviousVersions: 1\n    allowDestructive: true '),
    );
    const r = await weir('plan', '-f', dir, '--clickhouse', server.url);
    expect(r.code, r.out).toBe(1);
    const refused = r.out.split('\n').filter((l) => l.includes('REFUSED'));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(
      new RegExp(
        `: REFUSED: materialized view ${db}\\.daily_rollup would break on the new version of ${db}\\.page_views: .*session_id.*\\. Change its Pipe together with the table, or keep the columns it reads\\. Nothing was changed\\.$`,
      ),
    );
    expect(await versions(db)).toEqual([]);
  });
});

describe("weir plan is the operator's plan", () => {
  /** The operator's view of a folder: its resources as the informer cache would hold them. */
  const operatorContext = (dir: string): ReconcileContext => ({
    now: new Date(),
    clickhouse: server.ch,
    lookup: listLookup(loadResources(dir).resources.map((r) => r.object as unknown as DataSource | Pipe | Endpoint)),
  });
  const exampleIn = (ns: string): string => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-golden-'));
    for (const f of ['datasources.yaml', 'pipes.yaml', 'endpoints.yaml']) {
      writeFileSync(
        join(dir, f),
        readFileSync(join(process.cwd(), 'manifests/examples/web-analytics', f), 'utf8').replace(/namespace: web/g, `namespace: ${ns}`),
      );
    }
    return dir;
  };
  const linesOf = (out: string, key: string): string[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith(`  ${key}: `))
      .map((l) => l.slice(`  ${key}: `.length));

  it("golden: the same fixture gives weir plan's lines and -o json equal to status.pendingPlan.steps, with the same hash", async () => {
    const ns = uniqueNamespace('golden');
    const dir = exampleIn(ns);
    const file = join(dir, 'datasources.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('approval: Automatic', 'approval: Manual'));
    expect((await weir('apply', '-f', dir, '--clickhouse', server.url)).code).toBe(0);
    await server.ch.command(
      `INSERT INTO ${ns.replace(/-/g, '_')}.page_views (timestamp, session_id, tenant_id, pathname) SELECT now64(3) - number, toString(number), 't1', '/' FROM numbers(1000)`,
    );
    writeFileSync(file, readFileSync(file, 'utf8').replace('sortingKey: [tenant_id, timestamp]', 'sortingKey: [tenant_id, pathname, timestamp]'));

    const ds = loadResources(dir)
      .resources.map((r) => r.object as unknown as DataSource)
      .find((r) => r.kind === 'DataSource' && r.metadata.name === 'page-views');
    if (!ds) throw new Error('no page-views in the fixture');
    const status = (await reconcileDataSource(ds, operatorContext(dir))).status;
    const pending = status.pendingPlan;
    const waiting = condition({ status }, 'Reconciling');
    expect(waiting?.reason).toBe('AwaitingApproval');
    expect(pending?.steps).toHaveLength(1);
    expect(pending?.steps[0]).toMatch(new RegExp(`^migrate ${ns.replace(/-/g, '_')}\\.page_views v1 → v2 by copy-and-swap`));

    const key = `DataSource/${ns}/page-views`;
    const text = await weir('plan', '-f', dir, '--clickhouse', server.url);
    expect(text.code, text.out).toBe(2);
    // The copy's figures: rows and bytes as the operator read them (the disk's free space moves between the two reads).
    const copy = pending?.copy;
    expect(copy?.rows).toBe(1000);
    expect(copy?.bytes).toBeGreaterThan(0);
    expect(linesOf(text.out, key)).toEqual([
      ...(pending?.steps ?? []),
      expect.stringMatching(
        new RegExp(`^copy of ${ns.replace(/-/g, '_')}\\.page_views: 1,000 rows, [\\d.]+ KiB on disk; disk ${copy?.disk ?? '?'} has [\\d.]+ [KMGTP]iB free$`),
      ),
      `plan hash ${pending?.hash ?? ''}`,
      `awaiting approval: ${waiting?.message ?? ''}`,
    ]);

    const json = await weir('plan', '-f', dir, '--clickhouse', server.url, '-o', 'json', '--sql');
    expect(json.code, json.out).toBe(2);
    const doc = JSON.parse(json.out) as {
      resources: {
        key: string;
        steps: { kind: string; description: string; sql: string[] }[];
        planHash?: string;
        copy?: { rows: number; bytes: number; disk: string };
        awaitingApproval?: string;
        refusals: string[];
      }[];
      pending: number;
      refused: number;
    };
    expect(doc.pending).toBe(1);
    expect(doc.refused).toBe(0);
    const mine = doc.resources.find((r) => r.key === key);
    expect(mine?.steps.map((s) => s.description)).toEqual(pending?.steps);
    expect(mine?.planHash).toBe(pending?.hash);
    expect(mine?.awaitingApproval).toBe(waiting?.message);
    expect(mine?.copy).toMatchObject({ rows: copy?.rows, bytes: copy?.bytes, disk: copy?.disk });
    expect(mine?.steps[0]?.kind).toBe('CopyAndSwap');
    expect(mine?.steps[0]?.sql.filter((q) => !q.startsWith('--')).map((q) => q.split(/\s/)[0])).toEqual(['CREATE', 'INSERT', 'INSERT', 'EXCHANGE', 'RENAME']);
  });

  it("an Endpoint: weir plan prints the rollout and the served hash, and refuses SQL that does not compile with the operator's message", async () => {
    const ns = uniqueNamespace('golden-ep');
    const dir = exampleIn(ns);
    const key = `Endpoint/${ns}/top-pages`;
    const before = await weir('plan', '-f', dir, '--clickhouse', server.url);
    expect(linesOf(before.out, key)).toEqual([expect.stringMatching(/its query is compiled against ClickHouse once nothing is pending$/)]);
    expect((await weir('apply', '-f', dir, '--clickhouse', server.url)).code).toBe(0);

    const ep = loadResources(dir)
      .resources.map((r) => r.object as unknown as Endpoint)
      .find((r) => r.kind === 'Endpoint');
    if (!ep) throw new Error('no Endpoint in the fixture');
    const settled = await weir('plan', '-f', dir, '--clickhouse', server.url);
    expect(settled.code, settled.out).toBe(0);
    const [line] = linesOf(settled.out, key);
    expect(line).toBe(
      'serve /v0/pipes/top_pages.json (tenant String required, date_from Date = 2020-01-01, date_to Date = 2100-01-01, limit UInt32 = 10) ' +
        `from Deployment top-pages-serve, served hash ${line?.match(/served hash (\w+)/)?.[1] ?? ''}`,
    );
    const doc = JSON.parse((await weir('plan', '-f', dir, '--clickhouse', server.url, '-o', 'json')).out) as {
      endpoints: { key: string; serve?: { servedHash: string; deployment: string; queryChecked: boolean }; refusals: string[] }[];
    };
    expect(doc.endpoints).toEqual([{ key, serve: expect.objectContaining({ deployment: 'top-pages-serve', queryChecked: true }) as unknown, refusals: [] }]);
    expect(line).toContain(`served hash ${doc.endpoints[0]?.serve?.servedHash ?? '?'}`);

    // A node reading a column the rollup does not have: the operator stalls, weir plan refuses, with one message.
    const pipes = join(dir, 'pipes.yaml');
    writeFileSync(pipes, readFileSync(pipes, 'utf8').replace('SELECT pathname, sum(views) AS views', 'SELECT pathname, sum(no_such_column) AS views'));
    const broken = loadResources(dir)
      .resources.map((r) => r.object as unknown as Endpoint)
      .find((r) => r.kind === 'Endpoint');
    if (!broken) throw new Error('no Endpoint in the fixture');
    const stalled = condition(await reconcileEndpoint(broken, operatorContext(dir)), 'Stalled');
    expect(stalled).toMatchObject({ status: 'True', reason: 'SqlDoesNotCompile' });
    const refused = await weir('plan', '-f', dir, '--clickhouse', server.url);
    expect(refused.code, refused.out).toBe(1);
    expect(linesOf(refused.out, key)).toEqual([`REFUSED: ${stalled?.message ?? ''} (SqlDoesNotCompile)`]);
  });

  it('a column added by hand: weir plan shows the drift, refuses the copy-and-swap that would drop it, and copies it once the spec adopts it', async () => {
    const ns = uniqueNamespace('drift');
    const db = ns.replace(/-/g, '_');
    const dir = exampleIn(ns);
    const key = `DataSource/${ns}/page-views`;
    expect((await weir('apply', '-f', dir, '--clickhouse', server.url)).code).toBe(0);
    await server.ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname) SELECT now64(3) - number, toString(number), 't1', '/' FROM numbers(500)`,
    );
    await server.ch.command(`ALTER TABLE ${db}.page_views ADD COLUMN note String DEFAULT 'n'`);
    await server.ch.command(`ALTER TABLE ${db}.page_views UPDATE note = concat('n', session_id) WHERE 1 SETTINGS mutations_sync = 2`);

    const drifted = await weir('plan', '-f', dir, '--clickhouse', server.url);
    expect(drifted.code, drifted.out).toBe(0);
    expect(linesOf(drifted.out, key)).toEqual(['drift: column note String was added by hand', 'up to date']);

    const file = join(dir, 'datasources.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('sortingKey: [tenant_id, timestamp]', 'sortingKey: [tenant_id, pathname, timestamp]'));
    const refused = await weir('plan', '-f', dir, '--clickhouse', server.url);
    expect(refused.code, refused.out).toBe(1);
    expect(linesOf(refused.out, key)).toContain(
      `REFUSED: column note (String) of ${db}.page_views was added by hand (weir's marker does not list it); the copy-and-swap would drop it: add it to spec.columns to keep it, or set spec.migration.allowDestructive: true to drop it`,
    );
    expect((await weir('apply', '-f', dir, '--clickhouse', server.url)).code).toBe(1);

    writeFileSync(file, readFileSync(file, 'utf8').replace(/(\n {4}- \{name: duration_ms[^\n]+)/, '$1\n    - {name: note, type: String, default: "\'n\'"}'));
    const adopted = await weir('apply', '-f', dir, '--clickhouse', server.url);
    expect(adopted.code, adopted.out).toBe(0);
    const rows = await server.ch.query<{ n: string; ok: string }>(`SELECT count() AS n, countIf(note = concat('n', session_id)) AS ok FROM ${db}.page_views`);
    expect(rows).toEqual([{ n: '500', ok: '500' }]);
    const after = await weir('plan', '-f', dir, '--clickhouse', server.url);
    expect(linesOf(after.out, key)).toEqual(['up to date']);
  });

  it('weir apply while another executor holds the table: exit 1 naming the holder, nothing changed; it applies once the lock is released', async () => {
    const ns = uniqueNamespace('locked');
    const db = ns.replace(/-/g, '_');
    const dir = exampleIn(ns);
    expect((await weir('apply', '-f', dir, '--clickhouse', server.url)).code).toBe(0);
    const file = join(dir, 'datasources.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('sortingKey: [tenant_id, timestamp]', 'sortingKey: [tenant_id, pathname, timestamp]'));
    const lock = await acquireTableLock(server.ch, { database: db, table: 'page_views' }, 'operator on cluster-node (pid 1) migration m-1');
    const refused = await weir('apply', '-f', dir, '--clickhouse', server.url);
    expect(refused.code, refused.out).toBe(1);
    expect(refused.out).toContain(`${db}.page_views is being changed by operator on cluster-node (pid 1) migration m-1 since`);
    expect(await server.ch.query(`SELECT count() AS n FROM system.tables WHERE database = '${db}' AND startsWith(name, 'page_views__')`)).toEqual([{ n: '0' }]);
    await lock.release();
    const applied = await weir('apply', '-f', dir, '--clickhouse', server.url);
    expect(applied.code, applied.out).toBe(0);
    expect(await server.ch.query(`SELECT count() AS n FROM system.tables WHERE database = '${db}' AND name = 'page_views__v1'`)).toEqual([{ n: '1' }]);
  });
});
