// ClickHouse's HTTP interface, the parts that are not about running SQL: which URL parameters are settings,
// authentication, status codes, content types, the summary header and the exception text.

import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ClickHouseError, ErrorCode } from './errors.js';
import type { QuerySummary } from './engine.js';

/** URL parameters ClickHouse's HTTP handler reads itself; they are not settings. */
const RESERVED_PARAMS = new Set([
  'query',
  'database',
  'default_format',
  'query_id',
  'user',
  'password',
  'quota_key',
  'compress',
  'decompress',
  'stacktrace',
  'buffer_size',
  'wait_end_of_query',
  'session_id',
  'session_timeout',
  'session_check',
  'close_session',
  'client_protocol_version',
  'role',
]);

/** Settings that only steer the HTTP response; the buffered, in-process engine has no use for them. */
const HTTP_LAYER_SETTINGS = new Set([
  'enable_http_compression',
  'http_zlib_compression_level',
  'http_response_compression_method',
  'send_progress_in_http_headers',
  'http_headers_progress_interval_ms',
  'http_wait_end_of_query',
  'http_response_buffer_size',
  'http_response_headers',
  'http_write_exception_in_output_format',
  'http_native_compression_disable_checksumming_on_decompress',
  'cancel_http_readonly_queries_on_client_close',
  'add_http_cors_header',
]);

/** One HTTP query request as ClickHouse reads it from URL parameters (and form fields) and headers. */
export interface HttpQuery {
  query?: string;
  database: string;
  defaultFormat: string;
  queryId?: string;
  sessionId?: string;
  /** `param_<name>` values, still in ClickHouse's escaped text form. */
  params: Record<string, string>;
  settings: Map<string, string>;
  /** enable_http_compression: compress the response when the client accepts it. */
  compressResponse: boolean;
  compressionLevel?: number;
  /** compress/decompress: ClickHouse's own block compression, which this server does not speak. */
  nativeCompression: boolean;
}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
};

const isTrue = (value: string | null): boolean => value !== null && /^(1|true)$/i.test(value.trim());

export function readHttpQuery(params: URLSearchParams, headers: IncomingHttpHeaders): HttpQuery {
  const query: HttpQuery = {
    database: header(headers, 'x-clickhouse-database') || params.get('database') || 'default',
    defaultFormat: header(headers, 'x-clickhouse-format') || params.get('default_format') || 'TabSeparated',
    params: {},
    settings: new Map(),
    compressResponse: isTrue(params.get('enable_http_compression')),
    nativeCompression: isTrue(params.get('compress')) || isTrue(params.get('decompress')),
  };
  const text = params.getAll('query');
  if (text.length > 0) query.query = text.join('');
  const queryId = params.get('query_id') || header(headers, 'x-clickhouse-query-id');
  if (queryId) query.queryId = queryId;
  const sessionId = params.get('session_id');
  if (sessionId) query.sessionId = sessionId;
  const level = Number(params.get('http_zlib_compression_level'));
  if (Number.isInteger(level) && level >= 1 && level <= 9) query.compressionLevel = level;

  for (const [name, value] of params) {
    if (name === '' || RESERVED_PARAMS.has(name) || HTTP_LAYER_SETTINGS.has(name)) continue;
    if (name.startsWith('param_')) query.params[name.slice('param_'.length)] = value;
    else query.settings.set(name, value);
  }
  return query;
}

export interface Credentials {
  user: string;
  password: string;
}

const sameText = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

const authError = (message: string): ClickHouseError => new ClickHouseError(message, { code: ErrorCode.AUTHENTICATION_FAILED });

/** The credentials a request presents, by ClickHouse's rules: one method only, else the 'default' user. */
function presentedCredentials(headers: IncomingHttpHeaders, params: URLSearchParams): Credentials {
  const headerUser = header(headers, 'x-clickhouse-user') ?? '';
  const headerKey = header(headers, 'x-clickhouse-key') ?? '';
  const authorization = header(headers, 'authorization');
  const inParams = params.has('user') || params.has('password');

  if (headerUser !== '' || headerKey !== '') {
    if (authorization)
      throw authError('Invalid authentication: it is not allowed to use X-ClickHouse HTTP headers and Authorization HTTP header simultaneously');
    if (inParams)
      throw authError('Invalid authentication: it is not allowed to use X-ClickHouse HTTP headers and authentication via parameters simultaneously');
    if (headerUser === '') throw authError('Got an empty user name from X-ClickHouse HTTP headers');
    return { user: headerUser, password: headerKey };
  }
  if (authorization) {
    if (inParams)
      throw authError('Invalid authentication: it is not allowed to use Authorization HTTP header and authentication via parameters simultaneously');
    const [scheme = '', encoded = ''] = authorization.split(' ', 2);
    if (scheme.toLowerCase() !== 'basic') throw authError(`Invalid authentication: '${scheme}' HTTP Authorization scheme is not supported`);
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = colon < 0 ? decoded : decoded.slice(0, colon);
    if (user === '') throw authError('Got an empty user name from Authorization HTTP header');
    return { user, password: colon < 0 ? '' : decoded.slice(colon + 1) };
  }
  return { user: params.get('user') ?? 'default', password: params.get('password') ?? '' };
}

/** Throws AUTHENTICATION_FAILED unless the request presents the expected user and password. */
export function authenticate(headers: IncomingHttpHeaders, params: URLSearchParams, expected: Credentials): void {
  const presented = presentedCredentials(headers, params);
  // Compare both before deciding, so the answer takes as long for a wrong user as for a wrong password.
  const userOk = sameText(presented.user, expected.user);
  const passwordOk = sameText(presented.password, expected.password);
  if (!userOk || !passwordOk) {
    throw authError(`${presented.user}: Authentication failed: password is incorrect, or there is no user with such name`);
  }
}

const BAD_REQUEST_CODES = new Set<number>([
  ErrorCode.BAD_ARGUMENTS,
  ErrorCode.CANNOT_COMPILE_REGEXP,
  ErrorCode.CANNOT_PARSE_TEXT,
  ErrorCode.CANNOT_PARSE_ESCAPE_SEQUENCE,
  ErrorCode.CANNOT_PARSE_QUOTED_STRING,
  ErrorCode.CANNOT_PARSE_DATE,
  ErrorCode.CANNOT_PARSE_DATETIME,
  ErrorCode.CANNOT_PARSE_NUMBER,
  ErrorCode.CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING,
  ErrorCode.CANNOT_PARSE_IPV4,
  ErrorCode.CANNOT_PARSE_IPV6,
  ErrorCode.CANNOT_PARSE_INPUT_ASSERTION_FAILED,
  ErrorCode.CANNOT_PARSE_UUID,
  ErrorCode.DUPLICATE_COLUMN,
  ErrorCode.ILLEGAL_COLUMN,
  ErrorCode.UNKNOWN_ELEMENT_IN_AST,
  ErrorCode.UNKNOWN_TYPE_OF_AST_NODE,
  ErrorCode.THERE_IS_NO_COLUMN,
  ErrorCode.TOO_DEEP_AST,
  ErrorCode.TOO_BIG_AST,
  ErrorCode.UNEXPECTED_AST_STRUCTURE,
  ErrorCode.SYNTAX_ERROR,
  ErrorCode.INCORRECT_DATA,
  ErrorCode.TYPE_MISMATCH,
  ErrorCode.VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE,
]);

const NOT_FOUND_CODES = new Set<number>([
  ErrorCode.UNKNOWN_TABLE,
  ErrorCode.UNKNOWN_FUNCTION,
  ErrorCode.UNKNOWN_IDENTIFIER,
  ErrorCode.UNKNOWN_TYPE,
  ErrorCode.UNKNOWN_STORAGE,
  ErrorCode.UNKNOWN_DATABASE,
  ErrorCode.UNKNOWN_SETTING,
  ErrorCode.UNKNOWN_DIRECTION_OF_SORTING,
  ErrorCode.UNKNOWN_AGGREGATE_FUNCTION,
  ErrorCode.UNKNOWN_FORMAT,
  ErrorCode.UNKNOWN_DATABASE_ENGINE,
  ErrorCode.UNKNOWN_TYPE_OF_QUERY,
  ErrorCode.UNKNOWN_ROLE,
]);

const FORBIDDEN_CODES = new Set<number>([
  ErrorCode.UNKNOWN_USER,
  ErrorCode.WRONG_PASSWORD,
  ErrorCode.AUTHENTICATION_FAILED,
  ErrorCode.SET_NON_GRANTED_ROLE,
  ErrorCode.ACCESS_DENIED,
]);

/** The HTTP status ClickHouse answers an exception code with (its exceptionCodeToHTTPStatus). */
export function httpStatusFor(code: number): number {
  if (code === ErrorCode.REQUIRED_PASSWORD) return 401;
  if (FORBIDDEN_CODES.has(code)) return 403;
  if (BAD_REQUEST_CODES.has(code)) return 400;
  if (NOT_FOUND_CODES.has(code)) return 404;
  if (code === ErrorCode.QUERY_IS_TOO_LARGE) return 413;
  if (code === ErrorCode.NOT_IMPLEMENTED) return 501;
  if (code === ErrorCode.SOCKET_TIMEOUT || code === ErrorCode.CANNOT_OPEN_FILE || code === ErrorCode.CANNOT_SCHEDULE_TASK) return 503;
  if (code === ErrorCode.HTTP_LENGTH_REQUIRED) return 411;
  if (code === ErrorCode.TIMEOUT_EXCEEDED) return 408;
  if (code === ErrorCode.UNSUPPORTED_MEDIA_TYPE) return 415;
  return 500;
}

/** `Code: 60. DB::Exception: <message>. (UNKNOWN_TABLE) (version 26.7.2.1)`, as ClickHouse writes exceptions. */
export function exceptionText(e: ClickHouseError, version: string): string {
  const message = e.message.endsWith('.') ? e.message : `${e.message}.`;
  return `Code: ${e.code}. DB::Exception: ${message} (${e.type}) (version ${version})`;
}

const BINARY_FORMATS = /^(Native|RowBinary|Parquet|Arrow|ORC|Avro|Protobuf|CapnProto|MsgPack|BSONEachRow|Npy|RawBLOB)/;

/** Content-Type of a response body in `format` (ClickHouse's IOutputFormat::getContentType). */
export function contentTypeFor(format: string | undefined): string {
  if (format === undefined) return 'text/plain; charset=UTF-8';
  if (/^(PrettyJSON|JSON)/.test(format)) return 'application/json; charset=UTF-8';
  if (/^(TabSeparated|TSV)/.test(format)) return 'text/tab-separated-values; charset=UTF-8';
  if (/^CSV/.test(format)) return `text/csv; charset=UTF-8; header=${/WithNames/.test(format) ? 'present' : 'absent'}`;
  if (format === 'XML') return 'application/xml; charset=UTF-8';
  if (BINARY_FORMATS.test(format)) return 'application/octet-stream';
  return 'text/plain; charset=UTF-8';
}

/** X-ClickHouse-Summary: ClickHouse writes every counter as a decimal string. */
export function summaryHeader(s: QuerySummary): string {
  return JSON.stringify({
    read_rows: String(s.readRows),
    read_bytes: String(s.readBytes),
    written_rows: String(s.writtenRows),
    written_bytes: String(s.writtenBytes),
    total_rows_to_read: String(s.readRows),
    result_rows: String(s.resultRows),
    result_bytes: String(s.resultBytes),
    elapsed_ns: String(s.elapsedNs),
  });
}

/**
 * The form fields of a multipart/form-data body (how clients send long query parameters). File parts are
 * ClickHouse external tables, which this server does not take.
 */
export function multipartFields(body: Buffer, contentType: string): URLSearchParams {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const marker = boundary?.[1] ?? boundary?.[2];
  if (!marker) throw new ClickHouseError('multipart/form-data without a boundary', { code: ErrorCode.BAD_ARGUMENTS });
  const fields = new URLSearchParams();
  for (const part of body.toString('utf8').split(`--${marker}`).slice(1)) {
    if (part.startsWith('--')) break;
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd < 0) continue;
    const headers = part.slice(0, headerEnd);
    const name = /name="([^"]*)"/i.exec(headers)?.[1];
    if (name === undefined) continue;
    if (/filename=/i.test(headers)) {
      throw new ClickHouseError('External tables (multipart file parts) are not supported by this server', { code: ErrorCode.NOT_IMPLEMENTED });
    }
    fields.append(name, part.slice(headerEnd + 4).replace(/\r\n$/, ''));
  }
  return fields;
}
