// What every step of the executor runs with: the connection, the fence timing, the log, the
// progress hooks, and where the fences it held are reported.
import type { ClickHouse } from '../clickhouse/connection.js';
import type { Step } from '../plan/project-plan.js';
import type { Logger } from '../runtime/log.js';
import type { FenceReport, FenceTiming } from './fence.js';

export interface ExecutionHooks {
  /** A named point of a step was reached: for status, Events and progress lines. */
  onProgress?(step: Step, state: string, detail?: Record<string, unknown>): void;
}

export interface StepContext {
  ch: ClickHouse;
  timing: FenceTiming;
  log: Logger;
  hooks?: ExecutionHooks | undefined;
  /** Every fence a step held, in order (Executor.fenceReports). */
  fenceReports: FenceReport[];
}

/** Backfills are the long part of a migration; measured in bench/copy-and-swap.ts. */
export const BACKFILL_SETTINGS = { max_insert_threads: 2 };
