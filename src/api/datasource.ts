import {
  autoscalingSchema,
  conditionsSchema,
  connectionRefSchema,
  deletionPolicySchema,
  observedGenerationSchema,
  resourcesSchema,
  secretRefSchema,
  type Autoscaling,
  type CommonStatus,
  type DeletionPolicy,
  type Resource,
  type Resources,
  type SecretRef,
} from './common.js';
import { celRules, type CrossFieldRule } from './rules.js';
import { arr, bool, IDENTIFIER, int, namedList, num, obj, oneOf, str, stringMap, type Schema } from './schema-dsl.js';

export const ENGINE_TYPES = [
  'MergeTree',
  'ReplacingMergeTree',
  'SummingMergeTree',
  'AggregatingMergeTree',
  'CollapsingMergeTree',
  'VersionedCollapsingMergeTree',
] as const;
export type EngineType = (typeof ENGINE_TYPES)[number];

export interface Column {
  name: string;
  type: string;
  jsonPath?: string;
  default?: string;
  codec?: string;
  comment?: string;
}

export interface Engine {
  type: EngineType;
  sortingKey: string[];
  partitionKey?: string;
  primaryKey?: string[];
  ttl?: string;
  settings?: Record<string, string>;
  versionColumn?: string;
  isDeletedColumn?: string;
  signColumn?: string;
  sumColumns?: string[];
}

export interface SkippingIndex {
  name: string;
  expression: string;
  type: string;
  granularity?: number;
}

export interface KafkaSource {
  bootstrapServers: string[];
  topic: string;
  groupId?: string;
  startFrom?: 'earliest' | 'latest';
  credentialsSecretRef?: SecretRef;
  tls?: boolean;
}

/** spec.ingestion.http: the events API Deployment (`<name>-events`, running `weir events`). */
export interface HttpIngestion {
  replicas?: number;
  autoscaling?: Autoscaling;
  resources?: Resources;
  auth?: { tokensSecretRef: SecretRef };
  limits?: {
    /** Requests per second each pod takes (token bucket); past it, 429 with Retry-After. */
    requestsPerSecond?: number;
    /** Bytes a request body may send, and decode to; past it, 413. */
    maxBodyBytes?: number;
  };
}

/** Kafka (`kafka`, with the replicas, autoscaling, batch and resources of its Deployment), HTTP (`http`), or both. */
export interface Ingestion {
  kafka?: KafkaSource;
  http?: HttpIngestion;
  replicas?: number;
  autoscaling?: Autoscaling;
  batch?: { maxRows?: number; maxBytes?: number; maxDelayMs?: number };
  resources?: Resources;
}

/** Where a copy-and-swap's copy stands (status.migration.progress; the executor reports it after every chunk and round). */
export interface CopyProgress {
  phase: 'Backfilling' | 'CatchingUp';
  /** Rows in the next version so far, and the backfill's rows (estimated from system.parts when planned). */
  rowsCopied: number;
  rowsTotal: number;
  /** rowsCopied of rowsTotal, 0–100, one decimal. */
  percent: number;
  /** Chunks done and planned (1-based: chunk 3 of 10 is the third). */
  chunk: number;
  chunks: number;
  /** Catch-up rounds done (0 while backfilling). */
  catchUpRounds: number;
  /** Seconds left at the rate copied so far (status only). */
  etaSeconds?: number;
}

/** What a backfill may take from the server while endpoints serve. */
export interface BackfillLimits {
  /** Threads per backfill statement (max_threads; max_insert_threads at most 2). */
  maxThreads?: number;
  /** Memory per backfill statement, bytes (max_memory_usage); GROUP BY spills to disk past half of it. */
  maxMemoryBytes?: number;
  /** Rows per second the backfill copies at most, averaged over chunks (weir waits between chunks). */
  maxRowsPerSecond?: number;
}

export interface Migration {
  approval?: 'Automatic' | 'Manual';
  keepPreviousVersions?: number;
  allowDestructive?: boolean;
  forwardQuery?: string;
  backfill?: BackfillLimits;
  /** How a copy is verified before the fence: counts per partition, and (Checksum, the default) a hash of every row's values. */
  verify?: 'Checksum' | 'Counts';
}

export interface DataSourceSpec {
  connectionRef?: SecretRef;
  database?: string;
  description?: string;
  columns: Column[];
  engine: Engine;
  indexes?: SkippingIndex[];
  ingestion?: Ingestion;
  migration?: Migration;
  deletionPolicy?: DeletionPolicy;
}

export interface TableVersionRecord {
  version: number;
  specHash: string;
  appliedAt: string;
  table: string;
  plan?: string[];
}

export interface DataSourceStatus extends CommonStatus {
  database?: string;
  table?: string;
  version?: number;
  specHash?: string;
  rows?: number;
  history?: TableVersionRecord[];
  /** How the live table differs from the shape weir built it with (the Drifted condition); [] when it does not. */
  drift?: string[];
  pendingPlan?: { hash: string; steps: string[]; copy?: { rows: number; bytes: number; disk: string; freeBytes: number } };
  migration?: {
    id: string;
    state: string;
    step?: string;
    startedAt?: string;
    progress?: CopyProgress;
  };
  ingestion?: {
    readyReplicas?: number;
    replicas?: number;
    lag?: number;
    rowsIngested?: number;
    quarantinedRows?: number;
    http?: HttpIngestionStatus;
  };
}

/** status.ingestion.http: the events Deployment and what its pods reported. */
export interface HttpIngestionStatus {
  url?: string;
  replicas?: number;
  readyReplicas?: number;
  rowsAccepted?: number;
  quarantinedRows?: number;
}

export type DataSource = Resource<DataSourceSpec, DataSourceStatus>;

const bareColumn = `'${IDENTIFIER}'`;

export const dataSourceRules: CrossFieldRule<DataSourceSpec>[] = [
  {
    cel: {
      rule: `self.engine.sortingKey.all(k, !k.matches(${bareColumn}) || self.columns.exists(c, c.name == k))`,
      message: 'every sortingKey entry that is a plain column name must name a column in spec.columns',
      fieldPath: '.engine.sortingKey',
    },
    holds: (s) => s.engine.sortingKey.every((k) => !new RegExp(IDENTIFIER).test(k) || s.columns.some((c) => c.name === k)),
  },
  {
    cel: {
      rule: `!has(self.engine.primaryKey) || self.engine.primaryKey.all(k, !k.matches(${bareColumn}) || self.columns.exists(c, c.name == k))`,
      message: 'every primaryKey entry that is a plain column name must name a column in spec.columns',
      fieldPath: '.engine.primaryKey',
    },
    holds: (s) => (s.engine.primaryKey ?? []).every((k) => !new RegExp(IDENTIFIER).test(k) || s.columns.some((c) => c.name === k)),
  },
  {
    cel: {
      rule:
        '!has(self.engine.primaryKey) || (size(self.engine.primaryKey) <= size(self.engine.sortingKey) && ' +
        'self.engine.primaryKey.all(k, self.engine.sortingKey.exists(s, s == k)))',
      message: 'primaryKey must be a prefix-compatible subset of sortingKey (each entry also in sortingKey)',
      fieldPath: '.engine.primaryKey',
    },
    holds: (s) =>
      !s.engine.primaryKey || (s.engine.primaryKey.length <= s.engine.sortingKey.length && s.engine.primaryKey.every((k) => s.engine.sortingKey.includes(k))),
  },
  ...(['versionColumn', 'isDeletedColumn', 'signColumn'] as const).map((field): CrossFieldRule<DataSourceSpec> => ({
    cel: {
      rule: `!has(self.engine.${field}) || self.columns.exists(c, c.name == self.engine.${field})`,
      message: `engine.${field} must name a column in spec.columns`,
      fieldPath: `.engine.${field}`,
    },
    holds: (s) => s.engine[field] === undefined || s.columns.some((c) => c.name === s.engine[field]),
  })),
  {
    cel: {
      rule: '!has(self.engine.sumColumns) || self.engine.sumColumns.all(k, self.columns.exists(c, c.name == k))',
      message: 'every engine.sumColumns entry must name a column in spec.columns',
      fieldPath: '.engine.sumColumns',
    },
    holds: (s) => (s.engine.sumColumns ?? []).every((k) => s.columns.some((c) => c.name === k)),
  },
  {
    cel: {
      rule: "!(self.engine.type in ['CollapsingMergeTree', 'VersionedCollapsingMergeTree']) || has(self.engine.signColumn)",
      message: 'CollapsingMergeTree and VersionedCollapsingMergeTree need engine.signColumn',
      fieldPath: '.engine.signColumn',
    },
    holds: (s) => !['CollapsingMergeTree', 'VersionedCollapsingMergeTree'].includes(s.engine.type) || s.engine.signColumn !== undefined,
  },
  {
    cel: {
      rule: "self.engine.type != 'VersionedCollapsingMergeTree' || has(self.engine.versionColumn)",
      message: 'VersionedCollapsingMergeTree needs engine.versionColumn',
      fieldPath: '.engine.versionColumn',
    },
    holds: (s) => s.engine.type !== 'VersionedCollapsingMergeTree' || s.engine.versionColumn !== undefined,
  },
  {
    cel: {
      rule: "!has(self.engine.isDeletedColumn) || (self.engine.type == 'ReplacingMergeTree' && has(self.engine.versionColumn))",
      message: 'engine.isDeletedColumn is only valid for ReplacingMergeTree with a versionColumn',
      fieldPath: '.engine.isDeletedColumn',
    },
    holds: (s) => s.engine.isDeletedColumn === undefined || (s.engine.type === 'ReplacingMergeTree' && s.engine.versionColumn !== undefined),
  },
  {
    cel: {
      rule: "!has(self.engine.sumColumns) || self.engine.type == 'SummingMergeTree'",
      message: 'engine.sumColumns is only valid for SummingMergeTree',
      fieldPath: '.engine.sumColumns',
    },
    holds: (s) => s.engine.sumColumns === undefined || s.engine.type === 'SummingMergeTree',
  },
  {
    cel: {
      rule: '!has(self.ingestion) || has(self.ingestion.kafka) || has(self.ingestion.http)',
      message: 'spec.ingestion needs kafka, http or both',
      fieldPath: '.ingestion',
    },
    holds: (s) => s.ingestion === undefined || s.ingestion.kafka !== undefined || s.ingestion.http !== undefined,
  },
  {
    cel: {
      rule: '!has(self.ingestion) || self.columns.exists(c, has(c.jsonPath))',
      message: 'a DataSource with ingestion needs at least one column with a jsonPath',
      fieldPath: '.ingestion',
    },
    holds: (s) => s.ingestion === undefined || s.columns.some((c) => c.jsonPath !== undefined),
  },
];

const NAME_MAX = 128;
const EXPR_MAX = 4096;

const columnSchema = obj(
  'One column of the table.',
  {
    name: str('Column name in ClickHouse (letters, digits, underscore; not starting with a digit).', {
      pattern: IDENTIFIER,
      maxLength: NAME_MAX,
    }),
    type: str('ClickHouse type, e.g. String, UInt32, DateTime64(3), LowCardinality(String), AggregateFunction(uniq, String).', {
      minLength: 1,
      maxLength: 1024,
    }),
    jsonPath: str(
      'Where ingestion finds the value in each JSON event, e.g. $.payload.pathname. Without it the column is not fed by ingestion (it takes its default).',
      { pattern: '^\\$(\\.[A-Za-z_][A-Za-z0-9_-]*|\\[[0-9]+\\])*$', maxLength: 1024 },
    ),
    default: str("Default expression (ClickHouse SQL), e.g. 'unknown' or now(). Used for missing values.", {
      maxLength: EXPR_MAX,
    }),
    codec: str('Compression codec expression, e.g. ZSTD(3) or Delta, ZSTD.', { maxLength: 1024 }),
    comment: str('Column comment, stored in ClickHouse.', { maxLength: 4096 }),
  },
  ['name', 'type'],
);

const engineSchema = obj(
  'The table engine (MergeTree family) and its keys. Changing type, parameters, sortingKey (other than appending new columns) or partitionKey runs a versioned copy-and-swap migration.',
  {
    type: oneOf('MergeTree-family engine.', [...ENGINE_TYPES], { default: 'MergeTree' }),
    sortingKey: arr(
      'ORDER BY: column names or expressions, in order. Queries filtering on a prefix of it are fast.',
      str('A column name or an expression.', { minLength: 1, maxLength: 1024 }),
      { minItems: 1, maxItems: 32 },
    ),
    partitionKey: str('PARTITION BY expression, e.g. toYYYYMM(timestamp).', { maxLength: EXPR_MAX }),
    primaryKey: arr(
      'PRIMARY KEY, when it should be shorter than the sorting key: a prefix of sortingKey.',
      str('A column name or an expression.', { minLength: 1, maxLength: 1024 }),
      { minItems: 1, maxItems: 32 },
    ),
    ttl: str('TTL expression, e.g. toDateTime(timestamp) + INTERVAL 180 DAY. Applied in place.', { maxLength: EXPR_MAX }),
    settings: stringMap('MergeTree settings (SETTINGS name = value), e.g. {index_granularity: "8192"}. Applied in place where ClickHouse allows.', {
      maxProperties: 64,
    }),
    versionColumn: str('ReplacingMergeTree / VersionedCollapsingMergeTree version column.', {
      pattern: IDENTIFIER,
      maxLength: NAME_MAX,
    }),
    isDeletedColumn: str('ReplacingMergeTree is_deleted column (needs versionColumn).', { pattern: IDENTIFIER, maxLength: NAME_MAX }),
    signColumn: str('CollapsingMergeTree / VersionedCollapsingMergeTree sign column (Int8, 1 or -1).', {
      pattern: IDENTIFIER,
      maxLength: NAME_MAX,
    }),
    sumColumns: arr(
      'SummingMergeTree columns to sum; default: every numeric column not in the sorting key.',
      str('A column name.', { pattern: IDENTIFIER, maxLength: NAME_MAX }),
      { maxItems: 256 },
    ),
  },
  ['sortingKey'],
);

const indexSchema = obj(
  'A data-skipping index. Added, changed and dropped in place.',
  {
    name: str('Index name.', { pattern: IDENTIFIER, maxLength: NAME_MAX }),
    expression: str('Indexed expression, e.g. pathname.', { minLength: 1, maxLength: EXPR_MAX }),
    type: str('Index type, e.g. minmax, set(100), bloom_filter(0.01), tokenbf_v1(...).', { minLength: 1, maxLength: 256 }),
    granularity: int('GRANULARITY of the index.', { minimum: 1, maximum: 100000, default: 1 }),
  },
  ['name', 'expression', 'type'],
);

const httpIngestionSchema = obj(
  'Feed the table over HTTP: a Deployment <name>-events of `weir events` pods behind a Service, taking POST /v0/events?name=<name> (NDJSON or a JSON array, optionally gzip), with a PodDisruptionBudget above one replica and an HPA with autoscaling.',
  {
    replicas: int('Events API pods (ignored with autoscaling).', { minimum: 0, maximum: 256, default: 2 }),
    // Copies: a schema object used twice would be written as a YAML anchor in the CRD.
    autoscaling: structuredClone(autoscalingSchema),
    resources: structuredClone(resourcesSchema),
    auth: obj(
      'Bearer tokens: requests without one get 401, with one not in the Secret 403.',
      { tokensSecretRef: secretRefSchema('the allowed tokens, one per key (mounted into the pods; a changed Secret is read within seconds)') },
      ['tokensSecretRef'],
    ),
    limits: obj('Per-pod limits.', {
      requestsPerSecond: num('Requests per second each pod takes; past it 429 with Retry-After.', { minimum: 0.1, maximum: 1_000_000 }),
      maxBodyBytes: int('Bytes a request body may send and decode to; past it 413.', { minimum: 1024, maximum: 1_073_741_824, default: 67_108_864 }),
    }),
  },
);

const ingestionSchema = obj(
  'Feed the table from a Kafka topic (kafka, with replicas/autoscaling/batch/resources for its `weir ingest` Deployment), over HTTP (http, the events API Deployment), or both.',
  {
    http: httpIngestionSchema,
    kafka: obj(
      'The Kafka source.',
      {
        bootstrapServers: arr('Broker addresses, host:port.', str('A broker address.', { minLength: 1, maxLength: 512 }), {
          minItems: 1,
          maxItems: 32,
        }),
        topic: str('Topic to consume.', { minLength: 1, maxLength: 249, pattern: '^[A-Za-z0-9._-]+$' }),
        groupId: str('Consumer group id; default: weir.<namespace>.<name>.', { minLength: 1, maxLength: 255 }),
        startFrom: oneOf('Where a new consumer group starts.', ['earliest', 'latest'], { default: 'earliest' }),
        credentialsSecretRef: secretRefSchema('Kafka SASL credentials (keys: mechanism, username, password)'),
        tls: bool('Connect to the brokers over TLS.', { default: false }),
      },
      ['bootstrapServers', 'topic'],
    ),
    replicas: int('Kafka ingestion pods (weir ingest); capped at the topic partition count.', { minimum: 0, maximum: 256, default: 1 }),
    autoscaling: autoscalingSchema,
    batch: obj('Insert batches are flushed at whichever bound is reached first.', {
      maxRows: int('Rows per insert.', { minimum: 1, maximum: 10_000_000, default: 100_000 }),
      maxBytes: int('Bytes of raw messages per insert.', { minimum: 1024, maximum: 1_073_741_824, default: 16_777_216 }),
      maxDelayMs: int('Longest a row waits before its batch is flushed.', { minimum: 10, maximum: 600_000, default: 1000 }),
    }),
    resources: resourcesSchema,
  },
);

const migrationSchema = obj('How changes that need a copy-and-swap migration are run.', {
  approval: oneOf(
    'Automatic applies a migration at once; Manual stops with the plan in status until the weir.dev/approve-plan annotation carries its hash.',
    ['Automatic', 'Manual'],
    { default: 'Automatic' },
  ),
  keepPreviousVersions: int('Previous table versions kept (as <name>__v<N>) for rollback.', {
    minimum: 0,
    maximum: 10,
    default: 1,
  }),
  allowDestructive: bool('Allow changes that drop data (dropping a column). Without it such a plan is refused.', {
    default: false,
  }),
  forwardQuery: str(
    'SELECT mapping rows of the current table version (read as FROM {source}) to the new schema, for copy-and-swap migrations; default: by column name, with defaults for new columns.',
    { maxLength: 65536 },
  ),
  backfill: obj(
    "What a migration's backfill may take from the server, so endpoints keep serving; default: 2 threads, the server's memory limit, no rate limit.",
    {
      maxThreads: int('Threads per backfill statement (max_threads; max_insert_threads is at most 2).', { minimum: 1, maximum: 64 }),
      maxMemoryBytes: int('Memory per backfill statement in bytes (max_memory_usage); a GROUP BY spills to disk past half of it.', {
        minimum: 64 * 1024 * 1024,
      }),
      maxRowsPerSecond: int('Rows per second the backfill copies at most, on average over its chunks (weir waits between chunks).', { minimum: 1 }),
    },
  ),
  verify: oneOf(
    'How a copy-and-swap checks the copy before it fences writers (a 1:1 mapping, no forwardQuery): Checksum compares rows per partition and a sum of cityHash64 of every row’s copied values, reading both tables once; Counts compares rows per partition only, from part metadata where it can.',
    ['Checksum', 'Counts'],
    { default: 'Checksum' },
  ),
});

export const dataSourceSpecSchema: Schema = obj(
  'A ClickHouse table managed by weir: its columns, engine and keys, and optionally a Kafka ingestion Deployment.',
  {
    connectionRef: connectionRefSchema,
    database: str('ClickHouse database; default: the namespace name.', { pattern: IDENTIFIER, maxLength: NAME_MAX }),
    description: str('What the table holds, for people.', { maxLength: 4096 }),
    columns: namedList('The table columns, in order. Names are unique.', columnSchema, { minItems: 1, maxItems: 500 }),
    engine: engineSchema,
    indexes: namedList('Data-skipping indexes.', indexSchema, { maxItems: 64 }),
    ingestion: ingestionSchema,
    migration: migrationSchema,
    deletionPolicy: deletionPolicySchema,
  },
  ['columns', 'engine'],
  { 'x-kubernetes-validations': celRules(dataSourceRules) },
);

export const dataSourceStatusSchema: Schema = obj('Observed state, written by the operator.', {
  observedGeneration: observedGenerationSchema,
  phase: oneOf('Summary for people: Pending, Ready, Migrating, AwaitingApproval, Failed, Deleting.', [
    'Pending',
    'Ready',
    'Migrating',
    'AwaitingApproval',
    'Failed',
    'Deleting',
  ]),
  conditions: conditionsSchema,
  database: str('The ClickHouse database holding the table.'),
  table: str('The stable table name queries use (database.name).'),
  version: int('Table version; increments with each copy-and-swap.', { minimum: 0 }),
  specHash: str('Hash of the spec the current table version was built from.'),
  rows: int('Approximate row count of the live table.', { minimum: 0 }),
  history: arr(
    'Table versions, newest last.',
    obj('One table version.', {
      version: int('Version number.', { minimum: 0 }),
      specHash: str('Hash of the spec that produced it.'),
      appliedAt: str('When it went live.', { format: 'date-time' }),
      table: str('Table holding this version now (the stable name, or <name>__v<N> when retained).'),
      plan: arr('The plan steps that produced it.', str('A plan step.')),
    }),
    { maxItems: 64 },
  ),
  drift: arr('How the live table differs from the shape weir built it with (ALTER TABLE run by hand); empty when it does not.', str('A difference.'), {
    maxItems: 64,
  }),
  pendingPlan: obj('A plan waiting for approval (migration.approval: Manual).', {
    hash: str('Hash to put in the weir.dev/approve-plan annotation to approve it.'),
    steps: arr('The steps, in order.', str('A plan step.')),
    copy: obj('What the copy-and-swap will rewrite, read from system.parts and system.disks before it starts.', {
      rows: int('Rows of the live table.', { minimum: 0 }),
      bytes: int('Bytes of the live table on disk (compressed).', { minimum: 0 }),
      disk: str('The disk holding most of the table.'),
      freeBytes: int('Free space on that disk when the plan was made.', { minimum: 0 }),
    }),
  }),
  migration: obj('The migration in progress, if any.', {
    id: str('Migration id.'),
    state: str('Protocol state, e.g. Backfilling, Fenced, Swapped.'),
    step: str('The step running now.'),
    startedAt: str('When the migration started.', { format: 'date-time' }),
    progress: obj('How far the copy is (copy-and-swap), patched every 5% and at each catch-up round.', {
      phase: str('Backfilling or CatchingUp.'),
      rowsCopied: int('Rows in the next version so far.', { minimum: 0 }),
      rowsTotal: int('Rows the backfill copies (from system.parts when it was planned).', { minimum: 0 }),
      percent: num('rowsCopied of rowsTotal, 0-100.'),
      chunk: int('Backfill chunks done.', { minimum: 0 }),
      chunks: int('Backfill chunks planned.', { minimum: 0 }),
      catchUpRounds: int('Catch-up rounds done after the backfill.', { minimum: 0 }),
      etaSeconds: int('Seconds left at the rate copied so far.', { minimum: 0 }),
    }),
  }),
  ingestion: obj('Ingestion Deployment state.', {
    replicas: int('Desired ingestion pods.', { minimum: 0 }),
    readyReplicas: int('Ready ingestion pods.', { minimum: 0 }),
    lag: int('Consumer lag, summed over partitions.', { minimum: 0 }),
    rowsIngested: int('Rows inserted since the Deployment was created.', { minimum: 0 }),
    quarantinedRows: int('Rows sent to the quarantine table.', { minimum: 0 }),
    http: obj('The events API Deployment (spec.ingestion.http).', {
      url: str('Where clients POST events inside the cluster.'),
      replicas: int('Desired events pods.', { minimum: 0 }),
      readyReplicas: int('Ready events pods.', { minimum: 0 }),
      rowsAccepted: int('Rows the events pods inserted (their reports in weir.events_progress, 30 days).', { minimum: 0 }),
      quarantinedRows: int('Lines the events pods sent to the quarantine table.', { minimum: 0 }),
    }),
  }),
});
