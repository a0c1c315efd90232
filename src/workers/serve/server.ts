// `weir serve`: the endpoint server process the operator runs for Endpoints. The handler of
// handler.ts behind an HTTP server, with what a shared deployment adds around it: the
// endpoints from a JSON config file (a mounted ConfigMap, reloaded when it changes), bearer
// tokens (static, or signed with the keys of a mounted Secret), a per-endpoint and a per-token rate limit, the request log table, readiness gated on every query
// compiling, and a graceful stop.
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { FORMATS, JWT_ALGORITHMS } from '../../api/endpoint.js';
import type { ClickHouse } from '../../clickhouse/connection.js';
import { sleep } from '../../runtime/backoff.js';
import { startHealthServer, type HealthServer } from '../../runtime/health-server.js';
import { errorMessage, type Logger } from '../../runtime/log.js';
import { TOKEN_PARAM, type CompiledEndpoint } from '../../plan/endpoint/compile.js';
import { EndpointAuthenticator } from './auth.js';
import { createEndpointHandler, type Admission, type Failure } from './handler.js';
import { SigningKeyStore } from './jwt.js';
import { EndpointMetrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { RequestLog, RequestLogMetrics } from './request-log.js';
import { ServedEndpoints } from './served.js';
import { TokenStore } from './tokens.js';

/** The config file: exactly what the operator writes into the ConfigMap key endpoints.json. */
export interface ServeConfig {
  endpoints: CompiledEndpoint[];
}

export interface EndpointServerOptions {
  configPath: string;
  clickhouse: ClickHouse;
  log: Logger;
  host?: string;
  port: number;
  metricsPort: number;
  /** Where the tokens and signing-key Secrets are mounted (`<dir>/<secret>/<key>`); without it, endpoints with auth refuse every token. */
  tokensDir?: string;
  /** How often the config file and the token directories are read again (default 1 s). */
  reloadIntervalMs?: number;
  /** After SIGTERM, how long the server keeps answering with /readyz false before it stops accepting (default 0). */
  shutdownDelayMs?: number;
  requestLogFlushMs?: number;
}

export interface EndpointServer {
  port: number;
  metricsPort: number;
  /** Readiness false, stop accepting, finish in-flight requests, flush the request log, close. */
  stop(): Promise<void>;
}

const NAME = /^[A-Za-z0-9_]+$/;

/** The endpoints of a config file's text, or what is wrong with it (naming the entry and field). */
export function parseServeConfig(text: string, source: string): CompiledEndpoint[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not JSON (${errorMessage(e)})`);
  }
  const endpoints = (parsed as Partial<ServeConfig> | null)?.endpoints;
  if (!Array.isArray(endpoints)) throw new Error(`${source}: expected {"endpoints": [...]}`);
  const names = new Set<string>();
  endpoints.forEach((ep: Partial<CompiledEndpoint> | null, i) => {
    const where = `${source}: endpoints[${i}]${typeof ep?.name === 'string' ? ` (${ep.name})` : ''}`;
    const need = (ok: boolean, field: string, what: string) => {
      if (!ok) throw new Error(`${where}.${field}: expected ${what}`);
    };
    need(typeof ep === 'object' && ep !== null, '', 'an object');
    if (!ep) return;
    need(typeof ep.name === 'string' && NAME.test(ep.name), 'name', 'a ClickHouse-style name (letters, digits, _)');
    need(!names.has(ep.name ?? ''), 'name', 'a name no other entry has');
    names.add(ep.name ?? '');
    for (const field of ['namespace', 'resource', 'pipe', 'node', 'sql', 'database', 'version'] as const)
      need(typeof ep[field] === 'string', field, 'a string');
    need(
      Array.isArray(ep.params) && ep.params.every((p) => typeof p?.name === 'string' && typeof p.type === 'string' && typeof p.required === 'boolean'),
      'params',
      'a list of {name, type, required}',
    );
    need(
      Array.isArray(ep.formats) && ep.formats.length > 0 && ep.formats.every((f) => (FORMATS as readonly string[]).includes(f)),
      'formats',
      `a list of ${FORMATS.join(', ')}`,
    );
    const limits = ep.limits;
    need(typeof limits?.maxExecutionTimeMs === 'number' && limits.maxExecutionTimeMs > 0, 'limits.maxExecutionTimeMs', 'a positive number');
    need(typeof limits?.maxResultRows === 'number' && limits.maxResultRows > 0, 'limits.maxResultRows', 'a positive number');
    need(
      limits?.requestsPerSecond === undefined || (typeof limits.requestsPerSecond === 'number' && limits.requestsPerSecond > 0),
      'limits.requestsPerSecond',
      'a positive number',
    );
    const secretName = (name: unknown) => typeof name === 'string' && name !== '' && !name.includes('/') && !name.startsWith('.');
    need(ep.auth === undefined || ep.auth.tokensSecret !== undefined || ep.auth.jwt !== undefined, 'auth', 'tokensSecret, jwt or both');
    need(ep.auth?.tokensSecret === undefined || secretName(ep.auth.tokensSecret), 'auth.tokensSecret', 'a Secret name');
    const jwt = ep.auth?.jwt;
    if (jwt !== undefined) {
      need(secretName(jwt.secret), 'auth.jwt.secret', 'a Secret name');
      need(typeof jwt.issuer === 'string' && jwt.issuer !== '', 'auth.jwt.issuer', 'a string');
      need(typeof jwt.audience === 'string' && jwt.audience !== '', 'auth.jwt.audience', 'a string');
      need(
        Array.isArray(jwt.algorithms) && jwt.algorithms.length > 0 && jwt.algorithms.every((a) => (JWT_ALGORITHMS as readonly string[]).includes(a)),
        'auth.jwt.algorithms',
        `a list of ${JWT_ALGORITHMS.join(', ')}`,
      );
      need(typeof jwt.clockSkewSeconds === 'number' && jwt.clockSkewSeconds >= 0, 'auth.jwt.clockSkewSeconds', 'a number of seconds');
    }
    need(!ep.auth || !(ep.params ?? []).some((p) => p.name === TOKEN_PARAM), 'params', `no parameter named ${TOKEN_PARAM} when auth is set`);
  });
  return endpoints;
}

export async function startEndpointServer(opts: EndpointServerOptions): Promise<EndpointServer> {
  const { log, clickhouse } = opts;
  const reloadIntervalMs = opts.reloadIntervalMs ?? 1000;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = new EndpointMetrics(registry);
  const requestLog = new RequestLog(clickhouse, log, new RequestLogMetrics(registry), { flushIntervalMs: opts.requestLogFlushMs ?? 1000 });
  const served = new ServedEndpoints(clickhouse, log);
  const limiter = new RateLimiter();
  const tokens = new TokenStore(opts.tokensDir, () => EndpointAuthenticator.secretsOf(served.configuredEndpoints()).tokens, log);
  const keys = new SigningKeyStore(opts.tokensDir, () => EndpointAuthenticator.secretsOf(served.configuredEndpoints()).keys, log);
  const tokenLimiter = new RateLimiter();
  const authenticator = new EndpointAuthenticator({ tokens, keys, tokenLimiter });

  let configText = '';
  const loadConfig = async (initial: boolean): Promise<void> => {
    let text: string;
    let endpoints: CompiledEndpoint[];
    try {
      text = readFileSync(opts.configPath, 'utf8');
      if (text === configText) return;
      endpoints = parseServeConfig(text, opts.configPath);
    } catch (e) {
      if (initial) throw e;
      log.error('endpoint config not reloaded; still serving the previous one', { config: opts.configPath, error: errorMessage(e) });
      return;
    }
    configText = text;
    served.configure(endpoints);
    limiter.retain(new Set(endpoints.map((e) => e.name)));
    // A Secret the new config names is read before its endpoint can be called.
    await Promise.all([tokens.reload(), keys.reload()]);
    log.info(initial ? 'endpoint config loaded' : 'endpoint config reloaded', {
      config: opts.configPath,
      endpoints: endpoints.map((e) => ({
        name: e.name,
        version: e.version,
        ...(e.auth?.tokensSecret !== undefined ? { tokensSecret: e.auth.tokensSecret } : {}),
        ...(e.auth?.jwt ? { jwtSecret: e.auth.jwt.secret } : {}),
      })),
    });
  };
  await loadConfig(true);
  await tokens.start(reloadIntervalMs);
  await keys.start(reloadIntervalMs);
  // Per-token buckets are as many as recent callers: the full ones go (losslessly) on the same interval.
  const forgetFull = setInterval(() => tokenLimiter.forgetFull(), reloadIntervalMs);
  forgetFull.unref();
  // Polling stat: a ConfigMap volume update swaps a symlink, which fs.watch on the file does not see.
  let reloading: Promise<void> = Promise.resolve();
  const onConfigChange = (now: Stats, before: Stats) => {
    if (now.mtimeMs === before.mtimeMs && now.ino === before.ino && now.size === before.size) return;
    reloading = reloading.then(() => loadConfig(false));
  };
  watchFile(opts.configPath, { interval: reloadIntervalMs, persistent: false }, onConfigChange);
  await requestLog.start();

  const admit = async (req: IncomingMessage, url: URL, ep: CompiledEndpoint): Promise<Admission | undefined> => {
    const authorized = await authenticator.admit(req, url, ep);
    if (authorized?.refused) return authorized;
    const refuse = (refused: Failure): Admission => ({ ...authorized, refused });
    const state = served.stateOf(ep);
    if (state.kind !== 'ready') {
      const why =
        state.kind === 'failed'
          ? `its query does not compile against ClickHouse (${state.reason.split(':')[0]})`
          : 'its query is still being checked against ClickHouse';
      return refuse({ status: 503, error: `${ep.name} is not served: ${why}; try again later`, retryAfterSeconds: 5 });
    }
    const rate = ep.limits.requestsPerSecond;
    if (rate !== undefined) {
      const decision = limiter.take(ep.name, rate);
      if (!decision.allowed) {
        return refuse({
          status: 429,
          error: `${ep.name} takes at most ${rate} requests per second per server (limits.requestsPerSecond); slow down`,
          retryAfterSeconds: decision.retryAfterSeconds ?? 1,
        });
      }
    }
    return authorized;
  };

  const handler = createEndpointHandler({
    clickhouse,
    endpoints: () => served.endpoints(),
    log,
    metrics,
    admit,
    onRequest: (record) => requestLog.record(record),
  });

  let draining = false;
  let inFlight = 0;
  const idle: (() => void)[] = [];
  /** Answers not yet begun: told to close their connection once stopping starts. */
  const open = new Set<ServerResponse>();
  const http: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    open.add(res);
    // While stopping, every answer closes its connection, so keep-alive clients reconnect elsewhere.
    if (draining) res.setHeader('Connection', 'close');
    // Done once answered and recorded in the request log's buffer, so that a stop flushes it.
    void handler(req, res).finally(() => {
      inFlight--;
      open.delete(res);
      if (inFlight === 0) idle.splice(0).forEach((resolve) => resolve());
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });

  let health: HealthServer;
  try {
    health = await startHealthServer({
      host: opts.host ?? '0.0.0.0',
      port: opts.metricsPort,
      registry,
      ready: () => (draining ? 'shutting down' : served.ready()),
    });
  } catch (e) {
    http.close();
    throw e;
  }
  const port = (http.address() as AddressInfo).port;
  log.info('endpoint server listening', { port, metricsPort: health.port, endpoints: served.configuredEndpoints().length });

  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    draining = true;
    // Requests in flight close their connection after answering too. Idle keep-alive connections are
    // not closed before the delay is over: a client may be sending on one at that moment (it would get
    // a reset); until then each is answered with Connection: close, which a client cannot race.
    for (const res of open) if (!res.headersSent) res.setHeader('Connection', 'close');
    log.info('endpoint server stopping: readiness false', { inFlight, shutdownDelayMs: opts.shutdownDelayMs ?? 0 });
    if (opts.shutdownDelayMs) await sleep(opts.shutdownDelayMs);
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeIdleConnections();
    // The longest an in-flight query may still run, plus the handler's grace; then connections are cut.
    const longest = Math.max(0, ...served.configuredEndpoints().map((e) => e.limits.maxExecutionTimeMs)) + 5000;
    const drained = inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => idle.push(resolve));
    const deadline = new AbortController();
    let cut = false;
    await Promise.race([
      drained,
      sleep(longest, deadline.signal).then(
        () => (cut = true),
        () => undefined,
      ),
    ]);
    deadline.abort();
    if (cut) log.warn('endpoint server stopping: requests still running were cut', { inFlight });
    http.closeAllConnections();
    await closed;
    unwatchFile(opts.configPath, onConfigChange);
    await reloading;
    tokens.stop();
    keys.stop();
    clearInterval(forgetFull);
    served.stop();
    await requestLog.close();
    await health.close();
    log.info('endpoint server stopped');
  };
  return { port, metricsPort: health.port, stop: () => (stopping ??= stop()) };
}
