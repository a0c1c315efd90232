// limits.requestsPerSecond (a bucket per endpoint) and a signed token's weir.dev/rps (a bucket per
// sub or jti), in each server process. A token bucket; it holds
// one second of requests (at least one; a burst of that size passes at once) and refills continuously.

export interface RateDecision {
  allowed: boolean;
  /** When refused: whole seconds until a request would pass (Retry-After), at least 1. */
  retryAfterSeconds?: number;
}

interface Bucket {
  rate: number;
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  /** `now` in milliseconds; passed in so that tests can drive the clock. */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Takes one request from `key`'s bucket of `rate` per second, if it has one. */
  take(key: string, rate: number): RateDecision {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (!bucket || bucket.rate !== rate) {
      bucket = { rate, tokens: Math.max(1, rate), at: now };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(Math.max(1, rate), bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / rate)) };
  }

  /** Forgets buckets that have refilled to full since their last request: the same as no bucket, so nothing is lost. */
  forgetFull(): void {
    const now = this.now();
    for (const [key, b] of this.buckets) if (b.tokens + ((now - b.at) / 1000) * b.rate >= Math.max(1, b.rate)) this.buckets.delete(key);
  }

  /** How many buckets are kept (per-token buckets are as many as recent callers). */
  get size(): number {
    return this.buckets.size;
  }

  /** Forgets buckets whose key is not in `keys` (endpoints no longer served). */
  retain(keys: ReadonlySet<string>): void {
    for (const key of this.buckets.keys()) if (!keys.has(key)) this.buckets.delete(key);
  }
}
