// `weir events`: the events API of one DataSource as a Deployment runs it (`<name>-events`).
// The module of events.ts behind an HTTP server, with what a shared deployment adds: bearer
// tokens from a mounted Secret (spec.ingestion.http.auth), limits.requestsPerSecond, the body
// size limit, metrics, the rows accepted and quarantined reported to weir.events_progress (the
// operator sums them into the DataSource's status), and a graceful stop: readiness false,
// requests in flight finished and answered, then exit.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { DataSource } from '../../api/datasource.js';
import { databaseOf, resourceName, tableOf } from '../../api/names.js';
import type { ClickHouse } from '../../clickhouse/connection.js';
import { sleep } from '../../runtime/backoff.js';
import { startHealthServer, type HealthServer } from '../../runtime/health-server.js';
import { errorMessage, type Logger } from '../../runtime/log.js';
import { EventsApi, MAX_BODY_BYTES, type Refusal } from '../events.js';
import { EventsMetrics } from '../events-metrics.js';
import type { InsertMode } from '../events-writer.js';
import { RateLimiter } from '../serve/rate-limit.js';
import { presentedToken, TokenStore } from '../serve/tokens.js';

export const EVENTS_PROGRESS_TABLE = `CREATE TABLE IF NOT EXISTS weir.events_progress (
    namespace String, datasource String, database String, table String, writer_id String,
    rows UInt64, quarantined UInt64, updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
  ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (namespace, datasource, writer_id)
  TTL toDateTime(updated_at) + INTERVAL 30 DAY
  COMMENT 'weir: rows each events API pod accepted and quarantined (cumulative per pod)'`;

/** The query parameter for a token, for clients that cannot set Authorization (navigator.sendBeacon). */
export const EVENTS_TOKEN_PARAM = 'token';

export interface EventsServerOptions {
  dataSource: DataSource;
  clickhouse: ClickHouse;
  log: Logger;
  host?: string;
  port: number;
  metricsHost?: string;
  metricsPort: number;
  /** Where the tokens Secret is mounted (`<dir>/<secret>/<key>`). */
  tokensDir?: string;
  /** After SIGTERM, how long /readyz says false while requests are still taken (default 0). */
  shutdownDelayMs?: number;
  /** Longest the requests in flight at a stop may take to finish; then their connections are cut (default 30 s). */
  drainTimeoutMs?: number;
  maxBodyBytes?: number;
  maxFenceWaitMs?: number;
  mode?: InsertMode;
  /** This process's writer id (the pod name): its progress row and fence id. */
  writerId: string;
  /** How often the counts are written to weir.events_progress (default 5 s). */
  progressIntervalMs?: number;
}

export interface EventsServer {
  port: number;
  metricsPort: number;
  /** Readiness false, stop accepting, finish in-flight requests, report, close. */
  stop(): Promise<void>;
}

export async function startEventsServer(opts: EventsServerOptions): Promise<EventsServer> {
  const { log, clickhouse, dataSource: ds } = opts;
  const http = ds.spec.ingestion?.http;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = new EventsMetrics(registry);
  const secret = http?.auth?.tokensSecretRef?.name;
  const tokens = secret ? new TokenStore(opts.tokensDir, () => [secret], log) : undefined;
  const limiter = new RateLimiter();
  const rate = http?.limits?.requestsPerSecond;
  const name = ds.metadata.name;

  const admit = (req: IncomingMessage, url: URL): Refusal | undefined => {
    if (tokens && secret) {
      const token = presentedToken(req.headers.authorization, url.searchParams.get(EVENTS_TOKEN_PARAM));
      if (token === undefined)
        return {
          status: 401,
          error: `DataSource ${name} takes events with a token: send Authorization: Bearer <token> (or ?${EVENTS_TOKEN_PARAM}=<token>)`,
          headers: { 'www-authenticate': 'Bearer realm="weir"' },
        };
      if (tokens.check(secret, token) !== 'allowed')
        return {
          status: 403,
          error: `the token is not allowed to send events to DataSource ${name}`,
          headers: { 'www-authenticate': 'Bearer realm="weir", error="invalid_token"' },
        };
    }
    if (rate !== undefined) {
      const decision = limiter.take(name, rate);
      if (!decision.allowed)
        return {
          status: 429,
          error: `DataSource ${name} takes at most ${rate} requests per second per pod (spec.ingestion.http.limits.requestsPerSecond); slow down`,
          headers: { 'retry-after': String(decision.retryAfterSeconds ?? 1) },
        };
    }
    return undefined;
  };

  const events = new EventsApi(clickhouse, (n) => (resourceName(n) === name ? ds : undefined), log, {
    maxBodyBytes: opts.maxBodyBytes ?? http?.limits?.maxBodyBytes ?? MAX_BODY_BYTES,
    ...(opts.maxFenceWaitMs !== undefined ? { maxFenceWaitMs: opts.maxFenceWaitMs } : {}),
    ...(opts.mode ? { mode: opts.mode } : {}),
    metrics,
    admit,
    writerId: opts.writerId,
  });

  // Progress: cumulative per pod, written when it changed.
  let reported = '';
  const report = async (): Promise<void> => {
    const t = events.totals.get(`${ds.metadata.namespace ?? 'default'}/${name}`) ?? { rows: 0, quarantined: 0 };
    const now = `${t.rows}/${t.quarantined}`;
    if (now === reported) return;
    await clickhouse.insert('weir.events_progress', [
      {
        namespace: ds.metadata.namespace ?? 'default',
        datasource: name,
        database: databaseOf(ds),
        table: tableOf(ds),
        writer_id: opts.writerId,
        rows: t.rows,
        quarantined: t.quarantined,
      },
    ]);
    reported = now;
  };
  await tokens?.start(1000);
  // weir's database may not exist yet (the operator creates it with the first migration or fence).
  await clickhouse.command('CREATE DATABASE IF NOT EXISTS weir').catch(() => undefined);
  await clickhouse.command(EVENTS_PROGRESS_TABLE).catch((e: unknown) => log.warn('events progress table not created yet', { error: errorMessage(e) }));
  const progressTimer = setInterval(
    () => void report().catch((e: unknown) => log.debug('events progress not reported', { error: errorMessage(e) })),
    opts.progressIntervalMs ?? 5000,
  );
  progressTimer.unref();

  let draining = false;
  let inFlight = 0;
  const idle: (() => void)[] = [];
  const open = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    inFlight++;
    open.add(res);
    // While stopping, every answer closes its connection, so keep-alive clients reconnect elsewhere.
    if (draining) res.setHeader('connection', 'close');
    void (async () => {
      if (await events.handle(req, res)) return;
      const path = (req.url ?? '/').split('?')[0];
      const body = `${JSON.stringify({ error: `no route ${path}: POST /v0/events?name=${name}` })}\n`;
      res.writeHead(404, { 'content-type': 'application/json' }).end(body);
    })()
      .catch((e: unknown) => {
        log.error('events request failed', { error: errorMessage(e) });
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"internal error"}\n');
      })
      .finally(() => {
        inFlight--;
        open.delete(res);
        if (inFlight === 0) idle.splice(0).forEach((resolve) => resolve());
      });
  });
  // Body reads are bounded by the size limit; a client that stalls mid-body is cut after this long.
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });

  let health: HealthServer;
  try {
    health = await startHealthServer({
      host: opts.metricsHost ?? opts.host ?? '0.0.0.0',
      port: opts.metricsPort,
      registry,
      ready: () => (draining ? 'shutting down' : true),
    });
  } catch (e) {
    server.close();
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  log.info('events server listening', { port, metricsPort: health.port, datasource: name, auth: secret !== undefined, requestsPerSecond: rate });

  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    draining = true;
    for (const res of open) if (!res.headersSent) res.setHeader('connection', 'close');
    log.info('events server stopping: readiness false', { inFlight, shutdownDelayMs: opts.shutdownDelayMs ?? 0 });
    if (opts.shutdownDelayMs) await sleep(opts.shutdownDelayMs);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const drained = inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => idle.push(resolve));
    const deadline = new AbortController();
    let cut = false;
    await Promise.race([
      drained,
      sleep(opts.drainTimeoutMs ?? 30_000, deadline.signal).then(
        () => (cut = true),
        () => undefined,
      ),
    ]);
    deadline.abort();
    if (cut) log.warn('events server stopping: requests still running were cut', { inFlight });
    server.closeAllConnections();
    await closed;
    clearInterval(progressTimer);
    await report().catch((e: unknown) => log.warn('events progress not reported at stop', { error: errorMessage(e) }));
    tokens?.stop();
    await events.close();
    await health.close();
    log.info('events server stopped');
  };
  return { port, metricsPort: health.port, stop: () => (stopping ??= stop()) };
}
