// The steps that change a table where it stands: create a DataSource's table or quarantine
// (kept idempotent, and checked to be weir's), and ALTER it in place, the marker moving last.
import { encodeMarker, decodeMarker } from '../plan/catalog.js';
import type { MigrationStep } from '../plan/datasource-plan.js';
import { createQuarantineSql, createTableSql, qualified, quarantineComment, quarantineTableName, quoteString } from '../plan/sql.js';
import { faultPoint } from '../runtime/fault.js';
import type { StepContext } from './context.js';
import { assertCreated, isView } from './probes.js';

export async function createTable({ ch }: StepContext, step: Extract<MigrationStep, { kind: 'CreateTable' }>): Promise<void> {
  const sql = createTableSql(step.database, step.table, step.shape, encodeMarker({ version: step.version, specHash: step.specHash, shape: step.shape }));
  await ch.command(sql.replace(/^CREATE TABLE/, 'CREATE TABLE IF NOT EXISTS'));
  return assertCreated(ch, step.database, step.table, (o) => !isView(o.engine) && decodeMarker(o.comment) !== undefined, 'a table weir made for a DataSource');
}

export async function createQuarantine({ ch }: StepContext, step: Extract<MigrationStep, { kind: 'CreateQuarantine' }>): Promise<void> {
  await ch.command(createQuarantineSql(step.database, step.table).replace(/^CREATE TABLE/, 'CREATE TABLE IF NOT EXISTS'));
  const comment = quarantineComment(step.database, step.table);
  return assertCreated(
    ch,
    step.database,
    quarantineTableName(step.table),
    (o) => !isView(o.engine) && o.comment === comment,
    "this DataSource's quarantine table",
  );
}

export async function alterTable({ ch }: StepContext, step: Extract<MigrationStep, { kind: 'AlterTable' }>): Promise<void> {
  const table = qualified(step.database, step.table);
  const marker = encodeMarker({ version: step.version, specHash: step.specHash, shape: step.shape });
  // TTL and SETTING take comma lists that would swallow a following action, so actions run
  // one ALTER each, except new columns and the ORDER BY that uses them (ClickHouse wants
  // those together). Every action is idempotent (IF [NOT] EXISTS, MODIFY) and the marker
  // moves last: after a crash the same plan is made again and re-running it is harmless.
  const sync = { settings: { alter_sync: 2, mutations_sync: 2 } };
  const orderBy = step.actions.find((a) => a.startsWith('MODIFY ORDER BY'));
  const together = orderBy ? [...step.actions.filter((a) => a.startsWith('ADD COLUMN')), orderBy] : [];
  if (together.length > 0) await ch.command(`ALTER TABLE ${table} ${together.join(', ')}`, sync);
  if (together.length > 0) faultPoint('AlterApplied');
  for (const a of step.actions.filter((x) => !together.includes(x))) {
    await ch.command(`ALTER TABLE ${table} ${a}`, sync);
    faultPoint('AlterApplied');
  }
  faultPoint('Altered');
  await ch.command(`ALTER TABLE ${table} MODIFY COMMENT ${quoteString(marker)}`, sync);
  faultPoint('MarkerMoved');
}
