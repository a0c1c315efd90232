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

import { mkdirSync } from 'node:fs';
import { Session, drainPending, type ChdbResult, type RawInsertFormat } from 'chdb';
import { ClickHouseError, ErrorCode, parseClickHouseError } from './errors.js';
import { PARAM_PREFIX, bindParameters } from './query-params.js';
import { analyzeStatement, quoteIdentifier, quoteStringLiteral, type StatementInfo } from './sql-text.js';

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
}

export interface EngineResult {
  body: Uint8Array;
  /** The format of `body`; undefined for statements that return no rows (INSERT, DDL). */
  outputFormat?: string;
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

  static async open(dataDir: string, readOnly: boolean): Promise<EngineSession> {
    // Load tables before the first query answers, so a restarted server never reports a table missing.
    const chdb = new Session(dataDir, { connectionArgs: ['--async_load_databases=0', '--async_load_system_database=0'] });
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

  close(): void {
    this.chdb.close();
  }
}

const shuttingDown = (): ClickHouseError => new ClickHouseError('The server is shutting down', { code: ErrorCode.ABORTED });

/** At most `size` holders at a time; the rest wait in arrival order. */
class Slots {
  private waiting: Array<() => void> = [];

  constructor(private free: number) {}

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
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
  ) {
    this.slots = new Slots(size);
  }

  async use<T>(readOnly: boolean, work: (session: EngineSession) => Promise<T>): Promise<T> {
    if (this.closed) throw shuttingDown();
    await this.slots.acquire();
    if (this.closed) {
      this.slots.release();
      throw shuttingDown();
    }
    this.busy++;
    let session: EngineSession | undefined;
    try {
      session = this.idleSessions(readOnly).pop() ?? (await EngineSession.open(this.dataDir, readOnly));
      return await work(session);
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
}

const defaultConcurrency = (): number => Math.max(1, Number(process.env.UV_THREADPOOL_SIZE ?? 4) - 1);

/** Runs statements for the HTTP server. */
export class ChdbEngine {
  private constructor(
    private readonly pool: SessionPool,
    readonly info: EngineInfo,
  ) {}

  static async open(opts: EngineOptions): Promise<ChdbEngine> {
    mkdirSync(opts.dataDir, { recursive: true });
    const pool = new SessionPool(opts.dataDir, opts.maxConcurrentQueries ?? defaultConcurrency());
    const probe = await pool.use(false, (s) => s.chdb.queryAsync('SELECT version(), timezone()', { format: 'TabSeparated' }));
    const [version = '', timezone = 'UTC'] = probe.text().trim().split('\t');
    return new ChdbEngine(pool, { version, timezone });
  }

  async execute(req: EngineRequest): Promise<EngineResult> {
    const statement = statementOf(req);
    rejectUnsupported(statement);
    const bound = bindParameters(statement.sql, statement.info, req.params);
    // readonly=2 is what read-only sessions already run with: use one of those (reusable)
    // instead of raising readonly on a read-write session, which could then not be reused.
    const readOnly = req.readOnly || req.settings.get('readonly') === '2';
    const settings = readOnly ? new Map([...req.settings].filter(([k]) => k !== 'readonly')) : req.settings;
    return this.pool.use(readOnly, async (session) => {
      try {
        await session.enter(req.database, settings, bound.assignments);
        return await this.run(session, req, { ...statement, sql: bound.sql });
      } catch (e) {
        throw withoutParamPrefix(engineError(e));
      } finally {
        if (statement.info.changesSessionState) session.reusable = false;
      }
    });
  }

  /** Waits for running statements and closes the engine's sessions. */
  async close(): Promise<void> {
    await this.pool.close();
    await drainPending();
  }

  private async run(session: EngineSession, req: EngineRequest, statement: Statement): Promise<EngineResult> {
    const { sql, info, insertData } = statement;
    if (insertData !== undefined) return this.insert(session, statement, insertData);

    const result = await session.chdb.queryAsync(sql, { format: req.defaultFormat });
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
    throw new ClickHouseError(
      `Syntax error (Multi-statements are not allowed): failed at position ${at + 1}: ${sql.slice(at, at + 40)}`,
      { code: ErrorCode.SYNTAX_ERROR },
    );
  }
  if (info.intoOutfile) throw new ClickHouseError('INTO OUTFILE is not allowed', { code: ErrorCode.INTO_OUTFILE_NOT_ALLOWED });
}
