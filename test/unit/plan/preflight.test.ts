import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { planDataSource, type MigrationStep } from '../../../src/plan/datasource-plan.js';
import {
  copySpaceNeeded,
  dependentViews,
  describeCapacity,
  formatBytes,
  unconvertibleSql,
  viewAgainstNextShapeSql,
  type CopyStep,
} from '../../../src/plan/preflight.js';
import { column, dataSource, inNamespace, withColumns, withSortingKey } from '../../fixtures/builders.js';
import { catalogOf, tableFor } from '../../fixtures/catalog.js';

const events = (amount: string, ...mods: ((d: DataSource) => void)[]) =>
  dataSource(
    'events',
    inNamespace('shop'),
    withColumns(column('ts', 'DateTime'), column('user', 'String'), column('amount', amount)),
    withSortingKey('ts'),
    ...mods,
  );
const copyOf = (steps: MigrationStep[]): CopyStep => {
  const s = steps.find((x) => x.kind === 'CopyAndSwap');
  if (s?.kind !== 'CopyAndSwap') throw new Error('no copy-and-swap');
  return s;
};
const catalog = catalogOf(tableFor(events('String')));

describe("preflight facts become the executor's refusals", () => {
  it('rows that would not convert: the copy stays planned, and is refused with the count and the values', () => {
    const plan = planDataSource(events('UInt32'), catalog, [], {
      'shop.events': { unconvertible: [{ column: 'amount', from: 'String', to: 'UInt32', rows: 2, samples: ['n/a', '12.5'] }], brokenViews: [] },
    });
    expect(plan.steps.map((s) => s.kind)).toEqual(['CopyAndSwap']);
    expect(plan.refusals).toEqual([]);
    expect(plan.preflightRefusals).toEqual([
      '2 row(s) of shop.events have a amount that does not convert from String to UInt32 (e.g. "n/a", "12.5"); handle them with spec.migration.forwardQuery. Nothing was changed.',
    ]);
  });

  it('a view that would break is refused naming it; no facts, no refusal', () => {
    const facts = { 'shop.events': { unconvertible: [], brokenViews: [{ view: 'shop.totals', error: 'Unknown identifier amount' }] } };
    expect(planDataSource(events('UInt32'), catalog, [], facts).preflightRefusals).toEqual([
      'materialized view shop.totals would break on the new version of shop.events: Unknown identifier amount. Change its Pipe together with the table, or keep the columns it reads. Nothing was changed.',
    ]);
    expect(planDataSource(events('UInt32'), catalog).preflightRefusals).toEqual([]);
  });

  it('counts the values accurateCastOrNull cannot take, in the live table', () => {
    const step = copyOf(planDataSource(events('UInt32'), catalog).steps);
    expect(unconvertibleSql(step, { column: 'amount', from: 'String', to: 'UInt32' })).toBe(
      "SELECT count() AS n, groupArray(5)(toString(`amount`)) AS samples FROM `shop`.`events` WHERE isNotNull(`amount`) AND isNull(accurateCastOrNull(`amount`, 'UInt32'))",
    );
  });

  it('compiles each view reading the table against the next shape as a null() table, creating nothing', () => {
    const step = copyOf(planDataSource(events('UInt32'), catalog).steps);
    const reading = { database: 'shop', name: 'totals', query: 'SELECT user, sum(amount) AS t FROM shop.events GROUP BY user', comment: '' };
    const other = { database: 'shop', name: 'other', query: 'SELECT 1 FROM shop.events_archive', comment: '' };
    expect(dependentViews([reading, other], step)).toEqual([reading]);
    expect(viewAgainstNextShapeSql(reading, step)).toBe(
      "DESCRIBE TABLE (SELECT user, sum(amount) AS t FROM null('`ts` DateTime, `user` String, `amount` UInt32') GROUP BY user\n)",
    );
  });
});

describe('capacity preflight', () => {
  const GiB = 1024 ** 3;
  const facts = (bytes: number, freeBytes: number) => ({
    'shop.events': { unconvertible: [], brokenViews: [], capacity: { rows: 300_000_000, bytes, disk: 'default', freeBytes } },
  });

  it('a copy that fits with the margin is planned, and the plan carries its rows, bytes and room', () => {
    const plan = planDataSource(events('UInt32'), catalog, [], facts(10 * GiB, 12 * GiB + 1));
    expect(plan.preflightRefusals).toEqual([]);
    expect(plan.capacity).toEqual({ rows: 300_000_000, bytes: 10 * GiB, disk: 'default', freeBytes: 12 * GiB + 1 });
  });

  it('a copy that does not fit with the margin is refused with both numbers, and nothing else changes', () => {
    const plan = planDataSource(events('UInt32'), catalog, [], facts(10 * GiB, 11 * GiB));
    expect(plan.steps.map((s) => s.kind)).toEqual(['CopyAndSwap']);
    expect(plan.refusals).toEqual([]);
    expect(plan.preflightRefusals).toEqual([
      'the copy of shop.events needs about 12.0 GiB (10.0 GiB on disk × 1.2, 300000000 rows) but disk default has 11.0 GiB free; free space or drop retained versions, then plan again. Nothing was changed.',
    ]);
  });

  it('an empty table needs no room; in-place changes read no capacity', () => {
    expect(copySpaceNeeded({ rows: 0, bytes: 0, disk: 'default', freeBytes: 0 })).toBe(0);
    expect(planDataSource(events('UInt32'), catalog, [], facts(0, 0)).preflightRefusals).toEqual([]);
    expect(planDataSource(events('String'), catalog, [], facts(10 * GiB, 0)).capacity).toBeUndefined();
  });

  it('says the figures as a person reads them', () => {
    expect([0, 1023, 1536, 5 * 1024 ** 2, 68.5 * GiB, 3 * 1024 ** 4].map(formatBytes)).toEqual(['0 B', '1023 B', '1.5 KiB', '5.0 MiB', '68.5 GiB', '3.0 TiB']);
    expect(describeCapacity('shop.events', { rows: 1_234_567, bytes: 40 * 1024 ** 2, disk: 'default', freeBytes: 68.5 * GiB })).toBe(
      'copy of shop.events: 1,234,567 rows, 40.0 MiB on disk; disk default has 68.5 GiB free',
    );
  });
});
