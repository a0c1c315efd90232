// A runaway statement against the embedded ClickHouse: chdb sets no memory limit of its own, so an
// endless SELECT grew `weir clickhouse` (and `weir dev` with it) until the kernel killed the process.
// The server now runs with ClickHouse's max_server_memory_usage: the statement fails, the server stays.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../env/processes.js';
import { startWeir, type WeirProcess } from '../../fixtures/processes.js';

const LIMIT_BYTES = 1_000_000_000;
let proc: WeirProcess;
let dataDir = '';
let url = '';

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'weir-ch-memory-'));
  const [port = 0] = await freePorts(1);
  proc = startWeir(['clickhouse', '--data-dir', dataDir, '--port', String(port), '--max-server-memory', String(LIMIT_BYTES)]);
  await proc.waitForLog('clickhouse listening', (l) => l.message === 'clickhouse listening', 60_000);
  url = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await proc?.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
});

const post = async (sql: string) => {
  const res = await fetch(`${url}/`, { method: 'POST', body: sql });
  return { status: res.status, code: res.headers.get('x-clickhouse-exception-code'), body: await res.text() };
};

/**
 * Peak resident memory of the server process, from the kernel (a bound, not a timing). Measured: about
 * 4 x the limit at 0.5 GB and 1 GB (chdb tracks the statement, not the result buffer copied out of it).
 */
const peakRssBytes = (pid: number): number => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024;
};

describe('weir clickhouse --max-server-memory', () => {
  it('fails an endless SELECT with MEMORY_LIMIT_EXCEEDED and goes on serving', async () => {
    const endless = await post("SELECT number, repeat('x', 100) FROM numbers(10000000000)");
    expect(endless).toMatchObject({ status: 500, code: '241' });
    expect(endless.body).toMatch(/memory limit exceeded/i);
    expect(await post('SELECT 42')).toMatchObject({ status: 200, body: '42\n' });
    expect(peakRssBytes(proc.child.pid ?? 0)).toBeLessThan(5 * LIMIT_BYTES);
  });
});
