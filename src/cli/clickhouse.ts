import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { startClickHouseServer } from '../clickhouse/server.js';
import { createLogger } from '../runtime/log.js';

export interface ClickHouseFlags {
  dataDir: string;
  host: string;
  port: number;
  user?: string;
  password?: string;
}

/** `weir clickhouse`: the embedded engine (chDB) behind the ClickHouse HTTP protocol, until SIGTERM. */
export async function runClickHouseCommand(flags: ClickHouseFlags): Promise<void> {
  const log = createLogger({ component: 'clickhouse' });
  const dataDir = resolve(flags.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const server = await startClickHouseServer({
    dataDir,
    host: flags.host,
    port: flags.port,
    logger: log,
    ...(flags.user ? { user: flags.user, password: flags.password ?? '' } : {}),
  });
  log.info('clickhouse listening', { url: server.url, dataDir });
  const stop = (signal: string) => {
    log.info('signal received', { signal });
    void server.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
