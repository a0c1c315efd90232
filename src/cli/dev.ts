// `weir dev -f DIR`: the data project on this machine. The embedded ClickHouse behind the
// HTTP protocol, the same plan/execute as the operator, the events API and the endpoints on
// one port, and the folder watched: saving a file re-plans and applies it. A save that does
// not load, plan or apply is reported and changes nothing served: the last good project runs on.
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { DataSource } from '../api/datasource.js';
import type { Endpoint } from '../api/endpoint.js';
import { loadResources } from './load.js';
import { clickhouseName, resourceName } from '../api/names.js';
import type { Pipe } from '../api/pipe.js';
import { formatValidationError } from '../api/validate.js';
import { ApplyFailedError, applyProject } from '../execute/apply.js';
import { holderName } from '../execute/table-lock.js';
import { connectClickHouse, type ClickHouse } from '../clickhouse/connection.js';
import { toClickHouseError } from '../clickhouse/errors.js';
import { startClickHouseServer } from '../clickhouse/server.js';
import type { ProjectResource } from '../plan/graph.js';
import { describeAnyStep, pendingChanges } from '../plan/project-plan.js';
import { queryDatabaseIn } from '../plan/project-checks.js';
import { localGuardPolicy, machineNames, refuseLocalRequest } from '../runtime/local-guard.js';
import { createLogger, errorMessage } from '../runtime/log.js';
import { EventsApi } from '../workers/events.js';
import { compileEndpoint, type CompiledEndpoint } from '../plan/endpoint/compile.js';
import { createEndpointHandler } from '../workers/serve/handler.js';
import { localAuth } from '../workers/serve/local-auth.js';
import { describeEndpointQuery } from '../clickhouse/describe.js';
import { watchProject } from './folder-watch.js';

export interface DevFlags {
  filename: string;
  namespace: string;
  port: number;
  host: string;
  clickhousePort: number;
  dataDir: string;
  allowHost?: string[];
  allowOrigin?: string[];
  allowRemoteFunctions?: boolean;
  maxServerMemory?: number;
}

/** How long requests in flight at SIGTERM/SIGINT may take to finish before their connections are cut. */
const STOP_GRACE_MS = 5000;
/** The longest a stop may take in all (an apply or a query still running); then the process exits anyway. */
const STOP_DEADLINE_MS = 15_000;

/** A problem that stops `weir dev` from starting, said in one line. */
class DevStartError extends Error {}

/** Progress for long steps: a ticking line on a terminal, plain lines otherwise. */
function progressPrinter(): { line(text: string): void; tick(text: string): void; done(): void } {
  const tty = process.stdout.isTTY === true;
  let timer: NodeJS.Timeout | undefined;
  const clear = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    if (tty) process.stdout.write('\r\x1b[K');
  };
  return {
    line: (text) => {
      clear();
      console.log(text);
    },
    tick: (text) => {
      clear();
      if (!tty) return console.log(`${text} …`);
      const started = Date.now();
      timer = setInterval(() => process.stdout.write(`\r\x1b[K${text} … ${((Date.now() - started) / 1000).toFixed(1)} s`), 200);
    },
    done: clear,
  };
}

/** Why a server could not listen, with the flag that fixes it. */
function listenProblem(e: unknown, what: string, flag: string): string {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
  const where = `${err.address ?? '?'}:${err.port ?? '?'}`;
  if (err.code === 'EADDRINUSE') return `port ${err.port ?? '?'} is in use on ${err.address ?? '?'}${what}; pass ${flag}`;
  if (err.code === 'EACCES') return `cannot listen on ${where}${what} (permission denied); pass ${flag}`;
  if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND')
    return `cannot listen on ${err.address ?? err.hostname ?? '?'}${what} (no such address here); pass --host`;
  return `cannot listen${what}: ${errorMessage(e)}`;
}

function listen(http: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
}

/** Runs `weir dev` until SIGINT/SIGTERM; a problem starting is one line on stderr and exit code 1, with nothing left running. */
export async function runDev(flags: DevFlags): Promise<void> {
  try {
    await startDev(flags);
  } catch (e) {
    console.error(`weir dev: ${e instanceof DevStartError ? e.message : errorMessage(e)}`);
    process.exitCode = 1;
  }
}

/** The endpoints to serve, and those that cannot be served with why (they answer 503 until a save fixes them). */
export interface EndpointSet {
  served: Map<string, CompiledEndpoint>;
  unserved: Map<string, string>;
}

/**
 * Compile every Endpoint, then its query against ClickHouse as `weir serve` gates readiness on
 * (DESCRIBE, reading no data), so that an unknown column or table is said at save, not per request.
 */
export async function compileEndpoints(ch: ClickHouse, resources: ProjectResource[], defaultNamespace: string): Promise<EndpointSet> {
  const out: EndpointSet = { served: new Map(), unserved: new Map() };
  const pipes = resources.filter((r): r is Pipe => r.kind === 'Pipe');
  for (const ep of resources.filter((r): r is Endpoint => r.kind === 'Endpoint')) {
    const ns = ep.metadata.namespace ?? defaultNamespace;
    const what = `Endpoint ${ns}/${ep.metadata.name}`;
    const pipe = pipes.find((p) => p.metadata.name === resourceName(ep.spec.pipe) && (p.metadata.namespace ?? defaultNamespace) === ns);
    const c = pipe ? compileEndpoint(ep, pipe, queryDatabaseIn(pipe, resources)) : { problem: `Pipe ${ep.spec.pipe} does not exist` };
    if ('problem' in c) {
      out.unserved.set(clickhouseName(ep.metadata.name), `${what}: ${c.problem}`);
      continue;
    }
    try {
      await describeEndpointQuery(ch, c);
    } catch (e) {
      const error = toClickHouseError(e);
      const reason = `${what} (Pipe ${c.pipe}, node ${c.node}): the query does not compile: ${error.type || `code ${error.code}`}: ${error.message.split('\n')[0] ?? ''}`;
      // ClickHouse busy or gone says nothing about the SQL: serve it, as before the check.
      if (!error.retriable) {
        out.unserved.set(c.name, reason);
        continue;
      }
      console.error(`${what}: not checked against ClickHouse (${error.message.split('\n')[0] ?? ''}); serving it`);
    }
    out.served.set(c.name, c);
  }
  return out;
}

/** What a failed apply says: the resource and reason, then which steps of the save were applied and which were not. */
function describeApplyFailure(e: unknown): string {
  if (!(e instanceof ApplyFailedError)) return `not applied: ${errorMessage(e)}`;
  return [
    `${e.applied.length > 0 ? 'save partly applied' : 'not applied'}: ${e.resource}: ${e.problem}`,
    ...(e.applied.length > 0 ? [`  applied: ${e.applied.join('; ')}`] : []),
    `  not applied: ${e.notApplied.join('; ')}`,
  ].join('\n');
}

const ENDPOINT_PATH = /^\/v0\/pipes\/([A-Za-z0-9_-]+)(?:\.[A-Za-z0-9]+)?(?:\?|$)/;

async function startDev(flags: DevFlags): Promise<void> {
  const log = createLogger({ component: 'dev', format: 'pretty', level: process.env.WEIR_LOG_LEVEL ?? 'warn' });
  if (!existsSync(flags.filename)) throw new DevStartError(`${flags.filename} does not exist`);
  const dataDir = resolve(flags.dataDir);
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (e) {
    throw new DevStartError(`cannot create the data directory ${dataDir} (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}); pass --data-dir`);
  }
  let server: Awaited<ReturnType<typeof startClickHouseServer>>;
  try {
    server = await startClickHouseServer({
      dataDir,
      port: flags.clickhousePort,
      logger: log,
      allowHosts: flags.allowHost ?? [],
      allowOrigins: flags.allowOrigin ?? [],
      allowRemoteFunctions: flags.allowRemoteFunctions === true,
      ...(flags.maxServerMemory !== undefined ? { maxServerMemoryBytes: flags.maxServerMemory } : {}),
    });
  } catch (e) {
    throw new DevStartError(listenProblem(e, ' (the embedded ClickHouse)', '--clickhouse-port'));
  }
  const ch = connectClickHouse({ url: server.url });
  console.log(`weir dev: ClickHouse (chDB) at ${server.url}, data in ${dataDir}`);

  let resources: ProjectResource[] = [];
  let endpoints: EndpointSet = { served: new Map(), unserved: new Map() };
  const byName = <T extends ProjectResource>(kind: string, name: string) =>
    resources.find((r) => r.kind === kind && r.metadata.name === resourceName(name)) as T | undefined;
  const events = new EventsApi(ch, (name) => byName<DataSource>('DataSource', name), log);
  // Auth is enforced as weir serve does once the folder holds a Secret an Endpoint's auth names; otherwise off.
  let auth = await localAuth([]);
  const endpointHandler = createEndpointHandler({ clickhouse: ch, endpoints: () => endpoints.served, log, admit: (req, url, ep) => auth.admit(req, url, ep) });
  const progress = progressPrinter();

  const applySave = async () => {
    const loaded = loadResources(flags.filename, { defaultNamespace: flags.namespace });
    for (const w of loaded.warnings) console.error(`warning: ${formatValidationError(w)}`);
    if (loaded.errors.length > 0) {
      for (const e of loaded.errors) console.error(formatValidationError(e));
      console.error(`${loaded.errors.length} error(s); nothing applied. Fix and save to try again.`);
      return;
    }
    const next = loaded.resources.map((r) => r.object as unknown as ProjectResource);
    let plan;
    try {
      ({ plan } = await applyProject(ch, next, {
        log,
        holder: holderName('weir dev'),
        hooks: {
          onProgress: (step, state, detail) => {
            const what = describeAnyStep(step).split(':')[0] ?? step.kind;
            if (state === 'Backfilling') progress.tick(`${what}: backfilling`);
            else if (state !== 'Done' || !('fromVersion' in step))
              progress.line(`${state === 'Done' ? '✓' : '·'} ${what}${state === 'Done' ? '' : `: ${state}`}${detail ? ` ${JSON.stringify(detail)}` : ''}`);
          },
        },
      }));
    } catch (e) {
      progress.done();
      console.error(describeApplyFailure(e));
      console.error('Fix and save to try again.');
      return;
    }
    progress.done();
    resources = next;
    endpoints = await compileEndpoints(ch, next, flags.namespace);
    auth = await localAuth(loaded.others.map((o) => o.object));
    for (const note of auth.notes(endpoints.served.values())) console.log(note);
    for (const reason of endpoints.unserved.values()) console.error(`${reason}; it answers 503 until a save fixes it`);
    const served = [...endpoints.served.keys()].map((n) => `http://${flags.host}:${flags.port}/v0/pipes/${n}.json`).join(' ') || 'none';
    const unserved = endpoints.unserved.size > 0 ? `; not served (503): ${[...endpoints.unserved.keys()].join(', ')}` : '';
    console.log(`${pendingChanges(plan) === 0 ? 'up to date' : `applied ${pendingChanges(plan)} change(s)`}; endpoints: ${served}${unserved}`);
  };
  // A save never stops `weir dev`: whatever goes wrong is said, and the last good project runs on.
  const apply = () =>
    applySave().catch((e: unknown) => {
      progress.done();
      console.error(`not applied: ${errorMessage(e)}`);
    });

  let stopping = false;
  // Answers not yet begun, so that a stop can make them close their connections too.
  const unanswered = new Set<ServerResponse>();
  const hostGuard = localGuardPolicy({ bindHost: flags.host, allowHosts: flags.allowHost ?? [], machineNames: machineNames() });
  const http = createServer((req, res) => {
    // No page on another name (DNS rebinding) reaches the events or the endpoints.
    const refused = refuseLocalRequest(req.headers, hostGuard);
    if (refused) return void res.writeHead(403, { 'content-type': 'application/json; charset=utf-8' }).end(`${JSON.stringify({ error: refused.message })}\n`);
    // While stopping, every answer closes its connection, so keep-alive clients let go.
    if (stopping) res.setHeader('Connection', 'close');
    unanswered.add(res);
    res.once('close', () => unanswered.delete(res));
    res.once('finish', () => {
      if (stopping) http.closeIdleConnections();
    });
    void (async () => {
      if (await events.handle(req, res)) return;
      if (req.url === '/healthz' || req.url === '/readyz') return void res.writeHead(200).end('ok\n');
      const unserved = endpoints.unserved.get(clickhouseName(ENDPOINT_PATH.exec(req.url ?? '')?.[1] ?? ''));
      if (unserved !== undefined) {
        const body = `${JSON.stringify({ error: `not served: ${unserved}; fix the YAML and save` })}\n`;
        return void res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
      }
      await endpointHandler(req, res);
    })().catch((e: unknown) => {
      log.error('request failed', { error: errorMessage(e) });
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"internal error"}\n');
    });
  });
  try {
    await listen(http, flags.port, flags.host);
  } catch (e) {
    await ch.close();
    await server.stop();
    throw new DevStartError(listenProblem(e, '', '--port'));
  }
  // Port 0 picks a free port; everything printed uses the real one.
  flags.port = (http.address() as AddressInfo).port;
  console.log(`weir dev: events at POST http://${flags.host}:${flags.port}/v0/events?name=<datasource>`);

  // One apply at a time; saves during an apply queue exactly one more.
  let running: Promise<void> = apply();
  let queued = false;
  let debounce: NodeJS.Timeout | undefined;
  const watcher = watchProject(flags.filename, () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      if (queued || stopping) return;
      queued = true;
      running = running.then(async () => {
        queued = false;
        console.log('change detected; planning');
        await apply();
      });
    }, 250);
  });

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`weir dev: ${signal}, stopping`);
    // However a step below hangs, the process ends.
    setTimeout(() => {
      console.error(`weir dev: not stopped after ${STOP_DEADLINE_MS / 1000} s; exiting`);
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
    watcher.close();
    clearTimeout(debounce);
    for (const res of unanswered) if (!res.headersSent) res.setHeader('Connection', 'close');
    // No new connections; idle keep-alive ones closed now, busy ones once answered; past the grace, cut.
    const closed = new Promise<void>((r) => http.close(() => r()));
    http.closeIdleConnections();
    const cut = setTimeout(() => http.closeAllConnections(), STOP_GRACE_MS);
    await closed;
    clearTimeout(cut);
    await running;
    progress.done();
    await events.close();
    await ch.close();
    await server.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}
