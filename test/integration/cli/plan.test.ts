// `weir validate`, `weir plan` and `weir apply` as CI would run them: exit codes and what
// they print, against the real engine.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';
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
    writeFileSync(join(bad, 'ds.yaml'), 'apiVersion: weir.dev/v1alpha1\nkind: DataSource\nmetadata: {name: t}\nspec:\n  columns: [{name: a, type: String}]\n  engine: {type: LogTree, sortingKey: [b]}\n');
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
