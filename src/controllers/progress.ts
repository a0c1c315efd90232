// A migration's progress as status shows it (status.migration.progress), and when it is worth
// writing: the executor reports after every chunk and catch-up round, and status is patched only
// when the copy moved on by a step (the executor's milestones, quarters included, are Events). Pure.
import type { CopyProgress } from '../api/datasource.js';
import type { MigrationProgress } from '../execute/executor.js';

/** status.migration.progress. */
export type StatusProgress = CopyProgress;

/** Status is patched when the percent moved by this much, or the phase or catch-up round changed. */
export const PROGRESS_STEP_PERCENT = 5;

export function statusProgress(p: MigrationProgress, nowMs: number): StatusProgress {
  const elapsed = (nowMs - p.startedAtMs) / 1000;
  const left = Math.max(0, p.rowsTotal - p.rowsCopied);
  const eta = p.rowsCopied > 0 && elapsed > 0 ? Math.round((elapsed / p.rowsCopied) * left) : undefined;
  return {
    phase: p.phase,
    rowsCopied: p.rowsCopied,
    rowsTotal: p.rowsTotal,
    percent: p.percent,
    chunk: p.chunk,
    chunks: p.chunks,
    catchUpRounds: p.catchUpRounds,
    ...(eta !== undefined && p.phase === 'Backfilling' ? { etaSeconds: eta } : {}),
  };
}

/** Whether `next` is worth a status patch after `last` (the last one patched). */
export function progressWorthReporting(last: StatusProgress | undefined, next: StatusProgress): boolean {
  if (!last) return true;
  if (next.phase !== last.phase || next.catchUpRounds !== last.catchUpRounds) return true;
  return next.percent - last.percent >= PROGRESS_STEP_PERCENT || (next.chunk === next.chunks && last.chunk !== last.chunks);
}
