// ServedEndpoints against the real ClickHouse engine: an endpoint whose table does not exist yet
// is checked again with retry() (fast settings here) and served once the table appears; a version
// the config drops stops being checked.
import { Writable } from 'node:stream';
import winston from 'winston';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServedEndpoints } from '../../../../src/workers/serve/served.js';
import { waitFor } from '../../../env/wait.js';
import { endpoint, inNamespace, node, pipe, uniqueNamespace, withNodes } from '../../../fixtures/builders.js';
import { startTestClickHouse, type TestClickHouse } from '../../../fixtures/clickhouse.js';
import { compiled } from '../../../fixtures/serve.js';

interface LogLine {
  level: string;
  message: string;
  [field: string]: unknown;
}

const lines: LogLine[] = [];
const log = winston.createLogger({
  level: 'debug',
  format: winston.format.json(),
  transports: [
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(JSON.parse(chunk.toString()) as LogLine);
          done();
        },
      }),
    }),
  ],
});

// Fast retry settings, as kafkajs's tests swap in.
const FAST = { initialMs: 20, maxMs: 100, factor: 2, jitter: 0 };
const DOES_NOT_COMPILE = 'endpoint query does not compile against ClickHouse; the endpoint answers 503 and the server is not ready until it does';

let server: TestClickHouse;
let ns: string;
let db: string;

beforeAll(async () => {
  server = await startTestClickHouse();
  ns = uniqueNamespace('served');
  db = ns.replace(/-/g, '_');
  await server.ch.command(`CREATE DATABASE ${db}`);
});

afterAll(async () => {
  await server?.stop();
});

describe('ServedEndpoints', () => {
  it('checks an endpoint whose table is missing again and again, logs it once, and serves it once the table exists', async () => {
    const late = compiled(
      endpoint('late', 'late', inNamespace(ns)),
      pipe('late', inNamespace(ns), withNodes(node('main', 'SELECT count() AS n FROM late_events'))),
      db,
    );
    const served = new ServedEndpoints(server.ch, log, FAST);
    try {
      served.configure([late]);
      await waitFor('the missing table found', () => (served.stateOf(late).kind === 'failed' ? true : undefined));
      expect(served.stateOf(late)).toEqual({ kind: 'failed', reason: expect.stringMatching(/^UNKNOWN_TABLE: /) as unknown });
      expect(served.ready()).toMatch(/^endpoint late: its query does not compile \(UNKNOWN_TABLE: /);

      await server.ch.command(`CREATE TABLE ${db}.late_events (id UInt64) ENGINE = MergeTree ORDER BY id`);
      await waitFor('the endpoint served', () => (served.stateOf(late).kind === 'ready' ? true : undefined));
      expect(served.ready()).toBe(true);
      expect(served.endpoints().get(late.name)).toBe(late);
      // Retried many times with the same reason, said once.
      expect(lines.filter((l) => l.message === DOES_NOT_COMPILE && l.endpoint === late.name)).toHaveLength(1);
      expect(lines.filter((l) => l.message === 'endpoint query compiles; serving it' && l.endpoint === late.name)).toHaveLength(1);
    } finally {
      served.stop();
    }
  });

  it('stops checking a version the config drops, and serves the one that replaces it', async () => {
    const broken = compiled(
      endpoint('swapped', 'swapped', inNamespace(ns)),
      pipe('swapped', inNamespace(ns), withNodes(node('main', 'SELECT n FROM never_made'))),
      db,
    );
    const fixed = compiled(endpoint('swapped', 'swapped', inNamespace(ns)), pipe('swapped', inNamespace(ns), withNodes(node('main', 'SELECT 1 AS n'))), db);
    expect(fixed.version).not.toBe(broken.version);
    const served = new ServedEndpoints(server.ch, log, FAST);
    try {
      served.configure([broken]);
      await waitFor('the broken version judged', () => (served.stateOf(broken).kind === 'failed' ? true : undefined));
      served.configure([fixed]);
      await waitFor('the fixed version served', () => (served.stateOf(fixed).kind === 'ready' ? true : undefined));
      expect(served.ready()).toBe(true);
      // The dropped version is no longer tracked: its state is what any unknown version's is.
      expect(served.stateOf(broken)).toEqual({ kind: 'checking' });
    } finally {
      served.stop();
    }
  });
});
