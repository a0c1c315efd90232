// `weir clickhouse --password` without --user, and WEIR_CLICKHOUSE_PASSWORD, as real processes: a password
// alone is user default's password (ClickHouse's convention), never "no authentication".
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../env/processes.js';
import { startWeir, type WeirProcess } from '../../fixtures/processes.js';

const started: Array<{ proc: WeirProcess; dataDir: string }> = [];

async function startClickHouse(flags: string[], env: Record<string, string> = {}): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'weir-ch-auth-'));
  const [port = 0] = await freePorts(1);
  const proc = startWeir(['clickhouse', '--data-dir', dataDir, '--port', String(port), ...flags], env);
  started.push({ proc, dataDir });
  await proc.waitForLog('clickhouse listening', (l) => l.message === 'clickhouse listening', 60_000);
  return `http://127.0.0.1:${port}`;
}

afterAll(async () => {
  for (const { proc, dataDir } of started) {
    await proc.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
});

const basic = (user: string, password: string): Record<string, string> => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

async function query(url: string, headers: Record<string, string>): Promise<{ status: number; code: string | null; body: string }> {
  const res = await fetch(`${url}/`, { method: 'POST', headers, body: 'SELECT 42' });
  return { status: res.status, code: res.headers.get('x-clickhouse-exception-code'), body: await res.text() };
}

/** No credentials, wrong ones and right ones, by basic auth and by X-ClickHouse headers. */
async function expectPasswordOfDefault(url: string): Promise<void> {
  const none = await query(url, {});
  expect(none).toMatchObject({ status: 403, code: '516' });
  expect(none.body).toContain('default: Authentication failed: password is incorrect, or there is no user with such name');
  expect(await query(url, basic('default', 'wrong'))).toMatchObject({ status: 403, code: '516' });
  expect(await query(url, basic('admin', 'secret'))).toMatchObject({ status: 403, code: '516' });
  expect(await query(url, { 'x-clickhouse-user': 'default', 'x-clickhouse-key': 'wrong' })).toMatchObject({ status: 403, code: '516' });
  expect(await query(url, basic('default', 'secret'))).toEqual({ status: 200, code: null, body: '42\n' });
  expect(await query(url, { 'x-clickhouse-user': 'default', 'x-clickhouse-key': 'secret' })).toEqual({ status: 200, code: null, body: '42\n' });
}

describe('weir clickhouse with a password and no user', () => {
  it('--password secret: user default must present it', async () => {
    await expectPasswordOfDefault(await startClickHouse(['--password', 'secret']));
  });

  it('WEIR_CLICKHOUSE_PASSWORD=secret: the same', async () => {
    await expectPasswordOfDefault(await startClickHouse([], { WEIR_CLICKHOUSE_PASSWORD: 'secret' }));
  });

  it('--user with --password: that user', async () => {
    const url = await startClickHouse(['--user', 'admin', '--password', 'secret']);
    expect(await query(url, basic('default', 'secret'))).toMatchObject({ status: 403, code: '516' });
    expect(await query(url, basic('admin', 'secret'))).toEqual({ status: 200, code: null, body: '42\n' });
  });
});
