// Which endpoints a `weir serve` process answers, and whether it is ready. A configured endpoint
// is served only once its query compiles against ClickHouse (DESCRIBE of the query with every
// placeholder bound to a harmless value: ClickHouse parses and analyses it, resolving tables,
// columns, functions and types, without reading data). Until then the process is not ready;
// an endpoint whose query does not compile answers 503 and is checked again with backoff (the
// table may just not exist yet). After a config change, an endpoint keeps its previous version
// while the new one is checked; a new version that does not compile is not served.
import type { ClickHouse } from '../../clickhouse/connection.js';
import { describeEndpointQuery } from '../../clickhouse/describe.js';
import { toClickHouseError } from '../../clickhouse/errors.js';
import type { CompiledEndpoint } from '../../plan/endpoint/compile.js';
import { retry, type BackoffPolicy } from '../../runtime/backoff.js';
import type { Logger } from '../../runtime/log.js';

export type EndpointState = { kind: 'checking'; detail?: string } | { kind: 'ready' } | { kind: 'failed'; reason: string };

const CHECK_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.2 };
const MAX_REASON = 300;

interface Check {
  endpoint: CompiledEndpoint;
  state: EndpointState;
  /** Aborted when the version is no longer configured, or the server stops: its retries end. */
  abort: AbortController;
}

const keyOf = (ep: CompiledEndpoint) => `${ep.name}@${ep.version}`;

/** Why a query does not compile, from ClickHouse's error, short enough for a log line and /readyz. */
function compileProblem(e: unknown): { retriable: boolean; reason: string } {
  const error = toClickHouseError(e);
  const first = error.message.split('\n')[0] ?? '';
  const text = first.length > MAX_REASON ? `${first.slice(0, MAX_REASON)}…` : first;
  return { retriable: error.retriable, reason: `${error.type || `code ${error.code}`}: ${text}` };
}

export class ServedEndpoints {
  private configured: CompiledEndpoint[] = [];
  private checks = new Map<string, Check>();
  /** The version last found to compile, per name: served while a newer one is still being checked. */
  private lastReady = new Map<string, CompiledEndpoint>();
  private routes = new Map<string, CompiledEndpoint>();
  private stopped = false;

  constructor(
    private readonly ch: Pick<ClickHouse, 'query'>,
    private readonly log: Logger,
    private readonly backoff: BackoffPolicy = CHECK_BACKOFF,
  ) {}

  /** Serves `endpoints` from now on: versions already checked keep their state, new ones are checked. */
  configure(endpoints: CompiledEndpoint[]): void {
    this.configured = endpoints;
    const keys = new Set(endpoints.map(keyOf));
    for (const [key, check] of this.checks) {
      if (!keys.has(key)) {
        check.abort.abort();
        this.checks.delete(key);
      }
    }
    const names = new Set(endpoints.map((e) => e.name));
    for (const name of this.lastReady.keys()) if (!names.has(name)) this.lastReady.delete(name);
    for (const ep of endpoints) {
      if (this.checks.has(keyOf(ep))) continue;
      const check: Check = { endpoint: ep, state: { kind: 'checking' }, abort: new AbortController() };
      this.checks.set(keyOf(ep), check);
      void this.runCheck(check);
    }
    this.rebuildRoutes();
  }

  /** What the handler routes to, by name: the version to run (or, when none can run, the configured one, refused by admit). */
  endpoints(): ReadonlyMap<string, CompiledEndpoint> {
    return this.routes;
  }

  configuredEndpoints(): readonly CompiledEndpoint[] {
    return this.configured;
  }

  /** The state of this exact version. */
  stateOf(ep: CompiledEndpoint): EndpointState {
    return this.checks.get(keyOf(ep))?.state ?? (this.lastReady.get(ep.name)?.version === ep.version ? { kind: 'ready' } : { kind: 'checking' });
  }

  /** True when every configured endpoint's query compiles; otherwise which do not, and why. */
  ready(): true | string {
    const waiting = this.configured.flatMap((ep) => {
      const state = this.stateOf(ep);
      if (state.kind === 'ready') return [];
      if (state.kind === 'failed') return [`endpoint ${ep.name}: its query does not compile (${state.reason})`];
      return [`endpoint ${ep.name}: checking its query against ClickHouse${state.detail ? ` (${state.detail})` : ''}`];
    });
    return waiting.length === 0 ? true : waiting.join('; ');
  }

  /** Waits for nothing; stops the checks still scheduled. */
  stop(): void {
    this.stopped = true;
    for (const check of this.checks.values()) check.abort.abort();
  }

  private rebuildRoutes(): void {
    const routes = new Map<string, CompiledEndpoint>();
    for (const ep of this.configured) {
      const state = this.stateOf(ep);
      const previous = this.lastReady.get(ep.name);
      routes.set(ep.name, state.kind === 'checking' && previous ? previous : ep);
    }
    this.routes = routes;
  }

  /** Check the version until its query compiles, with backoff; stops when the version is dropped. */
  private async runCheck(check: Check): Promise<void> {
    const ep = check.endpoint;
    try {
      await retry(() => describeEndpointQuery(this.ch, ep), {
        policy: this.backoff,
        retries: Infinity,
        // Every failure is checked again: the table or column the query reads may just not exist yet.
        retriable: () => true,
        signal: check.abort.signal,
        onRetry: (e, attempt, delayMs) => this.checkFailed(check, e, attempt, delayMs),
      });
    } catch {
      return; // aborted: this version is no longer configured, or the server stops
    }
    if (!this.isCurrent(check)) return;
    check.state = { kind: 'ready' };
    this.lastReady.set(ep.name, ep);
    this.log.info('endpoint query compiles; serving it', { endpoint: ep.name, namespace: ep.namespace, version: ep.version });
    this.rebuildRoutes();
  }

  private isCurrent(check: Check): boolean {
    return !this.stopped && this.checks.get(keyOf(check.endpoint)) === check;
  }

  /** A check that failed: its state says why (ClickHouse unreachable says nothing about the query), logged once per reason. */
  private checkFailed(check: Check, e: unknown, attempt: number, delayMs: number): void {
    if (!this.isCurrent(check)) return;
    const ep = check.endpoint;
    const problem = compileProblem(e);
    const next: EndpointState = problem.retriable ? { kind: 'checking', detail: problem.reason } : { kind: 'failed', reason: problem.reason };
    const before = check.state;
    check.state = next;
    if (next.kind === 'failed' && (before.kind !== 'failed' || before.reason !== next.reason)) {
      this.log.error('endpoint query does not compile against ClickHouse; the endpoint answers 503 and the server is not ready until it does', {
        endpoint: ep.name,
        namespace: ep.namespace,
        resource: ep.resource,
        version: ep.version,
        reason: next.reason,
        retryInMs: delayMs,
      });
    } else if (next.kind === 'checking' && attempt === 0) {
      this.log.warn('endpoint query not checked yet: ClickHouse did not answer; trying again', { endpoint: ep.name, reason: next.detail, retryInMs: delayMs });
    }
    this.rebuildRoutes();
  }
}
