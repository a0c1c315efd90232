import { clickhouseName } from '../api/names.js';
import type { DataSource, DataSourceStatus } from '../api/datasource.js';
import { stableHash } from '../runtime/hash.js';
import { healthStatus } from './status.js';
import type { ReconcileContext, ReconcileDecision } from './types.js';

export const databaseOf = (ds: DataSource): string => ds.spec.database ?? clickhouseName(ds.metadata.namespace ?? 'default');
export const tableOf = (ds: DataSource): string => clickhouseName(ds.metadata.name);

/**
 * DataSource reconcile, as far as this build goes: the spec is validated by the API server
 * (schema and CEL), its identity (database, table, spec hash) goes into status, and the
 * resource stays Reconciling until the ClickHouse convergence engine applies it.
 */
export function reconcileDataSource(ds: DataSource, ctx: ReconcileContext): ReconcileDecision<DataSourceStatus> {
  const generation = ds.metadata.generation ?? 0;
  const database = databaseOf(ds);
  const { status, events } = healthStatus(
    ds.status,
    generation,
    {
      state: 'Reconciling',
      reason: 'ConvergenceEngineUnavailable',
      message: `Spec is valid; table ${database}.${tableOf(ds)} is not converged because this operator build has no ClickHouse convergence engine.`,
    },
    'Pending',
    ctx.now,
  );
  return {
    status: {
      ...ds.status,
      ...status,
      database,
      table: `${database}.${tableOf(ds)}`,
      specHash: stableHash(ds.spec),
    },
    events,
  };
}
