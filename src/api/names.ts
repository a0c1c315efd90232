// One mapping between Kubernetes names and ClickHouse names. Kubernetes forbids '_' in
// resource names and ClickHouse names read best with '_', so '-' and '_' are the same
// character to weir: DataSource page-views is table page_views, and a reference may use
// either spelling (materialize.into: page_views_daily finds DataSource page-views-daily).

/** The ClickHouse identifier of a resource (table, view, endpoint path). */
export const clickhouseName = (resourceName: string): string => resourceName.replace(/-/g, '_');

/** weir's own ClickHouse database (migrations, fences, ingest ledgers, request log): no DataSource may use it. */
export const SYSTEM_DATABASE = 'weir';

/** The Kubernetes resource name a reference points to. */
export const resourceName = (reference: string): string => reference.replace(/_/g, '-');

/** What databaseOf and tableOf read of a DataSource. */
interface Placed {
  metadata: { name: string; namespace?: string };
  spec: { database?: string };
}

/** The ClickHouse database of a namespace: its name, as a ClickHouse name. */
export const namespaceDatabase = (namespace: string | undefined): string => clickhouseName(namespace ?? 'default');

/** The ClickHouse database of a DataSource: spec.database, or its namespace's. Computed here only. */
export const databaseOf = (ds: Placed): string => ds.spec.database ?? namespaceDatabase(ds.metadata.namespace);

/** The ClickHouse table of a DataSource: its resource name. */
export const tableOf = (ds: Placed): string => clickhouseName(ds.metadata.name);

/** `database.table` of a DataSource, as status and messages show it. */
export const qualifiedTableOf = (ds: Placed): string => `${databaseOf(ds)}.${tableOf(ds)}`;

/**
 * Where the unqualified table names of a Pipe's SQL resolve, for its checks, its materialized
 * view and the Endpoints that serve it alike: the database of the DataSource it materializes into
 * (`target`, where the view is created); else the one database its namespace's DataSources share;
 * else its namespace's.
 */
export function queryDatabaseOf(pipe: { metadata: { namespace?: string } }, target: Placed | undefined, namespaceDataSources: readonly Placed[]): string {
  if (target) return databaseOf(target);
  const shared = [...new Set(namespaceDataSources.map(databaseOf))];
  return shared.length === 1 && shared[0] !== undefined ? shared[0] : namespaceDatabase(pipe.metadata.namespace);
}

/** The Kafka consumer group of a DataSource: spec.ingestion.kafka.groupId, or weir.<namespace>.<name>. */
export const groupIdOf = (ds: { metadata: { name: string; namespace?: string }; spec: { ingestion?: { kafka?: { groupId?: string } } } }): string =>
  ds.spec.ingestion?.kafka?.groupId ?? `weir.${ds.metadata.namespace ?? 'default'}.${ds.metadata.name}`;
