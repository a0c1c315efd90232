// The `weir serve` subcommand's flags; the server itself is loaded only when it runs (see main.ts).
import { Option, type Command } from 'commander';
import type { ServeFlags } from './serve.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Serve Endpoints over HTTP from a compiled config (the query Deployment of an Endpoint).')
    .requiredOption('--config <file>', 'JSON {"endpoints": [...]} as the operator writes it (ConfigMap key endpoints.json); reloaded when it changes')
    .addOption(new Option('--port <port>', 'port for /v0/pipes (0: any free port)').default(8000).argParser(Number))
    .option('--host <host>', 'address to listen on (endpoints and metrics)', '0.0.0.0')
    .addOption(new Option('--metrics-port <port>', 'port for /healthz, /readyz and /metrics').default(9090).argParser(Number))
    .option(
      '--clickhouse-url <url>',
      'ClickHouse HTTP URL (or WEIR_CLICKHOUSE_URL; user and password from WEIR_CLICKHOUSE_USER, WEIR_CLICKHOUSE_PASSWORD)',
      process.env.WEIR_CLICKHOUSE_URL,
    )
    .option('--tokens-dir <dir>', 'where the tokens Secrets are mounted, one directory per Secret (<dir>/<secret>/<key>)')
    .addOption(new Option('--log-format <format>', 'json or pretty').choices(['json', 'pretty']).default('json'))
    .addOption(new Option('--reload-interval <ms>', 'how often the config file and the tokens are read again').default(1000).argParser(Number))
    .addOption(
      new Option('--shutdown-delay <ms>', 'after SIGTERM, answer this long with /readyz false before refusing connections').default(0).argParser(Number),
    )
    .action(async (flags: ServeFlags) => (await import('./serve.js')).runServe(flags));
}
