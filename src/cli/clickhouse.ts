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
  allowHost?: string[];
  allowOrigin?: string[];
  allowRemoteFunctions?: boolean;
  maxServerMemory?: number;
}

/**
 * Who must authenticate, by ClickHouse's convention: a password alone is the password of user `default`,
 * and a user alone has the empty password. Neither: no authentication.
 */
export function credentialsOf(flags: Pick<ClickHouseFlags, 'user' | 'password'>): { user: string; password: string } | undefined {
  const user = flags.user || undefined;
  const password = flags.password || undefined;
  if (user === undefined && password === undefined) return undefined;
  return { user: user ?? 'default', password: password ?? '' };
}

/** `weir clickhouse`: the embedded engine (chDB) behind the ClickHouse HTTP protocol, until SIGTERM. */
export async function runClickHouseCommand(flags: ClickHouseFlags): Promise<void> {
  const log = createLogger({ component: 'clickhouse' });
  const dataDir = resolve(flags.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const credentials = credentialsOf(flags);
  const server = await startClickHouseServer({
    dataDir,
    host: flags.host,
    port: flags.port,
    logger: log,
    ...(credentials ?? {}),
    allowHosts: flags.allowHost ?? [],
    allowOrigins: flags.allowOrigin ?? [],
    allowRemoteFunctions: flags.allowRemoteFunctions === true,
    ...(flags.maxServerMemory !== undefined ? { maxServerMemoryBytes: flags.maxServerMemory } : {}),
  });
  log.info('clickhouse listening', {
    url: server.url,
    dataDir,
    userFiles: resolve(dataDir, 'user_files'),
    authentication: credentials ? `user ${credentials.user}` : 'none',
  });
  const stop = (signal: string) => {
    log.info('signal received', { signal });
    void server.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
