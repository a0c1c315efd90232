// Reading an events API request body: the Content-Encoding it declares, decoded as a stream with
// the decoded size bounded (a 1 MB gzip body can expand to gigabytes), and the result split into
// NDJSON lines, each checked to be UTF-8 before it is treated as text.
//
// The body is read whole before anything is inserted, so a body refused half way (too large, not
// valid gzip) inserts nothing.
import { isUtf8 } from 'node:buffer';
import type { Readable, Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/** A content coding the events API decodes. */
export type Coding = 'gzip' | 'deflate' | 'br';

// The names HTTP gives them (lower case); x-gzip is the legacy alias of gzip (RFC 9110 8.4.1.3).
const CODINGS: Record<string, Coding | 'identity'> = { gzip: 'gzip', 'x-gzip': 'gzip', deflate: 'deflate', br: 'br', identity: 'identity' };

// A body encoded more times than this is not a client mistake; every layer costs a decoder.
export const MAX_CODINGS = 2;

/** A request the events API refuses, with the HTTP status and the message the client gets. */
export class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'BodyError';
  }
}

/**
 * The decoders a Content-Encoding header asks for, in the order to apply them (the reverse of
 * the list, which names codings in the order they were applied). Names are case-insensitive and
 * `identity` is skipped. Throws a 415 BodyError naming any other coding.
 */
export function decodersFor(header: string | undefined): Coding[] {
  const names = (header ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const codings: Coding[] = [];
  for (const name of names) {
    const coding = Object.hasOwn(CODINGS, name) ? CODINGS[name] : undefined;
    if (coding === undefined) throw new BodyError(415, `Content-Encoding ${JSON.stringify(name)} is not supported; send gzip, x-gzip, deflate, br or identity`);
    if (coding !== 'identity') codings.push(coding);
  }
  if (codings.length > MAX_CODINGS)
    throw new BodyError(415, `Content-Encoding ${JSON.stringify(header)} applies ${codings.length} codings; at most ${MAX_CODINGS} are decoded`);
  return codings.reverse();
}

// HTTP's deflate is the zlib format (RFC 1950), which createInflate reads; raw deflate is refused.
function decoder(coding: Coding): Transform {
  if (coding === 'gzip') return createGunzip();
  if (coding === 'deflate') return createInflate();
  return createBrotliDecompress();
}

/**
 * Reads a body whole, decoding `codings` as it arrives. Both what arrives and what it decodes to
 * are limited to `limit` bytes: past it, decoding stops at once and a 413 BodyError is thrown.
 * Data that does not decode is a 400 BodyError naming the coding. On any refusal the source is
 * left flowing (its rest is discarded, not buffered), never destroyed, so the caller can still
 * answer on its connection.
 */
export function readBody(source: Readable, codings: readonly Coding[], limit: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const stages = codings.map(decoder);
    const chunks: Buffer[] = [];
    let received = 0;
    let decoded = 0;
    let settled = false;

    const stop = (error?: BodyError): void => {
      if (settled) return;
      settled = true;
      source.off('data', count);
      source.off('error', ended);
      source.off('aborted', ended);
      source.off('close', closed);
      if (stages[0]) source.unpipe(stages[0]);
      for (const s of stages) {
        s.removeAllListeners('data');
        s.on('error', () => undefined);
        s.destroy();
      }
      if (error) {
        source.resume();
        reject(error);
      } else resolve(Buffer.concat(chunks, decoded));
    };
    const tooLarge = (what: string) =>
      new BodyError(
        413,
        `body ${what} more than ${limit} bytes${limit >= 2 ** 20 ? ` (${Math.floor(limit / 2 ** 20)} MiB)` : ''}, the limit; send smaller batches`,
      );
    const count = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > limit) stop(tooLarge(codings.length > 0 ? 'as sent is' : 'is'));
    };
    const collect = (chunk: Buffer): void => {
      if (settled) return;
      decoded += chunk.length;
      if (decoded > limit) return stop(tooLarge(`decodes (${codings.join(', ')}) to`));
      chunks.push(chunk);
    };
    // The client went away or the stream failed before the body was complete.
    const ended = (): void => stop(new BodyError(400, 'the request ended before its body was complete'));
    const closed = (): void => {
      if (!source.readableEnded) ended();
    };

    source.on('error', ended);
    source.on('aborted', ended);
    source.on('close', closed);
    source.on('data', count);
    const last = stages.at(-1);
    if (!last) {
      source.on('data', collect);
      source.on('end', () => stop());
      return;
    }
    stages.forEach((s, i) => {
      s.on('error', (e: Error) => stop(new BodyError(400, `body is not valid ${codings[i]} data: ${e.message}`)));
      const next = stages[i + 1];
      if (next) s.pipe(next);
    });
    last.on('data', collect);
    last.on('end', () => stop());
    source.pipe(stages[0] as Transform);
  });
}

/** One NDJSON line: its text, or its bytes when they are not UTF-8 (with where they stop being). */
export type BodyLine = { text: string } | { bytes: Buffer; invalidAt: number };

/**
 * Splits a body into its non-blank lines. A line that is not valid UTF-8 comes back as its exact
 * bytes (the newline excluded) with the offset of its first invalid byte, never as text with
 * U+FFFD in place of what was sent.
 */
export function splitLines(body: Buffer): BodyLine[] {
  const lines: BodyLine[] = [];
  let start = 0;
  while (start < body.length) {
    let end = body.indexOf(0x0a, start);
    if (end === -1) end = body.length;
    const bytes = body.subarray(start, end);
    start = end + 1;
    if (isUtf8(bytes)) {
      const text = bytes.toString('utf8').trim();
      if (text) lines.push({ text });
    } else lines.push({ bytes: Buffer.from(bytes), invalidAt: firstInvalidUtf8(bytes) });
  }
  return lines;
}

/**
 * The offset of the first byte that does not belong to a well-formed UTF-8 sequence (RFC 3629:
 * no overlong forms, no surrogates, nothing past U+10FFFF), or -1 when there is none.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    const n = sequenceLength(b);
    if (n === 0) return i;
    // The second byte's range depends on the first (excludes overlongs, surrogates, > U+10FFFF).
    const [lo, hi] = b === 0xe0 ? [0xa0, 0xbf] : b === 0xed ? [0x80, 0x9f] : b === 0xf0 ? [0x90, 0xbf] : b === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    for (let k = 1; k < n; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      if (k === 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf) return i;
    }
    i += n;
  }
  return -1;
}

// How many bytes a sequence starting with `b` has; 0 for a byte no sequence starts with.
function sequenceLength(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

/** Where a JSON array body's elements start and end, in bytes of the body. */
interface Span {
  start: number;
  end: number;
}

/**
 * The elements of a body that is one JSON array (`[{…},{…}]`), each as its exact text, so
 * that a bad element is quarantined as it was sent like an NDJSON line. Only the array's own
 * structure is checked here (brackets, strings, commas), without recursion, so no nesting depth
 * costs stack; each element is parsed later by the row mapper. Throws a 400 BodyError saying
 * where the array breaks.
 */
export function splitJsonArray(body: Buffer): BodyLine[] {
  if (!isUtf8(body)) throw new BodyError(400, `a JSON array body must be UTF-8; byte ${firstInvalidUtf8(body)} is not`);
  const spans: Span[] = [];
  let i = body.indexOf(0x5b); // the opening [
  let depth = 0;
  let start = -1;
  let inString = false;
  let closed = false;
  for (i = i + 1, depth = 1; i < body.length; i++) {
    const c = body[i] as number;
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    if (depth === 1 && start === -1 && c !== 0x2c && c !== 0x5d) start = i;
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x7d || (c === 0x5d && depth > 1)) {
      depth--;
      if (depth < 1) throw new BodyError(400, `the body is not a JSON array: unbalanced } at byte ${i}`);
    } else if (depth === 1 && (c === 0x2c || c === 0x5d)) {
      if (start === -1) {
        if (c === 0x2c || spans.length > 0) throw new BodyError(400, `the body is not a JSON array: element ${spans.length + 1} is empty (byte ${i})`);
      } else spans.push({ start, end: i });
      start = -1;
      if (c === 0x5d) {
        closed = true;
        break;
      }
    }
  }
  if (!closed) throw new BodyError(400, `the body is not a JSON array: it ends inside ${inString ? 'a string' : `element ${spans.length + 1}`} (no closing ])`);
  const rest = body
    .subarray(i + 1)
    .toString('utf8')
    .trim();
  if (rest !== '') throw new BodyError(400, `the body is not a JSON array: ${JSON.stringify(rest.slice(0, 20))} after its closing ] (byte ${i + 1})`);
  return spans.map((s) => ({ text: body.subarray(s.start, s.end).toString('utf8').trim() }));
}

/** Whether a body is a JSON array rather than NDJSON: its first non-blank byte is `[`. */
export function isJsonArrayBody(body: Buffer): boolean {
  for (const c of body) {
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    return c === 0x5b;
  }
  return false;
}

/**
 * The events of a body: a JSON array's elements, or NDJSON lines. A body none of whose lines is
 * JSON, and none even begins like an object, is not NDJSON at all (CSV, a form, HTML): it is
 * refused with a 400 naming its first line rather than quarantined line by line.
 */
export function parseEvents(body: Buffer): BodyLine[] {
  if (isJsonArrayBody(body)) return splitJsonArray(body);
  const lines = splitLines(body);
  if (lines.length === 0) return lines;
  const looksJson = (l: BodyLine) => 'text' in l && (l.text.startsWith('{') || isJson(l.text));
  if (lines.some(looksJson)) return lines;
  const first = lines[0] as BodyLine;
  const shown = 'text' in first ? JSON.stringify(first.text.slice(0, 40)) : 'bytes that are not UTF-8';
  throw new BodyError(400, `the body is not NDJSON (one JSON object a line): line 1 (${shown}) and every other line are not JSON`);
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
