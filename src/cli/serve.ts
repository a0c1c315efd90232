// `weir serve --config endpoints.json`: the endpoint server of an Endpoint's query Deployment.
import { Option, type Command } from 'commander';
import { connectClickHouse } from '../clickhouse/connection.js';
import { createLogger, errorMessage } from '../runtime/log.js';
import { startEndpointServer } from '../workers/serve/server.js';

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
  const stop = (signal: string) => {
    log.info('signal received', { signal });
    void server
      .stop()
      .then(() => clickhouse.close())
      .then(
        () => process.exit(0),
        (e: unknown) => {
          log.error('endpoint server did not stop cleanly', { error: errorMessage(e) });
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Serve Endpoints over HTTP from a compiled config (the query Deployment of an Endpoint).')
    .requiredOption('--config <file>', 'JSON {"endpoints": [...]} as the operator writes it (ConfigMap key endpoints.json); reloaded when it changes')
    .addOption(new Option('--port <port>', 'port for /v0/pipes (0: any free port)').default(8000).argParser(Number))
    .option('--host <host>', 'address to listen on (endpoints and metrics)', '0.0.0.0')
    .addOption(new Option('--metrics-port <port>', 'port for /healthz, /readyz and /metrics').default(9090).argParser(Number))
    .option('--clickhouse-url <url>', 'ClickHouse HTTP URL (or WEIR_CLICKHOUSE_URL; user and password from WEIR_CLICKHOUSE_USER, WEIR_CLICKHOUSE_PASSWORD)', process.env.WEIR_CLICKHOUSE_URL)
    .option('--tokens-dir <dir>', 'where the tokens Secrets are mounted, one directory per Secret (<dir>/<secret>/<key>)')
    .addOption(new Option('--log-format <format>', 'json or pretty').choices(['json', 'pretty']).default('json'))
    .addOption(new Option('--reload-interval <ms>', 'how often the config file and the tokens are read again').default(1000).argParser(Number))
    .addOption(new Option('--shutdown-delay <ms>', 'after SIGTERM, answer this long with /readyz false before refusing connections').default(0).argParser(Number))
    .action(runServe);
}
