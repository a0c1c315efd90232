// Insert deduplication. Every table weir creates keeps the ids of its last
// DEDUPLICATION_WINDOW insert blocks (non_replicated_deduplication_window; Replicated engines
// keep theirs by default), so the Kafka ingesters can replay a batch after a crash with the
// same insert_deduplication_token and ClickHouse drops it if it had landed. Materialized views
// dedupe the blocks they derive from it too, so every table a view writes into needs the window
// as well: that is why it is on every weir table rather than only on ingested ones.
//
// The flip side: a block identical to a recent one is dropped by default. weir's own copies
// (migrations, backfills) and the events API without an Idempotency-Key therefore insert with
// deduplication off; with one, the events API sends a token (workers/events-idempotency.ts).
// The window is set with the table's settings, by the planner (plan/sql.ts DEDUPLICATION_WINDOW).
import type { ClickHouse, Settings } from './connection.js';

const flavours = new WeakMap<ClickHouse, Promise<boolean>>();

/**
 * Whether the server has deduplicate_insert: ClickHouse 26 replaced insert_deduplicate with it
 * (and ignores the old one for non-replicated tables). Asked once per connection.
 */
function hasDeduplicateInsert(ch: ClickHouse): Promise<boolean> {
  let answer = flavours.get(ch);
  if (!answer) {
    answer = ch.query<{ n: string }>(`SELECT count() AS n FROM system.settings WHERE name = 'deduplicate_insert'`).then((rows) => Number(rows[0]?.n ?? 0) > 0);
    answer.catch(() => flavours.delete(ch));
    flavours.set(ch, answer);
  }
  return answer;
}

/** Settings that turn insert deduplication off for one insert. */
export async function deduplicationOff(ch: ClickHouse): Promise<Settings> {
  return (await hasDeduplicateInsert(ch)) ? { deduplicate_insert: 'disable' } : { insert_deduplicate: 0 };
}

/** Settings for an insert ClickHouse must drop if a block with the same token landed before. */
export async function deduplicatedBy(ch: ClickHouse, token: string): Promise<Settings> {
  return {
    ...((await hasDeduplicateInsert(ch)) ? { deduplicate_insert: 'enable' } : { insert_deduplicate: 1 }),
    insert_deduplication_token: token,
    deduplicate_blocks_in_dependent_materialized_views: 1,
  };
}
