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
