// The columns of the safety-of-change matrix: the conditions a change is made under. Which
// cells run is WEIR_MATRIX: `full` (npm run matrix) runs every cell; `ci` (the default, what
// npm test runs) runs idle and live for every row and, per row, the first executor kill.
import type { MatrixRow } from './rows.js';

export type Condition =
  | { kind: 'idle'; id: 'idle' }
  | { kind: 'live'; id: 'live' }
  /** `weir apply` SIGKILLed at this fault point, then run again; writer and reader live throughout. */
  | { kind: 'kill'; id: string; faultPoint: string }
  /** `weir clickhouse` SIGKILLed while the executor stands at this fault point, restarted on the same data dir, and apply run again. */
  | { kind: 'clickhouseKill'; id: 'clickhouse-killed'; faultPoint: string | undefined };

export type MatrixMode = 'full' | 'ci';

export const matrixMode = (): MatrixMode => (process.env.WEIR_MATRIX === 'full' ? 'full' : 'ci');

/** Every cell of a row, in column order; `reason` is set for the ones that cannot run. */
export function conditionsOf(row: MatrixRow): { condition: Condition; notApplicable?: string }[] {
  const idle = row.notApplicable?.idle;
  const cells: { condition: Condition; notApplicable?: string }[] = [
    idle ? { condition: { kind: 'idle', id: 'idle' }, notApplicable: idle } : { condition: { kind: 'idle', id: 'idle' } },
    { condition: { kind: 'live', id: 'live' } },
  ];
  if (row.faultPoints.length === 0)
    cells.push({ condition: { kind: 'kill', id: 'kill', faultPoint: '' }, notApplicable: row.notApplicable?.kill ?? 'no fault points' });
  for (const faultPoint of row.faultPoints) cells.push({ condition: { kind: 'kill', id: `kill@${faultPoint}`, faultPoint } });
  cells.push(
    row.notApplicable?.clickhouseKill
      ? { condition: { kind: 'clickhouseKill', id: 'clickhouse-killed', faultPoint: undefined }, notApplicable: row.notApplicable.clickhouseKill }
      : { condition: { kind: 'clickhouseKill', id: 'clickhouse-killed', faultPoint: row.clickhouseKillAt } },
  );
  return cells;
}

/** The cells of a row this run executes (n/a cells are always listed: they cost nothing). */
export function selectedConditions(row: MatrixRow, mode = matrixMode()): { condition: Condition; notApplicable?: string }[] {
  const all = conditionsOf(row);
  if (mode === 'full') return all;
  const firstKill = all.find((c) => c.condition.kind === 'kill' && !c.notApplicable);
  return all.filter((c) => c.notApplicable || c.condition.kind === 'idle' || c.condition.kind === 'live' || c === firstKill);
}
