// weir.migrations made by a weir from before chunked backfills has no chunk_plan column: the
// ledger adds it in place, and a migration recorded by the older weir is still found and resumed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeMigration, record } from '../../../src/execute/ledger.js';
import { ensureSystemTables } from '../../../src/execute/system-tables.js';
import { startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';

let server: TestClickHouse;
beforeAll(async () => {
  server = await startTestClickHouse();
});
afterAll(async () => {
  await server?.stop();
});

describe('the migration ledger of an older weir', () => {
  it('gains chunk_plan in place and keeps its rows', async () => {
    const ch = server.connect();
    await ch.command('CREATE DATABASE IF NOT EXISTS weir');
    // The table as weir created it before chunked backfills.
    await ch.command(`CREATE TABLE weir.migrations (
      id String, database String, table String, kind LowCardinality(String),
      from_version UInt32, to_version UInt32, state LowCardinality(String),
      source_block UInt64, next_block UInt64, verify_block UInt64, swap_block UInt64,
      detail String, seq UInt64, updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree(seq) ORDER BY (database, table, id)`);
    await ch.insert('weir.migrations', [
      {
        id: 'mig-old',
        database: 'shop',
        table: 'events',
        kind: 'CopyAndSwap',
        from_version: 1,
        to_version: 2,
        state: 'Backfilled',
        source_block: 41,
        next_block: 7,
        verify_block: 0,
        swap_block: 0,
        detail: '',
        seq: 3,
      },
    ]);

    await ensureSystemTables(ch);
    const m = await activeMigration(ch, 'shop', 'events');
    expect(m).toMatchObject({ id: 'mig-old', state: 'Backfilled', source_block: '41', next_block: '7', chunk_plan: '', seq: '3' });
    if (!m) return;
    await record(ch, { ...m, state: 'CatchingUp', source_block: '50' });
    expect(await activeMigration(ch, 'shop', 'events')).toMatchObject({ id: 'mig-old', state: 'CatchingUp', source_block: '50', chunk_plan: '' });
    const chunks = await ch.query<{ n: string }>('SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {t:String}', {
      params: { db: 'weir', t: 'migration_chunks' },
    });
    expect(chunks[0]?.n).toBe('1');
  });
});
