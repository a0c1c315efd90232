// isolateRefused: how a refused insert is split to find the rows ClickHouse refuses, and that a
// refusal by a materialized view over the table is not split when the caller says so (the table
// took the block before the view failed; halves under other tokens would insert it again).
import { describe, expect, it } from 'vitest';
import { ClickHouseError, ErrorCode } from '../../../src/clickhouse/errors.js';
import { isolateRefused, refusedByView, ViewRefusedError } from '../../../src/workers/events-writer.js';

const CANNOT_PARSE = ErrorCode.CANNOT_PARSE_TEXT;
const byTable = (n: number) => new ClickHouseError(`Code: 6. DB::Exception: Cannot parse input: row ${n}. (CANNOT_PARSE_TEXT)`, { code: CANNOT_PARSE });
const byView = (n: number) =>
  new ClickHouseError(`Code: 6. DB::Exception: Cannot parse string 'x' as UInt8 (row ${n}): while pushing to view db.mv (8f0a…). (CANNOT_PARSE_TEXT)`, {
    code: CANNOT_PARSE,
  });

/** An insert that refuses any batch holding `bad`, recording every attempt and its token. */
function recorder(bad: number, refusal: (n: number) => Error) {
  const attempts: { items: number[]; token: unknown }[] = [];
  const insert = async (items: number[], dedup: Record<string, unknown>) => {
    attempts.push({ items, token: dedup.insert_deduplication_token });
    if (items.includes(bad)) throw refusal(bad);
  };
  const dedup = async (token: string | undefined) => (token === undefined ? {} : { insert_deduplication_token: token });
  return { attempts, insert, dedup };
}

describe('isolateRefused', () => {
  it('splits a batch the table refuses down to the refused row, each half under a derived token', async () => {
    const r = recorder(2, byTable);
    const out = await isolateRefused([0, 1, 2, 3], r.insert, r.dedup, 'T');
    expect(out).toEqual({ inserted: 3, refused: [{ item: 2, error: expect.stringContaining('Cannot parse input') as string }] });
    expect(r.attempts).toEqual([
      { items: [0, 1, 2, 3], token: 'T' },
      { items: [0, 1], token: 'T/0' },
      { items: [2, 3], token: 'T/1' },
      { items: [2], token: 'T/1/0' },
      { items: [3], token: 'T/1/1' },
    ]);
  });

  it("with viewRefusals 'fail', throws on a view's refusal after the one insert, splitting nothing", async () => {
    const r = recorder(2, byView);
    const failed = isolateRefused([0, 1, 2, 3], r.insert, r.dedup, 'T', { viewRefusals: 'fail' });
    await expect(failed).rejects.toBeInstanceOf(ViewRefusedError);
    await expect(failed).rejects.toThrow(/neither split nor quarantined.*while pushing to view db\.mv/);
    expect(r.attempts).toEqual([{ items: [0, 1, 2, 3], token: 'T' }]);
  });

  it("with viewRefusals 'fail', still splits what the table itself refuses", async () => {
    const r = recorder(0, byTable);
    expect((await isolateRefused([0, 1], r.insert, r.dedup, undefined, { viewRefusals: 'fail' })).inserted).toBe(1);
    expect(r.attempts.map((a) => a.items)).toEqual([[0, 1], [0], [1]]);
  });

  it('by default (the Kafka ingester) splits a view refusal like any other', async () => {
    const r = recorder(1, byView);
    expect((await isolateRefused([0, 1], r.insert, r.dedup, 'T')).refused.map((x) => x.item)).toEqual([1]);
    expect(r.attempts.map((a) => a.items)).toEqual([[0, 1], [0], [1]]);
  });

  it('tells a view refusal from a table refusal by ClickHouse\'s "while pushing to view"', () => {
    expect([refusedByView(byView(1)), refusedByView(byTable(1)), refusedByView(new Error('x'))]).toEqual([true, false, false]);
  });
});
