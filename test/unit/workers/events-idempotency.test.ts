import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BodyError, splitLines } from '../../../src/workers/events-body.js';
import { eventsDedupToken, eventsDigest, idempotencyKeyOf, quarantineDedupToken } from '../../../src/workers/events-idempotency.js';

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const lines = (body: string | Buffer) => splitLines(Buffer.from(body));
const params = (q = '') => new URLSearchParams(q);

/** The status and message of the BodyError `f` throws. */
function refusal(f: () => unknown): { status: number; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof BodyError) return { status: e.status, message: e.message };
    throw e;
  }
  throw new Error('did not throw');
}

describe('eventsDedupToken', () => {
  it('is weir:events:<database>.<table>:<key>:<sha256 of the lines, each followed by a newline>', () => {
    expect(eventsDedupToken('web', 'page_views', 'k1', lines('{"a":1}\n{"b":2}'))).toBe(`weir:events:web.page_views:k1:${sha256('{"a":1}\n{"b":2}\n')}`);
  });

  it('is the same for the same events however the body was laid out', () => {
    const plain = eventsDigest(lines('{"a":1}\n{"b":2}\n'));
    expect(eventsDigest(lines('{"a":1}\r\n\r\n  {"b":2}  \r\n'))).toBe(plain);
    expect(eventsDigest(lines('{"a":1}\n{"b":2}'))).toBe(plain);
  });

  it('differs for other events, the same events in another order, another key or another table', () => {
    const token = eventsDedupToken('web', 'page_views', 'k', lines('{"a":1}\n{"b":2}'));
    const others = [
      eventsDedupToken('web', 'page_views', 'k', lines('{"a":1}\n{"b":3}')),
      eventsDedupToken('web', 'page_views', 'k', lines('{"b":2}\n{"a":1}')),
      eventsDedupToken('web', 'page_views', 'k', lines('{"a":1}{"b":2}')),
      eventsDedupToken('web', 'page_views', 'k2', lines('{"a":1}\n{"b":2}')),
      eventsDedupToken('web', 'page_views_daily', 'k', lines('{"a":1}\n{"b":2}')),
      eventsDedupToken('web2', 'page_views', 'k', lines('{"a":1}\n{"b":2}')),
    ];
    expect(new Set([token, ...others]).size).toBe(others.length + 1);
  });

  it('digests a line that is not UTF-8 by its exact bytes', () => {
    const latin1 = Buffer.from('{"p":"caf\xe9"}', 'latin1');
    const other = Buffer.from('{"p":"caf\xe8"}', 'latin1');
    expect(eventsDigest(lines(latin1))).toBe(sha256(Buffer.concat([latin1, Buffer.from('\n')])));
    expect(eventsDigest(lines(other))).not.toBe(eventsDigest(lines(latin1)));
  });

  it('derives the quarantine token from the rows token', () => {
    expect(quarantineDedupToken('weir:events:web.page_views:k:abc')).toBe('weir:events:web.page_views:k:abc:quarantine');
  });
});

describe('idempotencyKeyOf', () => {
  it('is undefined without a header or parameter', () => {
    expect(idempotencyKeyOf(undefined, params('name=page_views'))).toBeUndefined();
    expect(idempotencyKeyOf([], params())).toBeUndefined();
  });

  it('takes a bare header value, a Structured Field string, or the idempotency_key parameter', () => {
    expect(idempotencyKeyOf(['8e03978e-40d5-43e8-bc93-6894a57f9324'], params())).toBe('8e03978e-40d5-43e8-bc93-6894a57f9324');
    expect(idempotencyKeyOf(['"8e03978e"'], params())).toBe('8e03978e');
    expect(idempotencyKeyOf(['"a \\"quoted\\" \\\\ key"'], params())).toBe('a "quoted" \\ key');
    expect(idempotencyKeyOf(undefined, params('name=x&idempotency_key=k%201'))).toBe('k 1');
  });

  it('takes a header and a parameter that agree, and the same header twice', () => {
    expect(idempotencyKeyOf(['"k"'], params('idempotency_key=k'))).toBe('k');
    expect(idempotencyKeyOf(['k', 'k'], params())).toBe('k');
  });

  it('refuses keys that differ, with a 400', () => {
    expect(refusal(() => idempotencyKeyOf(['a', 'b'], params()))).toEqual({
      status: 400,
      message: expect.stringContaining('2 different idempotency keys') as unknown,
    });
    expect(refusal(() => idempotencyKeyOf(['a'], params('idempotency_key=b')))).toEqual({
      status: 400,
      message: expect.stringContaining('2 different idempotency keys') as unknown,
    });
  });

  it('refuses an empty, too long, non-ASCII or badly quoted key, with a 400', () => {
    for (const [header, q] of [
      [[''], ''],
      [['""'], ''],
      [['x'.repeat(256)], ''],
      [[], 'idempotency_key=caf%C3%A9'],
      [['tab\tkey'], ''],
    ] as const) {
      expect(refusal(() => idempotencyKeyOf(header, params(q)))).toEqual({
        status: 400,
        message: expect.stringContaining('1 to 255 printable ASCII characters') as unknown,
      });
    }
    expect(refusal(() => idempotencyKeyOf(['"open'], params()))).toEqual({
      status: 400,
      message: expect.stringContaining('not a valid quoted string') as unknown,
    });
    expect(refusal(() => idempotencyKeyOf(['"a"b"'], params()))).toEqual({
      status: 400,
      message: expect.stringContaining('not a valid quoted string') as unknown,
    });
    expect(idempotencyKeyOf(['x'.repeat(255)], params())).toBe('x'.repeat(255));
  });
});
