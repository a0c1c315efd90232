// `weir events --config datasource.yaml`: the events API pod of a DataSource with spec.ingestion.http.
import { hostname } from 'node:os';
import { connectClickHouse } from '../clickhouse/connection.js';
import { createLogger } from '../runtime/log.js';
import { startEventsServer } from '../workers/events/server.js';
import type { InsertMode } from '../workers/events-writer.js';
import { readDataSource } from './ingest.js';
import { stopOnSignal } from './stop-on-signal.js';

export interface EventsFlags {
  config: string;
  port: number;
  host: string;
  metricsPort: number;
  metricsHost?: string;
  clickhouseUrl?: string;
  tokensDir?: string;
  shutdownDelay: number;
  maxFenceWait: number;
  insertMode: InsertMode;
  logFormat: 'json' | 'pretty';
}

export async function runEvents(flags: EventsFlags): Promise<void> {
  const log = createLogger({ component: 'events', format: flags.logFormat });
  if (!flags.clickhouseUrl) throw new Error('no ClickHouse to write to: pass --clickhouse-url or set WEIR_CLICKHOUSE_URL');
  const ds = readDataSource(flags.config);
  if (!ds.spec.ingestion?.http) throw new Error(`${flags.config}: DataSource ${ds.metadata.name} has no spec.ingestion.http`);
  const user = process.env.WEIR_CLICKHOUSE_USER;
  const clickhouse = connectClickHouse({
    url: flags.clickhouseUrl,
    ...(user ? { username: user, password: process.env.WEIR_CLICKHOUSE_PASSWORD ?? '' } : {}),
    // A ClickHouse that hangs must look like one that is down: the client is told to retry.
    requestTimeoutMs: 60_000,
    logger: log,
  });
  let server;
  try {
    server = await startEventsServer({
      dataSource: ds,
      clickhouse,
      log,
      host: flags.host,
      port: flags.port,
      ...(flags.metricsHost ? { metricsHost: flags.metricsHost } : {}),
      metricsPort: flags.metricsPort,
      ...(flags.tokensDir !== undefined ? { tokensDir: flags.tokensDir } : {}),
      shutdownDelayMs: flags.shutdownDelay,
      maxFenceWaitMs: flags.maxFenceWait,
      mode: flags.insertMode,
      writerId: process.env.POD_NAME ?? `events-${hostname()}-${process.pid}`,
    });
  } catch (e) {
    await clickhouse.close();
    throw e;
  }
  stopOnSignal(server, clickhouse, log, 'events server');
}
