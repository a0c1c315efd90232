// ClickHouse type strings as a tree: `Map(String, Array(Nullable(Enum8('a' = 1))))`,
// `DateTime64(3, 'Europe/Berlin')`, `Tuple(id UInt64, at DateTime)`, `AggregateFunction(quantiles(0.5), Float64)`.
// Arguments this parser does not model (JSON's `max_dynamic_paths=10`, `SKIP REGEXP '...'`) are kept as raw text.

export interface TypeNode {
  /** The family as written: `DateTime64`, `LowCardinality`, or several words (`DOUBLE PRECISION`). */
  name: string;
  args: TypeArg[];
  /** This type's source text, e.g. `Nullable(UInt8)`: what error messages show. */
  text: string;
}

export type TypeArg =
  /** A type; `field` is its element name in `Tuple(a UInt8)` or `Nested(a UInt8)`. */
  | { kind: 'type'; type: TypeNode; field?: string }
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: string }
  /** `'name' = value`, in Enum8/Enum16. */
  | { kind: 'enum'; name: string; value: string }
  | { kind: 'raw'; text: string };

export class TypeSyntaxError extends Error {
  constructor(text: string, why: string) {
    super(`cannot parse ClickHouse type ${JSON.stringify(text)}: ${why}`);
    this.name = 'TypeSyntaxError';
  }
}

type TokenKind = 'word' | 'quoted' | 'string' | 'number' | '(' | ')' | ',' | '=' | 'other';
interface Token {
  kind: TokenKind;
  /** Identifier, string or number value (unescaped). */
  value: string;
  start: number;
  end: number;
}

const WORD_START = /[A-Za-z_]/;
// Dots belong to words: JSON type arguments name paths such as a.b.
const WORD_PART = /[A-Za-z0-9_.]/;
const DIGIT = /[0-9]/;
const NUMBER = /^-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/;
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '0': '\0', b: '\b', f: '\f' };

function readQuoted(text: string, at: number, quote: string): { value: string; end: number } {
  let value = '';
  let i = at + 1;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '\\' && i + 1 < text.length) {
      const e = text[i + 1] as string;
      if (e === 'x' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 2, i + 4))) {
        value += String.fromCharCode(parseInt(text.slice(i + 2, i + 4), 16));
        i += 4;
      } else {
        value += ESCAPES[e] ?? e;
        i += 2;
      }
    } else if (c === quote) {
      // A doubled quote stands for itself.
      if (text[i + 1] === quote) {
        value += quote;
        i += 2;
      } else {
        return { value, end: i + 1 };
      }
    } else {
      value += c;
      i++;
    }
  }
  throw new TypeSyntaxError(text, `unterminated ${quote} quote starting at position ${at}`);
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (WORD_START.test(c)) {
      let j = i + 1;
      while (j < text.length && WORD_PART.test(text[j] as string)) j++;
      tokens.push({ kind: 'word', value: text.slice(i, j), start: i, end: j });
      i = j;
    } else if (c === "'") {
      const { value, end } = readQuoted(text, i, c);
      tokens.push({ kind: 'string', value, start: i, end });
      i = end;
    } else if (c === '`' || c === '"') {
      const { value, end } = readQuoted(text, i, c);
      tokens.push({ kind: 'quoted', value, start: i, end });
      i = end;
    } else if (DIGIT.test(c) || (c === '-' && DIGIT.test(text[i + 1] ?? ''))) {
      const m = NUMBER.exec(text.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'number', value: m[0], start: i, end: i + m[0].length });
      i += m[0].length;
    } else if (c === '(' || c === ')' || c === ',' || c === '=') {
      tokens.push({ kind: c, value: c, start: i, end: i + 1 });
      i++;
    } else {
      tokens.push({ kind: 'other', value: c, start: i, end: i + 1 });
      i++;
    }
  }
  return tokens;
}

class Parser {
  constructor(
    private readonly source: string,
    private readonly tokens: Token[],
  ) {}

  private fail(why: string): never {
    throw new TypeSyntaxError(this.source, why);
  }

  private textOf(lo: number, hi: number): string {
    return this.source.slice((this.tokens[lo] as Token).start, (this.tokens[hi - 1] as Token).end);
  }

  /** The index of the `)` closing the `(` at `open`. */
  private closing(open: number, hi: number): number {
    let depth = 0;
    for (let i = open; i < hi; i++) {
      const k = (this.tokens[i] as Token).kind;
      if (k === '(') depth++;
      else if (k === ')' && --depth === 0) return i;
    }
    return this.fail(`unbalanced parentheses: "(" at position ${(this.tokens[open] as Token).start} is not closed`);
  }

  /** A type spanning tokens [lo, hi): one or more words, then optionally (args). */
  type(lo: number, hi: number): TypeNode {
    if (lo >= hi) this.fail('a type is missing');
    const words: string[] = [];
    let i = lo;
    while (i < hi && (this.tokens[i] as Token).kind === 'word') words.push((this.tokens[i++] as Token).value);
    if (words.length === 0) this.fail(`expected a type name at position ${(this.tokens[lo] as Token).start}`);
    let args: TypeArg[] = [];
    if (i < hi && (this.tokens[i] as Token).kind === '(') {
      const close = this.closing(i, hi);
      args = this.args(i + 1, close);
      i = close + 1;
    }
    if (i < hi) this.fail(`unexpected ${JSON.stringify((this.tokens[i] as Token).value)} at position ${(this.tokens[i] as Token).start}`);
    return { name: words.join(' '), args, text: this.textOf(lo, hi) };
  }

  /** Comma-separated arguments in tokens [lo, hi), which lie between a pair of parentheses. */
  private args(lo: number, hi: number): TypeArg[] {
    if (lo === hi) return [];
    const args: TypeArg[] = [];
    let depth = 0;
    let start = lo;
    for (let i = lo; i <= hi; i++) {
      const k = i < hi ? (this.tokens[i] as Token).kind : ',';
      if (k === '(') depth++;
      else if (k === ')') {
        if (--depth < 0) this.fail(`unbalanced parentheses: unexpected ")" at position ${(this.tokens[i] as Token).start}`);
      } else if (k === ',' && depth === 0) {
        if (start === i) this.fail(`empty argument before position ${i < hi ? (this.tokens[i] as Token).start : this.source.length}`);
        args.push(this.arg(start, i));
        start = i + 1;
      }
    }
    return args;
  }

  private arg(lo: number, hi: number): TypeArg {
    const t = this.tokens;
    const first = t[lo] as Token;
    const n = hi - lo;
    if (n === 1 && first.kind === 'string') return { kind: 'string', value: first.value };
    if (n === 1 && first.kind === 'number') return { kind: 'number', value: first.value };
    if (n === 3 && first.kind === 'string' && t[lo + 1]?.kind === '=' && t[lo + 2]?.kind === 'number') {
      return { kind: 'enum', name: first.value, value: (t[lo + 2] as Token).value };
    }
    const second = t[lo + 1];
    // `name Type` (Tuple, Nested): a name then a type; a lone word with arguments is a type.
    const named = n >= 2 && (first.kind === 'word' || first.kind === 'quoted') && second?.kind === 'word';
    if (named || first.kind === 'word') {
      try {
        return named ? { kind: 'type', type: this.type(lo + 1, hi), field: first.value } : { kind: 'type', type: this.type(lo, hi) };
      } catch (e) {
        if (!(e instanceof TypeSyntaxError)) throw e;
      }
    }
    return { kind: 'raw', text: this.textOf(lo, hi) };
  }
}

/** Parses a ClickHouse type. Throws TypeSyntaxError for unbalanced parentheses, open quotes or a missing type name. */
export function parseType(text: string): TypeNode {
  const tokens = tokenize(text);
  return new Parser(text, tokens).type(0, tokens.length);
}
