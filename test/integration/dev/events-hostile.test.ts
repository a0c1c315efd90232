// The events API of `weir dev` against clumsy and hostile bodies: every documented
// Content-Encoding decoded, others refused, a gzip bomb refused with memory bounded and nothing
// inserted, broken gzip a 400, lines that are not UTF-8 quarantined with their exact bytes, and a
// rollup target (no jsonPath columns) refused. Rows are counted in ClickHouse after each request.
import { readFileSync } from 'node:fs';
import { brotliCompressSync, createGzip, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
import { count } from '../../fixtures/clickhouse.js';
import { startExampleDev, type ExampleDev } from '../../fixtures/dev.js';

let dev: ExampleDev;
let base = '';
let ch: ClickHouse;

// Timestamps are now: the example's TTL drops rows older than 180 days as they are inserted.
const event = (pathname: string) => JSON.stringify({ timestamp: new Date().toISOString(), session_id: 's', tenant_id: 'hostile', payload: { pathname } });

const post = async (body: Uint8Array | string, encoding?: string, name = 'page_views') => {
  const res = await fetch(`${base}/v0/events?name=${name}`, { method: 'POST', body, headers: encoding === undefined ? {} : { 'content-encoding': encoding } });
  return { status: res.status, body: (await res.json()) as { successful_rows?: number; quarantined_rows?: number; error?: string } };
};

const counts = async () => ({
  rows: await count(ch, 'SELECT count() AS n FROM web.page_views'),
  quarantined: await count(ch, 'SELECT count() AS n FROM web.page_views_quarantine'),
});

/** gzip of `total` bytes made of `piece` repeated, compressed as it is generated (never held whole). */
async function gzipOfRepeated(piece: Buffer, total: number): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on('data', (c: Buffer) => out.push(c));
  const chunk = Buffer.alloc(Math.floor((1 << 20) / piece.length) * piece.length);
  for (let i = 0; i < chunk.length; i += piece.length) piece.copy(chunk, i);
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!gz.write(chunk)) await new Promise((r) => gz.once('drain', r));
  }
  const ended = new Promise((r) => gz.once('end', r));
  gz.end();
  await ended;
  return Buffer.concat(out);
}

/** The most memory the weir dev process (embedded ClickHouse included) has held, in bytes. */
const peakRss = (pid: number): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024;

beforeAll(async () => {
  dev = await startExampleDev('weir-events');
  ({ base, ch } = dev);
});

afterAll(async () => {
  await dev?.stop();
});

describe('the events API of weir dev, given hostile bodies', () => {
  it('decodes every documented Content-Encoding, whatever its case, and a list of them', async () => {
    const two = `${event('/a')}\n${event('/b')}\n`;
    const bodies: [string | undefined, Uint8Array | string][] = [
      [undefined, two],
      ['identity', two],
      ['gzip', gzipSync(two)],
      ['GZIP', gzipSync(two)],
      ['x-gzip', gzipSync(two)],
      ['Deflate', deflateSync(two)],
      ['br', brotliCompressSync(two)],
      ['BR', brotliCompressSync(two)],
      ['gzip, identity', gzipSync(two)],
      ['br, gzip', gzipSync(brotliCompressSync(two))],
    ];
    const before = await counts();
    for (const [encoding, body] of bodies) {
      expect({ encoding, ...(await post(body, encoding)) }).toEqual({ encoding, status: 200, body: { successful_rows: 2, quarantined_rows: 0 } });
    }
    expect(await counts()).toEqual({ rows: before.rows + 2 * bodies.length, quarantined: before.quarantined });
    expect(await count(ch, "SELECT count() AS n FROM web.page_views WHERE pathname IN ('/a', '/b')")).toBe(2 * bodies.length);
  });

  it('answers 415 naming an encoding it does not decode, and stores nothing', async () => {
    const before = await counts();
    expect(await post(event('/x'), 'compress')).toEqual({
      status: 415,
      body: { error: 'Content-Encoding "compress" is not supported; send gzip, x-gzip, deflate, br or identity' },
    });
    expect((await post(gzipSync(event('/x')), 'gzip, zstd')).status).toBe(415);
    expect(await counts()).toEqual(before);
  });

  it('answers 400 naming the encoding for a truncated or corrupt body, and stores nothing', async () => {
    const before = await counts();
    const whole = gzipSync(`${event('/t1')}\n${event('/t2')}\n`);
    expect(await post(whole.subarray(0, whole.length - 12), 'gzip')).toEqual({
      status: 400,
      body: { error: 'body is not valid gzip data: unexpected end of file' },
    });
    expect(await post(`${event('/t3')}\n`, 'gzip')).toEqual({ status: 400, body: { error: 'body is not valid gzip data: incorrect header check' } });
    expect((await post(`${event('/t4')}\n`, 'br')).body.error).toMatch(/^body is not valid br data: /);
    expect((await post(`${event('/t5')}\n`, 'deflate')).body.error).toMatch(/^body is not valid deflate data: /);
    expect(await counts()).toEqual(before);
  });

  it('refuses a gzip bomb with 413 once it decodes past 64 MiB, inserting nothing, with memory bounded', async () => {
    const before = await counts();
    // 1 GiB of zeros (about 1 MB sent) and 100 MiB of valid events (all or nothing: none of them land).
    const zeros = await gzipOfRepeated(Buffer.alloc(1), 1 << 30);
    const events = await gzipOfRepeated(Buffer.from(`${event('/bomb')}\n`), 100 << 20);
    for (const bomb of [zeros, events]) {
      expect(await post(bomb, 'gzip')).toEqual({
        status: 413,
        body: { error: 'body decodes (gzip) to more than 67108864 bytes (64 MiB), the limit; send smaller batches' },
      });
    }
    expect(await counts()).toEqual(before);
    // Still healthy: the next batch lands.
    expect(await post(`${event('/after-bomb')}\n`)).toEqual({ status: 200, body: { successful_rows: 1, quarantined_rows: 0 } });
    expect(await counts()).toEqual({ rows: before.rows + 1, quarantined: before.quarantined });
    expect(peakRss(dev.child.pid as number)).toBeLessThan(1.5 * 2 ** 30);
  });

  it('answers 413 for a plain body over 64 MiB, inserting nothing', async () => {
    const before = await counts();
    const line = Buffer.from(`${event('/big')}\n`);
    const big = Buffer.alloc(Math.ceil((65 << 20) / line.length) * line.length);
    for (let i = 0; i < big.length; i += line.length) line.copy(big, i);
    expect(await post(big)).toEqual({ status: 413, body: { error: 'body is more than 67108864 bytes (64 MiB), the limit; send smaller batches' } });
    expect(await counts()).toEqual(before);
  });

  it('quarantines a line that is not UTF-8 with where it breaks, keeping its exact bytes in base64', async () => {
    const before = await counts();
    const latin1 = Buffer.from(
      `{"timestamp":"${new Date().toISOString()}","session_id":"s","tenant_id":"hostile","payload":{"pathname":"/caf\xe9"}}`,
      'latin1',
    );
    const cut = Buffer.concat([Buffer.from('{"pathname":"/'), Buffer.from([0xe2, 0x82])]);
    const body = Buffer.concat([Buffer.from(`${event('/utf8-1')}\n`), latin1, Buffer.from('\n'), cut, Buffer.from(`\r\n${event('/utf8-2')}\n`)]);
    expect(await post(gzipSync(body), 'gzip')).toEqual({ status: 200, body: { successful_rows: 2, quarantined_rows: 2 } });
    expect(await counts()).toEqual({ rows: before.rows + 2, quarantined: before.quarantined + 2 });
    const rows = await ch.query<{ raw: string; error: string }>("SELECT raw, error FROM web.page_views_quarantine WHERE error LIKE 'not valid UTF-8%'");
    const stored = new Map(rows.map((r) => [r.error, Buffer.from(r.raw, 'base64')]));
    expect(stored).toEqual(
      new Map([
        [`not valid UTF-8 at byte ${latin1.indexOf(0xe9)} of the line; raw is the line in base64`, latin1],
        ['not valid UTF-8 at byte 14 of the line; raw is the line in base64', Buffer.concat([cut, Buffer.from('\r')])],
      ]),
    );
    // ClickHouse decodes it back too.
    const [decoded] = await ch.query<{ same: number }>(
      `SELECT base64Decode(raw) = unhex('${latin1.toString('hex')}') AS same FROM web.page_views_quarantine WHERE error LIKE 'not valid UTF-8 at byte ${latin1.indexOf(0xe9)} %'`,
    );
    expect(Number(decoded?.same)).toBe(1);
  });

  it('refuses events for a DataSource with no jsonPath columns (a rollup target), inserting nothing', async () => {
    // What events would have written: all-default rows (no tenant, day 1970-01-01).
    const defaults = "SELECT count() AS n FROM web.page_views_daily WHERE tenant_id = '' OR day = '1970-01-01'";
    for (const name of ['page_views_daily', 'page-views-daily']) {
      const res = await post(`{"day":"2026-01-01","tenant_id":"hostile","pathname":"/rollup"}\n`, undefined, name);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe(
        'DataSource page-views-daily has no column with a jsonPath, so no column is mapped from events; a table like this is fed by a materialized Pipe. Add a jsonPath to the columns events should fill to accept events for it',
      );
    }
    expect(await count(ch, defaults)).toBe(0);
    expect(await count(ch, 'SELECT count() AS n FROM web.page_views_daily_quarantine')).toBe(0);
  });
});
