// What a statement may reach outside the engine's own tables, checked before the engine sees it.
//
// chdb (clickhouse-local) enforces none of this itself: file() reads any absolute path, relative paths resolve
// against the process's working directory whatever user_files_path says, and remote_url_allow_hosts in a config
// file is not applied. So the server reads each statement with the tokenizer of sql-text.ts and:
// - confines file() (the table function, the scalar function, the File engine, BACKUP's File destination) to
//   <data-dir>/user_files, rewriting its path literal to the absolute path the engine then uses;
// - refuses table functions, engines and dictionary sources that reach the network unless remote access is on;
// - always refuses those that read other local paths, run programs, or build SQL at run time (eval), and
//   `FROM INFILE`.
// Names are matched without regard to case, quoted or not, and comments between a name and its '(' do not hide
// it: the tokenizer skips comments and yields quoted names unquoted.

import { isAbsolute, join, normalize } from 'node:path';
import { ClickHouseError, ErrorCode } from './errors.js';
import { analyzeStatement, quoteStringLiteral, tokenize, type StatementInfo, type Token } from '../plan/sql-text.js';

export interface TableAccessPolicy {
  /** Absolute path of user_files: the only place file() reads and writes. */
  userFilesDir: string;
  /** url(), s3(), remote(), mysql() and the like, and the engines and dictionary sources that do the same. */
  allowRemote: boolean;
  /** Lower-cased names of the engine's table functions (system.table_functions). */
  tableFunctions: ReadonlySet<string>;
  /** Lower-cased names of the engine's table and database engines (system.table_engines, system.database_engines). */
  engines: ReadonlySet<string>;
}

/** Table functions that only read the engine's own tables or generate data. */
const LOCAL_TABLE_FUNCTIONS = new Set([
  'arrowstream',
  'dictionary',
  'format',
  'fuzzjson',
  'fuzzquery',
  'generaterandom',
  'generateseries',
  'generate_series',
  'input',
  'loop',
  'merge',
  'mergetreeanalyzeindexes',
  'mergetreeanalyzeindexesuuid',
  'mergetreeindex',
  'mergetreeprojection',
  'mergetreetextindex',
  'null',
  'numbers',
  'numbers_mt',
  'primes',
  'prometheusquery',
  'prometheusqueryrange',
  'sqlstandardvalues',
  'timeseriesdata',
  'timeseriesmetrics',
  'timeseriessamples',
  'timeseriesselector',
  'timeseriestags',
  'values',
  'view',
  'viewexplain',
  'viewifpermitted',
  'zeros',
  'zeros_mt',
]);

/** Table and database engines that keep their data in the data directory, or hold none. */
const LOCAL_ENGINES = new Set([
  'aggregatingmergetree',
  'alias',
  'arrowstream',
  'atomic',
  'buffer',
  'coalescingmergetree',
  'collapsingmergetree',
  'dictionary',
  'embeddedrocksdb',
  'fuzzjson',
  'fuzzquery',
  'generaterandom',
  'graphitemergetree',
  'join',
  'keepermap',
  'lazy',
  'log',
  'loop',
  'materializedview',
  'memory',
  'merge',
  'mergetree',
  'null',
  'ordinary',
  'replacingmergetree',
  'set',
  'stripelog',
  'summingmergetree',
  'timeseries',
  'tinylog',
  'versionedcollapsingmergetree',
  'view',
  'windowview',
]);

/** Read other local paths, run programs, or run SQL built at run time: never allowed here. */
const NEVER_ALLOWED = new Map<string, string>([
  ['eval', 'it runs a query built at run time, which this server cannot check'],
  ['executable', 'it runs a program'],
  ['executablepool', 'it runs a program'],
  ['executable_pool', 'it runs a program'],
  ['filesystem', 'it reads a directory outside user_files'],
  ['sqlite', 'it reads a file outside user_files'],
  ['filecluster', 'it reads files outside user_files'],
  ['filelog', 'it reads files outside user_files'],
  ['disk', 'it opens a directory as a disk'],
  ['catboostevaluate', 'it loads a model file'],
  ['backup', 'it reads a backup from a path or disk'],
]);

/** Dictionary SOURCE(...) kinds: CLICKHOUSE without HOST reads local tables; NULL holds nothing. */
const LOCAL_DICTIONARY_SOURCES = new Set(['clickhouse', 'null']);
const REMOTE_DICTIONARY_SOURCES = new Set(['http', 'https', 'cassandra', 'mysql', 'postgresql', 'mongodb', 'redis', 'odbc', 'jdbc', 'ytsaurus']);

/** Settings whose value names a file to read. */
const PATH_SETTINGS = new Set(['format_schema', 'format_template_resultset', 'format_template_row', 'output_format_schema']);

const denied = (message: string): ClickHouseError => new ClickHouseError(message, { code: ErrorCode.ACCESS_DENIED });

const isName = (t: Token | undefined): t is Token => t?.kind === 'word' || t?.kind === 'quotedIdentifier';
const isSymbol = (t: Token | undefined, text: string): boolean => t?.kind === 'symbol' && t.text === text;
const isWord = (t: Token | undefined, word: string): boolean => t?.kind === 'word' && t.text.toUpperCase() === word;

/** The value of a ClickHouse string literal token ('...' with backslash escapes, or $tag$...$tag$). */
export function stringLiteralValue(text: string): string {
  if (text.startsWith('$')) {
    const tag = text.slice(0, text.indexOf('$', 1) + 1);
    return text.slice(tag.length, text.length - tag.length);
  }
  const body = text.slice(1, -1);
  const simple: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', '0': '\0', a: '\x07', v: '\v', e: '\x1b' };
  return body.replace(/\\x([0-9A-Fa-f]{2})|\\(.)|''/gs, (m, hex: string | undefined, escaped: string | undefined) => {
    if (hex !== undefined) return String.fromCharCode(parseInt(hex, 16));
    if (escaped !== undefined) return simple[escaped] ?? escaped;
    return "'";
  });
}

/**
 * The absolute path under user_files that a file() path means, or ACCESS_DENIED. Relative paths are relative to
 * user_files, as in a ClickHouse server; '..' is refused, also where a glob's {a,b} alternatives could form it.
 */
export function userFilePath(path: string, userFilesDir: string): string {
  const where = `file() reads and writes only under ${userFilesDir}`;
  if (path === '' || path.includes('\0')) throw denied(`Invalid file() path '${path}': ${where}`);
  const withoutRanges = path.replace(/\{\d+\.\.\d+\}/g, '0');
  if (withoutRanges.includes('..')) throw denied(`File path '${path}' goes outside user_files ('..'): ${where}`);
  if (/\{[^}]*[./][^}]*\}/.test(withoutRanges)) {
    throw denied(`File path '${path}': a {…} alternative may not contain '.' or '/' here: ${where}`);
  }
  const root = normalize(`${userFilesDir}/`);
  const resolved = normalize(isAbsolute(path) ? path : join(root, path));
  if (!resolved.startsWith(root)) throw denied(`File '${path}' is not inside user_files: ${where}`);
  return resolved;
}

/** A call site: a name followed by '(' (table function, function, engine, backup destination). */
interface Call {
  name: string;
  nameToken: Token;
  /** The tokens of each top-level argument. */
  args: Token[][];
  /** Index of the ')' that closes it. */
  end: number;
  /** Written as `ENGINE = Name(...)`. */
  isEngine: boolean;
}

/** Keywords after which CREATE names the object it creates, as in `CREATE TABLE url (a UInt8)`. */
const CREATED_OBJECT = new Set(['TABLE', 'EXISTS', 'VIEW', 'DICTIONARY', 'DATABASE']);

/** Whether tokens[i] names a table (`db.url`, `INSERT INTO url (a)`, `CREATE TABLE url (a UInt8)`), not a call. */
function isObjectName(tokens: Token[], i: number, kind: string): boolean {
  const before = tokens[i - 1];
  if (isSymbol(before, '.')) return true;
  if (kind === 'INSERT') return isWord(before, 'INTO') || (isWord(before, 'TABLE') && isWord(tokens[i - 2], 'INTO'));
  if (kind === 'CREATE' || kind === 'ATTACH') return before?.kind === 'word' && CREATED_OBJECT.has(before.text.toUpperCase());
  return false;
}

function callAt(tokens: Token[], i: number, kind = ''): Call | undefined {
  const nameToken = tokens[i];
  if (!isName(nameToken) || !isSymbol(tokens[i + 1], '(') || isObjectName(tokens, i, kind)) return undefined;
  const args: Token[][] = [[]];
  let depth = 0;
  let j = i + 1;
  for (; j < tokens.length; j++) {
    const t = tokens[j] as Token;
    if (t.kind === 'symbol' && (t.text === '(' || t.text === '[' || t.text === '{')) depth++;
    else if (t.kind === 'symbol' && (t.text === ')' || t.text === ']' || t.text === '}')) depth--;
    if (depth === 0) break;
    if (depth === 1 && isSymbol(t, ',')) args.push([]);
    else if (!(depth === 1 && isSymbol(t, '('))) args[args.length - 1]?.push(t);
  }
  return {
    name: nameToken.text.toLowerCase(),
    nameToken,
    args: args.length === 1 && args[0]?.length === 0 ? [] : args,
    end: j,
    isEngine: engineNameAt(tokens, i),
  };
}

/** Whether tokens[i] is the name in `ENGINE = Name` or `ENGINE Name`. */
const engineNameAt = (tokens: Token[], i: number): boolean =>
  isWord(tokens[i - 1], 'ENGINE') || (isSymbol(tokens[i - 1], '=') && isWord(tokens[i - 2], 'ENGINE'));

/** Why a name is refused, or undefined when it may run. */
function refusal(name: string, isEngine: boolean, policy: TableAccessPolicy): string | undefined {
  const never = NEVER_ALLOWED.get(name);
  if (never !== undefined) return `${never}; it is not allowed by this server`;
  const known = isEngine ? policy.engines.has(name) : policy.tableFunctions.has(name);
  const local = isEngine ? LOCAL_ENGINES.has(name) : LOCAL_TABLE_FUNCTIONS.has(name);
  if (!known || local || name === 'file') return undefined;
  if (/local(cluster)?$/.test(name)) return 'it reads files outside user_files; it is not allowed by this server';
  if (policy.allowRemote) return undefined;
  return 'it reaches other servers, which this server allows only when started with --allow-remote-functions';
}

/** The string-literal path of a file() call (argument `index`), rewritten to its place under user_files. */
function confinedFileArgument(call: Call, index: number, policy: TableAccessPolicy): { token: Token; path: string } | undefined {
  const arg = call.args[index];
  if (arg === undefined) {
    if (call.isEngine) return undefined; // File(format): the data lives in the table's own directory
    throw denied('file() needs a path');
  }
  const [literal, ...rest] = arg;
  if (literal?.kind !== 'string' || rest.length > 0) {
    throw denied(`The path of ${call.nameToken.text}() must be a string literal, so that this server can check it stays inside user_files`);
  }
  return { token: literal, path: userFilePath(stringLiteralValue(literal.text), policy.userFilesDir) };
}

/** Refuses a dictionary SOURCE(KIND(...)) that reaches the network, runs a program, or reads a file. */
function checkDictionarySource(tokens: Token[], i: number, policy: TableAccessPolicy): void {
  if (!isWord(tokens[i], 'SOURCE') || !isSymbol(tokens[i + 1], '(')) return;
  const source = callAt(tokens, i + 2);
  if (source === undefined) return;
  const name = source.name;
  const remote = REMOTE_DICTIONARY_SOURCES.has(name) || (name === 'clickhouse' && source.args.flat().some((t) => isWord(t, 'HOST')));
  if (name === 'file' || name === 'executable' || name === 'executable_pool') {
    throw denied(`Dictionary source ${source.nameToken.text} is not allowed by this server: it reads a file or runs a program`);
  }
  if (remote && !policy.allowRemote) {
    throw denied(`Dictionary source ${source.nameToken.text} reaches other servers, which this server allows only when started with --allow-remote-functions`);
  }
  if (!remote && !LOCAL_DICTIONARY_SOURCES.has(name) && !policy.allowRemote) {
    throw denied(`Dictionary source ${source.nameToken.text} is not known to stay local; it is allowed only with --allow-remote-functions`);
  }
}

/** Refuses a setting that names a file to read, and a dialect other than ClickHouse's (this check reads only SQL). */
export function checkSetting(name: string, value: string): void {
  const lower = name.toLowerCase();
  if (lower === 'dialect' && value.trim().toLowerCase() !== 'clickhouse') {
    throw denied(`Setting dialect = '${value}' is not allowed by this server (only 'clickhouse')`);
  }
  if (PATH_SETTINGS.has(lower) && (value.includes('/') || value.includes('..'))) {
    throw denied(`Setting ${name} may name a schema file by its plain name only, not a path ('${value}')`);
  }
}

/** `name = 'value'` settings written in the statement itself (SET, SETTINGS). */
function checkInlineSetting(tokens: Token[], i: number): void {
  const name = tokens[i];
  const value = tokens[i + 2];
  if (name?.kind !== 'word' || !isSymbol(tokens[i + 1], '=') || value === undefined) return;
  const lower = name.text.toLowerCase();
  if (lower !== 'dialect' && !PATH_SETTINGS.has(lower)) return;
  checkSetting(name.text, value.kind === 'string' ? stringLiteralValue(value.text) : value.text);
}

/** The part of a statement that is SQL: all of it, except the rows after `INSERT ... FORMAT <fmt>` (not Values). */
function sqlPartOf(sql: string, info: StatementInfo): string {
  const format = info.insert?.format;
  if (format === undefined || format.toLowerCase() === 'values') return sql;
  return sql.slice(0, info.insert?.dataOffset ?? sql.length);
}

export interface ConfinedStatement {
  sql: string;
  info: StatementInfo;
}

/**
 * Checks what `sql` reaches against `policy`: throws ACCESS_DENIED for what is refused, and returns the statement
 * with file() paths rewritten to their absolute place under user_files.
 */
export function confineStatement(sql: string, info: StatementInfo, policy: TableAccessPolicy): ConfinedStatement {
  const tokens = [...tokenize(sqlPartOf(sql, info))];
  const rewrites: Array<{ token: Token; path: string }> = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as Token;
    if (isWord(t, 'FROM') && isWord(tokens[i + 1], 'INFILE')) {
      throw denied('FROM INFILE is not allowed: it reads a file of the machine this server runs on');
    }
    if (info.kind === 'ATTACH' && isWord(t, 'FROM') && tokens[i + 1]?.kind === 'string') {
      throw denied('ATTACH ... FROM <path> is not allowed: it reads a directory outside user_files');
    }
    checkDictionarySource(tokens, i, policy);
    checkInlineSetting(tokens, i);
    const call = callAt(tokens, i, info.kind);
    const engineName = !call && isName(t) && engineNameAt(tokens, i) ? t.text.toLowerCase() : undefined;
    const name = call?.name ?? engineName;
    if (name === undefined) continue;
    const why = refusal(name, call?.isEngine ?? true, policy);
    if (why !== undefined) throw denied(`${call ? `${t.text}()` : `Engine ${t.text}`} is refused: ${why}`);
    if (call && name === 'file') {
      const confined = confinedFileArgument(call, call.isEngine ? 1 : 0, policy);
      if (confined) rewrites.push(confined);
    }
  }
  if (rewrites.length === 0) return { sql, info };
  let out = '';
  let from = 0;
  for (const { token, path } of rewrites.sort((a, b) => a.token.start - b.token.start)) {
    out += `${sql.slice(from, token.start)}${quoteStringLiteral(path)}`;
    from = token.end;
  }
  out += sql.slice(from);
  return { sql: out, info: analyzeStatement(out) };
}
