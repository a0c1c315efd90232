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

/** The ClickHouse database of a DataSource: spec.database, or its namespace's name. Computed here only. */
export const databaseOf = (ds: Placed): string => ds.spec.database ?? clickhouseName(ds.metadata.namespace ?? 'default');

/** The ClickHouse table of a DataSource: its resource name. */
export const tableOf = (ds: Placed): string => clickhouseName(ds.metadata.name);

/** The Kafka consumer group of a DataSource: spec.ingestion.kafka.groupId, or weir.<namespace>.<name>. */
export const groupIdOf = (ds: { metadata: { name: string; namespace?: string }; spec: { ingestion?: { kafka: { groupId?: string } } } }): string =>
  ds.spec.ingestion?.kafka.groupId ?? `weir.${ds.metadata.namespace ?? 'default'}.${ds.metadata.name}`;
