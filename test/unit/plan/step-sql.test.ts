import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { planDataSource } from '../../../src/plan/datasource-plan.js';
import { stepStatements } from '../../../src/plan/step-sql.js';
import { column, dataSource, inNamespace, withColumns, withSortingKey, withSpec } from '../../fixtures/builders.js';
import { catalogOf, tableFor } from '../../fixtures/catalog.js';

const events = (...mods: ((d: DataSource) => void)[]) =>
  dataSource('events', inNamespace('shop'), withColumns(column('ts', 'DateTime'), column('amount', 'String')), withSortingKey('ts'), ...mods);
const statements = (next: DataSource) => planDataSource(next, catalogOf(tableFor(events()))).steps.flatMap(stepStatements);

describe('weir plan --sql', () => {
  it('an in-place change: one ALTER per action, then the marker (shortened)', () => {
    expect(statements(events(withSpec<DataSource>({ engine: { type: 'MergeTree', sortingKey: ['ts'], ttl: 'ts + INTERVAL 1 DAY' } })))).toEqual([
      'ALTER TABLE `shop`.`events` MODIFY TTL ts + INTERVAL 1 DAY',
      "ALTER TABLE `shop`.`events` MODIFY COMMENT '<weir marker v1>'",
    ]);
  });

  it('a copy-and-swap with a forward query: the query over {source}, block numbers as placeholders, no values', () => {
    const sql = statements(
      events(
        withSortingKey('amount', 'ts'),
        withSpec<DataSource>({ migration: { forwardQuery: "SELECT ts, lower(amount) AS amount FROM {source} WHERE amount != 'secret-looking'" } }),
      ),
    );
    expect(sql.map((s) => s.split(/\s/)[0])).toEqual(['CREATE', 'INSERT', '--', '--', '--', 'INSERT', '--', 'EXCHANGE', 'RENAME']);
    expect(sql[1]).toBe(
      "INSERT INTO `shop`.`events__weir_next` SELECT * FROM (SELECT ts, lower(amount) AS amount FROM (SELECT * FROM `shop`.`events` WHERE _partition_id IN {chunk partitions} AND _block_number BETWEEN {chunk first block} AND {chunk last block} [AND {primary key} in {chunk key range}]) WHERE amount != 'secret-looking'\n) -- once per chunk up to {recorded block}: small partitions whole, a large one by block ranges at part boundaries, a part larger than a chunk by ranges of its primary key",
    );
    expect(sql[3]).toBe(
      '-- verify (forwardQuery: skipped): count() per partition of `shop`.`events` up to {caught-up block} and of `shop`.`events__weir_next` must match',
    );
    expect(sql[5]).toContain('_block_number > {caught-up block} AND _block_number <= {fenced block}');
    expect(sql[7]).toBe('EXCHANGE TABLES `shop`.`events` AND `shop`.`events__weir_next`');
    expect(sql[8]).toBe('RENAME TABLE `shop`.`events__weir_next` TO `shop`.`events__v1`');
  });

  it('a copy-and-swap by column name verifies counts and a checksum of the copied values, or counts only under verify: Counts', () => {
    const checksum = statements(events(withSortingKey('amount', 'ts')));
    expect(checksum[3]).toBe(
      '-- verify: count() and sum(cityHash64(<the copied values>)) per partition of `shop`.`events` up to {caught-up block} and of `shop`.`events__weir_next` must match',
    );
    const counts = statements(events(withSortingKey('amount', 'ts'), withSpec<DataSource>({ migration: { verify: 'Counts' } })));
    expect(counts[3]).toBe('-- verify: count() per partition of `shop`.`events` up to {caught-up block} and of `shop`.`events__weir_next` must match');
  });
});
