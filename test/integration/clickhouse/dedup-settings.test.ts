// Per-request insert deduplication through weir's ClickHouse server: the server runs requests on a
// small pool of chDB sessions and puts each one back to the request's settings with SET (and
// `= DEFAULT` for what the previous request set). Requests with a token, with deduplication off and
// with neither, sent at once and in a mixed order, must each get their own: a re-sent block under its
// token is dropped, a re-sent block with deduplication off lands again. Exact counts per batch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deduplicatedBy, deduplicationOff } from '../../../src/clickhouse/dedup.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';

let server: TestClickHouse;
const db = `dedup_settings_${process.pid}`;

beforeAll(async () => {
  server = await startTestClickHouse();
  await server.ch.command(`CREATE DATABASE ${db}`);
  await server.ch.command(
    `CREATE TABLE ${db}.t (batch String, n UInt32) ENGINE = MergeTree ORDER BY (batch, n) SETTINGS non_replicated_deduplication_window = 1000`,
  );
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

type Kind = 'token' | 'off' | 'plain';
const KINDS: Kind[] = ['token', 'off', 'plain'];
const rowsOf = (batch: string) => Array.from({ length: 20 }, (_, n) => ({ batch, n }));

describe("weir's ClickHouse server, per-request insert deduplication on pooled sessions", () => {
  it('drops a block re-sent under its token and takes one re-sent with deduplication off, whatever session runs it', async () => {
    const batches = Array.from({ length: 36 }, (_, i) => ({ name: `b${i}`, kind: KINDS[i % 3] as Kind }));
    const send = async (b: { name: string; kind: Kind }) => {
      const settings = b.kind === 'token' ? await deduplicatedBy(server.ch, `tok-${b.name}`) : b.kind === 'off' ? await deduplicationOff(server.ch) : undefined;
      await server.ch.insert(`${db}.t`, rowsOf(b.name), settings ? { settings } : {});
    };
    await Promise.all(batches.map(send));
    // Again, in another order, so that each request likely meets a session another kind left behind.
    await Promise.all([...batches].reverse().map(send));
    const held = await Promise.all(batches.map(async (b) => [b.name, await count(server.ch, `SELECT count() AS n FROM ${db}.t WHERE batch = '${b.name}'`)]));
    // With a token: dropped the second time. Off: landed twice. Neither: ClickHouse's default drops the identical block.
    const expected = batches.map((b) => [b.name, b.kind === 'off' ? 40 : 20]);
    expect(held).toEqual(expected);
  });
});
