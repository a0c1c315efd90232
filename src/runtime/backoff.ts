// The one backoff and retry helper for reconciles, ingestion and HTTP calls (kafkajs's shape:
// exponential backoff with jitter, a bail for errors no retry can fix, a distinct error when
// the retries run out, fast settings swapped in by tests through the options).
import { isRetriable, RetriesExhaustedError } from './errors.js';

export { isRetriable, RetriesExhaustedError } from './errors.js';

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** Fraction of the delay randomised, 0..1: spreads retries of many clients apart. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 30_000, factor: 2, jitter: 0.2 };

/** Delay before retry number `attempt` (0-based): exponential, capped, jittered downwards. */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, attempt));
  return Math.round(base * (1 - policy.jitter * random()));
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** Stops retry() at once: it rejects with `error` as given, whatever `retriable` says of it. */
export type Bail = (error: unknown) => never;

export interface RetryOptions {
  policy?: BackoffPolicy;
  /** Retries after the first attempt (default 5); Infinity retries until `signal` aborts. */
  retries?: number;
  /** Which errors are worth another attempt (default: isRetriable, the error's own flag). */
  retriable?: (e: unknown) => boolean;
  /** Called before each wait, with the error, the attempt that failed (0-based) and the delay. */
  onRetry?: (e: unknown, attempt: number, delayMs: number) => void;
  /** Aborting stops the waiting and the retrying: retry() rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The jitter's randomness, 0..1 (default Math.random): tests pin it. */
  random?: () => number;
}

/** Thrown through `fn` by bail(); retry() unwraps it. */
class Bailed {
  constructor(readonly error: unknown) {}
}

/**
 * Run `fn` until it resolves. A failure is retried after backoffDelay() when `retriable` says so
 * and the budget allows; otherwise retry() rejects with the error itself (not retriable, or
 * bailed), with RetriesExhaustedError (the budget ran out; the last error is its cause), or with
 * the signal's reason (aborted).
 */
export async function retry<T>(fn: (attempt: number, bail: Bail) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const { policy = DEFAULT_BACKOFF, retries = 5, retriable = isRetriable, onRetry, signal, random = Math.random } = opts;
  let bailed: Bailed | undefined;
  const bail: Bail = (error) => {
    bailed = new Bailed(error);
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- a marker, never seen outside: retry() unwraps it
    throw bailed;
  };
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw signal.reason;
    try {
      return await fn(attempt, bail);
    } catch (e) {
      // A bail wins even when fn caught it and threw something else.
      if (bailed) throw bailed.error;
      if (signal?.aborted) throw signal.reason;
      if (!retriable(e)) throw e;
      if (attempt >= retries) throw new RetriesExhaustedError(attempt + 1, e);
      const delay = backoffDelay(attempt, policy, random);
      onRetry?.(e, attempt, delay);
      await sleep(delay, signal);
    }
  }
}
