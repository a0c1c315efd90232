// A copy-and-swap whose fence times out (a writer with a batch in flight never acknowledges)
// runs again through retry(), and after its attempts says so with RetriesExhaustedError, changing
// nothing; once the writer closes its batch, the same apply goes through with every row.
import { Writable } from 'node:stream';
import winston from 'winston';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplyFailedError, applyProject } from '../../../src/execute/apply.js';
import { FenceParticipant, FenceTimeoutError, type FenceTiming } from '../../../src/execute/fence.js';
import { RetriesExhaustedError } from '../../../src/runtime/errors.js';
import { column, dataSource, inNamespace, uniqueNamespace, withColumns, withSortingKey } from '../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';

const TIMING: FenceTiming = { livenessMs: 2000, fenceTtlMs: 4000, ackTimeoutMs: 400, pollMs: 10 };

const lines: { level: string; message: string; [field: string]: unknown }[] = [];
const log = winston.createLogger({
  level: 'debug',
  format: winston.format.json(),
  transports: [
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
          done();
        },
      }),
    }),
  ],
});

let server: TestClickHouse;
beforeAll(async () => {
  server = await startTestClickHouse();
});
afterAll(async () => {
  await server?.stop();
});

const events = (ns: string, ...key: string[]) =>
  dataSource('events', inNamespace(ns), withColumns(column('ts', 'DateTime'), column('user', 'String')), withSortingKey(...key));

const sortingKey = async (db: string) =>
  (await server.ch.query<{ sorting_key: string }>(`SELECT sorting_key FROM system.tables WHERE database = '${db}' AND name = 'events'`))[0]?.sorting_key;

describe('a step whose fence times out', () => {
  it('runs again with backoff, gives up with RetriesExhaustedError after 3 attempts, and goes through once the writer pauses', async () => {
    const ns = uniqueNamespace('fence-retry');
    const db = ns.replace(/-/g, '_');
    await applyProject(server.ch, [events(ns, 'user', 'ts')], { log, fenceTiming: TIMING });
    await server.ch.command(`INSERT INTO ${db}.events SELECT now() - number, concat('u', toString(number % 10)) FROM numbers(1000)`);

    const writer = new FenceParticipant(server.ch, FenceParticipant.newId('busy'), [{ database: db, table: 'events' }], TIMING);
    const stop = writer.keepAlive();
    try {
      await writer.beforeBatch(); // a batch in flight from here on: the writer cannot acknowledge
      const failed = await applyProject(server.ch, [events(ns, 'ts', 'user')], { log, fenceTiming: TIMING }).catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(ApplyFailedError);
      const exhausted = (failed as ApplyFailedError).cause;
      expect(exhausted).toBeInstanceOf(RetriesExhaustedError);
      expect((exhausted as RetriesExhaustedError).attempts).toBe(3);
      expect((exhausted as RetriesExhaustedError).lastError).toBeInstanceOf(FenceTimeoutError);
      const again = lines.filter((l) => l.message === 'fence timed out; running the step again');
      expect(again.map((l) => l.attempt)).toEqual([1, 2]);
      expect(await sortingKey(db)).toBe('user, ts');
      expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events`)).toBe(1000);

      writer.afterBatch();
      await applyProject(server.ch, [events(ns, 'ts', 'user')], { log, fenceTiming: TIMING });
      expect(await sortingKey(db)).toBe('ts, user');
      expect(await count(server.ch, `SELECT count() AS n FROM ${db}.events`)).toBe(1000);
    } finally {
      stop();
    }
  });
});
