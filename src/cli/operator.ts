import { startOperator } from '../operator/manager.js';
import { createLogger } from '../runtime/log.js';

interface OperatorFlags {
  kubeconfig?: string;
  namespace?: string;
  metricsPort: number;
  metricsHost: string;
  leaderElection: boolean;
  leaseNamespace: string;
  leaseName: string;
  leaseDuration: number;
  renewDeadline: number;
  retryPeriod: number;
  resync: number;
  maxConcurrentReconciles: number;
  kubeApiQps: number;
  kubeApiBurst: number;
  catalogTtl: number;
  logFormat: 'json' | 'pretty';
  clickhouseUrl?: string;
  clickhouseUser?: string;
  workerImage: string;
  workerImagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  workerClickhouseUrl?: string;
  workerClickhousePasswordSecret?: string;
  workerServiceAccount?: string;
  workers: boolean;
  fenceTtl?: number;
  maxConcurrentMigrations?: number;
}

export async function runOperatorCommand(flags: OperatorFlags): Promise<void> {
  const log = createLogger({ component: 'operator', format: flags.logFormat });
  const operator = await startOperator({
    kubeconfig: flags.kubeconfig,
    namespace: flags.namespace,
    metricsPort: flags.metricsPort,
    metricsHost: flags.metricsHost,
    leaderElection: flags.leaderElection,
    leaseNamespace: flags.leaseNamespace,
    leaseName: flags.leaseName,
    leaseDurationMs: flags.leaseDuration,
    renewDeadlineMs: flags.renewDeadline,
    retryPeriodMs: flags.retryPeriod,
    resyncMs: flags.resync,
    maxConcurrentReconciles: flags.maxConcurrentReconciles,
    kubeApiQps: flags.kubeApiQps,
    kubeApiBurst: flags.kubeApiBurst,
    catalogTtlMs: flags.catalogTtl,
    ...(flags.clickhouseUrl
      ? {
          clickhouse: {
            url: flags.clickhouseUrl,
            ...(flags.clickhouseUser ? { username: flags.clickhouseUser, password: process.env.WEIR_CLICKHOUSE_PASSWORD ?? '' } : {}),
          },
        }
      : {}),
    ...(flags.fenceTtl ? { fenceTtlMs: flags.fenceTtl } : {}),
    ...(flags.maxConcurrentMigrations ? { maxConcurrentMigrations: flags.maxConcurrentMigrations } : {}),
    ...(flags.workers
      ? {
          workers: {
            image: flags.workerImage,
            ...(flags.workerImagePullPolicy ? { imagePullPolicy: flags.workerImagePullPolicy } : {}),
            ...((flags.workerClickhouseUrl ?? flags.clickhouseUrl) ? { clickhouseUrl: flags.workerClickhouseUrl ?? flags.clickhouseUrl } : {}),
            ...(flags.clickhouseUser ? { clickhouseUser: flags.clickhouseUser } : {}),
            ...(flags.workerClickhousePasswordSecret ? { clickhousePasswordSecret: flags.workerClickhousePasswordSecret } : {}),
            ...(flags.workerServiceAccount ? { serviceAccountName: flags.workerServiceAccount } : {}),
          },
        }
      : {}),
    log,
  });
  log.info('operator started', { identity: operator.identity, metricsPort: operator.metricsPort });
  const shutdown = (signal: string) => {
    log.info('signal received', { signal });
    void operator.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  const result = await operator.done;
  // Losing the lease mid-flight leaves no safe way to continue: exit and let a restart campaign again.
  if (result === 'lost') process.exit(1);
}
