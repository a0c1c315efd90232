// Where the unqualified table names of a Pipe's SQL resolve (api/names.ts queryDatabaseOf): in
// the database of the DataSource it materializes into; else in the one database its namespace's
// DataSources share; else in the namespace's. The Pipe's checks, its materialized view and the
// Endpoints on it used to disagree once a DataSource set spec.database: an Endpoint always ran in
// the namespace's database, so a Pipe reported Ready had an Endpoint that did not compile.
// Against the real engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import type { Endpoint } from '../../../src/api/endpoint.js';
import type { Pipe } from '../../../src/api/pipe.js';
import { reconcileEndpoint } from '../../../src/controllers/endpoint.js';
import { reconcilePipe } from '../../../src/controllers/pipe.js';
import type { ReconcileContext } from '../../../src/controllers/types.js';
import { applyProject } from '../../../src/execute/apply.js';
import type { ProjectResource } from '../../../src/plan/graph.js';
import { createLogger } from '../../../src/runtime/log.js';
import {
  column,
  dataSource,
  endpoint,
  inNamespace,
  materializedInto,
  node,
  pipe,
  uniqueNamespace,
  withColumns,
  withNodes,
  withSortingKey,
  withSpec,
} from '../../fixtures/builders.js';
import { startTestClickHouse, type TestClickHouse } from '../../fixtures/clickhouse.js';

const log = createLogger({ level: 'warn' });
let server: TestClickHouse;

beforeAll(async () => {
  server = await startTestClickHouse();
});
afterAll(async () => {
  await server?.stop();
});

/** The operator's view of the project: every DataSource created (status.version set), no workloads. */
function context(resources: ProjectResource[]): ReconcileContext {
  const find =
    <T>(kind: string) =>
    (ns: string, name: string) =>
      resources.find((r) => r.kind === kind && r.metadata.namespace === ns && r.metadata.name === name.replace(/_/g, '-')) as T | undefined;
  const created = (ds: DataSource): DataSource => ({ ...ds, status: { version: 1 } });
  return {
    now: new Date(),
    clickhouse: server.ch,
    lookup: {
      dataSource: (ns, name) => {
        const ds = find<DataSource>('DataSource')(ns, name);
        return ds && created(ds);
      },
      dataSourcesIn: (ns) => resources.filter((r): r is DataSource => r.kind === 'DataSource' && r.metadata.namespace === ns).map(created),
      pipe: find<Pipe>('Pipe'),
      endpoint: find<Endpoint>('Endpoint'),
    },
    log,
  };
}

/** A namespace whose DataSources live in another database (spec.database), which the namespace's database is not. */
function project(prefix: string) {
  const ns = uniqueNamespace(prefix);
  const database = `${ns.replace(/-/g, '_')}_analytics`;
  const placed = (name: string, ...columns: ReturnType<typeof column>[]) =>
    dataSource(name, inNamespace(ns), withColumns(...columns), withSortingKey('tenant_id'), withSpec<DataSource>({ database }));
  const events = placed('events', column('tenant_id', 'String'), column('timestamp', 'DateTime64(3)'));
  const perTenant = placed('per-tenant', column('tenant_id', 'String'), column('n', 'UInt64'));
  return { ns, database, events, perTenant };
}

/** The conditions that hold, as type:reason. */
const trueConditions = (status: { conditions?: { type: string; status: string; reason: string }[] }) =>
  status.conditions?.filter((c) => c.status === 'True').map((c) => `${c.type}:${c.reason}`);

describe('unqualified table names in a Pipe', () => {
  it("of a materialized Pipe resolve in its target's database for the view, the Pipe and its Endpoint alike", async () => {
    const { ns, events, perTenant } = project('qdb-mat');
    const rollup = pipe(
      'rollup',
      inNamespace(ns),
      withNodes(node('main', 'SELECT tenant_id, count() AS n FROM events GROUP BY tenant_id')),
      materializedInto('per-tenant'),
    );
    const served = endpoint('tenants', 'rollup', inNamespace(ns));
    const resources: ProjectResource[] = [events, perTenant, rollup, served];
    await applyProject(server.ch, [events, perTenant, rollup], { log });
    const ctx = context(resources);

    expect(trueConditions((await reconcilePipe(rollup, ctx)).status)).toEqual(['Ready:UpToDate']);
    // The Endpoint's query compiles (in the target's database); only the query pods are missing here.
    expect(trueConditions((await reconcileEndpoint(served, ctx)).status)).toEqual(['Reconciling:QueryServerUnavailable']);
  });

  it("of a plain Pipe resolve in the database its namespace's DataSources share, for the Pipe and its Endpoint alike", async () => {
    const { ns, events } = project('qdb-plain');
    const byTenant = pipe('by-tenant', inNamespace(ns), withNodes(node('main', 'SELECT tenant_id, count() AS n FROM events GROUP BY tenant_id')));
    const served = endpoint('by-tenant', 'by-tenant', inNamespace(ns));
    await applyProject(server.ch, [events], { log });
    const ctx = context([events, byTenant, served]);

    expect(trueConditions((await reconcilePipe(byTenant, ctx)).status)).toEqual(['Ready:UpToDate']);
    expect(trueConditions((await reconcileEndpoint(served, ctx)).status)).toEqual(['Reconciling:QueryServerUnavailable']);
  });

  it("of a plain Pipe resolve in the namespace's database when its DataSources are in several: the same verdict for the Pipe and its Endpoint", async () => {
    const { ns, events } = project('qdb-spread');
    const local = dataSource('clicks', inNamespace(ns), withColumns(column('tenant_id', 'String')), withSortingKey('tenant_id'));
    const fromLocal = pipe('from-local', inNamespace(ns), withNodes(node('main', 'SELECT tenant_id FROM clicks')));
    const fromElsewhere = pipe('from-elsewhere', inNamespace(ns), withNodes(node('main', 'SELECT tenant_id FROM events')));
    const onLocal = endpoint('from-local', 'from-local', inNamespace(ns));
    const onElsewhere = endpoint('from-elsewhere', 'from-elsewhere', inNamespace(ns));
    await applyProject(server.ch, [events, local], { log });
    const ctx = context([events, local, fromLocal, fromElsewhere, onLocal, onElsewhere]);

    expect(trueConditions((await reconcilePipe(fromLocal, ctx)).status)).toEqual(['Ready:UpToDate']);
    expect(trueConditions((await reconcileEndpoint(onLocal, ctx)).status)).toEqual(['Reconciling:QueryServerUnavailable']);
    // events is not in the namespace's database: qualify it (database.table) to read it here.
    expect(trueConditions((await reconcilePipe(fromElsewhere, ctx)).status)).toEqual(['Stalled:SqlDoesNotCompile']);
    expect(trueConditions((await reconcileEndpoint(onElsewhere, ctx)).status)).toEqual(['Stalled:SqlDoesNotCompile']);
  });
});
