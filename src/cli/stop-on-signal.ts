// How a long-running worker command (weir serve, weir events) stops on SIGTERM or SIGINT: the
// server drains (its own shutdown delay and requests in flight), the ClickHouse client closes,
// and the process exits 0, or 1 when the server did not stop cleanly.
import type { ClickHouse } from '../clickhouse/connection.js';
import { errorMessage, type Logger } from '../runtime/log.js';

export function stopOnSignal(server: { stop(): Promise<void> }, clickhouse: ClickHouse, log: Logger, what: string): void {
  const stop = (signal: string) => {
    log.info('signal received', { signal });
    void server
      .stop()
      .then(() => clickhouse.close())
      .then(
        () => process.exit(0),
        (e: unknown) => {
          log.error(`${what} did not stop cleanly`, { error: errorMessage(e) });
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
