// `weir serve --config endpoints.json`: the endpoint server of an Endpoint's query Deployment.
import { connectClickHouse } from '../clickhouse/connection.js';
import { createLogger } from '../runtime/log.js';
import { startEndpointServer } from '../workers/serve/server.js';
import { stopOnSignal } from './stop-on-signal.js';

export interface ServeFlags {
  config: string;
  port: number;
  host: string;
  metricsPort: number;
  clickhouseUrl?: string;
  tokensDir?: string;
  logFormat: 'json' | 'pretty';
  reloadInterval: number;
  shutdownDelay: number;
}

export async function runServe(flags: ServeFlags): Promise<void> {
  const log = createLogger({ component: 'serve', format: flags.logFormat });
  if (!flags.clickhouseUrl) throw new Error('no ClickHouse to query: pass --clickhouse-url or set WEIR_CLICKHOUSE_URL');
  const user = process.env.WEIR_CLICKHOUSE_USER;
  const clickhouse = connectClickHouse({
    url: flags.clickhouseUrl,
    ...(user ? { username: user, password: process.env.WEIR_CLICKHOUSE_PASSWORD ?? '' } : {}),
    // Endpoint queries have their own deadlines; this bounds the rest (DESCRIBE, request log inserts).
    requestTimeoutMs: 5 * 60_000,
    logger: log,
  });
  let server;
  try {
    server = await startEndpointServer({
      configPath: flags.config,
      clickhouse,
      log,
      host: flags.host,
      port: flags.port,
      metricsPort: flags.metricsPort,
      ...(flags.tokensDir !== undefined ? { tokensDir: flags.tokensDir } : {}),
      reloadIntervalMs: flags.reloadInterval,
      shutdownDelayMs: flags.shutdownDelay,
    });
  } catch (e) {
    await clickhouse.close();
    throw e;
  }
  stopOnSignal(server, clickhouse, log, 'endpoint server');
}
