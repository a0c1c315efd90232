// The one narrow ClickHouse interface all of weir uses, over @clickhouse/client (HTTP).

import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';
// The client's own parameter encoding, which query() uses for its multipart bodies; exec() has no multipart mode.
import { buildMultipartBody, formatQueryParams, serializeQueryParamsForUrl } from '@clickhouse/client/dist/common/index.js';
import type { Logger } from '../runtime/log.js';
import { toClickHouseError } from './errors.js';

/** ClickHouse settings by name, e.g. `{ max_execution_time: 30 }`. */
export type Settings = Record<string, string | number>;

export interface QueryOptions {
  /** Values for `{name:Type}` placeholders, bound by the server: never spliced into the SQL. */
  params?: Record<string, unknown>;
  settings?: Settings;
  queryId?: string;
  signal?: AbortSignal;
  /** Database that unqualified names resolve in, for this call only (X-ClickHouse-Database). */
  database?: string;
}

export type CommandOptions = QueryOptions;

/** ClickHouse output formats an endpoint serves as they are written. */
export type OutputFormat = 'JSON' | 'CSVWithNames' | 'JSONEachRow' | 'Parquet' | 'ArrowStream';

export interface FormattedResult {
  /** The result as ClickHouse wrote it, streamed. */
  body: Readable;
  queryId: string;
  /** X-ClickHouse-Summary counters (decimal strings), when the server sent them. */
  summary?: { read_rows?: string; read_bytes?: string; result_rows?: string; elapsed_ns?: string };
}

export interface InsertOptions {
  settings?: Settings;
  queryId?: string;
  signal?: AbortSignal;
}

/** Every failure is a ClickHouseError (see errors.ts), with `retriable` set for what may pass on a retry. */
export interface ClickHouse {
  /** True when the server answers /ping. Never throws. */
  ping(): Promise<boolean>;
  /** Rows of a query that returns rows (it must not have a FORMAT clause: rows come as JSONEachRow). */
  query<T>(sql: string, opts?: QueryOptions): Promise<T[]>;
  /**
   * A query's result in a ClickHouse output format, as the server wrote it (the SQL must not have a FORMAT clause).
   * Fails before the first byte when the server refuses or fails the query (with wait_end_of_query=1, also when it
   * fails midway). Optional: a ClickHouse that cannot do this does not serve endpoints.
   */
  queryFormatted?(sql: string, format: OutputFormat, opts?: QueryOptions): Promise<FormattedResult>;
  /** A statement that returns no rows: DDL, INSERT ... SELECT, SYSTEM, ... */
  command(sql: string, opts?: CommandOptions): Promise<void>;
  /** Inserts rows (as JSONEachRow); acknowledged once the server has written them. */
  insert(table: string, rows: object[], opts?: InsertOptions): Promise<void>;
  /** Inserts JSONEachRow lines already serialized (one JSON object each), with no second encoding. */
  insertLines(table: string, lines: readonly string[], opts?: InsertOptions): Promise<void>;
  close(): Promise<void>;
}

export interface ConnectOptions {
  url: string;
  username?: string;
  password?: string;
  database?: string;
  requestTimeoutMs?: number;
  /** Settings sent with every request, over weir's defaults. */
  settings?: Settings;
  logger?: Logger;
}

/**
 * Settings weir sends with every request. Since ClickHouse 25.8, 64-bit integers come unquoted in JSON and would
 * lose precision in JSON.parse; quoted, they arrive as exact decimal strings.
 */
/** Long enough for a migration's backfill; endpoint servers bound their queries with their own deadlines. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60 * 60_000;

export const DEFAULT_SETTINGS: Settings = { output_format_json_quote_64bit_integers: 1 };

/** The first keyword of a statement: enough to tell log lines apart without logging SQL. */
/** The lines as request body chunks of about 1 MiB (one string per line would be a chunk each). */
function* linesBody(lines: readonly string[]): Generator<string> {
  const CHUNK = 1 << 20;
  let parts: string[] = [];
  let size = 0;
  for (const line of lines) {
    parts.push(line);
    size += line.length + 1;
    if (size >= CHUNK) {
      parts.push('');
      yield parts.join('\n');
      parts = [];
      size = 0;
    }
  }
  if (parts.length > 0) {
    parts.push('');
    yield parts.join('\n');
  }
}

/** The text a query parameter's value is sent as (`param_<name>`), in ClickHouse's escaped form. */
export const paramText = (value: unknown): string => formatQueryParams({ value });

/**
 * What exec() sends: the statement as the body and the parameters in the URL while they fit the client's URL
 * budget (4 KiB); past it, as query() does, one multipart/form-data body with the statement and every parameter,
 * so that a long value (a 20,000-character string, a 3,000-item array) never meets a server's URL or header limit.
 */
function execRequest(
  sql: string,
  params: Record<string, unknown> | undefined,
): { body: string; params?: Record<string, unknown>; headers: Record<string, string> } {
  if (params === undefined || serializeQueryParamsForUrl(params) !== null) return { body: sql, ...(params ? { params } : {}), headers: {} };
  const boundary = `----weir-${randomUUID()}`;
  const parts: Record<string, string> = { query: sql };
  for (const [name, value] of Object.entries(params)) parts[`param_${name}`] = paramText(value);
  return { body: buildMultipartBody(parts, boundary), headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` } };
}

const statementKind = (sql: string): string => /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase() ?? '';

class HttpClickHouse implements ClickHouse {
  constructor(
    private readonly client: ClickHouseClient,
    private readonly logger: Logger | undefined,
  ) {}

  async ping(): Promise<boolean> {
    const result = await this.client.ping();
    if (!result.success) this.logger?.debug('clickhouse ping failed', { error: toClickHouseError(result.error).message });
    return result.success;
  }

  query<T>(sql: string, opts: QueryOptions = {}): Promise<T[]> {
    return this.call('query', sql, opts.queryId, async () => {
      const rs = await this.client.query({
        query: sql,
        format: 'JSONEachRow',
        ...(opts.params ? { query_params: opts.params } : {}),
        ...(opts.settings ? { clickhouse_settings: opts.settings } : {}),
        ...(opts.queryId ? { query_id: opts.queryId } : {}),
        ...(opts.signal ? { abort_signal: opts.signal } : {}),
        ...(opts.database ? { http_headers: { 'X-ClickHouse-Database': opts.database } } : {}),
      });
      return rs.json<T>();
    });
  }

  queryFormatted(sql: string, format: OutputFormat, opts: QueryOptions = {}): Promise<FormattedResult> {
    return this.call('queryFormatted', sql, opts.queryId, async () => {
      // On a new line, so that a trailing `-- comment` cannot swallow the FORMAT clause.
      const request = execRequest(`${sql}\nFORMAT ${format}`, opts.params);
      const headers = { ...request.headers, ...(opts.database ? { 'X-ClickHouse-Database': opts.database } : {}) };
      const result = await this.client.exec({
        query: request.body,
        ...(request.params ? { query_params: request.params } : {}),
        ...(opts.settings ? { clickhouse_settings: opts.settings } : {}),
        ...(opts.queryId ? { query_id: opts.queryId } : {}),
        ...(opts.signal ? { abort_signal: opts.signal } : {}),
        ...(Object.keys(headers).length > 0 ? { http_headers: headers } : {}),
      });
      return { body: result.stream, queryId: result.query_id, ...(result.summary ? { summary: result.summary } : {}) };
    });
  }

  command(sql: string, opts: CommandOptions = {}): Promise<void> {
    return this.call('command', sql, opts.queryId, async () => {
      await this.client.command({
        query: sql,
        ...(opts.params ? { query_params: opts.params } : {}),
        ...(opts.settings ? { clickhouse_settings: opts.settings } : {}),
        ...(opts.queryId ? { query_id: opts.queryId } : {}),
        ...(opts.signal ? { abort_signal: opts.signal } : {}),
        ...(opts.database ? { http_headers: { 'X-ClickHouse-Database': opts.database } } : {}),
      });
    });
  }

  insert(table: string, rows: object[], opts: InsertOptions = {}): Promise<void> {
    return this.call('insert', 'INSERT', opts.queryId, async () => {
      await this.client.insert({
        table,
        values: rows,
        format: 'JSONEachRow',
        ...(opts.settings ? { clickhouse_settings: opts.settings } : {}),
        ...(opts.queryId ? { query_id: opts.queryId } : {}),
        ...(opts.signal ? { abort_signal: opts.signal } : {}),
      });
    });
  }

  insertLines(table: string, lines: readonly string[], opts: InsertOptions = {}): Promise<void> {
    return this.call('insertLines', 'INSERT', opts.queryId, async () => {
      const result = await this.client.exec({
        query: `INSERT INTO ${table} FORMAT JSONEachRow`,
        values: Readable.from(linesBody(lines)),
        ...(opts.settings ? { clickhouse_settings: opts.settings } : {}),
        ...(opts.queryId ? { query_id: opts.queryId } : {}),
        ...(opts.signal ? { abort_signal: opts.signal } : {}),
      });
      // The body is empty; reading it to the end returns the socket to the pool.
      for await (const _ of result.stream) void _;
    });
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /** Runs one call, converting its failure to ClickHouseError and logging it without SQL or values. */
  private async call<R>(op: string, sql: string, queryId: string | undefined, work: () => Promise<R>): Promise<R> {
    const started = performance.now();
    try {
      return await work();
    } catch (e) {
      const error = toClickHouseError(e);
      this.logger?.debug('clickhouse call failed', {
        op,
        statement: statementKind(sql),
        ...(queryId ? { queryId } : {}),
        code: error.code,
        type: error.type,
        retriable: error.retriable,
        durationMs: Math.round(performance.now() - started),
      });
      throw error;
    }
  }
}

/** A ClickHouse reached over HTTP at `url`. Nothing is sent until the first call. */
export function connectClickHouse(opts: ConnectOptions): ClickHouse {
  const client = createClient({
    url: opts.url,
    ...(opts.username !== undefined ? { username: opts.username } : {}),
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    ...(opts.database !== undefined ? { database: opts.database } : {}),
    // Backfills of large tables run for minutes; the client's 30 s default would abort them.
    request_timeout: opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    clickhouse_settings: { ...DEFAULT_SETTINGS, ...opts.settings },
    application: 'weir',
    // Long parameter values (big IN lists) go in a multipart body instead of an over-long URL.
    use_multipart_params_auto: true,
    // weir logs failures itself, without the client's console output.
    log: { level: ClickHouseLogLevel.OFF },
  });
  return new HttpClickHouse(client, opts.logger);
}
