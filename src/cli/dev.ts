// `weir dev -f DIR`: the data project on this machine. The embedded ClickHouse behind the
// HTTP protocol, the same plan/execute as the operator, the events API and the endpoints on
// one port, and the folder watched: saving a file re-plans and applies it.
import { watch } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { DataSource } from '../api/datasource.js';
import type { Endpoint } from '../api/endpoint.js';
import { loadResources } from '../api/load.js';
import { clickhouseName, resourceName } from '../api/names.js';
import type { Pipe } from '../api/pipe.js';
import { formatValidationError } from '../api/validate.js';
import { applyProject } from '../clickhouse/apply.js';
import { connectClickHouse } from '../clickhouse/connection.js';
import { startClickHouseServer } from '../clickhouse/server.js';
import type { ProjectResource } from '../plan/graph.js';
import { describeAnyStep, pendingChanges } from '../plan/project-plan.js';
import { createLogger, errorMessage } from '../runtime/log.js';
import { EventsApi } from '../workers/events.js';
import { compileEndpoint, type CompiledEndpoint } from '../workers/serve/compile.js';
import { createEndpointHandler } from '../workers/serve/handler.js';

export interface DevFlags {
  filename: string;
  namespace: string;
  port: number;
  host: string;
  clickhousePort: number;
  dataDir: string;
}

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

export async function runDev(flags: DevFlags): Promise<void> {
  const log = createLogger({ component: 'dev', format: 'pretty', level: process.env.WEIR_LOG_LEVEL ?? 'warn' });
  const dataDir = resolve(flags.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const server = await startClickHouseServer({ dataDir, port: flags.clickhousePort, logger: log });
  const ch = connectClickHouse({ url: server.url });
  console.log(`weir dev: ClickHouse (chDB) at ${server.url}, data in ${dataDir}`);

  let resources: ProjectResource[] = [];
  let endpoints = new Map<string, CompiledEndpoint>();
  const byName = <T extends ProjectResource>(kind: string, name: string) =>
    resources.find((r) => r.kind === kind && r.metadata.name === resourceName(name)) as T | undefined;
  const events = new EventsApi(ch, (name) => byName<DataSource>('DataSource', name), log);
  const endpointHandler = createEndpointHandler({ clickhouse: ch, endpoints: () => endpoints, log });
  const progress = progressPrinter();

  const apply = async () => {
    const loaded = loadResources(flags.filename, { defaultNamespace: flags.namespace });
    if (loaded.errors.length > 0) {
      for (const e of loaded.errors) console.error(formatValidationError(e));
      console.error(`${loaded.errors.length} error(s); nothing applied. Fix and save to try again.`);
      return;
    }
    const next = loaded.resources.map((r) => r.object as unknown as ProjectResource);
    try {
      const { plan } = await applyProject(ch, next, {
        log,
        hooks: {
          onProgress: (step, state, detail) => {
            const what = describeAnyStep(step).split(':')[0] ?? step.kind;
            if (state === 'Backfilling') progress.tick(`${what}: backfilling`);
            else if (state !== 'Done' || !('fromVersion' in step)) progress.line(`${state === 'Done' ? '✓' : '·'} ${what}${state === 'Done' ? '' : `: ${state}`}${detail ? ` ${JSON.stringify(detail)}` : ''}`);
          },
        },
      });
      progress.done();
      resources = next;
      const compiled = new Map<string, CompiledEndpoint>();
      for (const ep of next.filter((r): r is Endpoint => r.kind === 'Endpoint')) {
        const pipe = byName<Pipe>('Pipe', ep.spec.pipe);
        // Unqualified names in Pipe SQL are tables of the namespace's database.
        const database = clickhouseName(ep.metadata.namespace ?? flags.namespace);
        const c = pipe ? compileEndpoint(ep, pipe, database) : { problem: `Pipe ${ep.spec.pipe} does not exist` };
        if ('problem' in c) console.error(`Endpoint ${ep.metadata.name}: ${c.problem}`);
        else compiled.set(c.name, c);
      }
      endpoints = compiled;
      console.log(`${pendingChanges(plan) === 0 ? 'up to date' : `applied ${pendingChanges(plan)} change(s)`}; endpoints: ${[...compiled.keys()].map((n) => `http://${flags.host}:${flags.port}/v0/pipes/${n}.json`).join(' ') || 'none'}`);
    } catch (e) {
      progress.done();
      console.error(`not applied: ${errorMessage(e)}`);
    }
  };

  const http = createServer((req, res) => {
    void (async () => {
      if (await events.handle(req, res)) return;
      if (req.url === '/healthz' || req.url === '/readyz') return void res.writeHead(200).end('ok\n');
      await endpointHandler(req, res);
    })().catch((e: unknown) => {
      log.error('request failed', { error: errorMessage(e) });
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"internal error"}\n');
    });
  });
  await new Promise<void>((r) => http.listen(flags.port, flags.host, r));
  // Port 0 picks a free port; everything printed uses the real one.
  flags.port = (http.address() as AddressInfo).port;
  console.log(`weir dev: events at POST http://${flags.host}:${flags.port}/v0/events?name=<datasource>`);

  // One apply at a time; saves during an apply queue exactly one more.
  let running: Promise<void> = apply();
  let queued = false;
  let debounce: NodeJS.Timeout | undefined;
  const watcher = watch(flags.filename, { recursive: true }, () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      if (queued) return;
      queued = true;
      running = running.then(async () => {
        queued = false;
        console.log('change detected; planning');
        await apply();
      });
    }, 250);
  });

  const stop = async (signal: string) => {
    console.log(`weir dev: ${signal}, stopping`);
    watcher.close();
    await running.catch(() => undefined);
    await events.close();
    await new Promise((r) => http.close(r));
    await ch.close();
    await server.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}
