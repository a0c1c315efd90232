// Idempotency keys of the events API. A client that sends `Idempotency-Key` (the IETF
// httpapi draft's header) can retry a request whose answer it never got: the insert carries
// a deduplication token made of the target table, the key and a digest of the events, so a
// retry of the same events under the same key finds its blocks already in the table's
// deduplication window (plan/sql.ts DEDUPLICATION_WINDOW) and inserts nothing again.
//
// The digest is in the token because ClickHouse drops a block by its token alone, whatever it
// holds: without it, other events sent under a reused key would be dropped silently. With it,
// they are a new batch and are inserted.
import { createHash } from 'node:crypto';
import type { ClickHouse } from '../clickhouse/connection.js';
import { BodyError, type BodyLine } from './events-body.js';

/** The longest key accepted; keys are meant to be UUIDs or similar, not payloads. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** The query parameter for clients that cannot set a header (navigator.sendBeacon). */
export const IDEMPOTENCY_KEY_PARAM = 'idempotency_key';

/**
 * The key a request carries, from its `Idempotency-Key` header (each value as sent) or its
 * `idempotency_key` parameter, or undefined when it has none. A header value may be a
 * Structured Field string (`"…"`, as the draft writes it) or bare. Throws a 400 BodyError for
 * an empty, too long or non-printable key, several keys, or a header and a parameter that differ.
 */
export function idempotencyKeyOf(headerValues: readonly string[] | undefined, params: URLSearchParams): string | undefined {
  const keys = [...(headerValues ?? []).map(unquoted), ...params.getAll(IDEMPOTENCY_KEY_PARAM)];
  if (keys.length === 0) return undefined;
  const distinct = [...new Set(keys)];
  if (distinct.length > 1)
    throw new BodyError(
      400,
      `the request carries ${keys.length} different idempotency keys (Idempotency-Key headers and ${IDEMPOTENCY_KEY_PARAM} parameters); send one`,
    );
  const key = distinct[0] as string;
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH || !/^[\x20-\x7e]+$/.test(key)) {
    throw new BodyError(
      400,
      `an idempotency key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters; got ${JSON.stringify(key.slice(0, 40))}${key.length > 40 ? '…' : ''} (${key.length} characters)`,
    );
  }
  return key;
}

/** A header value as a Structured Field string (RFC 8941 3.3.3) when it is quoted, else as it is. */
function unquoted(value: string): string {
  const v = value.trim();
  if (!v.startsWith('"')) return v;
  const m = /^"((?:[^"\\]|\\["\\])*)"$/.exec(v);
  if (!m) throw new BodyError(400, `Idempotency-Key ${JSON.stringify(v.slice(0, 40))} is not a valid quoted string`);
  return (m[1] as string).replace(/\\(["\\])/g, '$1');
}

/**
 * The SHA-256 of the events as they were decoded: the lines in order, each as its bytes, one
 * newline after each. A line holds no newline and a text line is never the bytes of a non-UTF-8
 * one, so different line lists never give the same input; the same events sent plain or
 * compressed, with `\r\n` or `\n`, give the same digest.
 */
export function eventsDigest(lines: readonly BodyLine[]): string {
  const hash = createHash('sha256');
  for (const line of lines) {
    hash.update('text' in line ? Buffer.from(line.text, 'utf8') : line.bytes);
    hash.update('\n');
  }
  return hash.digest('hex');
}

/** The insert_deduplication_token of a keyed request's rows into `database.table`. */
export function eventsDedupToken(database: string, table: string, key: string, lines: readonly BodyLine[]): string {
  return `weir:events:${database}.${table}:${key}:${eventsDigest(lines)}`;
}

/** The token of the same request's insert into the quarantine, derived from its rows' token. */
export const quarantineDedupToken = (token: string): string => `${token}:quarantine`;

/**
 * How long a key is remembered with its body's digest and, once answered, its counts
 * (weir.events_keys' TTL). Within it, the same key with other events is a 422, and a retry of an
 * answered request is answered again without inserting. A retry of a request that never got
 * an answer (its insert may have landed or not) is inserted again under the same token, and
 * ClickHouse drops it if it landed within the table's deduplication window (the table's last
 * DEDUPLICATION_WINDOW insert blocks).
 */
export const KEY_MEMORY_HOURS = 24;

export const EVENTS_KEYS_TABLE = `CREATE TABLE IF NOT EXISTS weir.events_keys (
    database String, table String, key String, digest String, state LowCardinality(String),
    successful_rows UInt64, quarantined_rows UInt64, at DateTime64(3, 'UTC') DEFAULT now64(3)
  ) ENGINE = MergeTree ORDER BY (database, table, key)
  TTL toDateTime(at) + INTERVAL ${KEY_MEMORY_HOURS} HOUR
  SETTINGS enable_block_number_column = 1
  COMMENT 'weir: idempotency keys of the events API with the digest of the events first sent under each'`;

/** What the key store says of a keyed request. */
export type KeyClaim = { kind: 'new' } | { kind: 'answered'; result: { successful_rows: number; quarantined_rows: number } } | { kind: 'conflict' };

interface KeyRow {
  digest: string;
  state: string;
  successful_rows: string;
  quarantined_rows: string;
}

/** The decision from the key's rows, oldest first: the first digest sent under a key owns it. Pure. */
export function judgeClaim(rows: readonly KeyRow[], digest: string): KeyClaim | undefined {
  const first = rows[0];
  if (!first) return undefined;
  if (first.digest !== digest) return { kind: 'conflict' };
  const done = rows.find((r) => r.digest === digest && r.state === 'done');
  if (done) return { kind: 'answered', result: { successful_rows: Number(done.successful_rows), quarantined_rows: Number(done.quarantined_rows) } };
  return { kind: 'new' };
}

/**
 * Keys and their digests in ClickHouse, shared by every pod (a retry may reach another one).
 * Concurrency: keys are claimed by inserting a row per key and reading the keys' rows back in
 * block order; blocks are numbered as they commit, so every reader agrees on which digest came
 * first, and a request with other events under a key gets 422 whichever pod it reached. A
 * writer claims the keys of one flush together (one insert, one read).
 */
export class KeyStore {
  private ready: Promise<void> | undefined;

  constructor(private readonly ch: ClickHouse) {}

  private ensure(): Promise<void> {
    this.ready ??= this.ch
      .command('CREATE DATABASE IF NOT EXISTS weir')
      .then(() => this.ch.command(EVENTS_KEYS_TABLE))
      .then(
        () => undefined,
        (e: unknown) => {
          this.ready = undefined;
          throw e;
        },
      );
    return this.ready;
  }

  /** Claim each key for the events with its digest (distinct keys), and say for each whether it is new, answered before, or taken by other events. */
  async claimAll(database: string, table: string, claims: readonly { key: string; digest: string }[]): Promise<Map<string, KeyClaim>> {
    const out = new Map<string, KeyClaim>();
    if (claims.length === 0) return out;
    await this.ensure();
    await this.ch.insert(
      'weir.events_keys',
      claims.map((c) => ({ database, table, key: c.key, digest: c.digest, state: 'claimed', successful_rows: 0, quarantined_rows: 0 })),
    );
    const rows = await this.ch.query<KeyRow & { key: string }>(
      `SELECT key, digest, state, successful_rows, quarantined_rows FROM weir.events_keys
       WHERE database = {d:String} AND table = {t:String} AND key IN {k:Array(String)}
         AND at > now64(3) - INTERVAL ${KEY_MEMORY_HOURS} HOUR
       ORDER BY _block_number, state = 'done'`,
      { params: { d: database, t: table, k: claims.map((c) => c.key) } },
    );
    const byKey = new Map<string, KeyRow[]>();
    for (const r of rows) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
    for (const c of claims) out.set(c.key, judgeClaim(byKey.get(c.key) ?? [], c.digest) ?? { kind: 'new' });
    return out;
  }

  /** These requests were answered with their counts: a retry gets the same answer without inserting. */
  async answeredAll(
    database: string,
    table: string,
    answers: readonly { key: string; digest: string; result: { successful_rows: number; quarantined_rows: number } }[],
  ): Promise<void> {
    if (answers.length === 0) return;
    await this.ch.insert(
      'weir.events_keys',
      answers.map((a) => ({ database, table, key: a.key, digest: a.digest, state: 'done', ...a.result })),
    );
  }
}
