// The HTTP events API of `weir dev`: POST /v0/events?name=<datasource> with NDJSON, plain or
// compressed (events-body.ts reads it). Every line is mapped through the columns' jsonPaths;
// lines that do not map, are not UTF-8, or that ClickHouse refuses, go to the DataSource's
// quarantine table with the reason. Inserts honour the migration fence like every weir-managed
// writer. A request with an idempotency key is deduplicated (events-idempotency.ts): a retry of
// it inserts nothing again; one without a key inserts with deduplication off.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DataSource } from '../api/datasource.js';
import { clickhouseName, databaseOf, resourceName, tableOf } from '../api/names.js';
import type { ClickHouse, Settings } from '../clickhouse/connection.js';
import { deduplicatedBy, deduplicationOff } from '../clickhouse/dedup.js';
import { ClickHouseError, ErrorCode, isMissingDependency } from '../clickhouse/errors.js';
import { FenceParticipant } from '../execute/fence.js';
import { quarantineTableName } from '../plan/sql.js';
import { isRetriable } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import { errorMessage } from '../runtime/log.js';
import { BodyError, decodersFor, readBody, splitLines, type BodyLine } from './events-body.js';
import { eventsDedupToken, idempotencyKeyOf, quarantineDedupToken } from './events-idempotency.js';
import { compileRowMapper, MAPPED_ROW_SETTINGS, type MappedRow, type RowMapper } from './rows.js';

// Both what a request sends and what it decodes to: the body is held whole until it is inserted.
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface IngestResult {
  successful_rows: number;
  quarantined_rows: number;
}

interface Target {
  database: string;
  table: string;
  mapper: RowMapper;
  fence: FenceParticipant;
  specKey: string;
}

export interface QuarantinedLine {
  raw: string;
  error: string;
}

/**
 * Insert items; when ClickHouse refuses the batch (a value the mapper passed through), split
 * it to find the items it refuses, so one bad row never costs the batch.
 *
 * With a `token`, every insert is deduplicated by it: the whole batch by `token`, a half by
 * `token/0` or `token/1`, and so on. The split follows from the items alone, so a replay of the
 * same items inserts the same blocks under the same tokens and ClickHouse drops those that
 * landed. Without one, deduplication is off (identical blocks are legitimate data here).
 */
export async function isolateRefused<T>(
  items: T[],
  insert: (items: T[], dedup: Settings) => Promise<void>,
  dedupSettings: (token: string | undefined) => Promise<Settings>,
  token?: string,
): Promise<{ inserted: number; refused: { item: T; error: string }[] }> {
  if (items.length === 0) return { inserted: 0, refused: [] };
  try {
    await insert(items, await dedupSettings(token));
    return { inserted: items.length, refused: [] };
  } catch (e) {
    if (isRetriable(e) || !refusesRows(e)) throw e;
    if (items.length === 1) return { inserted: 0, refused: [{ item: items[0] as T, error: errorMessage(e).split('\n')[0] ?? 'refused by ClickHouse' }] };
    const mid = Math.ceil(items.length / 2);
    const a = await isolateRefused(items.slice(0, mid), insert, dedupSettings, token === undefined ? undefined : `${token}/0`);
    const b = await isolateRefused(items.slice(mid), insert, dedupSettings, token === undefined ? undefined : `${token}/1`);
    return { inserted: a.inserted + b.inserted, refused: [...a.refused, ...b.refused] };
  }
}

/** isolateRefused for mapped rows sent as objects (the events API). */
export async function insertOrIsolate(
  ch: ClickHouse,
  table: string,
  rows: { row: MappedRow; raw: string }[],
  token?: string,
): Promise<{ inserted: number; refused: QuarantinedLine[] }> {
  const { inserted, refused } = await isolateRefused(
    rows,
    (items, dedup) =>
      ch.insert(
        table,
        items.map((r) => r.row),
        { settings: { ...MAPPED_ROW_SETTINGS, ...dedup } },
      ),
    (t) => (t === undefined ? deduplicationOff(ch) : deduplicatedBy(ch, t)),
    token,
  );
  return { inserted, refused: refused.map((r) => ({ raw: r.item.raw, error: r.error })) };
}

/**
 * Whether an insert failed because of the rows in it (a value the type refuses), rather than
 * because of the table (missing, read-only, no permission): only the former is split up and
 * quarantined; the latter must be retried or reported, never blamed on the data.
 */
function refusesRows(e: unknown): boolean {
  return e instanceof ClickHouseError && !isMissingDependency(e) && !REFUSES_THE_WRITER.has(e.code);
}

/** The table cannot be written, or not by this user: nothing about the rows. */
const REFUSES_THE_WRITER = new Set<number>([
  ErrorCode.READONLY,
  ErrorCode.TABLE_IS_READ_ONLY,
  ErrorCode.ACCESS_DENIED,
  ErrorCode.DATABASE_ACCESS_DENIED,
  ErrorCode.UNKNOWN_USER,
  ErrorCode.AUTHENTICATION_FAILED,
]);

export class EventsApi {
  private readonly targets = new Map<string, Target>();

  constructor(
    private readonly ch: ClickHouse,
    private readonly dataSource: (name: string) => DataSource | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Ingest NDJSON lines into a DataSource. With an idempotency key, the rows and the quarantine
   * entries are inserted under tokens made of the key and the lines, so calling this again with
   * the same key and lines inserts nothing more and answers the same counts.
   */
  async ingest(name: string, lines: BodyLine[], idempotencyKey?: string): Promise<IngestResult> {
    const target = this.target(name);
    const token = idempotencyKey === undefined ? undefined : eventsDedupToken(target.database, target.table, idempotencyKey, lines);
    const good: { row: MappedRow; raw: string }[] = [];
    const bad: QuarantinedLine[] = [];
    for (const line of lines) {
      if (!('text' in line)) {
        bad.push(notUtf8(line));
        continue;
      }
      const r = target.mapper.map(line.text);
      if (r.ok) good.push({ row: r.row, raw: line.text });
      else bad.push({ raw: line.text, error: r.error });
    }
    await target.fence.beforeBatch();
    const { inserted, refused } = await insertOrIsolate(this.ch, `${target.database}.${target.table}`, good, token);
    const quarantined = [...bad, ...refused];
    if (quarantined.length > 0) {
      await this.ch.insert(
        `${target.database}.${quarantineTableName(target.table)}`,
        quarantined.map((q) => ({ source: 'http', raw: q.raw, error: q.error })),
        { settings: token === undefined ? await deduplicationOff(this.ch) : await deduplicatedBy(this.ch, quarantineDedupToken(token)) },
      );
    }
    return { successful_rows: inserted, quarantined_rows: quarantined.length };
  }

  /** The longest a batch waited at a migration fence, over every DataSource written (benchmarks, the safety matrix). */
  longestFencePauseMs(): number {
    return Math.max(0, ...[...this.targets.values()].map((t) => t.fence.longestPauseMs));
  }

  /** Stop being a writer the migration executor waits for. */
  async close(): Promise<void> {
    for (const t of this.targets.values()) await t.fence.leave().catch(() => undefined);
  }

  private target(name: string): Target {
    const ds = this.dataSource(resourceName(name));
    if (!ds) throw new BodyError(404, `no DataSource named ${name}`);
    const specKey = JSON.stringify(ds.spec.columns);
    const cached = this.targets.get(ds.metadata.name);
    if (cached && cached.specKey === specKey) return cached;
    const mapper = compileRowMapper(ds.spec.columns);
    if (mapper.columns.length === 0) throw new BodyError(400, unfedMessage(ds.metadata.name));
    const database = databaseOf(ds);
    const table = tableOf(ds);
    const target: Target = {
      database,
      table,
      mapper,
      fence: cached?.fence ?? new FenceParticipant(this.ch, FenceParticipant.newId(`events-${clickhouseName(ds.metadata.name)}`), [{ database, table }]),
      specKey,
    };
    this.targets.set(ds.metadata.name, target);
    return target;
  }

  /** The `POST /v0/events?name=…` route; returns false when the request is not for it. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/v0/events') return false;
    const reply = (status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
    if (req.method !== 'POST') {
      reply(405, { error: 'use POST with NDJSON (one JSON object a line)' });
      return true;
    }
    const name = url.searchParams.get('name');
    if (!name) {
      reply(400, { error: 'the name query parameter (a DataSource name) is required' });
      return true;
    }
    try {
      // Everything that refuses the request is checked before its body is read.
      this.target(name);
      const codings = decodersFor(req.headers['content-encoding']);
      const key = idempotencyKeyOf(req.headersDistinct['idempotency-key'], url.searchParams);
      const body = await readBody(req, codings, MAX_BODY_BYTES);
      reply(200, await this.ingest(name, splitLines(body), key));
    } catch (e) {
      const status = (e as { status?: number }).status ?? (isRetriable(e) ? 503 : 500);
      if (status >= 500) this.log.error('events ingest failed', { datasource: name, error: errorMessage(e) });
      // A body refused unread or half read is not worth reading on: the connection closes.
      if (!req.complete) res.setHeader('connection', 'close');
      reply(status, { error: status < 500 ? errorMessage(e) : status === 503 ? 'ClickHouse is unavailable; retry' : 'ingest failed; see the server log' });
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
