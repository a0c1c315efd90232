// The events API of `weir dev` with Idempotency-Key: a batch retried under its key is inserted
// once, rollup and quarantine included, and answered the same; other keys and requests without a
// key insert again; other events under a key already used are refused with 422. Each test writes its own tenant and
// counts it in ClickHouse after every request.
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
import { count } from '../../fixtures/clickhouse.js';
import { startExampleDev, type ExampleDev } from '../../fixtures/dev.js';

let dev: ExampleDev;
let base = '';
let ch: ClickHouse;

interface Answer {
  status: number;
  body: { successful_rows?: number; quarantined_rows?: number; error?: string };
}

const post = async (body: Uint8Array | string, headers: Record<string, string> = {}, query = ''): Promise<Answer> => {
  const res = await fetch(`${base}/v0/events?name=page_views${query}`, { method: 'POST', body, headers });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
};

const keyed = (key: string, more: Record<string, string> = {}) => ({ 'idempotency-key': key, ...more });

/** A fresh tenant: every test counts only its own rows. */
const newTenant = () => `idem-${randomUUID().slice(0, 8)}`;

// Timestamps are now: the example's TTL drops rows older than 180 days as they are inserted.
const event = (tenant: string, n: number) =>
  JSON.stringify({ timestamp: new Date().toISOString(), session_id: `${tenant}-${n}`, tenant_id: tenant, payload: { pathname: `/p${n % 3}` } });
const events = (tenant: string, from: number, to: number) => Array.from({ length: to - from }, (_, i) => `${event(tenant, from + i)}\n`).join('');
/** Two lines the quarantine takes: one the mapper refuses (not JSON), one ClickHouse refuses (no time). */
const malformed = (tenant: string) =>
  `{not json ${tenant}\n${JSON.stringify({ timestamp: `no time ${tenant}`, session_id: `${tenant}-bad`, tenant_id: tenant, payload: { pathname: '/bad' } })}\n`;

/** The tenant's rows, its rows as the rollup counts them, and its quarantined lines. */
const counts = async (tenant: string) => ({
  rows: await count(ch, `SELECT count() AS n FROM web.page_views WHERE tenant_id = '${tenant}'`),
  ids: await count(ch, `SELECT uniqExact(session_id) AS n FROM web.page_views WHERE tenant_id = '${tenant}'`),
  rollup: await count(ch, `SELECT countMerge(views) AS n FROM web.page_views_daily WHERE tenant_id = '${tenant}'`),
  quarantined: await count(ch, `SELECT count() AS n FROM web.page_views_quarantine WHERE position(raw, '${tenant}') > 0`),
});

const ok = (rows: number, quarantined = 0): Answer => ({ status: 200, body: { successful_rows: rows, quarantined_rows: quarantined } });

beforeAll(async () => {
  dev = await startExampleDev('weir-idem');
  ({ base, ch } = dev);
});

afterAll(async () => {
  await dev?.stop();
});

describe('the events API of weir dev, with Idempotency-Key', () => {
  it('inserts a batch posted twice under one key once, rollup and quarantine included, and answers the same', async () => {
    const t = newTenant();
    const body = events(t, 0, 50) + malformed(t);
    const key = randomUUID();
    expect(await post(body, keyed(key))).toEqual(ok(50, 2));
    expect(await post(body, keyed(key))).toEqual(ok(50, 2));
    expect(await counts(t)).toEqual({ rows: 50, ids: 50, rollup: 50, quarantined: 2 });
  });

  it('inserts the same batch under two keys twice, and without a key every time', async () => {
    const t = newTenant();
    const body = events(t, 0, 10);
    expect(await post(body, keyed(randomUUID()))).toEqual(ok(10));
    expect(await post(body, keyed(randomUUID()))).toEqual(ok(10));
    expect(await counts(t)).toEqual({ rows: 20, ids: 10, rollup: 20, quarantined: 0 });
    expect(await post(body)).toEqual(ok(10));
    expect(await post(body)).toEqual(ok(10));
    expect(await counts(t)).toEqual({ rows: 40, ids: 10, rollup: 40, quarantined: 0 });
  });

  it('refuses other events sent under a key already used with 422, inserting nothing, and still drops a retry of the first ones', async () => {
    const t = newTenant();
    const key = randomUUID();
    const first = events(t, 0, 10) + malformed(t);
    expect(await post(first, keyed(key))).toEqual(ok(10, 2));
    const other = await post(events(t, 10, 17), keyed(key));
    expect(other.status).toBe(422);
    expect(other.body.error).toMatch(/was used for other events on DataSource page-views; send new events under a new key/);
    expect(await counts(t)).toEqual({ rows: 10, ids: 10, rollup: 10, quarantined: 2 });
    expect(await post(first, keyed(key))).toEqual(ok(10, 2));
    expect(await counts(t)).toEqual({ rows: 10, ids: 10, rollup: 10, quarantined: 2 });
  });

  it('lands a batch posted concurrently under one key once; other events raced under the same key get 422', async () => {
    const t = newTenant();
    const key = randomUUID();
    const body = events(t, 0, 40);
    const same = await Promise.all(Array.from({ length: 6 }, () => post(body, keyed(key))));
    expect(same).toEqual(Array.from({ length: 6 }, () => ok(40)));
    expect(await counts(t)).toEqual({ rows: 40, ids: 40, rollup: 40, quarantined: 0 });
    const raced = newTenant();
    const k2 = randomUUID();
    const answers = await Promise.all([0, 1, 2, 3].map((i) => post(events(raced, i * 10, i * 10 + 10), keyed(k2))));
    const accepted = answers.filter((a) => a.status === 200);
    expect(accepted).toEqual([ok(10)]);
    expect(answers.filter((a) => a.status === 422)).toHaveLength(3);
    expect(await counts(raced)).toEqual({ rows: 10, ids: 10, rollup: 10, quarantined: 0 });
  });

  it('takes a gzip body with a key, and its retry plain or gzipped again inserts nothing', async () => {
    const t = newTenant();
    const key = randomUUID();
    const body = events(t, 0, 30);
    expect(await post(gzipSync(body), keyed(key, { 'content-encoding': 'gzip' }))).toEqual(ok(30));
    expect(await post(gzipSync(body, { level: 1 }), keyed(key, { 'content-encoding': 'gzip' }))).toEqual(ok(30));
    expect(await post(body.replaceAll('\n', '\r\n'), keyed(key))).toEqual(ok(30));
    expect(await counts(t)).toEqual({ rows: 30, ids: 30, rollup: 30, quarantined: 0 });
  });

  it('takes the key as the idempotency_key parameter or as a quoted string, as the same key', async () => {
    const t = newTenant();
    const body = events(t, 0, 5);
    expect(await post(body, keyed(`"k-${t}"`))).toEqual(ok(5));
    expect(await post(body, {}, `&idempotency_key=k-${t}`)).toEqual(ok(5));
    expect(await post(body, keyed(`k-${t}`), `&idempotency_key=k-${t}`)).toEqual(ok(5));
    expect(await counts(t)).toEqual({ rows: 5, ids: 5, rollup: 5, quarantined: 0 });
  });

  it('refuses a bad key, or two keys, with a 400 naming it, inserting nothing', async () => {
    const t = newTenant();
    const body = events(t, 0, 3);
    const refusals: [Record<string, string>, string, RegExp][] = [
      [keyed(''), '', /1 to 255 printable ASCII/],
      [keyed('x'.repeat(256)), '', /1 to 255 printable ASCII/],
      [keyed('"open'), '', /not a valid quoted string/],
      [{}, '&idempotency_key=caf%C3%A9', /printable ASCII.*"café"/],
      [keyed('a'), '&idempotency_key=b', /2 different idempotency keys/],
    ];
    for (const [headers, query, message] of refusals) {
      const answer = await post(body, headers, query);
      expect({ headers, query, status: answer.status }).toEqual({ headers, query, status: 400 });
      expect(answer.body.error).toMatch(message);
    }
    expect(await twoKeyHeaders(body, ['a', 'b'])).toMatchObject({
      status: 400,
      body: { error: expect.stringMatching(/2 different idempotency keys/) as unknown },
    });
    expect(await counts(t)).toEqual({ rows: 0, ids: 0, rollup: 0, quarantined: 0 });
  });

  it('inserts the rows once when the quarantine insert failed after they landed and the client retries', async () => {
    const t = newTenant();
    const key = randomUUID();
    const body = events(t, 0, 20) + malformed(t);
    await ch.command('RENAME TABLE web.page_views_quarantine TO web.page_views_quarantine_away');
    let failed: Answer;
    try {
      failed = await post(body, keyed(key));
    } finally {
      await ch.command('RENAME TABLE web.page_views_quarantine_away TO web.page_views_quarantine');
    }
    expect(failed.status).toBeGreaterThanOrEqual(500);
    expect(await counts(t)).toEqual({ rows: 20, ids: 20, rollup: 20, quarantined: 0 });
    expect(await post(body, keyed(key))).toEqual(ok(20, 2));
    expect(await counts(t)).toEqual({ rows: 20, ids: 20, rollup: 20, quarantined: 2 });
  });
});

/** A POST with one Idempotency-Key header line per key (fetch would join them into one). */
function twoKeyHeaders(body: string, keys: string[]): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/v0/events?name=page_views`, { method: 'POST', headers: { 'idempotency-key': keys } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Answer['body'] }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
