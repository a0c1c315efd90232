import { describe, expect, it } from 'vitest';
import { LineBuffer } from '../../../../src/workers/ingest/lines.js';

describe('LineBuffer', () => {
  it('keeps every line and its source, growing past its first guess, multi-byte text included', () => {
    const lines = Array.from({ length: 500 }, (_, i) => JSON.stringify({ i, s: i % 7 === 0 ? 'é€😀\u2028' : 'x'.repeat(i % 40) }));
    const b = new LineBuffer<number>(16);
    lines.forEach((l, i) => b.add(l, i * 10));
    expect(b.count).toBe(500);
    expect(b.sources).toEqual(lines.map((_, i) => i * 10));
    expect(b.indices()).toEqual(lines.map((_, i) => i));
    expect(b.text(0, 499)).toBe(lines.join('\n'));
  });

  it('gives any contiguous run of lines as one text, without the last line break', () => {
    const b = new LineBuffer<string>(1024);
    for (const l of ['{"a":1}', '{"a":"ü"}', '{"a":3}', '{"a":4}']) b.add(l, l);
    expect(b.text(0, 0)).toBe('{"a":1}');
    expect(b.text(1, 2)).toBe('{"a":"ü"}\n{"a":3}');
    expect(b.text(3, 3)).toBe('{"a":4}');
  });
});
