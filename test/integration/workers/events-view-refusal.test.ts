// The events API when a materialized view over the table refuses rows: ClickHouse has written the
// block to the table before the view failed (an insert and its views are not atomic), so the
// request must fail as it is, not be split in halves and inserted again (which put every row of
// the block in twice, or more). Real engine (chDB behind weir's HTTP server), the events API's
// TableWriter in process; exact counts after every request.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { applyProject } from '../../../src/execute/apply.js';
import { createLogger } from '../../../src/runtime/log.js';
import { EventsApi } from '../../../src/workers/events.js';
import {
  column,
  dataSource,
  inNamespace,
  materializedInto,
  node,
  pipe,
  uniqueDatabase,
  uniqueNamespace,
  withColumns,
  withNodes,
  withSortingKey,
  withSpec,
} from '../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';

const log = createLogger({ level: 'error' });
let server: TestClickHouse;
let db: string;
let api: EventsApi;

beforeAll(async () => {
  server = await startTestClickHouse();
  const ns = uniqueNamespace('evview');
  db = uniqueDatabase('evview');
  const placed = (name: string, ...columns: ReturnType<typeof column>[]) =>
    dataSource(name, inNamespace(ns), withColumns(...columns), withSortingKey('id'), withSpec<DataSource>({ database: db }));
  const clicks = placed(
    'clicks',
    column('id', 'String', { jsonPath: '$.id' }),
    column('at', 'DateTime64(3)', { jsonPath: '$.at' }),
    column('code', 'String', { jsonPath: '$.code' }),
  );
  const codes = placed('codes', column('id', 'String'), column('code', 'UInt8'));
  // The view refuses a code that is not a number; the table takes any string.
  const toCodes = pipe('to-codes', inNamespace(ns), withNodes(node('main', 'SELECT id, toUInt8(code) AS code FROM clicks')), materializedInto('codes'));
  await applyProject(server.ch, [clicks, codes, toCodes], { log });
  api = new EventsApi(server.ch, (name) => (name === 'clicks' ? clicks : undefined), log);
}, 120_000);

afterAll(async () => {
  await api?.close();
  await server?.stop();
});

const AT = '2026-12-01 10:00:00.000';
const lines = (prefix: string, codes: string[], at = AT) => codes.map((code, i) => ({ text: JSON.stringify({ id: `${prefix}-${i}`, at, code }) }));
const counts = async (prefix: string) => ({
  rows: await count(server.ch, `SELECT count() AS n FROM ${db}.clicks WHERE startsWith(id, '${prefix}-')`),
  ids: await count(server.ch, `SELECT uniqExact(id) AS n FROM ${db}.clicks WHERE startsWith(id, '${prefix}-')`),
  viewRows: await count(server.ch, `SELECT count() AS n FROM ${db}.codes WHERE startsWith(id, '${prefix}-')`),
  quarantined: await count(server.ch, `SELECT count() AS n FROM ${db}.clicks_quarantine WHERE position(raw, '${prefix}-') > 0`),
});

// Eleven lines: ten codes the view takes, one (the seventh) it refuses.
const CODES = ['1', '2', '3', '4', '5', '6', 'x', '8', '9', '10', '11'];

describe('the events API when a materialized view over the table refuses rows', () => {
  it('under an Idempotency-Key: fails the request without inserting the rows again, and a retry under the key adds nothing', async () => {
    const p = `k${randomUUID().slice(0, 6)}`;
    const key = randomUUID();
    await expect(api.ingest('clicks', lines(p, CODES), key)).rejects.toThrow(
      /materialized view over the table refused these rows.*Cannot parse string 'x' as UInt8/,
    );
    // The table took the block before the view failed: each row once, none in the view's table, none quarantined.
    expect(await counts(p)).toEqual({ rows: 11, ids: 11, viewRows: 0, quarantined: 0 });
    await expect(api.ingest('clicks', lines(p, CODES), key)).rejects.toThrow(/materialized view over the table refused these rows/);
    expect(await counts(p)).toEqual({ rows: 11, ids: 11, viewRows: 0, quarantined: 0 });
  });

  it('without a key: fails the request with each row in the table once', async () => {
    const p = `u${randomUUID().slice(0, 6)}`;
    await expect(api.ingest('clicks', lines(p, CODES))).rejects.toThrow(/materialized view over the table refused these rows/);
    expect(await counts(p)).toEqual({ rows: 11, ids: 11, viewRows: 0, quarantined: 0 });
  });

  it('still splits and quarantines a row the table itself refuses, with the view fed the rest once', async () => {
    const p = `t${randomUUID().slice(0, 6)}`;
    // A time the table's DateTime64 column refuses (the mapper passes it on): nothing is written, so splitting is safe.
    const input = [...lines(p, ['1', '2', '3']), { text: JSON.stringify({ id: `${p}-3`, at: 'no time', code: '4' }) }];
    expect(await api.ingest('clicks', input, randomUUID())).toEqual({ successful_rows: 3, quarantined_rows: 1 });
    expect(await counts(p)).toEqual({ rows: 3, ids: 3, viewRows: 3, quarantined: 1 });
  });
});
