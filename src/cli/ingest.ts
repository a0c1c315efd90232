// `weir ingest`: the ingestion worker of one DataSource, as the operator's Deployment runs it.
// Configuration: the DataSource (the file the operator mounts from a ConfigMap), ClickHouse from
// WEIR_CLICKHOUSE_URL/USER/PASSWORD, Kafka SASL from WEIR_KAFKA_SASL_MECHANISM/USERNAME/PASSWORD
// (the Secret named by spec.ingestion.kafka.credentialsSecretRef).
import type { SASLOptions } from 'kafkajs';
import type { DataSource } from '../api/datasource.js';
import { loadResources } from './load.js';
import { connectClickHouse } from '../clickhouse/connection.js';
import { createLogger, errorMessage } from '../runtime/log.js';
import { OperatorMetrics } from '../runtime/metrics.js';
import { startHealthServer } from '../runtime/health-server.js';
import { IngestMetrics } from '../workers/ingest/metrics.js';
import { IngestWorker } from '../workers/ingest/worker.js';

export interface IngestFlags {
  config: string;
  clickhouseUrl?: string;
  metricsPort: number;
  metricsHost: string;
  logFormat: 'json' | 'pretty';
}

/** The DataSource a worker runs for, validated (and defaulted) like `weir validate` does. */
export function readDataSource(file: string): DataSource {
  const loaded = loadResources(file);
  if (loaded.errors.length > 0) throw new Error(loaded.errors.map((e) => `${e.file ?? file}: ${e.resource}: ${e.path}: ${e.message}`).join('\n'));
  const ds = loaded.resources.map((r) => r.object).find((o) => o.kind === 'DataSource') as DataSource | undefined;
  if (!ds) throw new Error(`${file}: no DataSource in it`);
  if (!ds.spec.ingestion) throw new Error(`${file}: DataSource ${ds.metadata.name} has no spec.ingestion`);
  return ds;
}

function kafkaSasl(env: NodeJS.ProcessEnv): SASLOptions | undefined {
  const mechanism = env.WEIR_KAFKA_SASL_MECHANISM;
  if (!mechanism) return undefined;
  const username = env.WEIR_KAFKA_USERNAME ?? '';
  const password = env.WEIR_KAFKA_PASSWORD ?? '';
  switch (mechanism.toLowerCase()) {
    case 'plain':
      return { mechanism: 'plain', username, password };
    case 'scram-sha-256':
      return { mechanism: 'scram-sha-256', username, password };
    case 'scram-sha-512':
      return { mechanism: 'scram-sha-512', username, password };
    default:
      throw new Error(`WEIR_KAFKA_SASL_MECHANISM=${mechanism}: use plain, scram-sha-256 or scram-sha-512`);
  }
}

export async function runIngest(flags: IngestFlags): Promise<void> {
  const log = createLogger({ component: 'ingest', format: flags.logFormat });
  if (!flags.clickhouseUrl) throw new Error('set --clickhouse-url or WEIR_CLICKHOUSE_URL');
  const ds = readDataSource(flags.config);
  const kafka = ds.spec.ingestion?.kafka;
  if (!kafka) throw new Error('no spec.ingestion.kafka');
  const sasl = kafkaSasl(process.env);
  const clickhouse = connectClickHouse({
    url: flags.clickhouseUrl,
    ...(process.env.WEIR_CLICKHOUSE_USER ? { username: process.env.WEIR_CLICKHOUSE_USER, password: process.env.WEIR_CLICKHOUSE_PASSWORD ?? '' } : {}),
    // A ClickHouse that hangs must look like one that is down: the batch is retried.
    requestTimeoutMs: 60_000,
  });
  const registry = new OperatorMetrics().registry;
  const metrics = new IngestMetrics(registry);
  const worker = new IngestWorker({
    dataSource: ds,
    clickhouse,
    kafka: { brokers: kafka.bootstrapServers, ...(kafka.tls ? { ssl: true } : {}), ...(sasl ? { sasl } : {}) },
    log: log.child({ kind: 'DataSource', namespace: ds.metadata.namespace ?? 'default', name: ds.metadata.name }),
    metrics,
    ...(process.env.POD_NAME ? { writerId: `ingest-${process.env.POD_NAME}` } : {}),
    ...(process.env.WEIR_KAFKA_SESSION_TIMEOUT_MS ? { sessionTimeoutMs: Number(process.env.WEIR_KAFKA_SESSION_TIMEOUT_MS) } : {}),
  });
  const health = await startHealthServer({
    port: flags.metricsPort,
    host: flags.metricsHost,
    registry,
    ready: () => worker.ready(),
    healthy: () => worker.healthy(),
  });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('signal received; flushing and leaving the group', { signal });
    void worker
      .stop()
      .then(() => clickhouse.close())
      .then(() => health.close())
      .then(
        () => process.exit(0),
        (e: unknown) => {
          log.error('shutdown failed', { error: errorMessage(e) });
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  await worker.start();
  log.info('worker started', { metricsPort: health.port });
}
