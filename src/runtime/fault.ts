import { existsSync, writeFileSync } from 'node:fs';

/**
 * Fault injection for crash tests: `WEIR_FAULT_AT=<point>` SIGKILLs the process the first time
 * it reaches that point (a migration state, an ingest step). Does nothing otherwise.
 * With `WEIR_FAULT_HOLD=<file>` as well, the process instead stops at the point (writing
 * `<file>.reached`) until `<file>` exists: a test can then crash something else, e.g.
 * ClickHouse, while the executor is exactly there.
 */
export function faultPoint(name: string): void {
  if (process.env.WEIR_FAULT_AT !== name) return;
  const hold = process.env.WEIR_FAULT_HOLD;
  if (hold) holdUntilReleased(hold);
  else process.kill(process.pid, 'SIGKILL');
}

/** Blocks the whole process (nothing else may run while it is held) until the release file appears. */
function holdUntilReleased(file: string): void {
  writeFileSync(`${file}.reached`, '');
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (!existsSync(file)) Atomics.wait(cell, 0, 0, 50);
}
