// The `weir ingest` subcommand's flags; the worker itself is loaded only when it runs (see main.ts).
import { Option, type Command } from 'commander';
import type { IngestFlags } from './ingest.js';

export function registerIngest(program: Command): void {
  program
    .command('ingest')
    .description('Run the Kafka ingestion worker of one DataSource (what the ingestion Deployment runs).')
    .requiredOption('--config <file>', 'the DataSource, as YAML or JSON (the operator mounts it from a ConfigMap)')
    .option('--clickhouse-url <url>', 'ClickHouse HTTP URL (or WEIR_CLICKHOUSE_URL)', process.env.WEIR_CLICKHOUSE_URL)
    .addOption(new Option('--metrics-port <port>', 'port for /healthz, /readyz and /metrics').default(9090).argParser(Number))
    .option('--metrics-host <host>', 'address for /healthz, /readyz and /metrics', '0.0.0.0')
    .option('--log-format <format>', 'json or pretty', 'json')
    .action(async (flags: IngestFlags) => (await import('./ingest.js')).runIngest(flags));
}
