// client-go's token-bucket rate limiter (QPS and burst): a request may go at once while tokens
// last, then one every 1/qps seconds. Reservations queue: each caller is told how long to wait.

export class TokenBucket {
  private tokens: number;
  private last: number;

  /** qps ≤ 0 means no limit. */
  constructor(
    private readonly qps: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = Math.max(1, burst);
    this.last = now();
  }

  /** Take a token; returns how many milliseconds the caller waits before sending (0: at once). */
  reserve(): number {
    if (this.qps <= 0) return 0;
    const t = this.now();
    this.tokens = Math.min(Math.max(1, this.burst), this.tokens + ((t - this.last) * this.qps) / 1000);
    this.last = t;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.qps);
  }
}
