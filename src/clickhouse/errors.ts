// ClickHouse errors as weir sees them: a numeric code, the code's name, and whether trying again can help.
import { WeirError } from '../runtime/errors.js';

/** The ClickHouse error codes weir refers to by name (numbers from ClickHouse's ErrorCodes.cpp). */
export const ErrorCode = {
  UNEXPECTED_END_OF_FILE: 3,
  CANNOT_PARSE_TEXT: 6,
  THERE_IS_NO_COLUMN: 8,
  DUPLICATE_COLUMN: 15,
  CANNOT_PARSE_ESCAPE_SEQUENCE: 25,
  CANNOT_PARSE_QUOTED_STRING: 26,
  CANNOT_PARSE_INPUT_ASSERTION_FAILED: 27,
  BAD_ARGUMENTS: 36,
  UNKNOWN_ELEMENT_IN_AST: 37,
  CANNOT_PARSE_DATE: 38,
  CANNOT_PARSE_DATETIME: 41,
  ILLEGAL_COLUMN: 44,
  UNKNOWN_FUNCTION: 46,
  UNKNOWN_IDENTIFIER: 47,
  NOT_IMPLEMENTED: 48,
  LOGICAL_ERROR: 49,
  UNKNOWN_TYPE: 50,
  TYPE_MISMATCH: 53,
  UNKNOWN_STORAGE: 56,
  TABLE_ALREADY_EXISTS: 57,
  UNKNOWN_TABLE: 60,
  SYNTAX_ERROR: 62,
  UNKNOWN_AGGREGATE_FUNCTION: 63,
  CANNOT_PARSE_NUMBER: 72,
  UNKNOWN_FORMAT: 73,
  CANNOT_OPEN_FILE: 76,
  UNKNOWN_TYPE_OF_QUERY: 78,
  UNKNOWN_DATABASE: 81,
  DATABASE_ALREADY_EXISTS: 82,
  NO_DATA_TO_INSERT: 108,
  UNKNOWN_SETTING: 115,
  INCORRECT_DATA: 117,
  UNKNOWN_TYPE_OF_AST_NODE: 123,
  UNKNOWN_DIRECTION_OF_SORTING: 152,
  TIMEOUT_EXCEEDED: 159,
  READONLY: 164,
  TOO_DEEP_AST: 167,
  TOO_BIG_AST: 168,
  UNKNOWN_USER: 192,
  WRONG_PASSWORD: 193,
  REQUIRED_PASSWORD: 194,
  TOO_MANY_SIMULTANEOUS_QUERIES: 202,
  SOCKET_TIMEOUT: 209,
  NETWORK_ERROR: 210,
  QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING: 216,
  TABLE_IS_DROPPED: 218,
  UNEXPECTED_AST_STRUCTURE: 223,
  QUERY_IS_TOO_LARGE: 229,
  ABORTED: 236,
  MEMORY_LIMIT_EXCEEDED: 241,
  TABLE_IS_READ_ONLY: 242,
  TOO_MANY_PARTS: 252,
  CANNOT_DECOMPRESS: 271,
  ALL_CONNECTION_TRIES_FAILED: 279,
  DATABASE_ACCESS_DENIED: 291,
  VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE: 321,
  UNKNOWN_DATABASE_ENGINE: 336,
  INTO_OUTFILE_NOT_ALLOWED: 358,
  CANNOT_PARSE_UUID: 376,
  HTTP_LENGTH_REQUIRED: 381,
  QUERY_WAS_CANCELLED: 394,
  CANNOT_COMPILE_REGEXP: 427,
  CANNOT_SCHEDULE_TASK: 439,
  CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING: 441,
  UNKNOWN_QUERY_PARAMETER: 456,
  BAD_QUERY_PARAMETER: 457,
  ACCESS_DENIED: 497,
  UNKNOWN_ROLE: 511,
  SET_NON_GRANTED_ROLE: 512,
  AUTHENTICATION_FAILED: 516,
  CANNOT_PARSE_IPV4: 675,
  CANNOT_PARSE_IPV6: 676,
  SERVER_OVERLOADED: 745,
  UNSUPPORTED_MEDIA_TYPE: 779,
  KEEPER_EXCEPTION: 999,
  UNKNOWN_EXCEPTION: 1002,
} as const;

export type ErrorCodeName = keyof typeof ErrorCode;

const NAME_BY_CODE = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

/** The name ClickHouse gives an error code, when weir knows it. */
export const errorCodeName = (code: number): string | undefined => NAME_BY_CODE.get(code);

/** Error types where the same request can succeed later: overload, timeouts, the network, a replica catching up. */
const RETRIABLE_TYPES = new Set<string>([
  'TOO_MANY_PARTS',
  'TIMEOUT_EXCEEDED',
  'SOCKET_TIMEOUT',
  'NETWORK_ERROR',
  'TOO_MANY_SIMULTANEOUS_QUERIES',
  'MEMORY_LIMIT_EXCEEDED',
  'TABLE_IS_READ_ONLY',
  'ALL_CONNECTION_TRIES_FAILED',
  'CANNOT_SCHEDULE_TASK',
  'SERVER_OVERLOADED',
  'KEEPER_EXCEPTION',
]);

export const isRetriableErrorType = (type: string): boolean => RETRIABLE_TYPES.has(type);

export interface ClickHouseErrorInit {
  code: number;
  /** The code's name, e.g. UNKNOWN_TABLE; looked up from `code` when left out. */
  type?: string | undefined;
  /** Decided from `type` when left out. */
  retriable?: boolean;
  cause?: unknown;
}

/**
 * An error from ClickHouse, or from reaching it. `retriable` is what retry() reads; `reason` is
 * the code's name (the same as `type`).
 */
export class ClickHouseError extends WeirError {
  readonly code: number;
  readonly type: string;

  constructor(message: string, init: ClickHouseErrorInit) {
    const type = init.type ?? errorCodeName(init.code) ?? 'UNKNOWN_EXCEPTION';
    super(message, { retriable: init.retriable ?? isRetriableErrorType(type), reason: type, cause: init.cause });
    this.code = init.code;
    this.type = type;
  }
}

/** The table, view or database a statement names is not there: not created yet, or mid-swap. */
const MISSING_DEPENDENCY = new Set<number>([ErrorCode.UNKNOWN_TABLE, ErrorCode.UNKNOWN_DATABASE, ErrorCode.TABLE_IS_DROPPED]);

/**
 * Whether ClickHouse refused because a table or database it was told to use does not exist (yet):
 * the operator may not have created it, or a migration is swapping it. Looks through the causes of
 * wrapping errors (an ApplyFailedError, a RetriesExhaustedError).
 */
export function isMissingDependency(e: unknown): boolean {
  for (let cause = e, depth = 0; cause !== undefined && depth < 8; depth++) {
    if (cause instanceof ClickHouseError) return MISSING_DEPENDENCY.has(cause.code);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return false;
}

// `Code: 60. DB::Exception: ` (and the pre-21.x `Code: 60, e.displayText() = DB::Exception: `).
const EXCEPTION_HEADER = /Code: (\d+)(?:\. |, e\.displayText\(\) = )(?:DB::)?\w*Exception: /g;
const BARE_CODE = /^Code: (\d+)\.\s*/;
const TRAILING_TYPE = /\s*\(([A-Z][A-Z0-9_]{2,})\)\s*\.?\s*$/;
const ANY_TYPE = /\(([A-Z][A-Z0-9_]{2,})\)/;

/**
 * Reads ClickHouse's exception text, `Code: 60. DB::Exception: <message>. (UNKNOWN_TABLE) (version 26.7.2.1)`.
 * When exceptions are nested (`... on [host]: Code: 57. DB::Exception: ...`) the innermost one is the cause
 * and wins. Returns undefined for text that is not a ClickHouse exception.
 */
export function parseClickHouseError(text: string): ClickHouseError | undefined {
  const header = [...text.matchAll(EXCEPTION_HEADER)].at(-1) ?? BARE_CODE.exec(text) ?? undefined;
  if (header?.[1] === undefined) return undefined;
  const code = Number(header[1]);

  let rest = text.slice((header.index ?? 0) + header[0].length);
  // The version suffix closes the innermost exception; anything after it repeats outer markers.
  const version = rest.indexOf(' (version ');
  if (version >= 0) rest = rest.slice(0, version);

  const typed = TRAILING_TYPE.exec(rest) ?? ANY_TYPE.exec(rest);
  const type = typed?.[1] ?? errorCodeName(code) ?? 'UNKNOWN_EXCEPTION';
  const message = (typed ? rest.slice(0, typed.index) : rest).trim();
  return new ClickHouseError(message, { code, type });
}

/** Node socket errors that mean "the server was not there or went away": try again. */
const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  // A Kubernetes Service name does not resolve until its Service exists.
  'ENOTFOUND',
  'UND_ERR_SOCKET',
]);
const TIMEOUT_ERROR_CODES = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

const errorField = (e: unknown, field: string): unknown => (typeof e === 'object' && e !== null ? (e as Record<string, unknown>)[field] : undefined);

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Any error from @clickhouse/client (or from a socket under it) as a ClickHouseError.
 * Server errors carry `code` (a numeric string) and `type`; network failures carry a Node error code.
 */
export function toClickHouseError(e: unknown): ClickHouseError {
  if (e instanceof ClickHouseError) return e;
  const message = messageOf(e);

  const code = errorField(e, 'code');
  const type = errorField(e, 'type');
  if ((typeof code === 'string' || typeof code === 'number') && /^\d+$/.test(String(code))) {
    // The client takes the first "(UPPERCASE)" group as the type, which can be a word quoted from the query
    // (`Syntax error: failed at position 1 (SELEC)`): the code's own name wins when weir knows it.
    const clientType = typeof type === 'string' && type !== '' ? type : undefined;
    return new ClickHouseError(message.trim(), {
      code: Number(code),
      type: errorCodeName(Number(code)) ?? clientType,
      cause: e,
    });
  }

  const parsed = parseClickHouseError(message);
  if (parsed) return new ClickHouseError(parsed.message, { code: parsed.code, type: parsed.type, cause: e });

  if (typeof code === 'string' && TIMEOUT_ERROR_CODES.has(code)) {
    return new ClickHouseError(message, { code: ErrorCode.SOCKET_TIMEOUT, cause: e });
  }
  if ((typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) || /socket hang up/i.test(message)) {
    return new ClickHouseError(message, { code: ErrorCode.NETWORK_ERROR, cause: e });
  }
  // @clickhouse/client's own request_timeout and abort errors carry no code, only these messages.
  if (message === 'Timeout error.') {
    return new ClickHouseError(message, { code: ErrorCode.SOCKET_TIMEOUT, cause: e });
  }
  if (errorField(e, 'name') === 'AbortError' || message === 'The user aborted a request.') {
    return new ClickHouseError(message, { code: ErrorCode.QUERY_WAS_CANCELLED, cause: e });
  }
  return new ClickHouseError(message, { code: ErrorCode.UNKNOWN_EXCEPTION, retriable: false, cause: e });
}
