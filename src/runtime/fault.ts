/**
 * Fault injection for crash tests: `WEIR_FAULT_AT=<point>` SIGKILLs the process the first time
 * it reaches that point (a migration state, an ingest step). Does nothing otherwise.
 */
export function faultPoint(name: string): void {
  if (process.env.WEIR_FAULT_AT === name) process.kill(process.pid, 'SIGKILL');
}
