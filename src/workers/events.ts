// The HTTP events API, one module for `weir dev` and the `weir events` pods:
// POST /v0/events?name=<datasource> with NDJSON or one JSON array, plain or compressed
// (events-body.ts reads it, streamed and bounded). Every event is mapped through the columns'
// jsonPaths; events that do not map, are not UTF-8, or that ClickHouse refuses, go to the
// DataSource's quarantine table with the reason. The answer {successful_rows, quarantined_rows}
// comes once ClickHouse has the rows. Inserts go through one TableWriter per table
// (events-writer.ts: coalesced, fenced). A request with an idempotency key (events-idempotency.ts)
// lands once however often it is retried; other events under a key already used get 422.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DataSource } from '../api/datasource.js';
import { clickhouseName, databaseOf, resourceName, tableOf } from '../api/names.js';
import type { ClickHouse } from '../clickhouse/connection.js';
import { FenceParticipant } from '../execute/fence.js';
import { isRetriable } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import { errorMessage } from '../runtime/log.js';
import { BodyError, decodersFor, parseEvents, readBody, type BodyLine } from './events-body.js';
import { eventsDedupToken, eventsDigest, idempotencyKeyOf, KeyStore } from './events-idempotency.js';
import type { EventsMetrics } from './events-metrics.js';
import { RetryLaterError, TableWriter, type IngestResult, type InsertMode, type QuarantinedLine } from './events-writer.js';
import { compileRowMapper, type MappedRow, type RowMapper } from './rows.js';

export { isolateRefused, type IngestResult, type QuarantinedLine } from './events-writer.js';

/** The default limit on what a request sends and on what it decodes to (the body is held whole until inserted). */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** The default longest a request waits for its insert to start (a migration fence): then 503. */
export const MAX_FENCE_WAIT_MS = 10_000;
/** Retry-After of a 503 while ClickHouse is unreachable. */
const UNAVAILABLE_RETRY_AFTER_S = 2;

interface Target {
  database: string;
  table: string;
  mapper: RowMapper;
  writer: TableWriter;
  specKey: string;
}

/** A refusal decided before the body is read: status, message and headers (Retry-After, WWW-Authenticate). */
export interface Refusal {
  status: number;
  error: string;
  headers?: Record<string, string>;
}

export interface EventsApiOptions {
  maxBodyBytes?: number;
  maxFenceWaitMs?: number;
  mode?: InsertMode;
  metrics?: EventsMetrics;
  /** Auth and rate limits of a deployment: a refusal, or undefined to go on. */
  admit?: (req: IncomingMessage, url: URL, ds: DataSource) => Refusal | undefined;
  /** The fence writer id prefix (a pod's name). */
  writerId?: string;
}

/** Counts since the process started, per DataSource (`namespace/name`), for status reports. */
export interface EventsTotals {
  rows: number;
  quarantined: number;
}

export class EventsApi {
  private readonly targets = new Map<string, Target>();
  private readonly keys: KeyStore;
  readonly totals = new Map<string, EventsTotals>();

  constructor(
    private readonly ch: ClickHouse,
    private readonly dataSource: (name: string) => DataSource | undefined,
    private readonly log: Logger,
    private readonly opts: EventsApiOptions = {},
  ) {
    this.keys = new KeyStore(ch);
  }

  /**
   * Ingest events into a DataSource. With an idempotency key, the rows and the quarantine
   * entries are inserted under tokens made of the key and the events, so calling this again with
   * the same key and events inserts nothing more and answers the same counts; other events under
   * the key are refused (a 422 BodyError).
   */
  async ingest(name: string, lines: BodyLine[], idempotencyKey?: string): Promise<IngestResult> {
    const { ds, target } = this.target(name);
    const rows: { row: MappedRow; raw: string }[] = [];
    const bad: QuarantinedLine[] = [];
    for (const line of lines) {
      if (!('text' in line)) {
        bad.push(notUtf8(line));
        continue;
      }
      const r = target.mapper.map(line.text);
      if (r.ok) rows.push({ row: r.row, raw: line.text });
      else bad.push({ raw: line.text, error: r.error });
    }
    const keyed =
      idempotencyKey === undefined
        ? undefined
        : { key: idempotencyKey, digest: eventsDigest(lines), token: eventsDedupToken(target.database, target.table, idempotencyKey, lines) };
    const { replayed, ...result } = await target.writer.write({ rows, bad, ...(keyed ? { keyed } : {}) });
    if (replayed) return result;
    const key = `${ds.metadata.namespace ?? 'default'}/${ds.metadata.name}`;
    const totals = this.totals.get(key) ?? { rows: 0, quarantined: 0 };
    totals.rows += result.successful_rows;
    totals.quarantined += result.quarantined_rows;
    this.totals.set(key, totals);
    this.opts.metrics?.rows.inc({ datasource: ds.metadata.name }, result.successful_rows);
    this.opts.metrics?.quarantined.inc({ datasource: ds.metadata.name }, result.quarantined_rows);
    return result;
  }

  /** The longest a batch waited at a migration fence, over every DataSource written (benchmarks, the safety matrix). */
  longestFencePauseMs(): number {
    return Math.max(0, ...[...this.targets.values()].map((t) => t.writer.fence.longestPauseMs));
  }

  /** Requests queued or being inserted, over every DataSource. */
  pending(): number {
    return [...this.targets.values()].reduce((n, t) => n + t.writer.pending, 0);
  }

  /** Stop being a writer the migration executor waits for. */
  async close(): Promise<void> {
    for (const t of this.targets.values()) {
      await t.writer.close();
      await t.writer.fence.leave().catch(() => undefined);
    }
  }

  private target(name: string): { ds: DataSource; target: Target } {
    const ds = this.dataSource(resourceName(name));
    if (!ds) throw new BodyError(404, `no DataSource named ${JSON.stringify(name.slice(0, 100))} takes events here`);
    const specKey = JSON.stringify(ds.spec.columns);
    const cached = this.targets.get(ds.metadata.name);
    if (cached && cached.specKey === specKey) return { ds, target: cached };
    const mapper = compileRowMapper(ds.spec.columns);
    if (mapper.columns.length === 0) throw new BodyError(400, unfedMessage(ds.metadata.name));
    const database = databaseOf(ds);
    const table = tableOf(ds);
    const metrics = this.opts.metrics;
    const label = { datasource: ds.metadata.name };
    const writer =
      cached?.writer ??
      new TableWriter(
        this.ch,
        database,
        table,
        new FenceParticipant(this.ch, FenceParticipant.newId(`${this.opts.writerId ?? 'events'}-${clickhouseName(ds.metadata.name)}`), [{ database, table }]),
        {
          maxWaitMs: this.opts.maxFenceWaitMs ?? MAX_FENCE_WAIT_MS,
          keys: this.keys,
          name: ds.metadata.name,
          ...(this.opts.mode ? { mode: this.opts.mode } : {}),
          ...(metrics
            ? {
                onFlush: (f) => {
                  metrics.insertDuration.observe(label, f.insertMs / 1000);
                  metrics.fenceWait.observe(label, f.fenceWaitMs / 1000);
                  metrics.longestFenceWait.set(label, writer.fence.longestPauseMs / 1000);
                },
              }
            : {}),
        },
      );
    const target: Target = { database, table, mapper, writer, specKey };
    this.targets.set(ds.metadata.name, target);
    return { ds, target };
  }

  /** The `POST /v0/events?name=…` route; returns false when the request is not for it. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/v0/events') return false;
    const name = url.searchParams.get('name');
    let label = '_unknown';
    const reply = (status: number, body: object, headers: Record<string, string> = {}) => {
      this.opts.metrics?.requests.inc({ datasource: label, status: String(status) });
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(`${JSON.stringify(body)}\n`);
    };
    if (req.method !== 'POST') {
      reply(405, { error: 'use POST with NDJSON (one JSON object a line) or a JSON array' }, { allow: 'POST' });
      return true;
    }
    if (!name) {
      reply(400, { error: 'the name query parameter (a DataSource name) is required' });
      return true;
    }
    try {
      // Everything that refuses the request is checked before its body is read.
      const { ds } = this.target(name);
      label = ds.metadata.name;
      const refused = this.opts.admit?.(req, url, ds);
      if (refused) {
        if (!req.complete) res.setHeader('connection', 'close');
        reply(refused.status, { error: refused.error }, refused.headers);
        req.resume();
        return true;
      }
      const codings = decodersFor(req.headers['content-encoding']);
      const key = idempotencyKeyOf(req.headersDistinct['idempotency-key'], url.searchParams);
      let received = 0;
      const counting = (chunk: Buffer) => (received += chunk.length);
      req.on('data', counting);
      let body: Buffer;
      try {
        body = await readBody(req, codings, this.opts.maxBodyBytes ?? MAX_BODY_BYTES);
      } finally {
        req.off('data', counting);
        this.opts.metrics?.bodyBytes.observe({ datasource: label }, received);
      }
      const result = await this.ingest(name, parseEvents(body), key);
      // The client went away while its rows were inserted: they are in, and a retry with its key finds them.
      reply(res.destroyed ? 499 : 200, result);
    } catch (e) {
      const status = (e as { status?: number }).status ?? (isRetriable(e) ? 503 : 500);
      if (status >= 500 && !(e instanceof RetryLaterError)) this.log.error('events ingest failed', { datasource: name, error: errorMessage(e) });
      // A body refused unread or half read is not worth reading on: the connection closes.
      if (!req.complete) res.setHeader('connection', 'close');
      const retryAfter = e instanceof RetryLaterError ? e.retryAfterSeconds : status === 503 ? UNAVAILABLE_RETRY_AFTER_S : undefined;
      const message =
        status < 500 || e instanceof RetryLaterError
          ? errorMessage(e)
          : status === 503
            ? 'ClickHouse is unavailable; nothing is acknowledged, retry (with the same Idempotency-Key)'
            : 'ingest failed; see the server log';
      if (res.headersSent || res.destroyed) return true;
      reply(status, { error: message }, retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : {});
    }
    return true;
  }
}

/** The quarantine entry for a line that is not UTF-8: its exact bytes, in base64, and where they stop being UTF-8. */
function notUtf8(line: { bytes: Buffer; invalidAt: number }): QuarantinedLine {
  return { raw: line.bytes.toString('base64'), error: `not valid UTF-8 at byte ${line.invalidAt} of the line; ${RAW_IS_BASE64}` };
}

/** The marker in a quarantine row's error when its raw holds the line's bytes in base64 (the line was not text). */
export const RAW_IS_BASE64 = 'raw is the line in base64';

const unfedMessage = (name: string): string =>
  `DataSource ${name} has no column with a jsonPath, so no column is mapped from events; a table like this is fed by a materialized Pipe. ` +
  'Add a jsonPath to the columns events should fill to accept events for it';
