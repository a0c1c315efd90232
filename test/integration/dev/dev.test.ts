// `weir dev` as a user runs it: the example project from a folder, events over HTTP
// (malformed ones among them), an endpoint answering with the right numbers, and an edit
// to the folder running a real copy-and-swap migration.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
import { waitFor } from '../../env/wait.js';
import { count } from '../../fixtures/clickhouse.js';
import { startExampleDev, type ExampleDev } from '../../fixtures/dev.js';

let dev: ExampleDev;
let base = '';
let ch: ClickHouse;
let project = '';
const output = () => dev.output();

const post = async (body: string) => {
  const res = await fetch(`${base}/v0/events?name=page_views`, { method: 'POST', body });
  return { status: res.status, body: (await res.json()) as { successful_rows?: number; quarantined_rows?: number; error?: string } };
};

beforeAll(async () => {
  dev = await startExampleDev('weir-dev');
  ({ base, ch, project } = dev);
});

afterAll(async () => {
  await dev?.stop();
});

describe('weir dev on the example', () => {
  it('prints the plan it applied', () => {
    expect(output()).toMatch(/create table web\.page_views/);
    expect(output()).toMatch(/create materialized view web\.daily_rollup/);
  });

  it('accepts events, quarantines malformed ones with the reason, and the endpoint sums to what was sent', async () => {
    const generator = join(project, 'generate-events.mjs');
    const summary = await new Promise<string>((resolve, reject) => {
      const g = spawn(process.execPath, [generator, '--url', base, '--events', '900', '--malformed', '6']);
      let out = '';
      g.stdout.on('data', (d: Buffer) => (out += d.toString()));
      g.stderr.on('data', (d: Buffer) => (out += d.toString()));
      g.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(out))));
    });
    expect(JSON.parse(summary)).toEqual({ sent: 906, valid: 900, malformed: 6, accepted: 900, quarantined: 6 });
    expect(await count(ch, 'SELECT count() AS n FROM web.page_views')).toBe(900);
    expect(await count(ch, 'SELECT count() AS n FROM web.page_views_quarantine')).toBe(6);
    const reasons = await ch.query<{ error: string }>('SELECT error FROM web.page_views_quarantine ORDER BY error');
    expect(reasons.map((r) => r.error).join('\n')).toMatch(/not JSON/);
    expect(reasons.map((r) => r.error).join('\n')).toMatch(/missing required field \$\.timestamp for column timestamp/);

    let endpointTotal = 0;
    for (const tenant of ['acme', 'globex', 'initech']) {
      const res = await fetch(`${base}/v0/pipes/top_pages.json?tenant=${tenant}&limit=1000`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { data: { views: string | number }[] };
      endpointTotal += body.data.reduce((n, r) => n + Number(r.views), 0);
    }
    expect(endpointTotal).toBe(900);
  });

  it('answers a malformed request clearly and changes nothing', async () => {
    expect(await post('')).toEqual({ status: 200, body: { successful_rows: 0, quarantined_rows: 0 } });
    const unknown = await fetch(`${base}/v0/events?name=nope`, { method: 'POST', body: '{}' });
    expect(unknown.status).toBe(404);
    const missing = await fetch(`${base}/v0/events`, { method: 'POST', body: '{}' });
    expect(missing.status).toBe(400);
    expect((await fetch(`${base}/v0/pipes/top_pages.json`)).status).toBe(400);
    expect(await count(ch, 'SELECT count() AS n FROM web.page_views')).toBe(900);
  });

  it('runs a copy-and-swap migration when the sorting key is edited, keeping every row', async () => {
    const file = join(project, 'datasources.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('sortingKey: [tenant_id, timestamp]', 'sortingKey: [tenant_id, pathname, timestamp]'));
    await waitFor('migration applied', () => (/Completed \{"version":2\}/.test(output()) ? true : undefined), { timeoutMs: 60_000 });
    const [t] = await ch.query<{ sorting_key: string }>("SELECT sorting_key FROM system.tables WHERE database = 'web' AND name = 'page_views'");
    expect(t?.sorting_key).toBe('tenant_id, pathname, timestamp');
    expect(await count(ch, 'SELECT count() AS n FROM web.page_views')).toBe(900);
    const after = await post('{"timestamp":"2026-11-01T00:00:00Z","session_id":"x","tenant_id":"acme","payload":{"pathname":"/after"}}');
    expect(after.body).toEqual({ successful_rows: 1, quarantined_rows: 0 });
    expect(await count(ch, 'SELECT countMerge(views) AS n FROM web.page_views_daily')).toBe(901);
  });
});
