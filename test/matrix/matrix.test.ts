// The safety-of-change matrix: every row (a kind of change, test/matrix/rows.ts) under every
// condition (test/matrix/conditions.ts), one harness for all (test/matrix/harness.ts). Each cell's
// result is appended to WEIR_MATRIX_RESULTS; scripts/matrix-report.ts renders docs/safety-matrix.md.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaClient, startClickHouseProcess } from '../fixtures/ingest.js';
import { startKafka } from '../fixtures/kafka.js';
import { startServe } from '../fixtures/serve.js';
import { matrixMode, selectedConditions } from './conditions.js';
import { appendResult, notApplicableResult, runCell, type MatrixEnv } from './harness.js';
import { ROWS } from './rows.js';

const results = process.env.WEIR_MATRIX_RESULTS ?? join(tmpdir(), `weir-matrix-${process.pid}.jsonl`);
/** WEIR_MATRIX_ROWS=4-sorting-key,1-in-place runs only those rows (while working on one); `scale`: the scale row. */
const onlyRows = process.env.WEIR_MATRIX_ROWS?.split(',').filter(Boolean);
const rows = ROWS.filter((r) => !onlyRows || onlyRows.includes(r.id) || (onlyRows.includes('scale') && r.bulkRows !== undefined));

const env = {} as MatrixEnv;

beforeAll(async () => {
  const needsKafka = rows.some((r) => r.writer === 'kafka');
  const [clickhouse, broker] = await Promise.all([startClickHouseProcess(), needsKafka ? startKafka() : Promise.resolve(undefined)]);
  env.clickhouse = clickhouse;
  env.serve = await startServe(clickhouse.url, []);
  if (broker) {
    const client = kafkaClient(broker.bootstrap);
    const admin = client.admin();
    await admin.connect();
    env.kafka = { broker, client, admin };
  }
}, 180_000);

afterAll(async () => {
  await env.serve?.stop();
  await env.kafka?.admin.disconnect().catch(() => undefined);
  await env.kafka?.broker.stop();
  await env.clickhouse?.stop();
});

describe(`safety-of-change matrix (${matrixMode()})`, () => {
  for (const row of rows) {
    describe(`${row.id}: ${row.title}`, () => {
      for (const { condition, notApplicable } of selectedConditions(row)) {
        if (notApplicable) {
          it(`${condition.id}: n/a (${notApplicable})`, () => appendResult(results, notApplicableResult(row, condition, notApplicable)));
          continue;
        }
        it(
          `${condition.id}`,
          async () => {
            const result = await runCell(env, row, condition);
            appendResult(results, result);
            expect(result.problems).toEqual([]);
          },
          row.cellTimeoutMs ?? 300_000,
        );
      }
    });
  }
});
