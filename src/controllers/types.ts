import type { DataSource, DataSourceStatus } from '../api/datasource.js';
import type { Endpoint } from '../api/endpoint.js';
import type { Pipe } from '../api/pipe.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import type { Catalog } from '../plan/catalog.js';
import type { FenceTiming } from '../execute/fence.js';
import type { Logger } from '../runtime/log.js';
import type { Workloads } from './ingestion.js';
import type { MigrationJobs } from './migration-jobs.js';

export interface EventRecord {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** What a reconcile decided: the status to write, the events to emit, when to look again. */
export interface ReconcileDecision<Status> {
  status: Status;
  events: EventRecord[];
  requeueAfterMs?: number;
}

/** Read access to the other resources of the project (an informer cache, or the files of `weir dev`). */
export interface ResourceLookup {
  dataSource(namespace: string, name: string): DataSource | undefined;
  dataSourcesIn(namespace: string): DataSource[];
  pipe(namespace: string, name: string): Pipe | undefined;
  endpoint(namespace: string, name: string): Endpoint | undefined;
}

export interface ReconcileContext {
  now: Date;
  lookup: ResourceLookup;
  /** The ClickHouse to converge; undefined when none is configured. */
  clickhouse?: ClickHouse;
  /** How gatherers observe the catalog (the operator shares one read per database; default observeCatalog on clickhouse). */
  catalog?: (databases: string[]) => Promise<Catalog>;
  log?: Logger;
  /** Fence timing for migrations (default: DEFAULT_FENCE_TIMING). */
  fenceTiming?: FenceTiming;
  /** Runs workers (Deployments) in the cluster; undefined where there is none (weir dev, weir apply). */
  workloads?: Workloads;
  /** Runs migrations as background jobs (the operator); undefined: a reconcile runs its migration itself (weir dev). */
  migrations?: MigrationJobs<ReconcileDecision<DataSourceStatus>>;
  /** Who this process is, as a table lock's holder (e.g. "operator on host (pid 1)"). */
  lockHolder?: string;
  /** Report progress while a long reconcile runs: an Event (when given), and optionally a status patch. */
  report?: (event: EventRecord | undefined, status?: Record<string, unknown>) => Promise<void>;
}
