// The events API's body reader: which Content-Encodings it decodes, the decoded-size bound, how
// a broken body is refused, and how lines that are not UTF-8 are kept as bytes.
import { PassThrough, Readable } from 'node:stream';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BodyError, decodersFor, firstInvalidUtf8, readBody, splitLines } from '../../../src/workers/events-body.js';

const refusal = (f: () => unknown): { status: number; message: string } => {
  try {
    f();
  } catch (e) {
    if (e instanceof BodyError) return { status: e.status, message: e.message };
    throw e;
  }
  throw new Error('not refused');
};

const refusedRead = async (p: Promise<unknown>): Promise<{ status: number; message: string }> =>
  p.then(
    () => {
      throw new Error('not refused');
    },
    (e: unknown) => {
      if (e instanceof BodyError) return { status: e.status, message: e.message };
      throw e;
    },
  );

describe('decodersFor', () => {
  it('decodes the codings HTTP names, whatever their case, and skips identity', () => {
    expect(decodersFor(undefined)).toEqual([]);
    expect(decodersFor('')).toEqual([]);
    expect(decodersFor('identity')).toEqual([]);
    expect(decodersFor('gzip')).toEqual(['gzip']);
    expect(decodersFor('GZIP')).toEqual(['gzip']);
    expect(decodersFor('x-gzip')).toEqual(['gzip']);
    expect(decodersFor('X-Gzip')).toEqual(['gzip']);
    expect(decodersFor('Deflate')).toEqual(['deflate']);
    expect(decodersFor('br')).toEqual(['br']);
    expect(decodersFor(' gzip , identity ')).toEqual(['gzip']);
  });

  it('undoes a list of codings last applied first', () => {
    expect(decodersFor('gzip, br')).toEqual(['br', 'gzip']);
  });

  it('answers 415 naming an encoding it does not decode, or a list too long', () => {
    expect(refusal(() => decodersFor('compress'))).toEqual({
      status: 415,
      message: 'Content-Encoding "compress" is not supported; send gzip, x-gzip, deflate, br or identity',
    });
    expect(refusal(() => decodersFor('gzip, zstd')).message).toMatch(/"zstd" is not supported/);
    expect(refusal(() => decodersFor('__proto__')).status).toBe(415);
    expect(refusal(() => decodersFor('gzip;q=1')).status).toBe(415);
    expect(refusal(() => decodersFor('gzip, gzip, gzip'))).toEqual({
      status: 415,
      message: 'Content-Encoding "gzip, gzip, gzip" applies 3 codings; at most 2 are decoded',
    });
  });
});

describe('readBody', () => {
  const text = '{"a":1}\n{"a":2}\n';

  it('decodes gzip, deflate (zlib), brotli and a stack of them to the same bytes', async () => {
    expect((await readBody(Readable.from([Buffer.from(text)]), [], 1000)).toString()).toBe(text);
    expect((await readBody(Readable.from([gzipSync(text)]), ['gzip'], 1000)).toString()).toBe(text);
    expect((await readBody(Readable.from([deflateSync(text)]), ['deflate'], 1000)).toString()).toBe(text);
    expect((await readBody(Readable.from([brotliCompressSync(text)]), ['br'], 1000)).toString()).toBe(text);
    expect((await readBody(Readable.from([gzipSync(brotliCompressSync(text))]), decodersFor('br, gzip'), 1000)).toString()).toBe(text);
  });

  it('answers 400 naming the coding for data that is not in it, or is cut short', async () => {
    expect(await refusedRead(readBody(Readable.from([Buffer.from(text)]), ['gzip'], 1000))).toEqual({
      status: 400,
      message: 'body is not valid gzip data: incorrect header check',
    });
    expect(await refusedRead(readBody(Readable.from([gzipSync(text).subarray(0, 15)]), ['gzip'], 1000))).toEqual({
      status: 400,
      message: 'body is not valid gzip data: unexpected end of file',
    });
    expect((await refusedRead(readBody(Readable.from([deflateRawSync(text)]), ['deflate'], 1000))).message).toMatch(/^body is not valid deflate data: /);
    expect((await refusedRead(readBody(Readable.from([Buffer.from(text)]), ['br'], 1000))).message).toMatch(/^body is not valid br data: /);
  });

  it('stops decoding as soon as the decoded body passes the limit, and leaves the source open', async () => {
    // 64 MiB of zeros, sent as 64 KiB of gzip; the limit is 1 MiB.
    const bomb = gzipSync(Buffer.alloc(64 << 20));
    const source = new PassThrough();
    const read = readBody(source, ['gzip'], 1 << 20);
    source.write(bomb);
    expect(await refusedRead(read)).toEqual({
      status: 413,
      message: 'body decodes (gzip) to more than 1048576 bytes (1 MiB), the limit; send smaller batches',
    });
    expect(source.destroyed).toBe(false);
    // The rest of what the client sends is discarded, not buffered.
    source.end(Buffer.alloc(1 << 20));
    await new Promise((r) => source.once('end', r));
    expect(source.readableLength).toBe(0);
  });

  it('answers 413 for a body that is too large as sent', async () => {
    const chunks = [Buffer.alloc(600), Buffer.alloc(600)];
    expect(await refusedRead(readBody(Readable.from(chunks), [], 1000))).toEqual({
      status: 413,
      message: 'body is more than 1000 bytes, the limit; send smaller batches',
    });
  });

  it('answers 400 when the source fails before the body is complete', async () => {
    const source = new PassThrough();
    const read = readBody(source, ['gzip'], 1000);
    source.write(gzipSync(text).subarray(0, 10));
    source.destroy(new Error('aborted'));
    expect(await refusedRead(read)).toEqual({ status: 400, message: 'the request ended before its body was complete' });
  });
});

describe('splitLines', () => {
  it('gives non-blank lines as trimmed text', () => {
    expect(splitLines(Buffer.from('{"a":1}\r\n\n  \n{"b":"é"}'))).toEqual([{ text: '{"a":1}' }, { text: '{"b":"é"}' }]);
  });

  it('keeps a line that is not UTF-8 as its exact bytes, with the offset of the first bad byte', () => {
    const bad = Buffer.from([0x20, 0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d, 0x0d]);
    const lines = splitLines(Buffer.concat([Buffer.from('{"a":1}\n'), bad, Buffer.from('\n{"a":2}\n')]));
    expect(lines).toEqual([{ text: '{"a":1}' }, { bytes: bad, invalidAt: 3 }, { text: '{"a":2}' }]);
  });
});

describe('firstInvalidUtf8', () => {
  const fatal = new TextDecoder('utf-8', { fatal: true });
  const valid = (b: number[]) => {
    try {
      fatal.decode(new Uint8Array(b));
      return true;
    } catch {
      return false;
    }
  };
  const cases: [number[], number][] = [
    [[], -1],
    [[0x41, 0x42], -1],
    [[0xc3, 0xa9], -1], // é
    [[0xe2, 0x82, 0xac], -1], // €
    [[0xf0, 0x9f, 0x98, 0x80], -1], // U+1F600
    [[0xf4, 0x8f, 0xbf, 0xbf], -1], // U+10FFFF
    [[0x41, 0xff], 1],
    [[0x41, 0x80], 1], // a continuation byte alone
    [[0xc0, 0x80], 0], // overlong NUL
    [[0xc1, 0xbf], 0], // overlong
    [[0xe0, 0x80, 0x80], 0], // overlong
    [[0xed, 0xa0, 0x80], 0], // a surrogate
    [[0xf0, 0x80, 0x80, 0x80], 0], // overlong
    [[0xf4, 0x90, 0x80, 0x80], 0], // past U+10FFFF
    [[0xf5, 0x80, 0x80, 0x80], 0],
    [[0x41, 0xe2, 0x82], 1], // cut short
    [[0xc3, 0x28], 0],
  ];
  it.each(cases)('%j → %d, and agrees with a fatal TextDecoder', (bytes, at) => {
    expect(firstInvalidUtf8(new Uint8Array(bytes))).toBe(at);
    expect(valid(bytes)).toBe(at === -1);
  });
});
