// The ClickHouse engine from chdb, run on a small pool of sessions over one data directory.
//
// Findings for chdb 3.4 (libchdb 26.7) in one process, which this design rests on:
// - Sessions opened on the same path share one embedded server and its data, and run queries in parallel;
//   statements on one session run one at a time.
// - Async queries run on the libuv thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise), so that
//   pool, not the session count, caps parallelism. One thread is left free for zlib and fs.
// - SET and USE last for the session, so a pooled session is put back to the request's context each time.
// - Opening a session takes milliseconds, but each one closed keeps about a megabyte: sessions are reused,
//   and only dropped when a statement left state that cannot be undone (SET, USE, temporary tables).
// - chdb's queryBind runs parameterised queries one at a time across all sessions; parameters set per session
//   with `SET param_<name>` are isolated and run in parallel (see query-params.ts).
// - One data directory per process: a second directory is refused while the first is open.
// - A one-shot query cannot be aborted from JS (its abort only rejects early), but `KILL QUERY` from another
//   session stops it. chdb gives its own query_id to every statement, so each one ends in a marker comment that
//   the KILL finds it by. A statement with {name:Type} parameters is listed reformatted, without comments: it
//   carries the marker in log_comment instead. `KILL ... SYNC` never returns in chdb; ASYNC does.
// - A statement that failed (an error, a timeout, a KILL) stays in system.processes until its session runs the
//   next one, so a session runs `SELECT 1` after a failure before it is reused.
// - chdb applies neither user_files_path nor remote_url_allow_hosts: table-access.ts confines what a statement
//   reaches instead.

import { randomUUID } from 'node:crypto';
import { totalmem } from 'node:os';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Session, drainPending, type ChdbResult, type RawInsertFormat } from 'chdb';
import { ClickHouseError, ErrorCode, parseClickHouseError } from './errors.js';
import { PARAM_PREFIX, bindParameters } from './query-params.js';
import { analyzeStatement, quoteIdentifier, quoteStringLiteral, tokenize, type StatementInfo, type Token } from '../plan/sql-text.js';
import { checkSetting, confineStatement, stringLiteralValue, type TableAccessPolicy } from './table-access.js';

export interface QuerySummary {
  readRows: number;
  readBytes: number;
  writtenRows: number;
  writtenBytes: number;
  resultRows: number;
  resultBytes: number;
  elapsedNs: number;
}

export interface EngineRequest {
  /** The statement: the `query` URL parameter, or else the request body. */
  sql: string;
  /** The request body when the statement came in the URL: INSERT data, or the rest of the statement. */
  data?: Buffer;
  database: string;
  /** ClickHouse settings for this statement only. */
  settings: ReadonlyMap<string, string>;
  /** Query parameters as sent over HTTP (`param_<name>`), in ClickHouse's escaped text form. */
  params: Readonly<Record<string, string>>;
  /** The output format when the statement has no FORMAT clause. */
  defaultFormat: string;
  /** GET requests: ClickHouse runs them with readonly=2. */
  readOnly: boolean;
  /** The client's query_id: `KILL QUERY WHERE query_id = '...'` finds the statement by it. */
  queryId?: string;
  /** Aborted when the client has gone: a waiting statement is dropped, a running one is killed. */
  signal?: AbortSignal;
}

export interface EngineResult {
  body: Uint8Array;
  /** The format of `body`; undefined for statements that return no rows (INSERT, DDL). */
  outputFormat?: string | undefined;
  summary: QuerySummary;
}

export interface EngineInfo {
  version: string;
  timezone: string;
}

/** Statement kinds that return rows; others (INSERT, DDL) report no output format. */
const ROW_RETURNING_KINDS = new Set(['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXISTS', 'EXPLAIN', 'CHECK']);

/** Formats chdb's raw insert path takes as bytes (its own whitelist), parsed by the engine, not by JS. */
const RAW_INSERT_FORMATS = new Set<string>([
  'JSONEachRow',
  'JSONCompactEachRow',
  'CSV',
  'CSVWithNames',
  'TSV',
  'TabSeparated',
  'TSVWithNames',
  'TabSeparatedWithNames',
]);

const isRawInsertFormat = (format: string): format is RawInsertFormat => RAW_INSERT_FORMATS.has(format);

/** Only whitespace: an INSERT body with no rows. */
const isBlank = (data: Buffer): boolean => data.every((b) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09);

const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A chdb failure as the ClickHouseError it reports (chdb errors carry ClickHouse's exception text). */
export function engineError(e: unknown): ClickHouseError {
  if (e instanceof ClickHouseError) return e;
  const message = e instanceof Error ? e.message : String(e);
  const parsed = parseClickHouseError(message);
  if (parsed) return parsed;
  const chdbCode = (e as { code?: unknown } | null)?.code;
  const code = chdbCode === 'CHDB_BIND' ? ErrorCode.BAD_QUERY_PARAMETER : ErrorCode.UNKNOWN_EXCEPTION;
  return new ClickHouseError(message, { code, cause: e });
}

function resultSummary(r: ChdbResult): QuerySummary {
  return {
    // chdb reports rows and bytes of the result only; they stand in for the rows read.
    readRows: r.rowsRead,
    readBytes: r.bytesRead,
    writtenRows: 0,
    writtenBytes: 0,
    resultRows: r.rowsRead,
    resultBytes: r.bytesRead,
    elapsedNs: Math.round(r.elapsed * 1e9),
  };
}

const emptySummary = (): QuerySummary => ({ readRows: 0, readBytes: 0, writtenRows: 0, writtenBytes: 0, resultRows: 0, resultBytes: 0, elapsedNs: 0 });

/** One chdb session and the context (database, settings) it was last put in. */
class EngineSession {
  private database = 'default';
  private settings = new Map<string, string>();
  /** False once a statement left state on the session that the next request must not see. */
  reusable = true;

  private constructor(
    readonly chdb: Session,
    readonly readOnly: boolean,
  ) {}

  static async open(dataDir: string, readOnly: boolean, connectionArgs: readonly string[]): Promise<EngineSession> {
    // Load tables before the first query answers, so a restarted server never reports a table missing.
    const chdb = new Session(dataDir, { connectionArgs: ['--async_load_databases=0', '--async_load_system_database=0', ...connectionArgs] });
    const session = new EngineSession(chdb, readOnly);
    // clickhouse-local accepts SELECT-less expressions; a ClickHouse server does not.
    const baseline = readOnly ? 'SET implicit_select = 0, readonly = 2' : 'SET implicit_select = 0';
    try {
      await chdb.queryAsync(baseline);
    } catch (e) {
      chdb.close();
      throw engineError(e);
    }
    return session;
  }

  /**
   * Puts the session in the request's database and settings, undoing the previous request's settings, and sets the
   * request's query parameters (`param_...` assignments).
   */
  async enter(database: string, settings: ReadonlyMap<string, string>, params: readonly string[] = []): Promise<void> {
    try {
      if (database !== this.database) {
        await this.chdb.queryAsync(`USE ${quoteIdentifier(database)}`);
        this.database = database;
      }
      const changes: string[] = [];
      for (const name of this.settings.keys()) if (!settings.has(name)) changes.push(`${name} = DEFAULT`);
      for (const [name, value] of settings) {
        if (!SETTING_NAME.test(name)) throw new ClickHouseError(`Unknown setting '${name}'`, { code: ErrorCode.UNKNOWN_SETTING });
        if (this.settings.get(name) !== value) changes.push(`${name} = ${quoteStringLiteral(value)}`);
      }
      if (changes.length === 0 && params.length === 0) return;
      this.reusable = false; // a failed SET may have applied part of its changes
      await this.chdb.queryAsync(`SET ${[...changes, ...params].join(', ')}`);
      this.settings = new Map(settings);
      // readonly cannot be set back once raised
      this.reusable = !settings.has('readonly');
    } catch (e) {
      throw engineError(e);
    }
  }

  /** Clears a failed statement from system.processes (chdb keeps it there until the session's next query). */
  async settle(): Promise<void> {
    try {
      await this.chdb.queryAsync('SELECT 1');
    } catch {
      this.reusable = false;
    }
  }

  close(): void {
    this.chdb.close();
  }
}

const shuttingDown = (): ClickHouseError => new ClickHouseError('The server is shutting down', { code: ErrorCode.ABORTED });
const clientGone = (): ClickHouseError =>
  new ClickHouseError('Query was cancelled: the client went away or the query was killed', { code: ErrorCode.QUERY_WAS_CANCELLED });

/** At most `size` holders at a time; the rest wait in arrival order. */
class Slots {
  private waiting: Array<() => void> = [];

  constructor(private free: number) {}

  /** Waits for a slot; an abort while waiting leaves the queue without taking one. */
  async acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw clientGone();
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const take = (): void => {
        signal?.removeEventListener('abort', leave);
        resolve();
      };
      const leave = (): void => {
        this.waiting = this.waiting.filter((w) => w !== take);
        reject(clientGone());
      };
      this.waiting.push(take);
      signal?.addEventListener('abort', leave, { once: true });
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** Sessions reused across requests; read-only ones (for GET) are kept apart because readonly cannot be undone. */
class SessionPool {
  private readonly idle = { readOnly: [] as EngineSession[], readWrite: [] as EngineSession[] };
  private readonly slots: Slots;
  private busy = 0;
  private closed = false;
  private drained?: () => void;

  constructor(
    private readonly dataDir: string,
    size: number,
    private readonly connectionArgs: readonly string[],
  ) {
    this.slots = new Slots(size);
  }

  async use<T>(readOnly: boolean, work: (session: EngineSession) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.closed) throw shuttingDown();
    await this.slots.acquire(signal);
    if (this.closed) {
      this.slots.release();
      throw shuttingDown();
    }
    this.busy++;
    let session: EngineSession | undefined;
    try {
      session = this.idleSessions(readOnly).pop() ?? (await EngineSession.open(this.dataDir, readOnly, this.connectionArgs));
      return await work(session);
    } catch (e) {
      await session?.settle();
      throw e;
    } finally {
      if (session) this.putBack(session);
      this.busy--;
      this.slots.release();
      if (this.busy === 0) this.drained?.();
    }
  }

  /** Waits for running statements, then closes every session. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.busy > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    for (const session of [...this.idle.readOnly, ...this.idle.readWrite]) session.close();
    this.idle.readOnly = [];
    this.idle.readWrite = [];
  }

  private idleSessions(readOnly: boolean): EngineSession[] {
    return readOnly ? this.idle.readOnly : this.idle.readWrite;
  }

  private putBack(session: EngineSession): void {
    if (session.reusable && !this.closed) this.idleSessions(session.readOnly).push(session);
    else session.close();
  }
}

export interface EngineOptions {
  dataDir: string;
  /** Statements run at once; defaults to one less than the libuv thread pool. */
  maxConcurrentQueries?: number;
  /** Where file() reads and writes; defaults to <dataDir>/user_files. */
  userFilesDir?: string;
  /** Allow url(), s3(), remote() and the other table functions and engines that reach other servers. */
  allowRemoteFunctions?: boolean;
  /** The most memory all statements together may use (ClickHouse's max_server_memory_usage); defaults to a quarter of the RAM. */
  maxServerMemoryBytes?: number;
}

/**
 * A quarter of the machine: chdb sets no limit of its own, so one runaway statement (an endless SELECT)
 * would grow the process until the kernel kills it, and the data project with it. The process peaks at
 * about four times the limit (a result is buffered and copied whole before it is sent), so a quarter
 * keeps that peak inside the RAM.
 */
export const defaultServerMemoryBytes = (): number => Math.floor(totalmem() / 4);

const defaultConcurrency = (): number => Math.max(1, Number(process.env.UV_THREADPOOL_SIZE ?? 4) - 1);

// How often a KILL is sent again while the statement it is for has not ended (it may not have started yet).
const KILL_RETRY_MS = 50;

/** A statement of a request, from when it is accepted until it has ended. */
interface Tracked {
  /** Ends the statement's text, so that `KILL QUERY` finds it in system.processes. */
  marker: string;
  cancel: AbortController;
  settled: Promise<void>;
}

/** The comment that ends a statement so that it can be found in system.processes. */
const markerComment = (): string => `/* weir:query ${randomUUID()} */`;

/** Runs statements for the HTTP server. */
export class ChdbEngine {
  private readonly tracked = new Map<string, Tracked>();

  private constructor(
    private readonly pool: SessionPool,
    /** A session of its own for KILL, so that a full pool cannot hold up a cancel. */
    private readonly control: EngineSession,
    private readonly access: TableAccessPolicy,
    readonly info: EngineInfo,
  ) {}

  static async open(opts: EngineOptions): Promise<ChdbEngine> {
    mkdirSync(opts.dataDir, { recursive: true });
    const userFilesDir = opts.userFilesDir ?? join(opts.dataDir, 'user_files');
    mkdirSync(userFilesDir, { recursive: true });
    const connectionArgs = [`--user_files_path=${userFilesDir}`, `--max_server_memory_usage=${opts.maxServerMemoryBytes ?? defaultServerMemoryBytes()}`];
    const pool = new SessionPool(opts.dataDir, opts.maxConcurrentQueries ?? defaultConcurrency(), connectionArgs);
    const control = await EngineSession.open(opts.dataDir, false, connectionArgs);
    const probe = async (sql: string): Promise<string[]> => (await control.chdb.queryAsync(sql, { format: 'TabSeparated' })).text().trim().split('\n');
    try {
      const [version = '', timezone = 'UTC'] = (await probe('SELECT version(), timezone()'))[0]?.split('\t') ?? [];
      const tableFunctions = await probe('SELECT lower(name) FROM system.table_functions');
      const engines = await probe('SELECT lower(name) FROM system.table_engines UNION ALL SELECT lower(name) FROM system.database_engines');
      const access = { userFilesDir, allowRemote: opts.allowRemoteFunctions ?? false, tableFunctions: new Set(tableFunctions), engines: new Set(engines) };
      return new ChdbEngine(pool, control, access, { version, timezone });
    } catch (e) {
      control.close();
      await pool.close();
      throw engineError(e);
    }
  }

  async execute(req: EngineRequest): Promise<EngineResult> {
    const parsed = statementOf(req);
    rejectUnsupported(parsed);
    for (const [name, value] of req.settings) checkSetting(name, value);
    const statement = { ...parsed, ...confineStatement(parsed.sql, parsed.info, this.access) };
    if (statement.info.kind === 'KILL') return this.kill(statement, req);
    const bound = bindParameters(statement.sql, statement.info, req.params);
    // readonly=2 is what read-only sessions already run with: use one of those (reusable)
    // instead of raising readonly on a read-write session, which could then not be reused.
    const readOnly = req.readOnly || req.settings.get('readonly') === '2';
    const marker = markerComment();
    const settings = new Map([...req.settings].filter(([k]) => !readOnly || k !== 'readonly'));
    // system.processes shows a statement with parameters reformatted, comments gone: the marker rides in log_comment.
    if (bound.assignments.length > 0 && !settings.has('log_comment')) settings.set('log_comment', marker);
    return this.tracking(req, marker, (tracked) =>
      this.pool.use(
        readOnly,
        async (session) => {
          try {
            await session.enter(req.database, settings, bound.assignments);
            if (tracked.cancel.signal.aborted) throw clientGone();
            return await this.run(session, req, { ...statement, sql: bound.sql }, tracked);
          } catch (e) {
            throw withoutParamPrefix(engineError(e));
          } finally {
            if (statement.info.changesSessionState) session.reusable = false;
          }
        },
        tracked.cancel.signal,
      ),
    );
  }

  /** Waits for running statements and closes the engine's sessions. */
  async close(): Promise<void> {
    await this.pool.close();
    this.control.close();
    await drainPending();
  }

  /** Registers the request's statement under its query_id while `work` runs, and kills it when it is cancelled. */
  private async tracking<T>(req: EngineRequest, marker: string, work: (tracked: Tracked) => Promise<T>): Promise<T> {
    const cancel = new AbortController();
    const onClientGone = (): void => cancel.abort();
    req.signal?.addEventListener('abort', onClientGone, { once: true });
    if (req.signal?.aborted) cancel.abort();
    let settle = (): void => undefined;
    const tracked: Tracked = { marker, cancel, settled: new Promise<void>((resolve) => (settle = resolve)) };
    const onCancel = (): void => void this.killUntilSettled(tracked);
    cancel.signal.addEventListener('abort', onCancel, { once: true });
    if (req.queryId !== undefined) this.tracked.set(req.queryId, tracked);
    try {
      return await work(tracked);
    } finally {
      settle();
      cancel.signal.removeEventListener('abort', onCancel);
      req.signal?.removeEventListener('abort', onClientGone);
      if (req.queryId !== undefined && this.tracked.get(req.queryId) === tracked) this.tracked.delete(req.queryId);
    }
  }

  /** KILLs the statement until it has ended: the first KILL can come before the engine has started it. */
  private async killUntilSettled(tracked: Tracked): Promise<void> {
    let settled = false;
    void tracked.settled.then(() => (settled = true));
    const marker = quoteStringLiteral(tracked.marker);
    const kill = `KILL QUERY WHERE endsWith(query, ${marker}) OR Settings['log_comment'] = ${marker} ASYNC`;
    while (!settled) {
      await this.control.chdb.queryAsync(kill).catch(() => undefined);
      await Promise.race([tracked.settled, delay(KILL_RETRY_MS)]);
    }
  }

  /**
   * `KILL QUERY WHERE query_id = '<id>'` for a request of this server, which chdb knows under its own id; any
   * other KILL goes to the engine, as ASYNC (chdb's SYNC never returns).
   */
  private async kill(statement: Statement, req: EngineRequest): Promise<EngineResult> {
    const format = statement.info.outputFormat ?? req.defaultFormat;
    const target = killTarget(statement.sql);
    const tracked = target ? this.tracked.get(target.queryId) : undefined;
    if (target === undefined || tracked === undefined) {
      const sql = target?.mode === 'SYNC' ? statement.sql.slice(0, target.modeAt) + 'ASYNC' + statement.sql.slice(target.modeAt + 4) : statement.sql;
      const result = await this.control.chdb.queryAsync(sql, { format });
      return { body: result.bytes(), outputFormat: format, summary: resultSummary(result) };
    }
    if (target.mode !== 'TEST') tracked.cancel.abort();
    if (target.mode === 'SYNC') await tracked.settled;
    const status = target.mode === 'TEST' ? 'pending' : target.mode === 'SYNC' ? 'finished' : 'waiting';
    const row = `SELECT ${quoteStringLiteral(status)} AS kill_status, ${quoteStringLiteral(target.queryId)} AS query_id, 'default' AS user`;
    const result = await this.control.chdb.queryAsync(row, { format });
    return { body: result.bytes(), outputFormat: format, summary: resultSummary(result) };
  }

  private async run(session: EngineSession, req: EngineRequest, statement: Statement, tracked: Tracked): Promise<EngineResult> {
    const { sql, info, insertData } = statement;
    if (insertData !== undefined) return this.insert(session, statement, insertData);
    // Inline INSERT data runs to the end of the text: a marker there would be read as data.
    const marked = info.insert !== undefined && info.insert.dataOffset < sql.length ? sql : `${sql}\n${tracked.marker}`;
    const result = await session.chdb.queryAsync(marked, { format: req.defaultFormat });
    const returnsRows = ROW_RETURNING_KINDS.has(info.kind);
    return {
      body: result.bytes(),
      outputFormat: returnsRows ? (info.outputFormat ?? req.defaultFormat) : undefined,
      summary: resultSummary(result),
    };
  }

  /** `INSERT ... FORMAT <fmt>` with the rows in the request body. */
  private async insert(session: EngineSession, statement: Statement, data: Buffer): Promise<EngineResult> {
    const insert = statement.info.insert;
    // Over HTTP an empty body inserts nothing and succeeds; chdb would report NO_DATA_TO_INSERT.
    if (isBlank(data) || insert?.format === undefined) return { body: new Uint8Array(), summary: emptySummary() };
    if (insert.table !== undefined && !insert.hasSettings && isRawInsertFormat(insert.format)) {
      const r = await session.chdb.insert({
        table: insert.table,
        values: data,
        format: insert.format,
        ...(insert.columns ? { columns: insert.columns } : {}),
      });
      return {
        body: new Uint8Array(),
        summary: {
          ...emptySummary(),
          readRows: r.rowsWritten,
          readBytes: r.bytesSent,
          writtenRows: r.rowsWritten,
          writtenBytes: r.bytesWritten,
          elapsedNs: Math.round(r.elapsed * 1e9),
        },
      };
    }
    // Anything else goes to the engine as one statement with the data inline, the way ClickHouse reads it.
    const result = await session.chdb.queryAsync(`${statement.sql}\n${data.toString('utf8')}`);
    return { body: new Uint8Array(), summary: { ...resultSummary(result), resultRows: 0, resultBytes: 0 } };
  }
}

interface Statement {
  sql: string;
  info: StatementInfo;
  /** Rows sent apart from an `INSERT ... FORMAT` statement. */
  insertData?: Buffer;
}

/**
 * The statement a request runs. A statement in the URL is followed by the body: the rows of an
 * `INSERT ... FORMAT` that ends there, or else more of the statement itself.
 */
function statementOf(req: EngineRequest): Statement {
  const info = analyzeStatement(req.sql);
  const insert = info.insert;
  const rowsFollow = insert?.format !== undefined && req.sql.slice(insert.dataOffset).trim() === '';
  if (rowsFollow) return { sql: req.sql, info, insertData: req.data ?? Buffer.alloc(0) };
  if (req.data === undefined || req.data.length === 0) return { sql: req.sql, info };
  // ClickHouse reads the URL query and the body as one text; the newline keeps their tokens apart.
  const sql = `${req.sql}\n${req.data.toString('utf8')}`;
  return { sql, info: analyzeStatement(sql) };
}

/** Error text names parameters as the request did, not as renamed for the session. */
function withoutParamPrefix(e: ClickHouseError): ClickHouseError {
  if (!e.message.includes(PARAM_PREFIX)) return e;
  return new ClickHouseError(e.message.replaceAll(PARAM_PREFIX, ''), { code: e.code, type: e.type, cause: e.cause });
}

/** What ClickHouse's HTTP interface refuses before running anything. */
function rejectUnsupported({ sql, info }: Statement): void {
  if (info.kind === '') {
    throw new ClickHouseError('Empty query', { code: ErrorCode.SYNTAX_ERROR });
  }
  if (info.secondStatementAt !== undefined) {
    const at = info.secondStatementAt;
    throw new ClickHouseError(`Syntax error (Multi-statements are not allowed): failed at position ${at + 1}: ${sql.slice(at, at + 40)}`, {
      code: ErrorCode.SYNTAX_ERROR,
    });
  }
  if (info.intoOutfile) throw new ClickHouseError('INTO OUTFILE is not allowed', { code: ErrorCode.INTO_OUTFILE_NOT_ALLOWED });
}

interface KillTarget {
  queryId: string;
  mode: 'SYNC' | 'ASYNC' | 'TEST';
  /** Where the SYNC/ASYNC/TEST word is in the statement, or its end. */
  modeAt: number;
}

const MODES = new Set(['SYNC', 'ASYNC', 'TEST']);

/** The query_id of `KILL QUERY WHERE query_id = '<id>' [SYNC|ASYNC|TEST] [FORMAT <f>]`, else undefined. */
export function killTarget(sql: string): KillTarget | undefined {
  const t: Token[] = [...tokenize(sql)];
  const word = (i: number, w: string): boolean => t[i]?.kind === 'word' && t[i]?.text.toUpperCase() === w;
  if (!word(0, 'KILL') || !word(1, 'QUERY') || !word(2, 'WHERE') || t[3]?.text.toLowerCase() !== 'query_id' || t[4]?.text !== '=') return undefined;
  const id = t[5];
  if (id?.kind !== 'string') return undefined;
  const modeToken = t[6];
  const mode = modeToken?.kind === 'word' && MODES.has(modeToken.text.toUpperCase()) ? (modeToken.text.toUpperCase() as KillTarget['mode']) : undefined;
  const rest = t.slice(mode ? 7 : 6);
  if (rest.length > 0 && !(rest.length === 2 && rest[0]?.text.toUpperCase() === 'FORMAT')) return undefined;
  return { queryId: stringLiteralValue(id.text), mode: mode ?? 'ASYNC', modeAt: modeToken && mode ? modeToken.start : sql.length };
}
