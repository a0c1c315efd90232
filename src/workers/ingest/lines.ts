// A batch's JSONEachRow lines written straight into one buffer as they are mapped, so that no
// line outlives the loop that made it: the garbage collector sees short-lived strings only, not
// 100,000 lines a batch kept alive until the insert (which it had to copy and promote).

/** The lines of a batch, one buffer; line i is the bytes from end(i - 1) to end(i) (its '\n' included). */
export class LineBuffer<T> {
  private buffer: Buffer;
  private length = 0;
  private readonly ends: number[] = [];
  /** What each line came from (a message), by line. */
  readonly sources: T[] = [];

  constructor(expectedBytes: number) {
    this.buffer = Buffer.allocUnsafe(Math.max(1024, expectedBytes));
  }

  get count(): number {
    return this.ends.length;
  }

  add(line: string, source: T): void {
    // A UTF-16 unit is at most 3 bytes of UTF-8.
    const most = line.length * 3 + 1;
    if (this.length + most > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + most));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.length += this.buffer.write(line, this.length, 'utf8');
    this.buffer[this.length++] = 0x0a;
    this.ends.push(this.length);
    this.sources.push(source);
  }

  /** 0 … count - 1: the items isolateRefused splits. */
  indices(): number[] {
    return Array.from({ length: this.ends.length }, (_, i) => i);
  }

  /**
   * The text of lines `from` to `to` (inclusive, contiguous, as isolateRefused's halves are),
   * without the last line's '\n': one string for insertLines, however many lines.
   */
  text(from: number, to: number): string {
    const start = from === 0 ? 0 : (this.ends[from - 1] as number);
    return this.buffer.toString('utf8', start, (this.ends[to] as number) - 1);
  }
}
