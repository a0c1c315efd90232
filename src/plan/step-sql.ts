// The statements each step runs, as `weir plan --sql` prints them. The table markers (the
// shape as JSON in the table's comment) are shortened to `<weir marker vN>`, and what a step
// reads only while it runs (block numbers, the fence) appears as a {placeholder}: no values.
// The state machines (copy-and-swap, roll back, recompute) record their progress in
// weir.migrations between these statements; those writes are not listed.
import { NEXT_TABLE_SUFFIX, versionTableName, type MigrationStep } from './datasource-plan.js';
import { RECOMPUTE_TABLE_SUFFIX, type PipeStep } from './pipe-plan.js';
import { isPipeStep, type Step } from './project-plan.js';
import { createQuarantineSql, createTableSql, embedSql, qualified, quoteIdentifier, quoteString } from './sql.js';

const marker = (version: number): string => `<weir marker v${version}>`;

function copyAndSwap(s: Extract<MigrationStep, { kind: 'CopyAndSwap' }>): string[] {
  const live = qualified(s.database, s.table);
  const nextName = `${s.table}${NEXT_TABLE_SUFFIX}`;
  const next = qualified(s.database, nextName);
  const rows = (where: string) =>
    s.forwardQuery
      ? `INSERT INTO ${next} SELECT * FROM (${embedSql(s.forwardQuery.replace(/\{source\}/g, `(SELECT * FROM ${live} WHERE ${where})`))})`
      : `INSERT INTO ${next} SELECT ${s.shape.columns.map((c) => `CAST(${quoteIdentifier(c.name)} AS ${c.type})`).join(', ')} FROM ${live} WHERE ${where}`;
  return [
    createTableSql(s.database, nextName, s.shape, marker(s.toVersion)),
    `${rows('_partition_id IN {chunk partitions} AND _block_number BETWEEN {chunk first block} AND {chunk last block} [AND {primary key} in {chunk key range}]')} -- once per chunk up to {recorded block}: small partitions whole, a large one by block ranges at part boundaries, a part larger than a chunk by ranges of its primary key`,
    '-- catch-up rounds while writers write, until little is left: the same INSERT for the rows with _block_number in ({caught-up block}, {current block}], read from the parts written since (_part IN …)',
    `-- verify${s.oneToOne ? '' : ' (forwardQuery: skipped)'}: count()${s.oneToOne && s.verify !== 'Counts' ? ' and sum(cityHash64(<the copied values>))' : ''} per partition of ${live} up to {caught-up block} and of ${next} must match`,
    `-- fence the writers of ${s.database}.${s.table} (and of the tables feeding it)`,
    rows('_partition_id IN {partitions written since} AND _block_number > {caught-up block} AND _block_number <= {fenced block}'),
    `-- verify${s.oneToOne ? '' : ' (forwardQuery: skipped)'}: the rows of ${live} after {caught-up block} and those copied into ${next} must match`,
    `EXCHANGE TABLES ${live} AND ${next}`,
    s.keepPreviousVersions > 0 ? `RENAME TABLE ${next} TO ${qualified(s.database, versionTableName(s.table, s.fromVersion))}` : `DROP TABLE ${next}`,
  ];
}

function swapBack(s: Extract<MigrationStep, { kind: 'SwapBack' }>): string[] {
  const live = qualified(s.database, s.table);
  const retained = qualified(s.database, s.retainedTable);
  return [
    `-- fence the writers of ${s.database}.${s.table}`,
    `INSERT INTO ${retained} SELECT * FROM ${live} WHERE _block_number > {block when v${s.fromVersion} went live}`,
    `EXCHANGE TABLES ${live} AND ${retained}`,
    `RENAME TABLE ${retained} TO ${qualified(s.database, versionTableName(s.table, s.fromVersion))}`,
  ];
}

function pipeStep(s: PipeStep): string[] {
  const view = qualified(s.database, s.view);
  switch (s.kind) {
    case 'CreateView': {
      const target = qualified(s.target.database, s.target.table);
      const create = `CREATE MATERIALIZED VIEW IF NOT EXISTS ${view} TO ${target} AS ${embedSql(s.query)} COMMENT <weir view marker>`;
      if (s.backfill === 'None' || s.sources.length === 0) return [create];
      return [create, `INSERT INTO ${target} ${embedSql(s.query)} -- over the rows already in the sources up to {recorded blocks}, exactly once`];
    }
    case 'ModifyViewQuery':
      return [`ALTER TABLE ${view} MODIFY QUERY ${embedSql(s.query)}`, `ALTER TABLE ${view} MODIFY COMMENT <weir view marker>`];
    case 'RecomputeView': {
      const target = qualified(s.target.database, s.target.table);
      const tmp = qualified(s.target.database, `${s.target.table}${RECOMPUTE_TABLE_SUFFIX}`);
      return [
        `CREATE TABLE ${tmp} AS ${target} COMMENT ${quoteString(marker(s.targetVersion + 1))}`,
        `CREATE MATERIALIZED VIEW {second view} TO ${tmp} AS ${embedSql(s.query)}`,
        `INSERT INTO ${tmp} ${embedSql(s.query)} -- over the rows up to {recorded blocks}, exactly once`,
        `-- fence the writers of the sources`,
        `EXCHANGE TABLES ${target} AND ${tmp}`,
        `ALTER TABLE ${view} MODIFY QUERY ${embedSql(s.query)}`,
        `ALTER TABLE ${view} MODIFY COMMENT <weir view marker>`,
      ];
    }
    case 'FinishRecompute': {
      const leftover = qualified(s.target.database, s.leftover);
      return [
        s.keepPreviousVersions > 0
          ? `RENAME TABLE ${leftover} TO ${qualified(s.target.database, versionTableName(s.target.table, s.version))}`
          : `DROP TABLE ${leftover}`,
      ];
    }
  }
}

export function stepStatements(s: Step): string[] {
  return isPipeStep(s) ? pipeStep(s) : tableStep(s);
}

function tableStep(s: MigrationStep): string[] {
  switch (s.kind) {
    case 'CreateDatabase':
      return [`CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(s.database)}`];
    case 'CreateTable':
      return [createTableSql(s.database, s.table, s.shape, marker(s.version))];
    case 'CreateQuarantine':
      return [createQuarantineSql(s.database, s.table)];
    case 'AlterTable': {
      const table = qualified(s.database, s.table);
      return [...s.actions.map((a) => `ALTER TABLE ${table} ${a}`), `ALTER TABLE ${table} MODIFY COMMENT ${quoteString(marker(s.version))}`];
    }
    case 'CopyAndSwap':
      return copyAndSwap(s);
    case 'SwapBack':
      return swapBack(s);
  }
}
