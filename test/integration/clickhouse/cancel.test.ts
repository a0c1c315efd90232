// A client that goes away cancels its statement in the embedded server: a running one is killed, a waiting one
// never runs; `KILL QUERY WHERE query_id = ...` finds a request's statement; a timed-out one leaves
// system.processes. The long statement sleeps a second per row for 30 rows, so nothing here pins the cores.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClickHouse, type ClickHouse } from '../../../src/clickhouse/connection.js';
import { startClickHouseServer, type ClickHouseServer } from '../../../src/clickhouse/server.js';
import { waitFor } from '../../env/wait.js';

const LONG = 'SELECT sleepEachRow(1) FROM numbers(30) SETTINGS max_block_size = 1';

/** The error a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<Error & { code?: unknown; type?: unknown }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: unknown; type?: unknown };
  }
  throw new Error('expected a failure');
}

describe('cancelling statements in the embedded server', () => {
  let dataDir: string;
  let server: ClickHouseServer;
  let ch: ClickHouse;
  let client: ClickHouseClient;

  /** Statements of this test running in the engine (the probe itself excluded). */
  const running = async (): Promise<number> => {
    const [row] = await ch.query<{ n: string }>(
      "SELECT count() AS n FROM system.processes WHERE query LIKE '%sleepEachRow(1)%' AND query NOT LIKE '%system.processes%'",
    );
    return Number(row?.n);
  };
  const runningIs = (n: number) => async () => ((await running()) === n ? true : undefined);
  /** Whether the server holds a request with this query_id (waiting or running): KILL ... TEST names it. */
  const held = async (queryId: string): Promise<boolean> =>
    (await (await client.query({ query: `KILL QUERY WHERE query_id = '${queryId}' TEST`, format: 'TabSeparated' })).text()) !== '';

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'weir-ch-cancel-'));
    // Two slots: one long statement, and one left for the probes.
    server = await startClickHouseServer({ dataDir, port: 0, maxConcurrentQueries: 2 });
    ch = connectClickHouse({ url: server.url });
    client = createClient({ url: server.url, log: { level: ClickHouseLogLevel.OFF } });
    await ch.command('CREATE TABLE default.ran (id String) ENGINE = MergeTree ORDER BY id');
  });

  afterAll(async () => {
    await client?.close();
    await ch?.close();
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('kills the statement of a @clickhouse/client request that is aborted, and serves the next one', async () => {
    const abort = new AbortController();
    const abandoned = failure(client.query({ query: LONG, format: 'TabSeparated', abort_signal: abort.signal }));
    await waitFor('the long statement running', runningIs(1));
    abort.abort();
    await abandoned;
    await waitFor('the abandoned statement gone from system.processes', runningIs(0), { timeoutMs: 10_000 });
    expect(await (await client.query({ query: 'SELECT 7', format: 'TabSeparated' })).text()).toBe('7\n');
  });

  it('kills the statement of a plain HTTP client whose connection closes', async () => {
    const req = request(`${server.url}/`, { method: 'POST' });
    req.on('error', () => undefined);
    req.end(LONG);
    await waitFor('the long statement running', runningIs(1));
    req.destroy();
    await waitFor('the dropped statement gone from system.processes', runningIs(0), { timeoutMs: 10_000 });
  });

  it('KILL QUERY WHERE query_id = ... SYNC cancels the request with that id, and it is gone when KILL returns', async () => {
    const queryId = `long-${randomUUID()}`;
    const killed = failure(client.query({ query: LONG, format: 'TabSeparated', query_id: queryId }));
    await waitFor('the long statement running', runningIs(1));
    const answer = await client.query({ query: `KILL QUERY WHERE query_id = '${queryId}' SYNC`, format: 'TabSeparated' });
    expect(await answer.text()).toBe(`finished\t${queryId}\tdefault\n`);
    expect(await killed).toMatchObject({ code: '394', type: 'QUERY_WAS_CANCELLED' });
    expect(await running()).toBe(0);
  });

  it('finds a statement with {name:Type} parameters too (chdb lists it reformatted, without comments)', async () => {
    const abort = new AbortController();
    const query = 'SELECT sleepEachRow(1) FROM numbers({rows:UInt64}) SETTINGS max_block_size = 1';
    const abandoned = failure(client.query({ query, format: 'TabSeparated', query_params: { rows: 30 }, abort_signal: abort.signal }));
    await waitFor('the long statement running', runningIs(1));
    abort.abort();
    await abandoned;
    await waitFor('the abandoned statement gone from system.processes', runningIs(0), { timeoutMs: 10_000 });

    const queryId = `param-${randomUUID()}`;
    const killed = failure(client.query({ query, format: 'TabSeparated', query_params: { rows: 30 }, query_id: queryId }));
    await waitFor('the long statement running', runningIs(1));
    await client.command({ query: `KILL QUERY WHERE query_id = '${queryId}' SYNC` });
    expect(await killed).toMatchObject({ code: '394' });
    expect(await running()).toBe(0);
  });

  it('a statement that times out leaves system.processes', async () => {
    const timedOut = await failure(ch.query(LONG, { settings: { max_execution_time: 1 } }));
    expect(timedOut).toMatchObject({ code: 159, type: 'TIMEOUT_EXCEEDED' });
    expect(await running()).toBe(0);
  });

  it('never runs a request whose client left while it waited for a slot', async () => {
    const [first, second, waiting] = ['a', 'b', 'c'].map((n) => `${n}-${randomUUID()}`) as [string, string, string];
    // Both slots taken by long statements; the insert waits behind them.
    const longOnes = [first, second].map((id) => failure(client.query({ query: LONG, format: 'TabSeparated', query_id: id })));
    await waitFor('both long statements held', async () => ((await held(first)) && (await held(second)) ? true : undefined));
    const abort = new AbortController();
    const insert = failure(client.command({ query: "INSERT INTO default.ran VALUES ('must not run')", query_id: waiting, abort_signal: abort.signal }));
    await waitFor('the insert waiting', async () => ((await held(waiting)) ? true : undefined));
    abort.abort();
    await insert;
    await waitFor('the insert dropped', async () => ((await held(waiting)) ? undefined : true));

    for (const id of [first, second]) await client.command({ query: `KILL QUERY WHERE query_id = '${id}' SYNC` });
    for (const p of longOnes) expect(await p).toMatchObject({ code: '394' });
    expect(await ch.query('SELECT count() AS n FROM default.ran')).toEqual([{ n: '0' }]);
    expect(await running()).toBe(0);
  });
});
