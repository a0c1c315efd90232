// Drift: a weir table ALTERed by hand, found by comparing the live table with its marker's shape.
import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import type { ObservedTable } from '../../../src/plan/catalog.js';
import { planDataSource } from '../../../src/plan/datasource-plan.js';
import { canonicalType, handAddedColumns, tableDrift } from '../../../src/plan/drift.js';
import { column, dataSource, inNamespace, withColumns, withSortingKey, withSpec } from '../../fixtures/builders.js';
import { catalogOf, tableFor } from '../../fixtures/catalog.js';

const events = (...mods: ((d: DataSource) => void)[]) =>
  dataSource('events', inNamespace('shop'), withColumns(column('ts', 'DateTime'), column('amount', 'UInt32')), withSortingKey('ts'), ...mods);
const live = (change: (t: ObservedTable) => void = () => undefined): ObservedTable => {
  const t = { ...tableFor(events()), sortingKey: 'ts', partitionKey: '' };
  change(t);
  return t;
};
const withNote = (t: ObservedTable) => t.columns.push({ name: 'note', type: 'String' });

describe('tableDrift', () => {
  it('a table as weir built it has none, however ClickHouse spells the same type and keys', () => {
    expect(tableDrift(live())).toEqual([]);
    const spelled = tableFor(dataSource('e', withColumns(column('n', 'INT'), column('d', 'Decimal(18,2)')), withSortingKey('n')));
    spelled.columns = [
      { name: 'n', type: 'Int32' },
      { name: 'd', type: 'Decimal(18, 2)' },
    ];
    expect(tableDrift({ ...spelled, sortingKey: '`n`', partitionKey: '' })).toEqual([]);
    expect(['INT', 'bigint', 'Text', 'LowCardinality( String )'].map(canonicalType)).toEqual(['Int32', 'Int64', 'String', 'LowCardinality(String)']);
  });

  it('names each column added, dropped or retyped by hand, and the engine and keys', () => {
    const drifted = live((t) => {
      withNote(t);
      t.columns = t.columns.filter((c) => c.name !== 'amount');
      t.columns.unshift({ name: 'amount', type: 'UInt64' });
      t.engine = 'ReplacingMergeTree';
      t.sortingKey = 'ts, amount';
      t.partitionKey = 'toYYYYMM(ts)';
    });
    expect(tableDrift(drifted)).toEqual([
      'column note String was added by hand',
      'column amount is UInt64, not UInt32 as weir made it',
      'engine is ReplacingMergeTree, not MergeTree as weir made it',
      'sorting key is (ts, amount), not (ts) as weir made it',
      'partition key is toYYYYMM(ts), not (none) as weir made it',
    ]);
    expect(tableDrift(live((t) => (t.columns = t.columns.filter((c) => c.name !== 'amount'))))).toEqual(['column amount UInt32 was dropped by hand']);
    expect(handAddedColumns(live(withNote))).toEqual([{ name: 'note', type: 'String' }]);
  });

  it('a replicated engine of the same family is not drift; a table without a marker has none to compare', () => {
    expect(tableDrift(live((t) => (t.engine = 'ReplicatedMergeTree')))).toEqual([]);
    expect(tableDrift(live((t) => delete t.marker))).toEqual([]);
    expect(handAddedColumns(live((t) => delete t.marker))).toEqual([]);
  });
});

describe('planDataSource with a table altered by hand', () => {
  const sortedByAmount = withSortingKey('amount', 'ts');

  it('reports the drift with any plan', () => {
    expect(planDataSource(events(), catalogOf(live(withNote))).drift).toEqual(['column note String was added by hand']);
  });

  it('refuses a copy-and-swap that would drop a column added by hand, naming it and what to do', () => {
    const plan = planDataSource(events(sortedByAmount), catalogOf(live(withNote)));
    expect(plan.refusals).toEqual([
      "column note (String) of shop.events was added by hand (weir's marker does not list it); the copy-and-swap would drop it: add it to spec.columns to keep it, or set spec.migration.allowDestructive: true to drop it",
    ]);
  });

  it('copies it when the spec adopts the column, drops it with allowDestructive, and leaves it alone in place', () => {
    const adopted = planDataSource(
      events(sortedByAmount, (d) => d.spec.columns.push(column('note', 'String'))),
      catalogOf(live(withNote)),
    );
    expect(adopted.refusals).toEqual([]);
    expect(adopted.steps.map((s) => s.kind)).toEqual(['CopyAndSwap']);
    const destructive = planDataSource(events(sortedByAmount, withSpec<DataSource>({ migration: { allowDestructive: true } })), catalogOf(live(withNote)));
    expect(destructive.refusals).toEqual([]);
    const inPlace = planDataSource(
      events((d) => d.spec.columns.push(column('country', 'String'))),
      catalogOf(live(withNote)),
    );
    expect(inPlace.refusals).toEqual([]);
    expect(inPlace.steps.map((s) => s.kind)).toEqual(['AlterTable']);
  });
});
