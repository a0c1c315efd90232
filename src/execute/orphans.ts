// Statements an executor that died may have left running. On a ClickHouse server an
// INSERT … SELECT goes on after its client is gone; a resumed executor that deleted the chunk's
// rows and copied it again would race it. Every copy statement of a migration carries a
// deterministic query_id (migration id and chunk, or the block a round starts from), so before
// redoing one the executor kills the statement under that id and waits until it has ended.
import type { ClickHouse } from '../clickhouse/connection.js';
import { quoteString } from '../plan/sql.js';
import { sleep } from '../runtime/backoff.js';
import type { Logger } from '../runtime/log.js';
import { WeirError } from '../runtime/errors.js';

/** How long a killed statement may take to end before the step gives up (and is retried). */
const ORPHAN_WAIT_MS = 120_000;

/**
 * Kill the statements running under these query ids and wait until system.processes no longer
 * lists them. Returns the ids that were running. (weir's embedded ClickHouse lists its statements
 * under ids of its own, but honours `KILL QUERY WHERE query_id = …` for the ids it was sent.)
 */
export async function settleOrphans(ch: ClickHouse, queryIds: string[], log: Logger): Promise<string[]> {
  const found: string[] = [];
  for (const id of queryIds) {
    const killed = await ch.query<{ kill_status: string }>(`KILL QUERY WHERE query_id = ${quoteString(id)} SYNC`);
    if (killed.length > 0) found.push(id);
  }
  const deadline = Date.now() + ORPHAN_WAIT_MS;
  for (;;) {
    const running = await ch.query<{ query_id: string }>('SELECT query_id FROM system.processes WHERE has({ids:Array(String)}, query_id)', {
      params: { ids: queryIds },
    });
    for (const r of running) if (!found.includes(r.query_id)) found.push(r.query_id);
    if (running.length === 0) break;
    if (Date.now() > deadline) {
      throw new WeirError(
        `statements of an earlier attempt of the migration are still running after a KILL: ${running.map((r) => r.query_id).join(', ')}; the step is tried again later`,
        {
          retriable: true,
          reason: 'StatementStillRunning',
        },
      );
    }
    await sleep(100);
  }
  if (found.length > 0) log.warn('killed statements an earlier attempt of the migration left running', { queryIds: found });
  return found;
}
