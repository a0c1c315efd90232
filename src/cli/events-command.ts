// The `weir events` subcommand's flags; the server itself is loaded only when it runs (see main.ts).
import { Option, type Command } from 'commander';
import type { EventsFlags } from './events.js';

export function registerEvents(program: Command): void {
  program
    .command('events')
    .description('Serve the HTTP events API of one DataSource (what the <name>-events Deployment of spec.ingestion.http runs).')
    .requiredOption('--config <file>', 'the DataSource, as YAML or JSON (the operator mounts it from a ConfigMap)')
    .addOption(new Option('--port <port>', 'port for POST /v0/events (0: any free port)').default(8000).argParser(Number))
    .option('--host <host>', 'address to listen on', '0.0.0.0')
    .addOption(new Option('--metrics-port <port>', 'port for /healthz, /readyz and /metrics').default(9090).argParser(Number))
    .option('--metrics-host <host>', 'address for /healthz, /readyz and /metrics (default: --host)')
    .option(
      '--clickhouse-url <url>',
      'ClickHouse HTTP URL (or WEIR_CLICKHOUSE_URL; user and password from WEIR_CLICKHOUSE_USER, WEIR_CLICKHOUSE_PASSWORD)',
      process.env.WEIR_CLICKHOUSE_URL,
    )
    .option('--tokens-dir <dir>', 'where the tokens Secret of spec.ingestion.http.auth is mounted (<dir>/<secret>/<key>)')
    .addOption(
      new Option('--shutdown-delay <ms>', 'after SIGTERM, take requests this long with /readyz false before refusing connections').default(0).argParser(Number),
    )
    .addOption(
      new Option('--max-fence-wait <ms>', 'longest a request waits at a migration fence before a 503 with Retry-After').default(10_000).argParser(Number),
    )
    .addOption(
      new Option('--insert-mode <mode>', 'coalesce concurrent requests into one insert, or async_insert (wait_for_async_insert=1)')
        .choices(['coalesce', 'async_insert'])
        .default('coalesce'),
    )
    .addOption(new Option('--log-format <format>', 'json or pretty').choices(['json', 'pretty']).default('json'))
    .action(async (flags: EventsFlags) => (await import('./events.js')).runEvents(flags));
}
