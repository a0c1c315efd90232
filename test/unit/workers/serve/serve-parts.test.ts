// The pieces `weir serve` adds around the handler: the rate limit's bucket, token checks and
// reloads from a Secret directory, the config file's checks, and what the request log records.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import winston from 'winston';
import type { CompiledEndpoint } from '../../../../src/plan/endpoint/compile.js';
import { recordedError } from '../../../../src/workers/serve/handler.js';
import type { GivenValue } from '../../../../src/plan/endpoint/params.js';
import { RateLimiter } from '../../../../src/workers/serve/rate-limit.js';
import { RequestLog } from '../../../../src/workers/serve/request-log.js';
import { parseServeConfig } from '../../../../src/workers/serve/server.js';
import { presentedToken, TokenStore } from '../../../../src/workers/serve/tokens.js';

const quiet = winston.createLogger({ silent: true });

describe('RateLimiter', () => {
  it('passes a second of requests at once, then one per 1/rate seconds, and says when to retry', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    expect([1, 2, 3].map(() => limiter.take('a', 2).allowed)).toEqual([true, true, false]);
    expect(limiter.take('a', 2)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    now = 499;
    expect(limiter.take('a', 2).allowed).toBe(false);
    now = 500;
    expect(limiter.take('a', 2).allowed).toBe(true);
    // Buckets are per key, and a slow rate asks for a longer wait.
    expect(limiter.take('b', 2).allowed).toBe(true);
    expect(limiter.take('c', 0.25).allowed).toBe(true);
    expect(limiter.take('c', 0.25).retryAfterSeconds).toBe(4);
  });

  it('forgets only the buckets that have refilled (a per-token limiter keeps no idle caller)', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    limiter.take('busy', 2);
    limiter.take('busy', 2);
    limiter.take('slow', 0.5);
    now = 900;
    limiter.forgetFull();
    expect(limiter.size).toBe(2);
    now = 1000;
    limiter.forgetFull();
    // busy has refilled (2 a second), slow has not (half a request a second: full after 2 s).
    expect(limiter.size).toBe(1);
    expect(limiter.take('slow', 0.5).allowed).toBe(false);
    now = 3000;
    limiter.forgetFull();
    expect(limiter.size).toBe(0);
  });

  it('starts a fresh bucket when the rate changes', () => {
    const limiter = new RateLimiter(() => 0);
    limiter.take('a', 1);
    expect(limiter.take('a', 1).allowed).toBe(false);
    expect(limiter.take('a', 5).allowed).toBe(true);
  });
});

describe('tokens', () => {
  it('takes the token from Authorization: Bearer, else from ?token=', () => {
    expect(presentedToken('Bearer abc', null)).toBe('abc');
    expect(presentedToken('bearer  abc ', 'x')).toBe('abc');
    expect(presentedToken('Basic abc', 'x')).toBe('x');
    expect(presentedToken(undefined, '')).toBeUndefined();
    expect(presentedToken('Bearer', null)).toBeUndefined();
  });

  it('allows exactly the trimmed tokens of the Secret directory, skipping kubelet entries, and reloads them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-tokens-unit-'));
    const secret = join(dir, 'readers');
    mkdirSync(join(secret, '..2026_01_01'), { recursive: true });
    writeFileSync(join(secret, '..2026_01_01', 'alice'), '  t-alice\n');
    writeFileSync(join(secret, '..2026_01_01', 'empty'), '\n');
    symlinkSync('..2026_01_01', join(secret, '..data'));
    symlinkSync(join('..data', 'alice'), join(secret, 'alice'));
    symlinkSync(join('..data', 'empty'), join(secret, 'empty'));
    const store = new TokenStore(dir, () => ['readers', 'missing'], quiet);
    await store.reload();
    expect(store.check('readers', 't-alice')).toBe('allowed');
    // The key of the token, for the request log: which token, without the token.
    expect(store.match('readers', 't-alice')).toBe('alice');
    expect(store.match('readers', 't-alic')).toBeUndefined();
    expect(store.check('readers', 't-alic')).toBe('denied');
    expect(store.check('readers', '')).toBe('denied');
    expect(store.check('missing', 't-alice')).toBe('denied');
    writeFileSync(join(secret, 'bob'), 't-bob');
    rmSync(join(secret, 'alice'));
    await store.reload();
    expect(store.check('readers', 't-bob')).toBe('allowed');
    expect(store.check('readers', 't-alice')).toBe('denied');
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses every token without a tokens directory', async () => {
    const store = new TokenStore(undefined, () => ['readers'], quiet);
    await store.reload();
    expect(store.check('readers', 'anything')).toBe('denied');
  });
});

const entry = (extra: Partial<CompiledEndpoint> = {}): CompiledEndpoint => ({
  name: 'top_pages',
  namespace: 'web',
  resource: 'top-pages',
  pipe: 'top-pages',
  node: 'ranked',
  sql: 'SELECT 1',
  params: [{ name: 'tenant', type: 'String', required: true }],
  formats: ['json'],
  limits: { maxExecutionTimeMs: 1000, maxResultRows: 10 },
  database: 'web',
  version: 'v1',
  ...extra,
});

describe('parseServeConfig', () => {
  it('reads the endpoints the operator writes', () => {
    const config = { endpoints: [entry({ auth: { tokensSecret: 'readers' }, limits: { maxExecutionTimeMs: 1000, maxResultRows: 10, requestsPerSecond: 5 } })] };
    expect(parseServeConfig(JSON.stringify(config), 'endpoints.json')).toEqual(config.endpoints);
  });

  it('says which entry and field is wrong', () => {
    const parse = (value: unknown) => () => parseServeConfig(JSON.stringify(value), 'endpoints.json');
    expect(() => parseServeConfig('{', 'endpoints.json')).toThrow(/^endpoints.json: not JSON/);
    expect(parse([])).toThrow('endpoints.json: expected {"endpoints": [...]}');
    expect(parse({ endpoints: [entry({ name: 'top-pages' })] })).toThrow(
      'endpoints.json: endpoints[0] (top-pages).name: expected a ClickHouse-style name (letters, digits, _)',
    );
    expect(parse({ endpoints: [entry(), entry()] })).toThrow('endpoints[1] (top_pages).name: expected a name no other entry has');
    expect(parse({ endpoints: [entry({ formats: ['xml'] as never })] })).toThrow('endpoints[0] (top_pages).formats: expected a list of json, csv, ndjson');
    expect(parse({ endpoints: [entry({ auth: { tokensSecret: '../etc' } })] })).toThrow('endpoints[0] (top_pages).auth.tokensSecret: expected a Secret name');
    expect(parse({ endpoints: [entry({ sql: undefined as never })] })).toThrow('endpoints[0] (top_pages).sql: expected a string');
    expect(parse({ endpoints: [entry({ auth: {} })] })).toThrow('endpoints[0] (top_pages).auth: expected tokensSecret, jwt or both');
    const jwt = { secret: 'signing', issuer: 'https://app.example', audience: 'weir', algorithms: ['HS256' as const], clockSkewSeconds: 30 };
    expect(parseServeConfig(JSON.stringify({ endpoints: [entry({ auth: { jwt } })] }), 'endpoints.json')[0]?.auth).toEqual({ jwt });
    expect(parse({ endpoints: [entry({ auth: { jwt: { ...jwt, secret: '..data' } } })] })).toThrow('auth.jwt.secret: expected a Secret name');
    expect(parse({ endpoints: [entry({ auth: { jwt: { ...jwt, algorithms: ['none'] as never } } })] })).toThrow(
      'auth.jwt.algorithms: expected a list of HS256, RS256, ES256',
    );
    expect(parse({ endpoints: [entry({ auth: { jwt: { ...jwt, audience: '' } } })] })).toThrow('auth.jwt.audience: expected a string');
  });
});

describe('recordedError', () => {
  it('takes parameter values out of the error kept in the request log', () => {
    const given = new Map<string, GivenValue>([['email', { value: 'alice@example.com', from: 'query' }]]);
    expect(recordedError('parameter email: "alice@example.com" is not an allowed value', given, {})).toBe('parameter email: "<value>" is not an allowed value');
    const long = 'x'.repeat(200);
    expect(recordedError(`parameter d: expected Date, got "${long.slice(0, 79)}…"`, new Map([['d', { value: long, from: 'query' }]]), {})).toBe(
      'parameter d: expected Date, got <value>',
    );
    expect(recordedError('parameter n: expected UInt8, got "7" (UInt8 holds 0 to 255)', undefined, undefined)).toBe(
      'parameter n: expected UInt8, got <value> (UInt8 holds 0 to 255)',
    );
  });
});

describe('RequestLog and an older table', () => {
  it('adds the token columns, and when ALTER is not allowed still writes every row (without them)', async () => {
    const statements: string[] = [];
    const inserted: { rows: object[]; settings: unknown }[] = [];
    const ch = {
      command: (sql: string) => {
        statements.push(sql);
        return sql.startsWith('ALTER') ? Promise.reject(new Error('Code: 497. DB::Exception: Not enough privileges. (ACCESS_DENIED)')) : Promise.resolve();
      },
      insert: (_table: string, rows: object[], opts?: { settings?: unknown }) => {
        inserted.push({ rows, settings: opts?.settings });
        return Promise.resolve();
      },
    };
    const requestLog = new RequestLog(ch, quiet, undefined, { flushIntervalMs: 60_000, server: 'pod-1' });
    await requestLog.start();
    requestLog.record({
      requestId: 'r1',
      time: new Date('2026-12-01T00:00:00Z'),
      endpoint: 'top_pages',
      namespace: 'web',
      method: 'GET',
      format: 'json',
      status: 200,
      durationMs: 1,
      rowsRead: 2,
      bytesRead: 3,
      error: '',
      token: { kind: 'jwt', id: 'customer-42' },
      fixedParams: { tenant: 'acme' },
    });
    await requestLog.close();
    expect(statements.filter((s) => s.startsWith('ALTER'))).toHaveLength(1);
    expect(inserted).toHaveLength(1);
    expect(inserted[0]?.settings).toEqual({ input_format_skip_unknown_fields: 1 });
    expect(inserted[0]?.rows).toEqual([
      expect.objectContaining({ request_id: 'r1', token_kind: 'jwt', token_id: 'customer-42', fixed_params: { tenant: 'acme' } }),
    ]);
  });
});
