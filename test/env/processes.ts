// Child processes of the test environment (etcd, kube-apiserver, the Kafka broker): start with
// output to a log file, stop gracefully, and never leave them (or their temp files) behind
// when the test process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';

const liveChildren = new Set<ChildProcess>();
/** Temp dirs and half-written files to remove if the test process exits before stop(). */
export const livePaths = new Set<string>();
let exitHookInstalled = false;

export function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL and remove; graceful shutdown is stop()'s job.
  // (vitest turns SIGINT/SIGTERM into process.exit(), so this also covers Ctrl-C during a run.)
  process.on('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
    for (const path of livePaths) rmSync(path, { recursive: true, force: true });
  });
}

export interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  /** Resolves once the process has exited (or failed to spawn). */
  exited: Promise<void>;
  /** Set when the process is gone, e.g. "exited with code 1". */
  exitReason?: string;
  exitCode?: number | null | undefined;
}

export function startProcess(name: string, bin: string, args: string[], logFile: string, cwd?: string): Proc {
  const fd = openSync(logFile, 'w');
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { ...(cwd ? { cwd } : {}), stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
  liveChildren.add(child);
  const proc: Proc = { name, child, logFile, exited: Promise.resolve() };
  proc.exited = new Promise<void>((resolve) => {
    const done = (reason: string, code?: number | null): void => {
      proc.exitReason ??= reason;
      proc.exitCode ??= code;
      liveChildren.delete(child);
      resolve();
    };
    child.once('error', (err) => done(`failed to start: ${err.message}`));
    child.once('exit', (code, signal) => done(signal ? `killed by ${signal}` : `exited with code ${code}`, code));
  });
  return proc;
}

/** SIGTERM, then SIGKILL after the grace period; resolves true if the process exited on its own. */
export async function stopProcess(proc: Proc, graceMs: number): Promise<boolean> {
  if (proc.exitReason !== undefined) return false;
  proc.child.kill('SIGTERM');
  let forced = false;
  const timer = setTimeout(() => {
    forced = true;
    proc.child.kill('SIGKILL');
  }, graceMs);
  await proc.exited;
  clearTimeout(timer);
  return !forced;
}

export function logTail(file: string, lines = 40): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd();
    return text ? text.split('\n').slice(-lines).join('\n') : '(empty)';
  } catch {
    return '(no log)';
  }
}

/**
 * Run a setup script (it builds or downloads once, then is a cache hit) and return the last
 * line it prints. Its stderr is shown: a first run takes minutes and is worth watching.
 */
export async function runSetupScript(script: string): Promise<string> {
  const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    process.stderr.write(chunk);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const last = stdout.trim().split('\n').pop()?.trim() ?? '';
  if (code !== 0 || !last) throw new Error(`${script} failed (exit ${code}):\n${stderr.slice(-4000)}`);
  return last;
}

/** Ports the OS considers free right now; all listeners are held open together so they are distinct. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}
