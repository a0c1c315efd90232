#!/usr/bin/env node
// weir's single entry point: the operator, the workers and the developer commands are
// subcommands of one binary (and one container image). Also runs as `kubectl weir`.
//
// Each subcommand's module is imported when it runs, so a pod loads only what its role needs
// (the embedded ClickHouse of `weir dev` alone is about 150 MiB).
import { Command, Option } from 'commander';
import type { ProjectFlags } from './plan.js';
import { registerEvents } from './events-command.js';
import { registerIngest } from './ingest-command.js';
import { registerServe } from './serve-command.js';
import { registerToken } from './token-command.js';

const program = new Command()
  .name('weir')
  .description('Real-time data projects on ClickHouse, as Kubernetes resources (DataSource, Pipe, Endpoint).')
  .showHelpAfterError();

program
  .command('validate')
  .description('Validate DataSource/Pipe/Endpoint YAML offline with the CRD schemas; exits 1 on any error.')
  .requiredOption('-f, --filename <path>', 'folder (searched recursively) or file of YAML')
  .option('-n, --namespace <ns>', 'namespace for resources that set none', 'default')
  .action(async (o: { filename: string; namespace: string }) => {
    const { runValidate } = await import('./validate.js');
    process.exitCode = runValidate(o.filename, o.namespace);
  });

const projectCommand = (name: string, description: string) =>
  program
    .command(name)
    .description(description)
    .requiredOption('-f, --filename <path>', 'folder (searched recursively) or file of YAML')
    .option('-n, --namespace <ns>', 'namespace for resources that set none', 'default')
    .option('--clickhouse <url>', 'ClickHouse HTTP URL (e.g. http://127.0.0.1:8123)')
    .option('--user <user>', 'ClickHouse user')
    .option('--password <password>', 'ClickHouse password (or WEIR_CLICKHOUSE_PASSWORD)', process.env.WEIR_CLICKHOUSE_PASSWORD);

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** What the local ports of `weir dev` and `weir clickhouse` accept beyond this machine's own programs. */
const localAccessOptions = (command: Command): Command =>
  command
    .option('--allow-host <host>', "also answer requests for this Host name (repeatable; '*': any), besides localhost and IP addresses", collect)
    .option(
      '--allow-origin <origin>',
      "serve ClickHouse requests that browsers send from this web origin, e.g. http://localhost:3000 (repeatable; '*': any)",
      collect,
    )
    .option('--allow-remote-functions', 'let SQL use url(), s3(), remote(), mysql() and the other table functions and engines that reach other servers')
    .addOption(
      new Option(
        '--max-server-memory <bytes>',
        'memory all ClickHouse statements together may use (default: a quarter of the RAM; the process peaks at about four times it)',
      ).argParser(Number),
    );

projectCommand(
  'plan',
  'Print what weir would change in ClickHouse for the resources in a folder, changing nothing. Exit 0: up to date, 2: changes pending, 1: error.',
)
  .addOption(new Option('-o, --output <format>', 'text, or json for CI').choices(['text', 'json']).default('text'))
  .option('--sql', 'print the statements each step runs (markers shortened, no values)')
  .action(async (o: ProjectFlags) => {
    const { runPlan } = await import('./plan.js');
    process.exitCode = await runPlan(o);
  });

projectCommand('apply', 'Converge ClickHouse to the resources in a folder once (copy-and-swap migrations included).')
  .addOption(new Option('--fence-ttl <ms>', 'longest a fence may hold writers before it expires on its own').argParser(Number))
  .action(async (o: ProjectFlags) => {
    const { runApply } = await import('./plan.js');
    process.exitCode = await runApply({ ...o, clickhouse: o.clickhouse ?? 'http://127.0.0.1:8123' });
  });

program
  .command('test')
  .description(
    "Run a project's data tests (tests/*.yaml against fixtures/*.ndjson) on an embedded engine; --from DIR tests the migration from a previous version too. Exit 0: all pass, 1: any fails.",
  )
  .requiredOption('-f, --filename <dir>', 'the project folder (its fixtures/ and tests/ included)')
  .option('-n, --namespace <ns>', 'namespace for resources that set none', 'default')
  .option('--from <dir>', 'the previous version of the project: built and loaded first, then this folder is applied as a migration')
  .option('--update', 'rewrite expect.rows of endpoint cases from the answers (review the diff)')
  .option('--junit <file>', 'also write the results as JUnit XML')
  .addOption(new Option('-o, --output <format>', 'text, or json for CI').choices(['text', 'json']).default('text'))
  .option('--filter <text>', 'run only the cases whose file or name contains this text')
  .option('--clickhouse <url>', 'run against this ClickHouse server in scratch databases (dropped afterwards) instead of the embedded engine')
  .option('--user <user>', 'ClickHouse user')
  .addOption(new Option('--password <password>', 'ClickHouse password').default(process.env.WEIR_CLICKHOUSE_PASSWORD, '$WEIR_CLICKHOUSE_PASSWORD'))
  .action(async (o: import('./test-command.js').TestFlags) => {
    const { runTest } = await import('./test-command.js');
    process.exitCode = await runTest(o);
  });

localAccessOptions(
  program
    .command('dev')
    .description('Run a data project locally: embedded ClickHouse, the events API and the endpoints; saving a file applies it.')
    .requiredOption('-f, --filename <path>', 'folder of YAML (watched)')
    .option('-n, --namespace <ns>', 'namespace (and so database) for resources that set none', 'default')
    .addOption(new Option('--port <port>', 'port for /v0/events and /v0/pipes').default(7181).argParser(Number))
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .addOption(new Option('--clickhouse-port <port>', 'port of the embedded ClickHouse HTTP server').default(8123).argParser(Number))
    .option('--data-dir <dir>', 'where the embedded ClickHouse keeps its data (file() reads its user_files folder)', './.weir/data'),
).action(async (o: Parameters<typeof import('./dev.js').runDev>[0]) => (await import('./dev.js')).runDev(o));

program
  .command('crds')
  .description('Print the CustomResourceDefinitions (e.g. `weir crds | kubectl apply -f -`).')
  .action(async () => (await import('./crds.js')).runCrds());

program
  .command('operator')
  .description('Run the operator: watch DataSources, Pipes and Endpoints and converge the world to them.')
  .option('--kubeconfig <path>', 'kubeconfig file; default: in-cluster config or $KUBECONFIG')
  .option('--namespace <ns>', 'watch one namespace only (default: all)')
  .addOption(new Option('--metrics-port <port>', 'port for /healthz, /readyz and /metrics').default(8080).argParser(Number))
  .option('--metrics-host <host>', 'address to bind /healthz, /readyz, /metrics', '0.0.0.0')
  .option('--no-leader-election', 'act without a Lease (only for a single replica)')
  .option('--lease-namespace <ns>', 'namespace of the leader Lease', process.env.POD_NAMESPACE ?? 'weir-system')
  .option('--lease-name <name>', 'name of the leader Lease', 'weir-operator')
  .addOption(new Option('--lease-duration <ms>', 'lease validity without renewal').default(15000).argParser(Number))
  .addOption(new Option('--renew-deadline <ms>', 'leader gives up when it could not renew for this long').default(10000).argParser(Number))
  .addOption(new Option('--retry-period <ms>', 'candidates retry and the leader renews this often').default(2000).argParser(Number))
  .addOption(new Option('--resync <ms>', 'reconcile everything again this often').default(300000).argParser(Number))
  .addOption(
    new Option('--max-concurrent-reconciles <n>', "resources of one kind reconciled at once (controller-runtime's MaxConcurrentReconciles)")
      .default(4)
      .argParser(Number),
  )
  .addOption(new Option('--kube-api-qps <n>', 'API server requests per second after the burst (watches aside; 0: no limit)').default(100).argParser(Number))
  .addOption(new Option('--kube-api-burst <n>', 'API server requests sent at once before --kube-api-qps applies').default(200).argParser(Number))
  .addOption(
    new Option('--catalog-ttl <ms>', "how long reconciles share one read of a database's catalog (0: only reads in flight are shared)")
      .default(2000)
      .argParser(Number),
  )
  .option('--clickhouse-url <url>', 'ClickHouse HTTP URL the operator converges (or WEIR_CLICKHOUSE_URL)', process.env.WEIR_CLICKHOUSE_URL)
  .option('--clickhouse-user <user>', 'ClickHouse user (password from WEIR_CLICKHOUSE_PASSWORD)', process.env.WEIR_CLICKHOUSE_USER)
  .option(
    '--worker-image <image>',
    'image of the ingestion and endpoint pods (this image; `weir ingest|serve` chooses the role)',
    process.env.WEIR_WORKER_IMAGE ?? 'weir:dev',
  )
  .addOption(new Option('--worker-image-pull-policy <policy>', 'imagePullPolicy of worker pods').choices(['Always', 'IfNotPresent', 'Never']))
  .option('--worker-clickhouse-url <url>', 'ClickHouse URL worker pods use (default: --clickhouse-url)', process.env.WEIR_WORKER_CLICKHOUSE_URL)
  .option('--worker-clickhouse-password-secret <name>', 'Secret in each namespace whose `password` key worker pods use for ClickHouse')
  .option('--worker-service-account <name>', 'ServiceAccount of worker pods (they need no API access)')
  .addOption(new Option('--fence-ttl <ms>', 'longest a migration fence holds writers if the operator dies holding it').default(30000).argParser(Number))
  .addOption(
    new Option('--max-concurrent-migrations <n>', 'copy-and-swap migrations run at once on the ClickHouse connection (the rest wait, MigrationQueued)')
      .default(2)
      .argParser(Number),
  )
  .option('--no-workers', 'create no ingestion or endpoint Deployments (tables and views only)')
  .option('--log-format <format>', 'json or pretty', 'json')
  .action(async (o: Parameters<typeof import('./operator.js').runOperatorCommand>[0]) => (await import('./operator.js')).runOperatorCommand(o));

localAccessOptions(
  program
    .command('clickhouse')
    .description('Serve the embedded ClickHouse engine (chDB) on the ClickHouse HTTP protocol.')
    .option('--data-dir <dir>', 'where the data lives (file() reads its user_files folder)', './.weir/data')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .addOption(new Option('--port <port>', 'port to listen on (0: any free port)').default(8123).argParser(Number))
    .option('--user <user>', 'require this user (basic auth or X-ClickHouse-User); with --password alone the user is default')
    // The default is named, not shown: --help must not print the password.
    .addOption(
      new Option('--password <password>', 'require this password; user default unless --user').default(
        process.env.WEIR_CLICKHOUSE_PASSWORD,
        '$WEIR_CLICKHOUSE_PASSWORD',
      ),
    ),
).action(async (o: Parameters<typeof import('./clickhouse.js').runClickHouseCommand>[0]) => (await import('./clickhouse.js')).runClickHouseCommand(o));

registerIngest(program);

registerServe(program);

registerEvents(program);

registerToken(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(`weir: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
