// `weir ingest` against a real Kafka broker (KRaft, from the Maven Central jars) and weir's
// ClickHouse server as its own process: exactly once through SIGKILLs, the quarantine, a
// ClickHouse crash, and rebalances. Every test counts rows and ids exactly.
import { randomBytes } from 'node:crypto';
import type { Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clickhouseName, groupIdOf } from '../../../src/api/names.js';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
import { waitFor } from '../../env/wait.js';
import type { DataSource } from '../../../src/api/datasource.js';
import { column, dataSource, inNamespace, uniqueNamespace, withColumns, withSortingKey, withSpec } from '../../fixtures/builders.js';
import { count, runWeirApply, writeProject } from '../../fixtures/clickhouse.js';
import {
  caughtUp,
  createTopic,
  EventProducer,
  ingestedProject,
  joined,
  kafkaClient,
  startClickHouseProcess,
  startIngester,
  writeConfig,
  type ClickHouseProcess,
  type Ingester,
} from '../../fixtures/ingest.js';
import { startKafka, type TestKafka } from '../../fixtures/kafka.js';

const NAMESPACE = uniqueNamespace('ingest');
const DB = clickhouseName(NAMESPACE);

describe('weir ingest', () => {
  let kafka: TestKafka;
  let clickhouse: ClickHouseProcess;
  let ch: ClickHouse;
  let admin: Admin;
  const running: Ingester[] = [];

  beforeAll(async () => {
    [kafka, clickhouse] = await Promise.all([startKafka({ logDir: process.env.WEIR_TEST_LOG_DIR || undefined }), startClickHouseProcess()]);
    ch = clickhouse.ch;
    admin = kafkaClient(kafka.bootstrap).admin();
    await admin.connect();
  }, 180_000);

  afterAll(async () => {
    await Promise.all(running.map((p) => p.kill('SIGKILL')));
    await admin?.disconnect().catch(() => undefined);
    await clickhouse?.stop();
    await kafka?.stop();
  });

  /** A fresh topic and DataSource (with its rollup), applied to ClickHouse by `weir apply`. */
  async function setUp(partitions: number, batch: { maxRows?: number; maxDelayMs?: number } = {}) {
    const name = `events-${randomBytes(3).toString('hex')}`;
    const topic = `t-${name}`;
    await createTopic(admin, topic, partitions);
    const project = ingestedProject(name, NAMESPACE, kafka.bootstrap, topic, batch);
    const applied = await runWeirApply(writeProject([project.ds, project.rollup, project.pipe]), clickhouse.url);
    expect(applied.code, applied.out).toBe(0);
    const producer = new EventProducer(kafkaClient(kafka.bootstrap), topic);
    await producer.connect();
    const table = `${DB}.${name.replace(/-/g, '_')}`;
    return { name, topic, table, producer, groupId: groupIdOf(project.ds), config: writeConfig(project.ds) };
  }

  const ingester = async (config: string, env: Record<string, string> = {}) => {
    const p = await startIngester(config, clickhouse.url, env);
    running.push(p);
    return p;
  };

  /** Rows, distinct ids and quarantined messages, and whether the rollup equals a recount. */
  async function tally(table: string) {
    return {
      rows: await count(ch, `SELECT count() AS n FROM ${table}`),
      ids: await count(ch, `SELECT uniqExact(id) AS n FROM ${table}`),
      quarantined: await count(ch, `SELECT count() AS n FROM ${table}_quarantine`),
      rollupMismatches: await count(
        ch,
        `SELECT count() AS n FROM (SELECT page, sum(views) AS v FROM ${table}_by_page GROUP BY page) AS r
         FULL OUTER JOIN (SELECT page, count() AS v FROM ${table} GROUP BY page) AS x USING (page) WHERE r.v != x.v`,
      ),
    };
  }

  const settled = (table: string, producer: EventProducer) =>
    waitFor(
      `${producer.valid.length} rows and ${producer.malformed.length} quarantined in ${table}`,
      async () => {
        const t = await tally(table);
        return t.rows >= producer.valid.length && t.quarantined >= producer.malformed.length ? t : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );

  it('puts bad messages in the quarantine with the reason, topic, partition and offset, and goes on', async () => {
    const { table, producer, config } = await setUp(1);
    await producer.send(12, 4); // ids e-3, e-7, e-11 are malformed: not JSON, a bad number, no id
    const worker = await ingester(config);
    await joined(worker);
    const t = await settled(table, producer);
    expect(t).toEqual({ rows: 9, ids: 9, quarantined: 3, rollupMismatches: 0 });
    const rows = await ch.query<{ raw: string; error: string; topic: string; partition: number; offset: string; source: string }>(
      `SELECT raw, error, topic, partition, offset, source FROM ${table}_quarantine ORDER BY offset`,
    );
    expect(rows.map((r) => Number(r.offset))).toEqual([3, 7, 11]);
    expect(rows.every((r) => r.source === 'kafka' && r.partition === 0 && r.topic.startsWith('t-events-'))).toBe(true);
    expect(rows[0]?.raw).toBe('{not json e-3');
    expect(rows[0]?.error).toMatch(/JSON/i);
    expect(rows[1]?.error).toMatch(/seq/);
    expect(rows[2]?.error).toMatch(/\bid\b/);
    const ids = (await ch.query<{ id: string }>(`SELECT id FROM ${table} ORDER BY seq`)).map((r) => r.id);
    expect(ids).toEqual(producer.valid);
    expect(await worker.metric('weir_ingest_quarantined_rows_total')).toBe(3);
    expect(await worker.metric('weir_ingest_rows_total')).toBe(9);
    await worker.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    await producer.disconnect();
  });

  it('quarantines the rows ClickHouse refuses in a batch, with their raw text, and inserts the others once', async () => {
    // A Point passes the mapper as it came: ClickHouse judges it, and the batch is split to find the refused rows.
    const name = `shapes-${randomBytes(3).toString('hex')}`;
    const topic = `t-${name}`;
    await createTopic(admin, topic, 1);
    const ds = dataSource(
      name,
      inNamespace(NAMESPACE),
      withColumns(column('id', 'String', { jsonPath: '$.id' }), column('at', 'Point', { jsonPath: '$.at' })),
      withSortingKey('id'),
      withSpec<DataSource>({ ingestion: { kafka: { bootstrapServers: [kafka.bootstrap], topic }, batch: { maxRows: 100, maxDelayMs: 100 } } }),
    );
    const applied = await runWeirApply(writeProject([ds]), clickhouse.url);
    expect(applied.code, applied.out).toBe(0);
    const values = [
      { id: 'é-0', at: [1, 2] },
      { id: 'ü-1', at: [3.5, -4] },
      { id: 'x-2', at: 'nowhere' },
      { id: '😀-3', at: [5, 6] },
      '{"id": "bad json',
      { id: 'x-5', at: [7, 8] },
      { id: 'x-6', at: { lat: 1 } },
      { id: 'x-7', at: [9, 10] },
    ].map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
    const producer = kafkaClient(kafka.bootstrap).producer();
    await producer.connect();
    await producer.send({ topic, messages: values.map((value) => ({ value })) });
    await producer.disconnect();
    const worker = await ingester(writeConfig(ds));
    await caughtUp(admin, groupIdOf(ds), topic);
    const table = `${DB}.${name.replace(/-/g, '_')}`;
    const rows = await ch.query<{ id: string; x: number; y: number }>(`SELECT id, at.1 AS x, at.2 AS y FROM ${table} ORDER BY id`);
    expect(rows).toEqual(
      [
        { id: 'é-0', x: 1, y: 2 },
        { id: 'ü-1', x: 3.5, y: -4 },
        { id: '😀-3', x: 5, y: 6 },
        { id: 'x-5', x: 7, y: 8 },
        { id: 'x-7', x: 9, y: 10 },
      ].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    );
    const quarantined = await ch.query<{ raw: string; error: string; offset: string }>(`SELECT raw, error, offset FROM ${table}_quarantine ORDER BY offset`);
    expect(quarantined.map((q) => [Number(q.offset), q.raw])).toEqual([
      [2, values[2]],
      [4, values[4]],
      [6, values[6]],
    ]);
    expect(quarantined.every((q) => q.error.length > 0)).toBe(true);
    expect(quarantined[1]?.error).toMatch(/JSON/i);
    expect(await worker.metric('weir_ingest_rows_total')).toBe(5);
    expect(await worker.metric('weir_ingest_quarantined_rows_total')).toBe(3);
    await worker.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
  });

  it('inserts every message exactly once while the worker is SIGKILLed again and again', async () => {
    const { table, topic, groupId, producer, config } = await setUp(3);
    producer.start(150, 30, 97);
    // Crash at each step of a batch once (after the ledger, after the rows, after the quarantine, before the commit)...
    for (const fault of ['IngestLedgerWritten', 'IngestRowsInserted', 'IngestQuarantined']) {
      const w = await ingester(config, { WEIR_FAULT_AT: fault });
      expect(await w.exited).toBe(-1); // killed by its own SIGKILL at the fault point
    }
    // ...then at random moments.
    let kills = 0;
    for (let i = 0; i < 4; i++) {
      const w = await ingester(config);
      await joined(w);
      const before = await count(ch, `SELECT count() AS n FROM ${table}`);
      await waitFor('rows landing', async () => ((await count(ch, `SELECT count() AS n FROM ${table}`)) > before ? true : undefined), { timeoutMs: 60_000 });
      await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 400)));
      await w.kill('SIGKILL');
      kills++;
    }
    await producer.stop();
    const last = await ingester(config);
    const t = await settled(table, producer);
    await caughtUp(admin, groupId, topic); // nothing is inserted after this, so anything doubled has landed
    const final = await tally(table);
    expect(kills).toBe(4);
    expect(producer.valid.length).toBeGreaterThan(1000);
    expect(final).toEqual(t);
    expect(final).toEqual({ rows: producer.valid.length, ids: producer.valid.length, quarantined: producer.malformed.length, rollupMismatches: 0 });
    const ids = (await ch.query<{ id: string }>(`SELECT id FROM ${table}`)).map((r) => r.id).sort();
    expect(ids).toEqual([...producer.valid].sort());
    // The crashes left ranges in the ledger past the committed offsets, and they were replayed.
    expect(running.some((p) => p.logs.some((l) => l.message === 'replaying batches written before a restart'))).toBe(true);
    await last.kill('SIGTERM');
    await producer.disconnect();
  }, 300_000);

  it('makes a migration wait for the replay of a batch that landed before its worker died, so the swap cannot double it', async () => {
    const { name, table, producer, config } = await setUp(1);
    await producer.send(300, 0);
    // The worker dies right after its first insert landed, before the offset commit.
    const dying = await ingester(config, { WEIR_FAULT_AT: 'IngestRowsInserted' });
    expect(await dying.exited).toBe(-1);
    const landed = await count(ch, `SELECT count() AS n FROM ${table}`);
    expect(landed).toBeGreaterThan(0);
    // A copy-and-swap now would put the replay into a table that never saw its token.
    const project = ingestedProject(name, NAMESPACE, kafka.bootstrap, `t-${name}`);
    project.ds.spec.engine.sortingKey = ['id'];
    const dir = writeProject([project.ds, project.rollup, project.pipe]);
    const refused = await runWeirApply(dir, clickhouse.url);
    expect(refused.code).not.toBe(0);
    expect(refused.out).toMatch(/not yet replayed/);
    expect(await count(ch, `SELECT count() AS n FROM ${table}`)).toBe(landed);
    // The partition's next owner replays it (ClickHouse drops the landed block), then the swap goes through.
    const worker = await ingester(config);
    await settled(table, producer);
    await waitFor('the replay committed', async () => ((await runWeirApply(dir, clickhouse.url)).code === 0 ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    await producer.send(200, 0);
    const t = await settled(table, producer);
    expect(t).toEqual({ rows: 500, ids: 500, quarantined: 0, rollupMismatches: 0 });
    expect(worker.logs.some((l) => l.message === 'replaying batches written before a restart')).toBe(true);
    await worker.kill('SIGTERM');
    await producer.disconnect();
  }, 180_000);

  it('holds its partitions while ClickHouse is down, reports it, and loses nothing when it is back', async () => {
    const { table, producer, config } = await setUp(2);
    const worker = await ingester(config);
    await joined(worker);
    await producer.send(1000, 50);
    await settled(table, producer);
    await clickhouse.kill();
    await producer.send(1000, 50);
    await waitFor('readiness to fail', async () => ((await worker.ready()).status === 503 ? true : undefined), { timeoutMs: 30_000 });
    expect((await worker.ready()).body).toMatch(/ClickHouse/);
    expect(await worker.metric('weir_ingest_clickhouse_up')).toBe(0);
    await producer.send(1000, 50);
    await clickhouse.restart();
    const t = await settled(table, producer);
    expect(t).toEqual({ rows: 2940, ids: 2940, quarantined: 60, rollupMismatches: 0 });
    await waitFor('readiness to recover', async () => ((await worker.ready()).status === 200 ? true : undefined), { timeoutMs: 30_000 });
    expect(await worker.metric('weir_ingest_insert_retries_total')).toBeGreaterThan(0);
    await worker.kill('SIGTERM');
    await producer.disconnect();
  }, 180_000);

  it('loses and doubles nothing when workers join and leave the group', async () => {
    const { table, topic, groupId, producer, config } = await setUp(4);
    producer.start(100, 25, 0);
    const a = await ingester(config);
    await joined(a);
    const b = await ingester(config);
    await joined(b);
    await a.waitForLog('a second rebalance', (l) => l.message === 'joined consumer group' && Number(l.generation) >= 2, 60_000);
    const c = await ingester(config);
    await joined(c);
    // A worker's generation counts its own joins: c joins again once the group has rebalanced without a.
    const cJoins = c.logs.filter((l) => l.message === 'joined consumer group').length;
    await a.kill('SIGTERM'); // leaves the group cleanly: its partitions move
    expect(await a.exited).toBe(0);
    await c.waitForLog('the group rebalanced without a', (l) => l.message === 'joined consumer group' && Number(l.generation) > cJoins, 60_000);
    await b.kill('SIGKILL'); // dies: its partitions move after the session times out
    await producer.stop();
    const t = await settled(table, producer);
    await caughtUp(admin, groupId, topic); // nothing is inserted after this, so anything doubled has landed
    expect(await tally(table)).toEqual(t);
    expect(t).toEqual({ rows: producer.valid.length, ids: producer.valid.length, quarantined: 0, rollupMismatches: 0 });
    await c.kill('SIGTERM');
    await producer.disconnect();
  }, 180_000);
});
