// An embedded ClickHouse server: the engine from chdb behind ClickHouse's HTTP interface, so that
// @clickhouse/client, curl and anything else that speaks to ClickHouse over HTTP work against it unchanged.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { localGuardPolicy, machineNames, refuseLocalRequest, type LocalGuardPolicy } from '../runtime/local-guard.js';
import type { Logger } from '../runtime/log.js';
import { ChdbEngine, engineError, type EngineResult } from './engine.js';
import { ClickHouseError, ErrorCode } from './errors.js';
import {
  authenticate,
  contentTypeFor,
  exceptionText,
  httpStatusFor,
  multipartFields,
  readHttpQuery,
  summaryHeader,
  type Credentials,
  type HttpQuery,
} from './http-protocol.js';

export interface ClickHouseServerOptions {
  /** Where the data lives; created when missing. One data directory per process (a chdb limit). */
  dataDir: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** With user or password set, requests must authenticate; user defaults to 'default', password to ''. */
  user?: string;
  password?: string;
  logger?: Logger;
  /** Statements run at once; defaults to one less than the libuv thread pool (UV_THREADPOOL_SIZE, 4). */
  maxConcurrentQueries?: number;
  /** Host names accepted besides localhost, IP addresses and the bound name; '*' accepts any (see local-guard.ts). */
  allowHosts?: readonly string[];
  /** Web page origins whose browser requests are served; '*' serves any. None by default. */
  allowOrigins?: readonly string[];
  /** url(), s3(), remote(), mysql() and the like; off by default. */
  allowRemoteFunctions?: boolean;
  /** Memory all statements together may use; defaults to a quarter of the RAM (see engine.ts). */
  maxServerMemoryBytes?: number;
}

export interface ClickHouseServer {
  url: string;
  port: number;
  /** Stops taking requests, lets running ones finish, then closes the engine. */
  stop(): Promise<void>;
}

// How long an idle keep-alive connection stays open: ClickHouse's default keep_alive_timeout.
const KEEP_ALIVE_TIMEOUT_MS = 10_000;

const NO_HANDLER = (path: string): string =>
  `There is no handle ${path}\n\nUse / or /ping for health checks.\nOr /replicas_status for more sophisticated health checks.\n\n` +
  'Send queries from your program with POST method or GET /?query=...\n';

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const brotliDecompress = promisify(zlib.brotliDecompress);
const gzip = promisify(zlib.gzip);
const deflate = promisify(zlib.deflate);
const brotliCompress = promisify(zlib.brotliCompress);

type ResponseEncoding = 'gzip' | 'deflate' | 'br';

async function decodeBody(body: Buffer, encoding: string | undefined): Promise<Buffer> {
  const method = (encoding ?? '').trim().toLowerCase();
  try {
    if (method === '' || method === 'identity' || method === 'none') return body;
    if (method === 'gzip' || method === 'x-gzip') return await gunzip(body);
    if (method === 'deflate') return await inflate(body);
    if (method === 'br') return await brotliDecompress(body);
  } catch (e) {
    throw new ClickHouseError(`Cannot decompress the request body (${method}): ${(e as Error).message}`, {
      code: ErrorCode.CANNOT_DECOMPRESS,
    });
  }
  throw new ClickHouseError(`Unknown compression method '${method}'. Supported here: gzip, deflate, br`, {
    code: ErrorCode.NOT_IMPLEMENTED,
  });
}

/** The response encoding a client accepts, in ClickHouse's order of preference among those zlib has. */
function acceptedEncoding(acceptEncoding: string | undefined): ResponseEncoding | undefined {
  const accepted = (acceptEncoding ?? '').toLowerCase();
  return (['gzip', 'deflate', 'br'] as const).find((e) => accepted.includes(e));
}

async function encodeBody(body: Buffer, encoding: ResponseEncoding, level = 3): Promise<Buffer> {
  if (encoding === 'gzip') return gzip(body, { level });
  if (encoding === 'deflate') return deflate(body, { level });
  return brotliCompress(body);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const hostForUrl = (host: string): string => {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
};

/** ClickHouse's hint when a GET request tries to write. */
function explainReadOnly(e: ClickHouseError, readOnly: boolean): ClickHouseError {
  if (!readOnly || e.code !== ErrorCode.READONLY) return e;
  const hint = 'For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries';
  return new ClickHouseError(`${e.message.replace(/\.$/, '')}. ${hint}`, { code: e.code, type: e.type, cause: e });
}

/** What one request turned into, for the log line (never SQL, parameter values or credentials). */
interface RequestOutcome {
  status: number;
  queryId?: string;
  exceptionCode?: number;
}

class ClickHouseHttpHandler {
  private inFlight = 0;
  private whenIdle?: () => void;
  private stopping = false;
  private readonly runningQueryIds = new Set<string>();
  private readonly displayName = hostname();

  constructor(
    private readonly engine: ChdbEngine,
    private readonly credentials: Credentials | undefined,
    private readonly guard: LocalGuardPolicy,
    private readonly logger: Logger | undefined,
  ) {}

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    this.inFlight++;
    // A client that leaves before its answer cancels its statement.
    const clientGone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) clientGone.abort();
    });
    // Fire and forget: node's request callback returns nothing, and the chain answers its own failures.
    void this.serve(req, res, clientGone.signal)
      .catch((e: unknown) => this.sendException(res, engineError(e)))
      .then((outcome) => {
        this.logger?.debug('clickhouse http request', {
          method: req.method,
          path: (req.url ?? '/').split('?')[0],
          durationMs: Math.round(performance.now() - started),
          ...outcome,
          ...(clientGone.signal.aborted ? { clientGone: true } : {}),
        });
      })
      .finally(() => {
        this.inFlight--;
        if (this.inFlight === 0) this.whenIdle?.();
      });
  };

  /** Refuses new requests and resolves once the running ones have been answered. */
  async drain(): Promise<void> {
    this.stopping = true;
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.whenIdle = resolve));
  }

  private async serve(req: IncomingMessage, res: ServerResponse, clientGone: AbortSignal): Promise<RequestOutcome> {
    const refused = refuseLocalRequest(req.headers, this.guard);
    if (refused) {
      this.logger?.warn('clickhouse request refused', { reason: refused.kind, message: refused.message });
      return this.sendException(res, new ClickHouseError(refused.message, { code: ErrorCode.ACCESS_DENIED }));
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    if (url.pathname === '/ping' || url.pathname === '/replicas_status') return this.sendText(res, 200, 'Ok.\n');
    if (url.pathname !== '/') return this.sendText(res, 404, NO_HANDLER(url.pathname));
    if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') return this.sendText(res, 405, `Method ${method} is not allowed\n`);
    if (method !== 'POST' && !url.searchParams.has('query')) return this.sendText(res, 200, 'Ok.\n');
    if (this.stopping) {
      res.setHeader('Connection', 'close');
      return this.sendException(res, new ClickHouseError('Server is shutting down', { code: ErrorCode.ABORTED }), 503);
    }

    let params = url.searchParams;
    if (this.credentials) authenticate(req.headers, params, this.credentials);
    let body = method === 'POST' ? await decodeBody(await readBody(req), req.headers['content-encoding']) : Buffer.alloc(0);
    const contentType = req.headers['content-type'] ?? '';
    if (contentType.startsWith('multipart/form-data')) {
      params = new URLSearchParams([...params, ...multipartFields(body, contentType)]);
      body = Buffer.alloc(0);
    }
    const query = readHttpQuery(params, req.headers);
    return this.runQuery(req, res, query, body, method !== 'POST', clientGone);
  }

  private async runQuery(
    req: IncomingMessage,
    res: ServerResponse,
    query: HttpQuery,
    body: Buffer,
    readOnly: boolean,
    clientGone: AbortSignal,
  ): Promise<RequestOutcome> {
    if (query.sessionId !== undefined) {
      throw new ClickHouseError('HTTP sessions (session_id) are not supported by this server', { code: ErrorCode.NOT_IMPLEMENTED });
    }
    if (query.nativeCompression) {
      throw new ClickHouseError('compress/decompress (ClickHouse block compression) is not supported by this server; use HTTP compression', {
        code: ErrorCode.NOT_IMPLEMENTED,
      });
    }
    const queryId = query.queryId ?? randomUUID();
    if (this.runningQueryIds.has(queryId)) {
      throw new ClickHouseError(`Query with id = ${queryId} is already running`, { code: ErrorCode.QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING });
    }
    this.runningQueryIds.add(queryId);
    try {
      const result = await this.engine.execute({
        sql: query.query ?? body.toString('utf8'),
        ...(query.query !== undefined ? { data: body } : {}),
        database: query.database,
        settings: query.settings,
        params: query.params,
        defaultFormat: query.defaultFormat,
        readOnly,
        queryId,
        signal: clientGone,
      });
      return await this.sendResult(req, res, query, queryId, result);
    } catch (e) {
      return this.sendException(res, explainReadOnly(engineError(e), readOnly), undefined, queryId);
    } finally {
      this.runningQueryIds.delete(queryId);
    }
  }

  private async sendResult(req: IncomingMessage, res: ServerResponse, query: HttpQuery, queryId: string, result: EngineResult): Promise<RequestOutcome> {
    let body = Buffer.from(result.body.buffer, result.body.byteOffset, result.body.byteLength);
    res.setHeader('Content-Type', contentTypeFor(result.outputFormat));
    res.setHeader('X-ClickHouse-Query-Id', queryId);
    if (result.outputFormat !== undefined) res.setHeader('X-ClickHouse-Format', result.outputFormat);
    res.setHeader('X-ClickHouse-Timezone', this.engine.info.timezone);
    res.setHeader('X-ClickHouse-Summary', summaryHeader(result.summary));
    res.setHeader('X-ClickHouse-Server-Display-Name', this.displayName);
    const encoding = query.compressResponse ? acceptedEncoding(req.headers['accept-encoding']) : undefined;
    if (encoding !== undefined) {
      body = await encodeBody(body, encoding, query.compressionLevel);
      res.setHeader('Content-Encoding', encoding);
    }
    res.setHeader('Content-Length', body.length);
    res.writeHead(200).end(body);
    return { status: 200, queryId };
  }

  private sendException(res: ServerResponse, e: ClickHouseError, status = httpStatusFor(e.code), queryId?: string): RequestOutcome {
    if (res.headersSent) {
      res.destroy();
      return { status: res.statusCode, exceptionCode: e.code };
    }
    const text = `${exceptionText(e, this.engine.info.version)}\n`;
    res.setHeader('Content-Type', 'text/plain; charset=UTF-8');
    res.setHeader('X-ClickHouse-Exception-Code', String(e.code));
    res.setHeader('X-ClickHouse-Server-Display-Name', this.displayName);
    if (queryId !== undefined) res.setHeader('X-ClickHouse-Query-Id', queryId);
    res.setHeader('Content-Length', Buffer.byteLength(text));
    res.writeHead(status).end(text);
    return { status, exceptionCode: e.code, ...(queryId !== undefined ? { queryId } : {}) };
  }

  private sendText(res: ServerResponse, status: number, text: string): RequestOutcome {
    res.writeHead(status, { 'Content-Type': 'text/html; charset=UTF-8', 'Content-Length': Buffer.byteLength(text) }).end(text);
    return { status };
  }
}

/** Starts ClickHouse on `dataDir`, serving ClickHouse's HTTP interface on host:port. */
export async function startClickHouseServer(opts: ClickHouseServerOptions): Promise<ClickHouseServer> {
  const host = opts.host ?? '127.0.0.1';
  const engine = await ChdbEngine.open({
    dataDir: opts.dataDir,
    ...(opts.maxConcurrentQueries !== undefined ? { maxConcurrentQueries: opts.maxConcurrentQueries } : {}),
    allowRemoteFunctions: opts.allowRemoteFunctions ?? false,
    ...(opts.maxServerMemoryBytes !== undefined ? { maxServerMemoryBytes: opts.maxServerMemoryBytes } : {}),
  });
  const credentials = opts.user !== undefined || opts.password !== undefined ? { user: opts.user ?? 'default', password: opts.password ?? '' } : undefined;
  const guard = localGuardPolicy({
    bindHost: host,
    allowHosts: opts.allowHosts ?? [],
    allowOrigins: opts.allowOrigins ?? [],
    machineNames: machineNames(),
  });
  const handler = new ClickHouseHttpHandler(engine, credentials, guard, opts.logger);
  const server = createServer(handler.handle);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 8123, host, () => resolve());
    });
  } catch (e) {
    await engine.close();
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  const url = `http://${hostForUrl(host)}:${port}`;
  opts.logger?.info('clickhouse server started', { url, dataDir: opts.dataDir, version: engine.info.version });

  let stopped: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await handler.drain();
    server.closeAllConnections();
    await closed;
    await engine.close();
    opts.logger?.info('clickhouse server stopped', { url });
  };
  return {
    url,
    port,
    stop: () => (stopped ??= stop()),
  };
}
