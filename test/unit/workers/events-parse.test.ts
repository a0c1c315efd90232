// Events bodies as JSON arrays or NDJSON (events-body.ts parseEvents), and which digest owns an idempotency key (judgeClaim).
import { describe, expect, it } from 'vitest';
import { BodyError, parseEvents } from '../../../src/workers/events-body.js';
import { judgeClaim } from '../../../src/workers/events-idempotency.js';

const texts = (body: string) => parseEvents(Buffer.from(body)).map((l) => ('text' in l ? l.text : `<bytes ${l.invalidAt}>`));
const refusal = (body: string | Buffer) => {
  try {
    parseEvents(typeof body === 'string' ? Buffer.from(body) : body);
  } catch (e) {
    return e instanceof BodyError ? [e.status, e.message] : e;
  }
  return undefined;
};

describe('parseEvents', () => {
  it('splits a JSON array into its elements as sent, whatever they hold', () => {
    expect(texts(' [ {"a": 1}, {"b": "x,]}"} ,[1,[2]] , "s\\"]" , 17, null ]\n')).toEqual(['{"a": 1}', '{"b": "x,]}"}', '[1,[2]]', '"s\\"]"', '17', 'null']);
    expect(texts('[]')).toEqual([]);
    expect(texts('[\n{"a":1}\n]')).toEqual(['{"a":1}']);
  });

  it('keeps elements that are not JSON as text, for the quarantine', () => {
    expect(texts('[{"a": 1}, {nope}]')).toEqual(['{"a": 1}', '{nope}']);
  });

  it('refuses an array that does not close, has an empty element, or text after it, saying where', () => {
    expect(refusal('[{"a": 1}, {"b": ')).toEqual([400, 'the body is not a JSON array: it ends inside element 2 (no closing ])']);
    expect(refusal('[{"a": "open]')).toEqual([400, 'the body is not a JSON array: it ends inside a string (no closing ])']);
    expect(refusal('[{"a": 1},, {"b": 2}]')).toEqual([400, 'the body is not a JSON array: element 2 is empty (byte 10)']);
    expect(refusal('[{"a": 1}] trailing')).toEqual([400, 'the body is not a JSON array: "trailing" after its closing ] (byte 10)']);
    expect(refusal('[{"a": 1}}]')).toEqual([400, 'the body is not a JSON array: unbalanced } at byte 9']);
    expect(refusal(Buffer.from([0x5b, 0x22, 0xe9, 0x22, 0x5d]))).toEqual([400, 'a JSON array body must be UTF-8; byte 2 is not']);
  });

  it('costs no stack on deep nesting', () => {
    const deep = `[${'['.repeat(500_000)}${']'.repeat(500_000)}]`;
    expect(parseEvents(Buffer.from(deep))).toHaveLength(1);
  });

  it('takes NDJSON with some lines that are not JSON (they are quarantined later)', () => {
    expect(texts('{"a": 1}\nnot json\n\n{broken\n')).toEqual(['{"a": 1}', 'not json', '{broken']);
    expect(texts('{not json at all\n')).toEqual(['{not json at all']);
    expect(texts('')).toEqual([]);
  });

  it('refuses with 400 naming line 1 a body none of whose lines is JSON or begins like an object', () => {
    expect(refusal('id,page\n1,/x\n')).toEqual([400, 'the body is not NDJSON (one JSON object a line): line 1 ("id,page") and every other line are not JSON']);
    expect(refusal('<html>\n')).toEqual([400, 'the body is not NDJSON (one JSON object a line): line 1 ("<html>") and every other line are not JSON']);
  });
});

describe('judgeClaim', () => {
  const row = (digest: string, state = 'claimed', rows = 0, quarantined = 0) => ({
    digest,
    state,
    successful_rows: String(rows),
    quarantined_rows: String(quarantined),
  });
  it('an unseen key is not judged; the first digest in block order owns it', () => {
    expect(judgeClaim([], 'd1')).toBeUndefined();
    expect(judgeClaim([row('d1')], 'd1')).toEqual({ kind: 'new' });
    expect(judgeClaim([row('d1'), row('d2')], 'd2')).toEqual({ kind: 'conflict' });
    expect(judgeClaim([row('d1'), row('d2')], 'd1')).toEqual({ kind: 'new' });
  });
  it('an answered request is answered again with its counts', () => {
    expect(judgeClaim([row('d1'), row('d1', 'done', 40, 2)], 'd1')).toEqual({ kind: 'answered', result: { successful_rows: 40, quarantined_rows: 2 } });
    expect(judgeClaim([row('d1'), row('d1', 'done', 40, 2)], 'd9')).toEqual({ kind: 'conflict' });
  });
});
