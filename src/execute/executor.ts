// execute: run the planner's steps against ClickHouse, one at a time, each by its own job:
// in-place.ts (create, ALTER), copy-and-swap.ts, swap-back.ts and recompute.ts (materialized
// Pipes), resumable state machines whose progress ledger.ts keeps in weir.migrations.
import type { ClickHouse } from '../clickhouse/connection.js';
import type { MigrationStep } from '../plan/datasource-plan.js';
import type { PipeStep } from '../plan/pipe-plan.js';
import { describeAnyStep, isPipeStep, type Step } from '../plan/project-plan.js';
import { quoteIdentifier, type TableShape } from '../plan/sql.js';
import { retry } from '../runtime/backoff.js';
import { createLogger, errorMessage, type Logger } from '../runtime/log.js';
import { backfillOptions, type BackfillOptions, type ExecutionHooks, type StepContext } from './context.js';
import { copyAndSwap } from './copy-and-swap.js';
import { DEFAULT_FENCE_TIMING, FenceTimeoutError, type FenceReport, type FenceTiming } from './fence.js';
import { alterTable, createQuarantine, createTable } from './in-place.js';
import { createView, finishRecompute, modifyViewQuery, recomputeView } from './recompute.js';
import { swapBack } from './swap-back.js';

export { MigrationRefusedError } from './errors.js';
export type { BackfillOptions, ExecutionHooks, MigrationProgress } from './context.js';
export type { TableShape };

export interface ExecutorOptions {
  log?: Logger;
  fenceTiming?: FenceTiming;
  hooks?: ExecutionHooks;
  backfill?: Partial<BackfillOptions>;
}

/** Attempts of a step whose fence timed out (writers slow to pause, a critical section too long). */
const FENCE_ATTEMPTS = 3;

export class Executor {
  readonly fenceReports: FenceReport[] = [];
  private readonly cx: StepContext;

  constructor(ch: ClickHouse, opts: ExecutorOptions = {}) {
    this.cx = {
      ch,
      backfill: backfillOptions(opts.backfill),
      timing: opts.fenceTiming ?? DEFAULT_FENCE_TIMING,
      log: opts.log ?? createLogger({ level: 'warn' }),
      hooks: opts.hooks,
      fenceReports: this.fenceReports,
    };
  }

  async run(steps: Step[]): Promise<void> {
    for (const step of steps) {
      this.cx.log.info('step started', { step: describeAnyStep(step) });
      await this.runWithFenceRetries(step);
      this.cx.hooks?.onProgress?.(step, 'Done');
    }
  }

  /**
   * A fence that timed out changed nothing irreversible and every step resumes from its
   * ledger, so the step is simply run again a few times (with backoff), as the error message
   * promises; past them, a RetriesExhaustedError has the last timeout as its cause.
   */
  private runWithFenceRetries(step: Step): Promise<void> {
    return retry(() => (isPipeStep(step) ? runPipeStep(this.cx, step) : runTableStep(this.cx, step)), {
      retries: FENCE_ATTEMPTS - 1,
      retriable: (e) => e instanceof FenceTimeoutError,
      onRetry: (e, attempt, delayMs) =>
        this.cx.log.warn('fence timed out; running the step again', {
          step: describeAnyStep(step),
          attempt: attempt + 1,
          error: errorMessage(e),
          retryInMs: delayMs,
        }),
    });
  }
}

function runPipeStep(cx: StepContext, step: PipeStep): Promise<void> {
  switch (step.kind) {
    case 'ModifyViewQuery':
      return modifyViewQuery(cx, step);
    case 'CreateView':
      return createView(cx, step);
    case 'RecomputeView':
      return recomputeView(cx, step);
    case 'FinishRecompute':
      return finishRecompute(cx, step);
  }
}

function runTableStep(cx: StepContext, step: MigrationStep): Promise<void> {
  switch (step.kind) {
    case 'CreateDatabase':
      return cx.ch.command(`CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(step.database)}`);
    case 'CreateTable':
      return createTable(cx, step);
    case 'CreateQuarantine':
      return createQuarantine(cx, step);
    case 'AlterTable':
      return alterTable(cx, step);
    case 'CopyAndSwap':
      return copyAndSwap(cx, step);
    case 'SwapBack':
      return swapBack(cx, step);
  }
}
