// The endpoint server's HTTP handler: `weir serve` runs it behind a Service and `weir dev`
// mounts it on localhost.
//
//   GET|POST /v0/pipes/<name>.json|.csv|.ndjson|.parquet|.arrow   the endpoint's result (POST: parameters as a JSON object body)
//   GET      /v0/pipes/<name>/openapi.json        its OpenAPI 3.0 document
//   GET      /v0/pipes/openapi.json               the document of every endpoint served
//
// Parameters are checked before ClickHouse is asked anything and reach it only as query
// parameters, bound by the server. Every query runs with readonly=2 and the endpoint's limits
// as settings, and with wait_end_of_query=1: ClickHouse finishes (or fails) the query before it
// answers, so a failure is always a proper status rather than a half-written 200, and weir then
// streams the result to the client without holding it in memory.
//
// Each query has the id weir-ep-<endpoint>-<request id>. When the client goes away before the
// answer, or ClickHouse has not answered by the deadline, weir aborts its request to ClickHouse
// (with cancel_http_readonly_queries_on_client_close=1 a ClickHouse server then cancels it) and
// sends KILL QUERY for that id, so an abandoned query does not keep running. Parameter values
// travel in the body of the request to ClickHouse once they are long (see connection.ts).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { FORMATS, type Format } from '../../api/endpoint.js';
import { clickhouseName } from '../../api/names.js';
import { paramText, type ClickHouse, type OutputFormat, type Settings } from '../../clickhouse/connection.js';
import { ClickHouseError, ErrorCode, toClickHouseError } from '../../clickhouse/errors.js';
import { quoteStringLiteral } from '../../plan/sql-text.js';
import { errorMessage, type Logger } from '../../runtime/log.js';
import { TOKEN_PARAM, type CompiledEndpoint } from '../../plan/endpoint/compile.js';
import { ALL_ENDPOINTS, UNKNOWN_ENDPOINT, type EndpointMetrics } from './metrics.js';
import { describeValues, openApiDocument, PATH_PREFIX, type OutputColumn } from '../../plan/endpoint/openapi.js';
import { gatherParams, oversizedParams, shown, validateParams, type BoundValue, type GivenValue } from '../../plan/endpoint/params.js';
import { withFixedParams, type FixedParam } from './claims.js';

/** What the handler asks of ClickHouse: results as ClickHouse formats them, DESCRIBE rows for OpenAPI, and KILL QUERY. */
export type EndpointClickHouse = Pick<ClickHouse, 'query' | 'queryFormatted' | 'command'>;

export interface EndpointHandlerOptions {
  /** connectClickHouse(...) serves; it must have queryFormatted. */
  clickhouse: EndpointClickHouse;
  /** The endpoints served now, by CompiledEndpoint.name; read on every request, so they can change at any time. */
  endpoints: () => ReadonlyMap<string, CompiledEndpoint>;
  log: Logger;
  metrics?: EndpointMetrics;
  newRequestId?: () => string;
  /** Largest POST body, in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** How long past limits.maxExecutionTimeMs weir waits for ClickHouse before answering 408 itself (default 2 s). */
  deadlineGraceMs?: number;
  /** How long a DESCRIBE of an endpoint's output columns is reused for OpenAPI documents (default 60 s). */
  describeTtlMs?: number;
  /**
   * Whether a request for an endpoint's result goes ahead (auth, rate limit, readiness), asked before its
   * parameters are read; `refused` answers the request instead. Without it every request goes ahead.
   */
  admit?: (req: IncomingMessage, url: URL, ep: CompiledEndpoint) => Admission | undefined | Promise<Admission | undefined>;
  /** Told about every request once it is answered (the request log); must not throw or block. */
  onRequest?: (record: RequestRecord) => void;
}

/** Which token a request came with, by a name that is not the token: a JWT's sub, or the static token's key in its Secret. */
export interface TokenIdentity {
  kind: 'jwt' | 'static';
  id: string;
}

/** What admit decided: a refusal, and/or who is calling and which parameters their token fixes. */
export interface Admission {
  refused?: Failure;
  /** Set once the token is verified (never from an unverified one). */
  token?: TokenIdentity;
  fixed?: ReadonlyMap<string, FixedParam>;
}

/** One answered request, as the request log keeps it: no parameter values (except those a token fixed), no SQL, no token. */
export interface RequestRecord {
  requestId: string;
  /** When the request arrived. */
  time: Date;
  /** The endpoint's name, or UNKNOWN_ENDPOINT / ALL_ENDPOINTS. */
  endpoint: string;
  /** The endpoint's namespace, when the request named a served endpoint. */
  namespace: string;
  method: string;
  format: Format | '';
  status: number;
  durationMs: number;
  /** From ClickHouse's X-ClickHouse-Summary; 0 when no query ran. */
  rowsRead: number;
  bytesRead: number;
  /** The error the client was sent, with the request's parameter values taken out; '' on success. */
  error: string;
  /** The verified token's identity, when the endpoint has auth and the token verified. */
  token?: TokenIdentity;
  /** Parameters the token fixed, as canonical text: not secrets, and what usage is counted by. */
  fixedParams?: Record<string, string>;
}

/** Handles one request; the promise settles once the request is answered and recorded (it never rejects). */
export type EndpointRequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** A response weir decided on: status, the `error` text for the body, and how loudly to log it. */
export interface Failure {
  status: number;
  error: string;
  log?: 'warn' | 'error';
  retryAfterSeconds?: number;
  /** Extra response headers (e.g. WWW-Authenticate). */
  headers?: Record<string, string>;
}

/** Status for a client that went away before the response was written (nginx's convention); never sent. */
export const CLIENT_GONE = 499;

const CLICKHOUSE_FORMAT: Record<Format, OutputFormat> = { json: 'JSON', csv: 'CSVWithNames', ndjson: 'JSONEachRow', parquet: 'Parquet', arrow: 'ArrowStream' };
export const CONTENT_TYPE: Record<Format, string> = {
  json: 'application/json; charset=utf-8',
  csv: 'text/csv; charset=utf-8; header=present',
  ndjson: 'application/x-ndjson; charset=utf-8',
  parquet: 'application/vnd.apache.parquet',
  arrow: 'application/vnd.apache.arrow.stream',
};

const ALL_DOCUMENT = `${PATH_PREFIX}openapi.json`;
const ENDPOINT_DOCUMENT = /^\/v0\/pipes\/([A-Za-z0-9_-]+)\/openapi\.json$/;
const ENDPOINT_RESULT = /^\/v0\/pipes\/([A-Za-z0-9_-]+)(?:\.([A-Za-z0-9]+))?$/;
const documentationOf = (name: string) => `${PATH_PREFIX}${name}/openapi.json`;

/** The settings every endpoint query runs with: read-only, and the endpoint's limits. */
export function querySettings(ep: CompiledEndpoint): Settings {
  return {
    readonly: 2,
    max_execution_time: ep.limits.maxExecutionTimeMs / 1000,
    max_result_rows: ep.limits.maxResultRows,
    ...(ep.limits.maxResultBytes !== undefined ? { max_result_bytes: ep.limits.maxResultBytes } : {}),
    result_overflow_mode: 'throw',
    output_format_json_quote_64bit_integers: 1,
    wait_end_of_query: 1,
    cancel_http_readonly_queries_on_client_close: 1,
  };
}

/** The id an endpoint query runs under in ClickHouse (system.processes, KILL QUERY, query_log). */
export const endpointQueryId = (ep: Pick<CompiledEndpoint, 'name'>, requestId: string): string => `weir-ep-${ep.name}-${requestId}`;

/** How long a request waited for ClickHouse, for a time-out's message. */
export interface QueryTiming {
  /** From sending the query to ClickHouse to its answer, or to weir giving up on it. */
  waitedMs: number;
  /** Set when weir gave up: ClickHouse had not answered within limits.maxExecutionTimeMs plus this grace. */
  graceMs?: number;
}

const PARAMETER_IN_MESSAGE = /query parameter [`']?([A-Za-z_][A-Za-z0-9_]*)[`']?/;
// ClickHouse's TIMEOUT_EXCEEDED says how long the query itself ran: "elapsed 500.198 ms" (older: "elapsed 0.5 seconds").
const ELAPSED_IN_MESSAGE = /elapsed ([0-9.]+) (ms|sec)/;
/** A wait for ClickHouse to start a query shorter than this is not worth mentioning. */
const NOTABLE_WAIT_MS = 100;

/** How long a timed-out query ran in ClickHouse, from its message; ClickHouse counts from the query's start. */
function ranMsOf(e: ClickHouseError): number | undefined {
  const m = ELAPSED_IN_MESSAGE.exec(e.message);
  if (!m) return undefined;
  const n = Number(m[1]);
  return Number.isFinite(n) ? Math.round(m[2] === 'ms' ? n : n * 1000) : undefined;
}

/** The 408 of a time-out, saying what the time went on: running (ClickHouse's limit) or waiting for an answer (weir's). */
function timeoutFailure(e: ClickHouseError, ep: CompiledEndpoint, timing: QueryTiming | undefined): Failure {
  const limitMs = ep.limits.maxExecutionTimeMs;
  const limit = `${ep.name}'s limit of ${limitMs} ms (limits.maxExecutionTimeMs)`;
  if (timing?.graceMs !== undefined) {
    const waited = Math.round(timing.waitedMs);
    return {
      status: 408,
      error: `ClickHouse did not answer within ${waited} ms (${limit} plus ${timing.graceMs} ms): the query was still waiting for ClickHouse to start it or still running, and was cancelled; try again, or narrow the request`,
      log: 'warn',
    };
  }
  const ranMs = ranMsOf(e);
  if (ranMs === undefined) return { status: 408, error: `the query ran longer than ${limit}; narrow the request`, log: 'warn' };
  const waitedMs = timing ? Math.round(timing.waitedMs) - ranMs : 0;
  const wait = waitedMs >= NOTABLE_WAIT_MS ? `, after waiting ${waitedMs} ms for ClickHouse to start it (which does not count)` : '';
  return { status: 408, error: `the query ran for ${ranMs} ms, past ${limit}${wait}; narrow the request`, log: 'warn' };
}

/**
 * What a failed query tells the client. 400 only when a parameter is clearly the cause (the
 * server could not read one) or the result is larger than the endpoint serves; a timeout is
 * 408; an unreachable or overloaded ClickHouse 503/504; anything else 500 with no detail.
 */
export function queryFailure(
  e: ClickHouseError,
  ep: CompiledEndpoint,
  given: ReadonlyMap<string, GivenValue>,
  requestId: string,
  timing?: QueryTiming,
): Failure {
  if (e.code === ErrorCode.TIMEOUT_EXCEEDED) return timeoutFailure(e, ep, timing);
  if (e.type === 'TOO_MANY_ROWS_OR_BYTES') {
    const bytes = ep.limits.maxResultBytes !== undefined ? ` or ${ep.limits.maxResultBytes} bytes (limits.maxResultBytes)` : '';
    return {
      status: 400,
      error: `the result is larger than ${ep.name} serves: at most ${ep.limits.maxResultRows} rows (limits.maxResultRows)${bytes}; narrow the request`,
    };
  }
  const named = PARAMETER_IN_MESSAGE.exec(e.message)?.[1];
  const param = ep.params.find((p) => p.name === named);
  if (param && e.code !== ErrorCode.UNKNOWN_QUERY_PARAMETER) {
    const value = given.get(param.name)?.value ?? param.default;
    return { status: 400, error: `parameter ${param.name}: expected ${param.type}, got ${shown(value)}` };
  }
  if (e.code === ErrorCode.SOCKET_TIMEOUT) {
    return { status: 504, error: `ClickHouse did not answer in time; try again (request id ${requestId})`, log: 'warn' };
  }
  if (e.retriable) {
    return { status: 503, error: `ClickHouse is unavailable or overloaded; try again (request id ${requestId})`, log: 'warn', retryAfterSeconds: 1 };
  }
  return { status: 500, error: `the query failed; the server log has the details under request id ${requestId}`, log: 'error' };
}

/** A ClickHouse error message with the request's parameter values taken out, for the server log. */
export function redactValues(message: string, given: ReadonlyMap<string, GivenValue>, bound: Record<string, BoundValue>): string {
  const texts = new Set<string>();
  const add = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(add);
    else if (typeof v === 'string') texts.add(v);
    else if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') texts.add(String(v));
    else if (v !== null && v !== undefined) texts.add(JSON.stringify(v));
  };
  for (const g of given.values()) add(g.value);
  for (const v of Object.values(bound)) add(v);
  const variants = [...texts].flatMap((t) => [t, JSON.stringify(t).slice(1, -1), t.replace(/\\/g, '\\\\').replace(/'/g, "\\'")]);
  // One character says nothing about anyone, and replacing it would garble the message.
  const ordered = [...new Set(variants)].filter((t) => t.length >= 2).sort((a, b) => b.length - a.length);
  let out = message;
  for (const t of ordered) out = out.split(t).join('<value>');
  return out.length > 1000 ? `${out.slice(0, 1000)}…` : out;
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        reject(new BodyTooLarge());
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

interface RequestState {
  requestId: string;
  /** Metrics label: the endpoint's name, or UNKNOWN_ENDPOINT / ALL_ENDPOINTS. */
  endpoint: string;
  namespace?: string;
  format?: Format;
  status: number;
  resultRows?: number | undefined;
  rowsRead?: number | undefined;
  bytesRead?: number | undefined;
  /** The error text sent, and what to take out of it before it is recorded. */
  error?: string;
  given?: ReadonlyMap<string, GivenValue>;
  bound?: Record<string, BoundValue>;
  token?: TokenIdentity;
  fixed?: ReadonlyMap<string, FixedParam>;
}

/** A decimal counter from X-ClickHouse-Summary, when it is one. */
const counter = (text: string | undefined): number | undefined => {
  const n = Number(text);
  return text !== undefined && Number.isFinite(n) ? n : undefined;
};

/** The error of a request as recorded: parameter values out, including a value quoted back shortened. */
export function recordedError(error: string, given: ReadonlyMap<string, GivenValue> | undefined, bound: Record<string, BoundValue> | undefined): string {
  const redacted = given || bound ? redactValues(error, given ?? new Map(), bound ?? {}) : error;
  // shown() quotes a rejected value as JSON and may cut it short with '…', which redactValues cannot match whole.
  return redacted.replace(/\bgot "(?:[^"\\]|\\.)*(?:"|…)/g, 'got <value>');
}

const DEADLINE = 'deadline';
const GONE = 'client-gone';
type AbortReason = typeof DEADLINE | typeof GONE;
/** How long weir waits for ClickHouse to take a KILL QUERY. */
const KILL_TIMEOUT_MS = 10_000;

/** KILL for one query id, as a literal: the embedded server finds its own requests' ids in that form. */
export const killStatement = (queryId: string): string => `KILL QUERY WHERE query_id = ${quoteStringLiteral(queryId)} ASYNC`;

/** The request handler for the endpoints `opts.endpoints()` returns. */
export function createEndpointHandler(opts: EndpointHandlerOptions): EndpointRequestHandler {
  const formatted = opts.clickhouse.queryFormatted?.bind(opts.clickhouse);
  if (!formatted) throw new Error('the ClickHouse connection given to the endpoint handler cannot return formatted results (queryFormatted)');
  const queryFormatted: NonNullable<EndpointClickHouse['queryFormatted']> = formatted;
  const newRequestId = opts.newRequestId ?? randomUUID;
  const maxBodyBytes = opts.maxBodyBytes ?? 1024 * 1024;
  const graceMs = opts.deadlineGraceMs ?? 2000;
  const describeTtlMs = opts.describeTtlMs ?? 60_000;
  const describedColumns = new Map<string, { version: string; at: number; columns: OutputColumn[] | undefined }>();
  const { log } = opts;

  const sendJson = (res: ServerResponse, state: RequestState, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    state.status = status;
    if (status >= 400 && typeof body === 'object' && body !== null && 'error' in body) state.error = String(body.error);
    if (res.destroyed) return;
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers }).end(text);
  };

  const sendError = (res: ServerResponse, state: RequestState, failure: Failure, documentation?: string, headers: Record<string, string> = {}): void => {
    sendJson(
      res,
      state,
      failure.status,
      { error: failure.error, ...(documentation ? { documentation } : {}), request_id: state.requestId },
      { ...headers, ...failure.headers, ...(failure.retryAfterSeconds !== undefined ? { 'Retry-After': String(failure.retryAfterSeconds) } : {}) },
    );
  };

  /** Ends a query nobody waits for any more, by its id; ClickHouse's max_execution_time ends it otherwise. */
  function killQuery(ep: CompiledEndpoint, state: RequestState, queryId: string): void {
    opts.clickhouse.command(killStatement(queryId), { signal: AbortSignal.timeout(KILL_TIMEOUT_MS) }).catch((e: unknown) => {
      const error = toClickHouseError(e);
      log.warn('KILL QUERY for a cancelled endpoint query failed; it runs until limits.maxExecutionTimeMs', {
        requestId: state.requestId,
        endpoint: ep.name,
        queryId,
        code: error.code,
        type: error.type,
      });
    });
  }

  async function outputColumns(ep: CompiledEndpoint): Promise<OutputColumn[] | undefined> {
    const cached = describedColumns.get(ep.name);
    if (cached && cached.version === ep.version && Date.now() - cached.at < describeTtlMs) return cached.columns;
    let columns: OutputColumn[] | undefined;
    try {
      const rows = await opts.clickhouse.query<OutputColumn>(`DESCRIBE TABLE (\n${ep.sql}\n)`, {
        params: describeValues(ep),
        database: ep.database,
        settings: { readonly: 2, max_execution_time: Math.min(ep.limits.maxExecutionTimeMs, 5000) / 1000 },
      });
      columns = rows.map((r) => ({ name: r.name, type: r.type }));
    } catch (e) {
      const error = toClickHouseError(e);
      log.warn('endpoint output columns not described; the OpenAPI document has generic rows', { endpoint: ep.name, code: error.code, type: error.type });
    }
    describedColumns.set(ep.name, { version: ep.version, at: Date.now(), columns });
    return columns;
  }

  async function serveDocument(res: ServerResponse, state: RequestState, endpoints: CompiledEndpoint[]): Promise<void> {
    const columns = new Map<string, OutputColumn[] | undefined>();
    await Promise.all(endpoints.map(async (ep) => columns.set(ep.name, await outputColumns(ep))));
    sendJson(res, state, 200, openApiDocument(endpoints, { columns: (ep) => columns.get(ep.name) }));
  }

  async function serveResult(req: IncomingMessage, res: ServerResponse, state: RequestState, ep: CompiledEndpoint, format: Format, url: URL): Promise<void> {
    const documentation = documentationOf(ep.name);
    let body: unknown;
    if (req.method === 'POST') {
      let raw: Buffer;
      try {
        raw = await readBody(req, maxBodyBytes);
      } catch (e) {
        if (!(e instanceof BodyTooLarge)) throw e;
        sendError(res, state, { status: 413, error: `the request body is larger than ${maxBodyBytes} bytes` }, documentation, { Connection: 'close' });
        return;
      }
      const text = raw.toString('utf8');
      if (text.trim() !== '') {
        try {
          body = JSON.parse(text);
        } catch (e) {
          sendError(
            res,
            state,
            { status: 400, error: `the request body is not JSON (${errorMessage(e)}); send the parameters as a JSON object` },
            documentation,
          );
          return;
        }
      }
    }
    // With auth, ?token= is the credential, not a parameter (compile refuses a parameter of that name).
    const search = new URLSearchParams(url.searchParams);
    if (ep.auth) search.delete(TOKEN_PARAM);
    const gathered = gatherParams(search, body);
    if (!gathered.ok) {
      sendError(res, state, { status: 400, error: gathered.errors.join('; ') }, documentation);
      return;
    }
    let given = gathered.value;
    if (state.fixed && state.fixed.size > 0) {
      const merged = withFixedParams(ep, given, state.fixed);
      state.given = given;
      if (!merged.ok) {
        sendError(res, state, { status: merged.status, error: merged.error }, documentation);
        return;
      }
      given = merged.given;
    }
    state.given = given;
    const validated = validateParams(ep, given);
    if (!validated.ok) {
      sendError(res, state, { status: 400, error: validated.errors.join('; ') }, documentation);
      return;
    }
    const values = validated.value;
    state.bound = values;
    const oversized = oversizedParams(values, paramText);
    if (oversized.length > 0) {
      sendError(res, state, { status: 400, error: `${oversized.join('; ')}; send fewer or shorter values` }, documentation);
      return;
    }
    // The client left while its body was read: nothing to run the query for.
    if (res.destroyed) {
      state.status = CLIENT_GONE;
      return;
    }

    const queryId = endpointQueryId(ep, state.requestId);
    const controller = new AbortController();
    // The deadline counts from here: reading the body, auth and the rate limit are behind the request.
    const sentAt = performance.now();
    let answered = false;
    const abort = (why: AbortReason): void => {
      if (controller.signal.aborted) return;
      controller.abort(why);
      if (answered) return;
      const message =
        why === GONE ? 'endpoint query cancelled: the client went away before the answer' : 'endpoint query cancelled: ClickHouse did not answer in time';
      log.info(message, { requestId: state.requestId, endpoint: ep.name, queryId, afterMs: Math.round(performance.now() - sentAt) });
      killQuery(ep, state, queryId);
    };
    const deadline = setTimeout(() => abort(DEADLINE), ep.limits.maxExecutionTimeMs + graceMs);
    const onClose = () => {
      if (!res.writableFinished) abort(GONE);
    };
    res.on('close', onClose);
    try {
      const result = await queryFormatted(ep.sql, CLICKHOUSE_FORMAT[format], {
        params: values,
        settings: querySettings(ep),
        queryId,
        signal: controller.signal,
        database: ep.database,
      });
      answered = true;
      clearTimeout(deadline);
      state.resultRows = counter(result.summary?.result_rows);
      state.rowsRead = counter(result.summary?.read_rows);
      state.bytesRead = counter(result.summary?.read_bytes);
      state.status = 200;
      res.writeHead(200, { 'Content-Type': CONTENT_TYPE[format] });
      try {
        await pipeline(result.body, res);
      } catch (e) {
        // The status is sent; all that is left is to end the response short, which the client sees.
        if (controller.signal.reason === GONE) state.status = CLIENT_GONE;
        else log.warn('endpoint response ended early', { requestId: state.requestId, endpoint: ep.name, error: toClickHouseError(e).type });
        res.destroy();
      }
    } catch (e) {
      answered = true;
      if (controller.signal.reason === GONE) {
        state.status = CLIENT_GONE;
        return;
      }
      const gaveUp = controller.signal.reason === DEADLINE;
      const error = gaveUp
        ? new ClickHouseError('no answer from ClickHouse within the time limit', { code: ErrorCode.TIMEOUT_EXCEEDED })
        : toClickHouseError(e);
      // A query past max_execution_time has answered, but an embedded engine (chdb) may still be running it.
      if (!gaveUp && error.code === ErrorCode.TIMEOUT_EXCEEDED) killQuery(ep, state, queryId);
      const timing: QueryTiming = { waitedMs: performance.now() - sentAt, ...(gaveUp ? { graceMs } : {}) };
      const failure = queryFailure(error, ep, given, state.requestId, timing);
      if (failure.log) {
        log[failure.log]('endpoint query failed', {
          requestId: state.requestId,
          endpoint: ep.name,
          status: failure.status,
          code: error.code,
          type: error.type,
          detail: redactValues(error.message, given, values),
        });
      }
      sendError(res, state, failure, documentation);
    } finally {
      clearTimeout(deadline);
      res.off('close', onClose);
    }
  }

  async function serve(req: IncomingMessage, res: ServerResponse, state: RequestState): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const endpoints = opts.endpoints();
    const find = (name: string) => endpoints.get(clickhouseName(name));

    if (path === ALL_DOCUMENT || ENDPOINT_DOCUMENT.test(path)) {
      const name = ENDPOINT_DOCUMENT.exec(path)?.[1];
      const ep = name === undefined ? undefined : find(name);
      state.endpoint = name === undefined ? ALL_ENDPOINTS : (ep?.name ?? UNKNOWN_ENDPOINT);
      if (name !== undefined && !ep) {
        sendError(res, state, { status: 404, error: `there is no endpoint ${name}` }, ALL_DOCUMENT);
        return;
      }
      if (method !== 'GET') {
        sendError(res, state, { status: 405, error: `${path} takes GET, not ${method}` }, undefined, { Allow: 'GET' });
        return;
      }
      for (const described of describedColumns.keys()) if (!endpoints.has(described)) describedColumns.delete(described);
      await serveDocument(res, state, ep ? [ep] : [...endpoints.values()]);
      return;
    }

    const match = ENDPOINT_RESULT.exec(path);
    const ep = match?.[1] === undefined ? undefined : find(match[1]);
    if (!match || !ep) {
      const what =
        match?.[1] !== undefined
          ? `there is no endpoint ${match[1]}`
          : `there is nothing at ${path}; endpoints answer at ${PATH_PREFIX}<name>.json, .csv, .ndjson, .parquet or .arrow`;
      sendError(res, state, { status: 404, error: what }, ALL_DOCUMENT);
      return;
    }
    state.endpoint = ep.name;
    state.namespace = ep.namespace;
    const served = ep.formats.map((f) => `.${f}`).join(', ');
    const extension = match[2];
    if (extension === undefined || !(FORMATS as readonly string[]).includes(extension) || !ep.formats.includes(extension as Format)) {
      const what = extension === undefined ? `${ep.name} needs a format` : `${ep.name} is not served as .${extension}`;
      sendError(res, state, { status: 404, error: `${what}; it is served as ${served}` }, documentationOf(ep.name));
      return;
    }
    const format = extension as Format;
    state.format = format;
    if (method !== 'GET' && method !== 'POST') {
      sendError(res, state, { status: 405, error: `${path} takes GET or POST, not ${method}` }, documentationOf(ep.name), { Allow: 'GET, POST' });
      return;
    }
    const admission = await opts.admit?.(req, url, ep);
    if (admission?.token) state.token = admission.token;
    if (admission?.fixed) state.fixed = admission.fixed;
    const refused = admission?.refused;
    if (refused) {
      if (refused.log)
        log[refused.log]('endpoint request refused', { requestId: state.requestId, endpoint: ep.name, status: refused.status, error: refused.error });
      sendError(res, state, refused, documentationOf(ep.name));
      return;
    }
    await serveResult(req, res, state, ep, format, url);
  }

  return (req, res) => {
    const started = performance.now();
    const arrived = new Date();
    const state: RequestState = { requestId: newRequestId(), endpoint: UNKNOWN_ENDPOINT, status: 500 };
    res.setHeader('X-Request-Id', state.requestId);
    return serve(req, res, state)
      .catch((e: unknown) => {
        log.error('endpoint request failed', { requestId: state.requestId, endpoint: state.endpoint, error: errorMessage(e) });
        if (res.headersSent) res.destroy();
        else sendError(res, state, { status: 500, error: `internal error; the server log has the details under request id ${state.requestId}` });
      })
      .finally(() => {
        const seconds = (performance.now() - started) / 1000;
        opts.metrics?.observe(state.endpoint, state.status, seconds);
        opts.onRequest?.({
          requestId: state.requestId,
          time: arrived,
          endpoint: state.endpoint,
          namespace: state.namespace ?? '',
          method: req.method ?? '',
          format: state.format ?? '',
          status: state.status,
          durationMs: seconds * 1000,
          rowsRead: state.rowsRead ?? 0,
          bytesRead: state.bytesRead ?? 0,
          error: state.error === undefined ? '' : recordedError(state.error, state.given, state.bound),
          ...(state.token ? { token: state.token } : {}),
          ...(state.fixed && state.fixed.size > 0 ? { fixedParams: Object.fromEntries([...state.fixed].map(([k, f]) => [k, f.text])) } : {}),
        });
        log.debug('endpoint request', {
          requestId: state.requestId,
          method: req.method,
          endpoint: state.endpoint,
          ...(state.format ? { format: state.format } : {}),
          status: state.status,
          ...(state.resultRows !== undefined ? { resultRows: state.resultRows } : {}),
          durationMs: Math.round(seconds * 1000),
        });
      });
  };
}
