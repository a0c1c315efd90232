// weir's own tables in ClickHouse: where migrations keep their progress and where writers
// and the migration executor meet at a fence. They live in the `weir` database.
import { SYSTEM_DATABASE } from '../api/names.js';
import type { ClickHouse } from '../clickhouse/connection.js';

const TABLES = [
  `CREATE TABLE IF NOT EXISTS weir.fences (
    database String, table String, fence_id String,
    state LowCardinality(String), expires_at DateTime64(3, 'UTC'), updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
  ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (database, table, fence_id)
  TTL toDateTime(updated_at) + INTERVAL 7 DAY
  COMMENT 'weir: fences writers honour at batch boundaries during swaps'`,
  `CREATE TABLE IF NOT EXISTS weir.writers (
    writer_id String, database String, table String, heartbeat_at DateTime64(3, 'UTC') DEFAULT now64(3)
  ) ENGINE = ReplacingMergeTree(heartbeat_at) ORDER BY (database, table, writer_id)
  TTL toDateTime(heartbeat_at) + INTERVAL 1 DAY
  COMMENT 'weir: live writers of each table (heartbeats)'`,
  // A writer's last heartbeat says it left (FenceParticipant.leave); added in place on older installs.
  `ALTER TABLE weir.writers ADD COLUMN IF NOT EXISTS gone UInt8 DEFAULT 0`,
  `CREATE TABLE IF NOT EXISTS weir.fence_acks (
    fence_id String, writer_id String, acked_at DateTime64(3, 'UTC') DEFAULT now64(3)
  ) ENGINE = MergeTree ORDER BY (fence_id, writer_id)
  TTL toDateTime(acked_at) + INTERVAL 1 DAY
  COMMENT 'weir: writers that paused for a fence'`,
  `CREATE TABLE IF NOT EXISTS weir.migrations (
    id String, database String, table String, kind LowCardinality(String),
    from_version UInt32, to_version UInt32, state LowCardinality(String),
    source_block UInt64, next_block UInt64, verify_block UInt64, swap_block UInt64,
    detail String, seq UInt64, updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
  ) ENGINE = ReplacingMergeTree(seq) ORDER BY (database, table, id)
  COMMENT 'weir: progress of copy-and-swap migrations, for resuming after a crash'`,
  // Tables made before chunked backfills lack the column: added in place (a no-op once there).
  `ALTER TABLE weir.migrations ADD COLUMN IF NOT EXISTS chunk_plan String DEFAULT '' AFTER detail`,
  `CREATE TABLE IF NOT EXISTS weir.migration_chunks (
    migration_id String, plan_id String, chunk UInt32, chunks UInt32,
    partition_ids Array(String), from_block UInt64, to_block UInt64, rows UInt64,
    done UInt8, next_block UInt64, copied_rows UInt64, updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
  ) ENGINE = ReplacingMergeTree(done) ORDER BY (migration_id, plan_id, chunk)
  TTL toDateTime(updated_at) + INTERVAL 30 DAY
  COMMENT 'weir: the chunks of copy-and-swap backfills, planned then done, for resuming after a crash'`,
  // A chunk that cuts a large part by its primary key: the key columns and the range's bounds
  // (SQL literals; empty arrays for an open bound). Added in place on older installs.
  `ALTER TABLE weir.migration_chunks ADD COLUMN IF NOT EXISTS key_columns Array(String) AFTER rows,
     ADD COLUMN IF NOT EXISTS key_from Array(String) AFTER key_columns, ADD COLUMN IF NOT EXISTS key_to Array(String) AFTER key_from`,
  `CREATE TABLE IF NOT EXISTS weir.ingest_batches (
    group_id String, topic String, partition Int32, first_offset Int64, last_offset Int64,
    database String, table String,
    writer_id String, written_at DateTime64(3, 'UTC') DEFAULT now64(3)
  ) ENGINE = MergeTree ORDER BY (group_id, topic, partition, first_offset)
  TTL toDateTime(written_at) + INTERVAL 7 DAY
  COMMENT 'weir: offset ranges of Kafka batches, written before their insert, replayed after a crash'`,
  `CREATE TABLE IF NOT EXISTS weir.ingest_progress (
    group_id String, database String, table String, topic String, partition Int32,
    committed_offset Int64, high_watermark Int64, rows UInt64, quarantined UInt64,
    writer_id String, updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
  ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (group_id, topic, partition)
  TTL toDateTime(updated_at) + INTERVAL 30 DAY
  COMMENT 'weir: per-partition progress of Kafka ingestion (committed offset, lag, rows)'`,
];

const ready = new WeakSet<ClickHouse>();

/** Create weir's database and tables once per connection (idempotent). */
export async function ensureSystemTables(ch: ClickHouse): Promise<void> {
  if (ready.has(ch)) return;
  await ch.command(`CREATE DATABASE IF NOT EXISTS ${SYSTEM_DATABASE}`);
  for (const sql of TABLES) await ch.command(sql);
  ready.add(ch);
}
