// The one error base of weir: every error says whether trying again can help (`retriable`,
// what retry() and the callers of every layer read) and why it happened in one word (`reason`).
// It lives in runtime, the lowest layer, so that api, plan, clickhouse, controllers, operator and
// workers can all extend it.

export interface WeirErrorInit {
  /** Whether the same call can succeed later; false when left out. */
  retriable?: boolean;
  /** Why, in one word: a CamelCase reason (like a condition's) or ClickHouse's error type; the class name when left out. */
  reason?: string;
  cause?: unknown;
}

export class WeirError extends Error {
  readonly retriable: boolean;
  readonly reason: string;

  constructor(message: string, init: WeirErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    // Subclasses keep their own name in stack traces and logs.
    this.name = new.target.name;
    this.retriable = init.retriable ?? false;
    this.reason = init.reason ?? new.target.name.replace(/Error$/, '');
  }
}

/**
 * Whether trying again can help. Read from the error's own `retriable` flag, so it also answers
 * for errors of libraries that carry one (kafkajs does); anything without the flag is not retriable.
 */
export const isRetriable = (e: unknown): boolean => typeof e === 'object' && e !== null && (e as { retriable?: unknown }).retriable === true;

/** retry() ran out of attempts on an error that stayed retriable: the last error is the cause. */
export class RetriesExhaustedError extends WeirError {
  constructor(
    readonly attempts: number,
    readonly lastError: unknown,
  ) {
    super(`gave up after ${attempts} attempt(s): ${lastError instanceof Error ? lastError.message : String(lastError)}`, {
      retriable: false,
      reason: 'RetriesExhausted',
      cause: lastError,
    });
  }
}
