// Whether SQL compiles against ClickHouse, asked without reading data: DESCRIBE of the query.
import type { CompiledEndpoint } from '../plan/endpoint/compile.js';
import { describeValues } from '../plan/endpoint/openapi.js';
import { embedSql } from '../plan/sql.js';
import type { ClickHouse } from './connection.js';

/**
 * Compile an endpoint's query against ClickHouse without reading data: DESCRIBE with every
 * placeholder bound to a harmless value. Throws ClickHouse's error when it does not compile.
 * The endpoint server gates readiness on it, and the operator gates rollouts on it.
 */
export async function describeEndpointQuery(ch: Pick<ClickHouse, 'query'>, ep: CompiledEndpoint): Promise<void> {
  await ch.query(`DESCRIBE TABLE (${embedSql(ep.sql)})`, {
    params: describeValues(ep),
    database: ep.database,
    settings: { readonly: 2, max_execution_time: Math.min(ep.limits.maxExecutionTimeMs, 10_000) / 1000 },
    signal: AbortSignal.timeout(30_000),
  });
}
