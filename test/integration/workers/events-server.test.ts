// `weir events` as its own process (dist/cli/main.js, as the <name>-events pods run it) against
// the real engine: tokens, the rate limit, the body limit, bad input (each a clear error, the
// process up afterwards), 503 while ClickHouse is down then exactly once on retry, a graceful
// SIGTERM, and a pod SIGKILLed again and again while clients retry with idempotency keys:
// every id lands exactly once and the quarantine holds exactly the malformed lines.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { applyProject } from '../../../src/execute/apply.js';
import { withFence } from '../../../src/execute/fence.js';
import { holderName } from '../../../src/execute/table-lock.js';
import { createLogger } from '../../../src/runtime/log.js';
import { freePorts } from '../../env/processes.js';
import { waitFor } from '../../env/wait.js';
import { column, dataSource, inNamespace, uniqueDatabase, withColumns, withSortingKey, withSpec } from '../../fixtures/builders.js';
import { count } from '../../fixtures/clickhouse.js';
import { startClickHouseProcess, writeConfig, type ClickHouseProcess } from '../../fixtures/ingest.js';
import { startWeir, type WeirProcess } from '../../fixtures/processes.js';
import { tempDir, writeTokenSecret } from '../../fixtures/serve.js';

const TOKEN = 'writer-token-1';
let clickhouse: ClickHouseProcess;
let db: string;
let tokensDir: string;
let clicks: DataSource;
let limited: DataSource;
let main: EventsProcess;

interface EventsProcess {
  weir: WeirProcess;
  base: string;
  metrics: string;
  port: number;
}

async function startEvents(ds: DataSource, port = 0, extra: string[] = []): Promise<EventsProcess> {
  const weir = startWeir(
    [
      'events',
      '--config',
      writeConfig(ds),
      '--port',
      String(port),
      '--metrics-port',
      '0',
      '--host',
      '127.0.0.1',
      '--tokens-dir',
      tokensDir,
      '--max-fence-wait',
      '3000',
      ...extra,
    ],
    { WEIR_CLICKHOUSE_URL: clickhouse.url, POD_NAME: `${ds.metadata.name}-${randomUUID().slice(0, 5)}` },
  );
  const l = await weir.waitForLog('weir events listening', (x) => x.message === 'events server listening');
  return { weir, base: `http://127.0.0.1:${Number(l.port)}`, metrics: `http://127.0.0.1:${Number(l.metricsPort)}`, port: Number(l.port) };
}

interface Answer {
  status: number;
  headers: Headers;
  body: { successful_rows?: number; quarantined_rows?: number; error?: string };
}

const post = async (p: EventsProcess, body: Uint8Array | string, headers: Record<string, string> = {}, name = 'clicks'): Promise<Answer> => {
  const res = await fetch(`${p.base}/v0/events?name=${name}`, { method: 'POST', body, headers: { authorization: `Bearer ${TOKEN}`, ...headers } });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Answer['body'] };
};
const ok = (rows: number, quarantined = 0) => ({ successful_rows: rows, quarantined_rows: quarantined });
const click = (id: string, n = 1) => JSON.stringify({ id, n, page: `/p${n % 4}` });
const lines = (ids: string[]) => ids.map((id, i) => `${click(id, i)}\n`).join('');
const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const rowsOf = (prefix: string) => count(clickhouse.ch, `SELECT count() AS n FROM ${db}.clicks WHERE startsWith(id, '${prefix}-')`);
const quarantinedOf = (prefix: string) => count(clickhouse.ch, `SELECT count() AS n FROM ${db}.clicks_quarantine WHERE position(raw, '${prefix}') > 0`);
const running = (p: EventsProcess) => p.weir.child.exitCode === null && p.weir.child.signalCode === null;

beforeAll(async () => {
  clickhouse = await startClickHouseProcess();
  db = uniqueDatabase('events_srv');
  tokensDir = tempDir('weir-events-tokens-');
  mkdirSync(tokensDir, { recursive: true });
  writeTokenSecret(tokensDir, 'clicks-writers', { app: TOKEN });
  const columns = withColumns(
    column('id', 'String', { jsonPath: '$.id' }),
    column('n', 'UInt32', { jsonPath: '$.n' }),
    column('page', 'LowCardinality(String)', { jsonPath: '$.page' }),
  );
  clicks = dataSource(
    'clicks',
    inNamespace('events-srv'),
    columns,
    withSortingKey('page', 'id'),
    withSpec<DataSource>({
      database: db,
      ingestion: { http: { auth: { tokensSecretRef: { name: 'clicks-writers' } }, limits: { requestsPerSecond: 100_000 } } },
    }),
  );
  limited = dataSource(
    'limited',
    inNamespace('events-srv'),
    columns,
    withSortingKey('page', 'id'),
    withSpec<DataSource>({ database: db, ingestion: { http: { limits: { requestsPerSecond: 2, maxBodyBytes: 4096 } } } }),
  );
  await applyProject(clickhouse.ch, [clicks, limited], { log: createLogger({ level: 'error' }), holder: holderName('test') });
  main = await startEvents(clicks);
}, 120_000);

afterAll(async () => {
  await main?.weir.kill('SIGKILL');
  await clickhouse?.stop();
});

describe('weir events', () => {
  it('asks for a token with 401, refuses a wrong one with 403, and takes events with the right one', async () => {
    const p = ids('auth', 3);
    const none = await fetch(`${main.base}/v0/events?name=clicks`, { method: 'POST', body: lines(p) });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="weir"');
    expect(((await none.json()) as { error: string }).error).toMatch(/send Authorization: Bearer <token>/);
    const wrong = await post(main, lines(p), { authorization: 'Bearer nope' });
    expect([wrong.status, wrong.body.error]).toEqual([403, 'the token is not allowed to send events to DataSource clicks']);
    expect(await rowsOf('auth')).toBe(0);
    expect(await post(main, lines(p))).toMatchObject({ status: 200, body: ok(3) });
    expect((await fetch(`${main.base}/v0/events?name=clicks&token=${TOKEN}`, { method: 'POST', body: lines(ids('authq', 2)) })).status).toBe(200);
    expect(await rowsOf('auth')).toBe(3);
    expect(await rowsOf('authq')).toBe(2);
  });

  it('takes a JSON array body and a gzipped one, and quarantines the elements that do not map', async () => {
    const arr = `[${ids('arr', 4)
      .map((id, i) => click(id, i))
      .join(',')}, {"id": "arr-bad", "n": "not a number"}, 17]`;
    expect(await post(main, arr)).toMatchObject({ status: 200, body: ok(4, 2) });
    expect(await post(main, gzipSync(arr.replaceAll('arr-', 'arrz-')), { 'content-encoding': 'gzip' })).toMatchObject({ status: 200, body: ok(4, 2) });
    expect(await rowsOf('arr')).toBe(4);
    expect(await rowsOf('arrz')).toBe(4);
    expect(await quarantinedOf('arr-bad')).toBe(1);
    expect((await post(main, '[{"id": "x"}, {"id": ')).body.error).toMatch(/^the body is not a JSON array: it ends inside/);
  });

  it('answers each bad input with a clear error, inserts nothing of it, and stays up', async () => {
    const before = await count(clickhouse.ch, `SELECT count() AS n FROM ${db}.clicks`);
    const csv = await post(main, 'id,n,page\nbad-1,1,/x\n');
    expect([csv.status, csv.body.error]).toEqual([
      400,
      'the body is not NDJSON (one JSON object a line): line 1 ("id,n,page") and every other line are not JSON',
    ]);
    const gzip = await post(main, Buffer.concat([gzipSync(lines(ids('badgz', 5))).subarray(0, 30), Buffer.from('garbage')]), { 'content-encoding': 'gzip' });
    expect(gzip.status).toBe(400);
    expect(gzip.body.error).toMatch(/^body is not valid gzip data/);
    const unknown = await post(main, lines(ids('unk', 1)), {}, 'no-such-thing');
    expect([unknown.status, unknown.body.error]).toEqual([404, 'no DataSource named "no-such-thing" takes events here']);
    // 200,000 levels of nesting: neither the body reader nor the mapper recurses on it.
    const deep = `${'{"a":'.repeat(200_000)}1${'}'.repeat(200_000)}`;
    const deepArray = `[${'['.repeat(200_000)}${']'.repeat(200_000)}]`;
    expect(await post(main, `${deep}\n${click('deep-ok')}\n`)).toMatchObject({ status: 200, body: ok(1, 1) });
    expect(await post(main, deepArray)).toMatchObject({ status: 200, body: ok(0, 1) });
    // Not UTF-8: quarantined with its bytes; the other line lands.
    const latin1 = Buffer.concat([
      Buffer.from('{"id": "utf-caf'),
      Buffer.from([0xe9]),
      Buffer.from('", "n": 1, "page": "/"}\n'),
      Buffer.from(`${click('utf-ok')}\n`),
    ]);
    expect(await post(main, latin1)).toMatchObject({ status: 200, body: ok(1, 1) });
    expect(await count(clickhouse.ch, `SELECT count() AS n FROM ${db}.clicks`)).toBe(before + 2);
    expect(running(main)).toBe(true);
    expect(await post(main, lines(ids('after-bad', 2)))).toMatchObject({ status: 200, body: ok(2) });
  });

  it('refuses a body over limits.maxBodyBytes with 413 and requests past limits.requestsPerSecond with 429 and Retry-After', async () => {
    const p = await startEvents(limited);
    try {
      const big = lines(ids('big', 200));
      expect(big.length).toBeGreaterThan(4096);
      const tooBig = await post(p, big, {}, 'limited');
      expect([tooBig.status, tooBig.body.error]).toEqual([413, 'body is more than 4096 bytes, the limit; send smaller batches']);
      const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => post(p, lines([`rate-${i}`]), {}, 'limited')));
      const limitedAnswers = answers.filter((a) => a.status === 429);
      const taken = answers.filter((a) => a.status === 200);
      expect(limitedAnswers.length).toBeGreaterThan(0);
      expect(taken.length + limitedAnswers.length).toBe(12);
      for (const a of limitedAnswers) {
        expect(Number(a.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        expect(a.body.error).toMatch(/at most 2 requests per second per pod \(spec\.ingestion\.http\.limits\.requestsPerSecond\)/);
      }
      expect(await count(clickhouse.ch, `SELECT count() AS n FROM ${db}.limited WHERE startsWith(id, 'rate-')`)).toBe(taken.length);
      expect(await count(clickhouse.ch, `SELECT count() AS n FROM ${db}.limited WHERE startsWith(id, 'big-')`)).toBe(0);
    } finally {
      await p.weir.kill('SIGKILL');
    }
  });

  it('answers 503 with Retry-After while ClickHouse is down, and a retry under the same key lands once when it is back', async () => {
    const key = randomUUID();
    const body = lines(ids('outage', 25));
    await clickhouse.kill();
    let down: Answer;
    try {
      down = await post(main, body, { 'idempotency-key': key });
    } finally {
      await clickhouse.restart();
    }
    expect(down.status).toBe(503);
    expect(Number(down.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(down.body.error).toMatch(/retry/);
    expect(await post(main, body, { 'idempotency-key': key })).toMatchObject({ status: 200, body: ok(25) });
    expect(await post(main, body, { 'idempotency-key': key })).toMatchObject({ status: 200, body: ok(25) });
    const other = await post(main, lines(ids('outage-other', 3)), { 'idempotency-key': key });
    expect(other.status).toBe(422);
    expect(await rowsOf('outage')).toBe(25);
    expect(await rowsOf('outage-other')).toBe(0);
    expect(running(main)).toBe(true);
  });

  it('answers 503 with Retry-After while a migration fence holds the table longer than --max-fence-wait, and lands the retry once after', async () => {
    const key = randomUUID();
    const body = lines(ids('fenced', 10));
    const { result } = await withFence(clickhouse.ch, [{ database: db, table: 'clicks' }], async () => {
      const held = await post(main, body, { 'idempotency-key': key });
      return { held, rows: await rowsOf('fenced') };
    });
    expect(result.held.status).toBe(503);
    expect(result.held.headers.get('retry-after')).toBe('3');
    expect(result.held.body.error).toMatch(/is held by a migration fence \(or ClickHouse is slow\) for longer than 3000 ms; nothing was inserted, retry/);
    expect(result.rows).toBe(0);
    expect(await post(main, body, { 'idempotency-key': key })).toMatchObject({ status: 200, body: ok(10) });
    expect(await rowsOf('fenced')).toBe(10);
  });

  it('takes one of two different batches raced under one key to two pods, and refuses the other with 422, whichever pod it reached', async () => {
    const other = await startEvents(clicks);
    try {
      for (let k = 0; k < 8; k++) {
        const key = randomUUID();
        const [a, b] = await Promise.all([
          post(main, lines(ids(`race${k}a`, 5)), { 'idempotency-key': key }),
          post(other, lines(ids(`race${k}b`, 7)), { 'idempotency-key': key }),
        ]);
        const statuses = [a.status, b.status].sort();
        expect(statuses, `key ${k}`).toEqual([200, 422]);
        const [ra, rb] = [await rowsOf(`race${k}a`), await rowsOf(`race${k}b`)];
        expect([ra, rb]).toEqual(a.status === 200 ? [5, 0] : [0, 7]);
        // The loser's retry is still refused, the winner's answered again without inserting.
        const again = await post(other, lines(ids(`race${k}b`, 7)), { 'idempotency-key': key });
        expect(again.status).toBe(b.status);
      }
    } finally {
      await other.weir.kill('SIGTERM');
    }
  });

  it('counts requests, rows, quarantined rows, insert duration, fence waits and body bytes in /metrics', async () => {
    const text = await (await fetch(`${main.metrics}/metrics`)).text();
    for (const name of [
      'weir_events_requests_total{datasource="clicks",status="200"}',
      'weir_events_requests_total{datasource="clicks",status="401"}',
      'weir_events_rows_total{datasource="clicks"}',
      'weir_events_quarantined_rows_total{datasource="clicks"}',
      'weir_events_insert_duration_seconds_count{datasource="clicks"}',
      'weir_events_fence_wait_seconds_count{datasource="clicks"}',
      'weir_events_body_bytes_count{datasource="clicks"}',
    ]) {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      expect(line, name).toBeDefined();
      expect(Number(line?.split(' ').at(-1))).toBeGreaterThan(0);
    }
  });

  it('on SIGTERM is no longer ready, answers the request in flight (its rows in), and exits 0', async () => {
    const p = await startEvents(clicks, 0, ['--shutdown-delay', '300']);
    const all = ids('term', 40);
    // A request whose body is half sent when the signal comes.
    const answer = new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
      const req = request(`${p.base}/v0/events?name=clicks`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body: text }));
      });
      req.on('error', reject);
      req.write(lines(all.slice(0, 20)));
      setTimeout(() => {
        void p.weir.kill('SIGTERM');
        void p.weir
          .waitForLog('stopping', (l) => l.message === 'events server stopping: readiness false')
          .then(async () => {
            expect((await fetch(`${p.metrics}/readyz`)).status).toBe(503);
            req.end(lines(all.slice(20)));
          }, reject);
      }, 100);
    });
    const a = await answer;
    expect(a).toEqual({ status: 200, connection: 'close', body: `${JSON.stringify(ok(40))}\n` });
    expect(await p.weir.exited).toBe(0);
    expect(await rowsOf('term')).toBe(40);
  });

  it('loses and doubles nothing when its pod is SIGKILLed again and again under clients that retry with idempotency keys', async () => {
    const [port] = await freePorts(1);
    let pod = await startEvents(clicks, port);
    const sent = new Set<string>();
    const malformed: string[] = [];
    let acked = 0;
    let retried = 0;
    let stopping = false;
    const client = async (c: number) => {
      for (let b = 0; !stopping; b++) {
        const batch = ids(`kill-${c}-${b}`, 30);
        const bad = b % 5 === 0 ? [`{not json kill-${c}-${b}-bad`] : [];
        const body = lines(batch) + bad.map((l) => `${l}\n`).join('');
        const key = randomUUID();
        for (;;) {
          const a = await fetch(`http://127.0.0.1:${port}/v0/events?name=clicks`, {
            method: 'POST',
            body,
            headers: { authorization: `Bearer ${TOKEN}`, 'idempotency-key': key },
          }).then(
            async (r) => ({ status: r.status, body: (await r.json()) as Answer['body'] }),
            () => undefined,
          );
          if (a?.status === 200) {
            expect(a.body).toEqual(ok(30, bad.length));
            break;
          }
          retried++;
          await new Promise((r) => setTimeout(r, 50));
        }
        for (const id of batch) sent.add(id);
        malformed.push(...bad);
        acked++;
      }
    };
    const clients = [0, 1, 2, 3, 4, 5].map(client);
    for (let kill = 1; kill <= 3; kill++) {
      await waitFor(`${kill * 15} batches acknowledged`, () => (acked >= kill * 15 ? true : undefined), { timeoutMs: 120_000 });
      await pod.weir.kill('SIGKILL');
      pod = await startEvents(clicks, port);
    }
    await waitFor('60 batches acknowledged', () => (acked >= 60 ? true : undefined), { timeoutMs: 120_000 });
    stopping = true;
    await Promise.all(clients);
    await pod.weir.kill('SIGTERM');
    // Requests cut by the kills were sent again (their rows may have landed before the kill).
    expect(retried).toBeGreaterThan(0);
    expect(await rowsOf('kill')).toBe(sent.size);
    expect(await count(clickhouse.ch, `SELECT uniqExact(id) AS n FROM ${db}.clicks WHERE startsWith(id, 'kill-')`)).toBe(sent.size);
    expect(await count(clickhouse.ch, `SELECT count() AS n FROM ${db}.clicks_quarantine WHERE startsWith(raw, '{not json kill-')`)).toBe(malformed.length);
    const stored = await clickhouse.ch.query<{ raw: string }>(`SELECT raw FROM ${db}.clicks_quarantine WHERE startsWith(raw, '{not json kill-') ORDER BY raw`);
    expect(stored.map((r) => r.raw)).toEqual([...malformed].sort());
  }, 300_000);
});
