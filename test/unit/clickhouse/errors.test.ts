import { describe, expect, it } from 'vitest';
import { ApplyFailedError, PlanRefusedError } from '../../../src/execute/apply.js';
import {
  ClickHouseError,
  ErrorCode,
  errorCodeName,
  isMissingDependency,
  isRetriableErrorType,
  parseClickHouseError,
  toClickHouseError,
} from '../../../src/clickhouse/errors.js';
import { MigrationRefusedError } from '../../../src/execute/executor.js';
import { FenceTimeoutError } from '../../../src/execute/fence.js';
import { KubeConflictError } from '../../../src/operator/kube-errors.js';
import { isRetriable } from '../../../src/runtime/backoff.js';
import { RetriesExhaustedError, WeirError } from '../../../src/runtime/errors.js';

describe('parseClickHouseError', () => {
  it('reads code, type and message from ClickHouse exception text', () => {
    const e = parseClickHouseError(
      'Code: 60. DB::Exception: Table default.nope does not exist. Maybe you meant system.one?. (UNKNOWN_TABLE) (version 26.7.2.1)\n',
    );
    expect(e).toBeInstanceOf(ClickHouseError);
    expect(e?.code).toBe(60);
    expect(e?.type).toBe('UNKNOWN_TABLE');
    expect(e?.message).toBe('Table default.nope does not exist. Maybe you meant system.one?.');
    expect(e?.retriable).toBe(false);
  });

  it('takes the type at the end, not a word in parentheses quoted from the query', () => {
    const e = parseClickHouseError(
      'Code: 62. DB::Exception: Syntax error: failed at position 1 (SELEC): SELEC 1. Expected one of: Query, EXPLAIN. (SYNTAX_ERROR) (version 26.7.2.1)',
    );
    expect(e?.code).toBe(62);
    expect(e?.type).toBe('SYNTAX_ERROR');
    expect(e?.message).toContain('failed at position 1 (SELEC)');
  });

  it('reads chdb text, which has no version suffix and may span lines', () => {
    const e = parseClickHouseError(
      "Code: 27. DB::Exception: Cannot parse input: expected '\"' before: 'x'\n: While executing ParallelParsingBlockInputFormat. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)",
    );
    expect(e?.code).toBe(27);
    expect(e?.type).toBe('CANNOT_PARSE_INPUT_ASSERTION_FAILED');
    expect(e?.message).toContain('While executing ParallelParsingBlockInputFormat.');
  });

  it('reports the innermost of nested exceptions', () => {
    const e = parseClickHouseError(
      'Code: 57. DB::Exception: There was an error on [ch-0:9000]: Code: 57. DB::Exception: Table db.t already exists. (TABLE_ALREADY_EXISTS) (version 24.8.1.1). (TABLE_ALREADY_EXISTS) (version 24.8.1.1)',
    );
    expect(e?.code).toBe(57);
    expect(e?.type).toBe('TABLE_ALREADY_EXISTS');
    expect(e?.message).toBe('Table db.t already exists.');
  });

  it('reads the pre-21.x form and fills in a missing type from the code', () => {
    const e = parseClickHouseError('Code: 209, e.displayText() = DB::NetException: Timeout exceeded while reading from socket');
    expect(e?.code).toBe(209);
    expect(e?.type).toBe('SOCKET_TIMEOUT');
    expect(e?.retriable).toBe(true);
  });

  it('returns undefined for text that is not a ClickHouse exception', () => {
    expect(parseClickHouseError('<html>502 Bad Gateway</html>')).toBeUndefined();
    expect(parseClickHouseError('')).toBeUndefined();
  });
});

describe('retriable', () => {
  it.each([
    ['TOO_MANY_PARTS', 252],
    ['TIMEOUT_EXCEEDED', 159],
    ['SOCKET_TIMEOUT', 209],
    ['NETWORK_ERROR', 210],
    ['TOO_MANY_SIMULTANEOUS_QUERIES', 202],
    ['MEMORY_LIMIT_EXCEEDED', 241],
    ['TABLE_IS_READ_ONLY', 242],
  ])('%s (%i) is retriable', (type, code) => {
    expect(errorCodeName(code)).toBe(type);
    expect(isRetriableErrorType(type)).toBe(true);
    const e = new ClickHouseError('x', { code });
    expect(e.type).toBe(type);
    expect(e.retriable).toBe(true);
    expect(isRetriable(e)).toBe(true);
  });

  it.each([
    ['SYNTAX_ERROR', 62],
    ['UNKNOWN_TABLE', 60],
    ['UNKNOWN_IDENTIFIER', 47],
    ['UNKNOWN_DATABASE', 81],
    ['AUTHENTICATION_FAILED', 516],
    ['TYPE_MISMATCH', 53],
  ])('%s (%i) is not retriable', (type, code) => {
    const e = new ClickHouseError('x', { code });
    expect(e.type).toBe(type);
    expect(e.retriable).toBe(false);
    expect(isRetriable(e)).toBe(false);
  });

  it('an unknown code keeps its type and is not retriable', () => {
    const e = new ClickHouseError('x', { code: 9999, type: 'SOMETHING_NEW' });
    expect(e.type).toBe('SOMETHING_NEW');
    expect(e.retriable).toBe(false);
  });
});

describe('toClickHouseError', () => {
  it('keeps a ClickHouseError as it is', () => {
    const e = new ClickHouseError('x', { code: 60 });
    expect(toClickHouseError(e)).toBe(e);
  });

  it('converts @clickhouse/client server errors (string code and type)', () => {
    const clientError = Object.assign(new Error('Table default.nope does not exist. '), { code: '60', type: 'UNKNOWN_TABLE' });
    const e = toClickHouseError(clientError);
    expect(e).toBeInstanceOf(ClickHouseError);
    expect(e.code).toBe(60);
    expect(e.type).toBe('UNKNOWN_TABLE');
    expect(e.message).toBe('Table default.nope does not exist.');
    expect(e.cause).toBe(clientError);
  });

  it("prefers the code's own name to the client's guess from the first parenthesised word", () => {
    const clientError = Object.assign(new Error('Syntax error: failed at position 1 '), { code: '62', type: 'SELEC' });
    expect(toClickHouseError(clientError).type).toBe('SYNTAX_ERROR');
    const unknown = Object.assign(new Error('new'), { code: '7777', type: 'BRAND_NEW' });
    expect(toClickHouseError(unknown).type).toBe('BRAND_NEW');
  });

  it('parses exception text carried only in the message', () => {
    const e = toClickHouseError(new Error('Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS) (version 24.8.1.1)'));
    expect(e.code).toBe(252);
    expect(e.retriable).toBe(true);
  });

  it.each([
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' }), ErrorCode.NETWORK_ERROR],
    [Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), ErrorCode.NETWORK_ERROR],
    [Object.assign(new Error('connect ETIMEDOUT 10.0.0.1:8123'), { code: 'ETIMEDOUT' }), ErrorCode.SOCKET_TIMEOUT],
    [Object.assign(new Error('getaddrinfo EAI_AGAIN clickhouse'), { code: 'EAI_AGAIN' }), ErrorCode.NETWORK_ERROR],
    [new Error('socket hang up'), ErrorCode.NETWORK_ERROR],
    [new Error('Timeout error.'), ErrorCode.SOCKET_TIMEOUT],
  ])('network failure %s is retriable', (cause, code) => {
    const e = toClickHouseError(cause);
    expect(e.code).toBe(code);
    expect(e.retriable).toBe(true);
    expect(e.cause).toBe(cause);
  });

  it('an aborted request and an unknown failure are not retriable', () => {
    const aborted = toClickHouseError(new Error('The user aborted a request.'));
    expect(aborted.type).toBe('QUERY_WAS_CANCELLED');
    expect(aborted.retriable).toBe(false);
    const odd = toClickHouseError('something odd');
    expect(odd.code).toBe(ErrorCode.UNKNOWN_EXCEPTION);
    expect(odd.message).toBe('something odd');
    expect(odd.retriable).toBe(false);
  });
});

describe('isMissingDependency', () => {
  it.each([
    ['UNKNOWN_TABLE', ErrorCode.UNKNOWN_TABLE],
    ['UNKNOWN_DATABASE', ErrorCode.UNKNOWN_DATABASE],
    ['TABLE_IS_DROPPED', ErrorCode.TABLE_IS_DROPPED],
  ])('%s: a table or database that is not there (yet)', (type, code) => {
    const e = new ClickHouseError('x', { code });
    expect(e.type).toBe(type);
    expect(isMissingDependency(e)).toBe(true);
  });

  it.each([
    ['UNKNOWN_IDENTIFIER', ErrorCode.UNKNOWN_IDENTIFIER],
    ['SYNTAX_ERROR', ErrorCode.SYNTAX_ERROR],
    ['ACCESS_DENIED', ErrorCode.ACCESS_DENIED],
    ['TABLE_ALREADY_EXISTS', ErrorCode.TABLE_ALREADY_EXISTS],
    ['NETWORK_ERROR', ErrorCode.NETWORK_ERROR],
  ])('%s is something else', (_type, code) => {
    expect(isMissingDependency(new ClickHouseError('x', { code }))).toBe(false);
  });

  it('reads ClickHouse text through toClickHouseError', () => {
    const e = toClickHouseError(new Error('Code: 81. DB::Exception: Database nope does not exist. (UNKNOWN_DATABASE) (version 26.7.2.1)'));
    expect(isMissingDependency(e)).toBe(true);
  });

  it('looks through the causes of errors that wrap one', () => {
    const missing = new ClickHouseError('Table db.t does not exist.', { code: ErrorCode.UNKNOWN_TABLE });
    expect(isMissingDependency(new RetriesExhaustedError(3, missing))).toBe(true);
    expect(isMissingDependency(new Error('applying', { cause: new Error('step', { cause: missing }) }))).toBe(true);
    expect(isMissingDependency(new RetriesExhaustedError(3, new ClickHouseError('x', { code: ErrorCode.TOO_MANY_PARTS })))).toBe(false);
  });

  it('is false for things that only look like ClickHouse errors, and for non-errors', () => {
    expect(isMissingDependency(Object.assign(new Error('x'), { code: 60 }))).toBe(false);
    expect(isMissingDependency({ code: ErrorCode.UNKNOWN_TABLE })).toBe(false);
    expect(isMissingDependency(undefined)).toBe(false);
    expect(isMissingDependency('UNKNOWN_TABLE')).toBe(false);
  });

  it('ends on a cycle of causes', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    Object.assign(a, { cause: b });
    expect(isMissingDependency(a)).toBe(false);
  });
});

describe('one error base', () => {
  it('ClickHouseError is a WeirError whose reason is its type', () => {
    const e = new ClickHouseError('Too many parts', { code: ErrorCode.TOO_MANY_PARTS });
    expect(e).toBeInstanceOf(WeirError);
    expect(e.name).toBe('ClickHouseError');
    expect(e.reason).toBe('TOO_MANY_PARTS');
    expect(e.retriable).toBe(true);
  });

  it.each([
    ['PlanRefusedError', () => new PlanRefusedError('cycle'), 'PlanRefused', false],
    ['MigrationRefusedError', () => new MigrationRefusedError('rows do not convert'), 'MigrationRefused', false],
    ['FenceTimeoutError', () => new FenceTimeoutError('writers did not pause'), 'FenceTimeout', true],
    ['KubeConflictError', () => new KubeConflictError('conflict'), 'Conflict', true],
    ['RetriesExhaustedError', () => new RetriesExhaustedError(2, new Error('busy')), 'RetriesExhausted', false],
  ])('%s is a WeirError with its reason and retriable flag', (name, make, reason, retriable) => {
    const e = make();
    expect(e).toBeInstanceOf(WeirError);
    expect(e.name).toBe(name);
    expect(e.reason).toBe(reason);
    expect(e.retriable).toBe(retriable);
  });

  it('ApplyFailedError is retriable exactly when the failure it wraps is', () => {
    const busy = new ApplyFailedError('DataSource ns/t', 'too many parts', [], ['create t'], new ClickHouseError('x', { code: ErrorCode.TOO_MANY_PARTS }));
    expect(busy).toBeInstanceOf(WeirError);
    expect(busy.reason).toBe('ApplyFailed');
    expect(busy.problem).toBe('too many parts');
    expect(busy.retriable).toBe(true);
    expect(new ApplyFailedError('DataSource ns/t', 'fence', [], [], new FenceTimeoutError('writers did not pause')).retriable).toBe(true);
    expect(new ApplyFailedError('DataSource ns/t', 'refused', [], [], new MigrationRefusedError('no')).retriable).toBe(false);
    expect(new ApplyFailedError('DataSource ns/t', 'syntax', [], [], new ClickHouseError('x', { code: ErrorCode.SYNTAX_ERROR })).retriable).toBe(false);
  });
});
