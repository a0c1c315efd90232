// What every step of the executor runs with: the connection, the fence timing, the log, the
// progress hooks, and where the fences it held are reported.
import type { ClickHouse } from '../clickhouse/connection.js';
import { DEFAULT_CHUNK_ROWS } from '../plan/chunks.js';
import type { BackfillLimits, CopyProgress } from '../api/datasource.js';
import type { Step } from '../plan/project-plan.js';
import type { Logger } from '../runtime/log.js';
import type { FenceReport, FenceTiming } from './fence.js';

export interface ExecutionHooks {
  /** A named point of a step was reached (milestones, not every chunk): for status, Events and progress lines. */
  onProgress?(step: Step, state: string, detail?: Record<string, unknown>): void;
  /** How far a copy-and-swap's copy is, after every backfill chunk and catch-up round: for status.migration.progress. */
  onMigrationProgress?(step: Step, progress: MigrationProgress): void;
}

/** Where a migration's copy stands, as the executor reports it. */
export interface MigrationProgress extends Omit<CopyProgress, 'etaSeconds'> {
  /** The migration started copying at this time (epoch ms) in this executor; with the rows, an ETA. */
  startedAtMs: number;
}

/** How a copy-and-swap copies: chunk size of the backfill, and when catch-up rounds stop. */
export interface BackfillOptions {
  /** Rows per backfill chunk (WEIR_BACKFILL_CHUNK_ROWS; default DEFAULT_CHUNK_ROWS). */
  chunkRows: number;
  /** Catch-up rounds stop once the rows left to copy (estimated from system.parts) are at most this (WEIR_CATCH_UP_ROWS). */
  catchUpRows: number;
  /** …or once a round took at most this long: the next remainder is what writers wrote in that time. */
  catchUpRoundMs: number;
  /** …or after this many rounds (writers faster than the copy): the fence then copies what is left. */
  catchUpMaxRounds: number;
}

export const DEFAULT_BACKFILL: BackfillOptions = { chunkRows: DEFAULT_CHUNK_ROWS, catchUpRows: 50_000, catchUpRoundMs: 500, catchUpMaxRounds: 10 };

/** A whole number ≥ `min` from the environment, else undefined. */
const fromEnv = (name: string, min: number): number | undefined => {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && Number.isInteger(v) && v >= min ? v : undefined;
};

/**
 * The options given over the defaults, with WEIR_BACKFILL_CHUNK_ROWS and WEIR_CATCH_UP_ROWS (set on
 * the processes a test starts, or by an operator) between them.
 */
export function backfillOptions(given: Partial<BackfillOptions> = {}): BackfillOptions {
  const chunkRows = fromEnv('WEIR_BACKFILL_CHUNK_ROWS', 1);
  const catchUpRows = fromEnv('WEIR_CATCH_UP_ROWS', 0);
  return { ...DEFAULT_BACKFILL, ...(chunkRows !== undefined ? { chunkRows } : {}), ...(catchUpRows !== undefined ? { catchUpRows } : {}), ...given };
}

export interface StepContext {
  ch: ClickHouse;
  backfill: BackfillOptions;
  timing: FenceTiming;
  log: Logger;
  hooks?: ExecutionHooks | undefined;
  /** Every fence a step held, in order (Executor.fenceReports). */
  fenceReports: FenceReport[];
}

/** Backfills are the long part of a migration; measured in bench/copy-and-swap.ts. */
export const BACKFILL_SETTINGS = { max_insert_threads: 2 };

/**
 * The settings of a backfill statement under spec.migration.backfill: threads (the insert side at
 * most 2), memory, and a GROUP BY that spills to disk past half of that memory instead of failing.
 */
export function backfillSettings(limits: BackfillLimits | undefined): Record<string, number> {
  const threads = limits?.maxThreads;
  const memory = limits?.maxMemoryBytes;
  return {
    max_insert_threads: Math.min(BACKFILL_SETTINGS.max_insert_threads, threads ?? BACKFILL_SETTINGS.max_insert_threads),
    ...(threads !== undefined ? { max_threads: threads } : {}),
    ...(memory !== undefined ? { max_memory_usage: memory, max_bytes_before_external_group_by: Math.floor(memory / 2) } : {}),
  };
}

/** How long to wait after copying `rows` in `elapsedMs` so the copy averages at most `rowsPerSecond` (0 when not limited). */
export const throttleWaitMs = (rows: number, elapsedMs: number, rowsPerSecond: number | undefined): number =>
  rowsPerSecond ? Math.max(0, Math.ceil((rows / rowsPerSecond) * 1000 - elapsedMs)) : 0;
