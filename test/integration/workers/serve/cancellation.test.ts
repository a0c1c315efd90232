// Clients that go away, and time-outs, through a real `weir serve` process and the real engine:
// an abandoned endpoint query leaves system.processes long before its 30 s limit (weir aborts its
// request to ClickHouse and sends KILL QUERY for the query's id), the server then answers other
// endpoints at once, and a 408 says what the time went on: a query that waited for ClickHouse to
// start it is not said to have run past its limit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../../env/wait.js';
import { endpoint, inNamespace, node, pipe, uniqueNamespace, withNodes, withParams, withSpec } from '../../../fixtures/builders.js';
import { count, startTestClickHouse, type TestClickHouse } from '../../../fixtures/clickhouse.js';
import { compiled, readyz, startServe, type ServeProcess } from '../../../fixtures/serve.js';

let server: TestClickHouse;
let serve: ServeProcess;
let ns: string;

/** Markers in the SQL of each kind of query, to find them in system.processes. */
const SPIN = 'spin-marker';
const SLEEPER = 'sleeper-marker';
const SLOW = 'slow-marker';

beforeAll(async () => {
  server = await startTestClickHouse();
  ns = uniqueNamespace('cancel');
  const db = ns.replace(/-/g, '_');
  await server.ch.command(`CREATE DATABASE ${db}`);
  // Hours of work for the engine: it only ends by its limit, or when cancelled. With a parameter, because chdb
  // lists such a statement reformatted (values substituted, comments dropped) and the kill must find it anyway.
  const spin = pipe(
    'spin',
    inNamespace(ns),
    withNodes(node('main', `SELECT count() AS n FROM numbers(10000000000000) WHERE NOT ignore('${SPIN}-${ns}', {tag:String})`)),
  );
  const quick = pipe('quick', inNamespace(ns), withNodes(node('main', 'SELECT {n:UInt8} AS n')));
  const slow = pipe('slow', inNamespace(ns), withNodes(node('main', `SELECT count() AS n FROM numbers(10000000000000) WHERE NOT ignore('${SLOW}-${ns}')`)));
  serve = await startServe(server.url, [
    compiled(
      endpoint('spin', 'spin', inNamespace(ns), withParams({ name: 'tag', default: 'x' }), withSpec({ limits: { maxExecutionTimeMs: 30_000 } })),
      spin,
      db,
    ),
    compiled(endpoint('quick', 'quick', inNamespace(ns), withParams({ name: 'n', default: 1 }), withSpec({ limits: { maxExecutionTimeMs: 1000 } })), quick, db),
    compiled(endpoint('slow', 'slow', inNamespace(ns), withSpec({ limits: { maxExecutionTimeMs: 500 } })), slow, db),
  ]);
  await readyz(serve, 200);
});

afterAll(async () => {
  await serve?.stop();
  await server?.stop();
});

/** Queries running in the engine whose SQL holds `marker` (this test's namespace keeps them apart from others'). */
const running = (marker: string) =>
  count(server.ch, `SELECT count() AS n FROM system.processes WHERE query LIKE '%${marker}-${ns}%' AND query NOT LIKE '%system.processes%'`);

const errorOf = async (res: Response) => ((await res.json()) as { error: string }).error;

describe('waiting for ClickHouse', () => {
  it('a query that waited for a free slot past the deadline: 408 saying so, not that it ran past its limit', async () => {
    // Every slot of the engine (3) busy with a 5-second query, and more of them queued before the request.
    const sleeper = () => server.ch.query(`SELECT sleepEachRow(0.5) AS s FROM numbers(10) WHERE NOT ignore('${SLEEPER}-${ns}') SETTINGS max_block_size = 1`);
    const sleepers = [sleeper(), sleeper()];
    await waitFor('two sleepers running', async () => ((await running(SLEEPER)) === 2 ? true : undefined));
    sleepers.push(sleeper(), sleeper(), sleeper());
    const res = await fetch(`${serve.base}/v0/pipes/quick.json?n=3`);
    expect(res.status).toBe(408);
    expect(await errorOf(res)).toMatch(
      /^ClickHouse did not answer within \d+ ms \(quick's limit of 1000 ms \(limits\.maxExecutionTimeMs\) plus 2000 ms\): the query was still waiting for ClickHouse to start it or still running, and was cancelled; try again, or narrow the request$/,
    );
    expect(serve.weir.logs.filter((l) => l.message === 'endpoint query cancelled: ClickHouse did not answer in time').map((l) => l.endpoint)).toEqual([
      'quick',
    ]);
    expect((await Promise.all(sleepers)).map((rows) => rows.length)).toEqual([10, 10, 10, 10, 10]);
    const after = await fetch(`${serve.base}/v0/pipes/quick.json?n=4`);
    expect(((await after.json()) as { data: unknown[] }).data).toEqual([{ n: 4 }]);
  });
});

describe('clients that go away', () => {
  it('cancels their queries: they leave system.processes long before their 30 s limit, and other endpoints answer at once', async () => {
    const clients = [new AbortController(), new AbortController()];
    const requests = clients.map((c) =>
      fetch(`${serve.base}/v0/pipes/spin.json?tag=abandoned`, { signal: c.signal }).then(
        () => 'answered',
        () => 'aborted',
      ),
    );
    await waitFor('both spin queries running', async () => ((await running(SPIN)) === 2 ? true : undefined));
    for (const c of clients) c.abort();
    expect(await Promise.all(requests)).toEqual(['aborted', 'aborted']);

    // Without the cancel they would run until max_execution_time, 30 s from now.
    await waitFor('the abandoned queries gone from system.processes', async () => ((await running(SPIN)) === 0 ? true : undefined), { timeoutMs: 15_000 });
    const cancelled = await waitFor('both cancellations logged', () => {
      const lines = serve.weir.logs.filter((l) => l.message === 'endpoint query cancelled: the client went away before the answer');
      return lines.length === 2 ? lines : undefined;
    });
    expect(cancelled.map((l) => [l.endpoint, l.level])).toEqual([
      ['spin', 'info'],
      ['spin', 'info'],
    ]);
    for (const l of cancelled) expect(l.queryId).toMatch(/^weir-ep-spin-[0-9a-f-]{36}$/);
    expect(new Set(cancelled.map((l) => l.queryId)).size).toBe(2);
    // The KILL for each id went through (the embedded server takes `KILL QUERY WHERE query_id = '…'` for its requests).
    expect(serve.weir.logs.filter((l) => String(l.message).startsWith('KILL QUERY'))).toEqual([]);

    const quick = await fetch(`${serve.base}/v0/pipes/quick.json?n=7`);
    expect(quick.status).toBe(200);
    expect(((await quick.json()) as { data: unknown[] }).data).toEqual([{ n: 7 }]);
  });
});

describe('time-outs', () => {
  it('a query ClickHouse stopped at its limit: 408 saying how long it ran, and it has left system.processes', async () => {
    const res = await fetch(`${serve.base}/v0/pipes/slow.json`);
    expect(res.status).toBe(408);
    expect(await errorOf(res)).toMatch(
      /^the query ran for \d+ ms, past slow's limit of 500 ms \(limits\.maxExecutionTimeMs\)(, after waiting \d+ ms for ClickHouse to start it \(which does not count\))?; narrow the request$/,
    );
    await waitFor('the timed-out query gone from system.processes', async () => ((await running(SLOW)) === 0 ? true : undefined), { timeoutMs: 5000 });
  });
});
