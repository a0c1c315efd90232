// Just enough of ClickHouse's lexer to answer what the HTTP layer must know about a statement before the
// engine sees it: its kind, its output FORMAT, whether a second statement follows, where INSERT data starts,
// and its {name:Type} parameters. Strings, quoted names and comments are skipped, so a ';' or 'FORMAT' inside
// them never counts.

export type TokenKind = 'word' | 'quotedIdentifier' | 'string' | 'number' | 'placeholder' | 'symbol';

export interface Token {
  kind: TokenKind;
  /** For quoted identifiers, the unquoted name; otherwise the source text. */
  text: string;
  start: number;
  end: number;
}

export interface Placeholder {
  name: string;
  type: string;
  start: number;
  end: number;
}

export interface InsertClause {
  /** The target as `table` or `db.table` when it is a plain name; undefined for INSERT INTO FUNCTION etc. */
  table?: string;
  columns?: string[];
  /** The FORMAT named in the INSERT, when it has one (VALUES and SELECT inserts have none). */
  format?: string;
  /** Offset where inline data starts (after the format name or VALUES); the statement's end for INSERT SELECT. */
  dataOffset: number;
  /** SETTINGS inside the INSERT: the fast insert path does not carry them. */
  hasSettings: boolean;
}

export interface StatementInfo {
  /** The first keyword, upper-cased: SELECT, INSERT, CREATE, ... ('' when there is no statement at all). */
  kind: string;
  /** The format of a trailing `FORMAT <name>` clause of a query that returns rows. */
  outputFormat?: string | undefined;
  insert?: InsertClause;
  placeholders: Placeholder[];
  /** Offset of a second statement after ';', which ClickHouse's HTTP interface refuses. */
  secondStatementAt?: number;
  intoOutfile: boolean;
  /** SET, USE and CREATE TEMPORARY TABLE outlive the statement on a chdb session (not over ClickHouse's HTTP). */
  changesSessionState: boolean;
}

const WORD_START = /[A-Za-z_\u0080-\uffff]/;
const WORD_PART = /[A-Za-z0-9_$\u0080-\uffff]/;
const NUMBER_PART = /[0-9A-Za-z_.]/;
const PLACEHOLDER = /\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]*?)\s*\}/y;
const HEREDOC_TAG = /\$([A-Za-z0-9_]*)\$/y;
const PLAIN_NAME = /^[A-Za-z0-9_]+$/;

/** A ClickHouse string literal holding `value` exactly. */
export const quoteStringLiteral = (value: string): string => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** A ClickHouse quoted identifier. */
export const quoteIdentifier = (name: string): string => `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;

const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';

/** End of a quoted run starting at `start` (the quote): backslash escapes and doubled quotes stay inside. */
function endOfQuoted(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (c === '\\') i += 2;
    else if (c === quote) {
      if (sql[i + 1] !== quote) return i + 1;
      i += 2;
    } else i++;
  }
  return sql.length;
}

const unquote = (quoted: string): string =>
  quoted.slice(1, -1).replace(/\\(.)|(["`])\2/gs, (_m, escaped: string | undefined, doubled: string | undefined) => escaped ?? doubled ?? '');

/** End of the comment starting at `i`, or -1 when no comment starts there. Block comments nest, as in ClickHouse. */
function endOfComment(sql: string, i: number): number {
  const c = sql[i];
  if ((c === '-' && sql[i + 1] === '-') || c === '#') {
    const eol = sql.indexOf('\n', i);
    return eol < 0 ? sql.length : eol + 1;
  }
  if (c === '/' && sql[i + 1] === '*') {
    let depth = 0;
    let j = i;
    while (j < sql.length) {
      if (sql.startsWith('/*', j)) {
        depth++;
        j += 2;
      } else if (sql.startsWith('*/', j)) {
        depth--;
        j += 2;
        if (depth === 0) return j;
      } else j++;
    }
    return sql.length;
  }
  return -1;
}

function readToken(sql: string, i: number): Token {
  const c = sql[i] ?? '';
  const token = (kind: TokenKind, end: number, text = sql.slice(i, end)): Token => ({ kind, text, start: i, end });

  if (c === "'") return token('string', endOfQuoted(sql, i, "'"));
  if (c === '`' || c === '"') {
    const end = endOfQuoted(sql, i, c);
    return token('quotedIdentifier', end, unquote(sql.slice(i, end)));
  }
  if (c === '$') {
    HEREDOC_TAG.lastIndex = i;
    const tag = HEREDOC_TAG.exec(sql);
    if (tag) {
      const close = sql.indexOf(tag[0], i + tag[0].length);
      return token('string', close < 0 ? sql.length : close + tag[0].length);
    }
  }
  if (c === '{') {
    PLACEHOLDER.lastIndex = i;
    if (PLACEHOLDER.exec(sql)) return token('placeholder', PLACEHOLDER.lastIndex);
  }
  if (WORD_START.test(c)) {
    let j = i + 1;
    while (j < sql.length && WORD_PART.test(sql[j] ?? '')) j++;
    return token('word', j);
  }
  if (c >= '0' && c <= '9') {
    let j = i + 1;
    while (j < sql.length) {
      const d = sql[j] ?? '';
      const exponentSign = (d === '+' || d === '-') && /[eE]/.test(sql[j - 1] ?? '');
      if (!NUMBER_PART.test(d) && !exponentSign) break;
      j++;
    }
    return token('number', j);
  }
  return token('symbol', i + 1);
}

/** The tokens of `sql` from `from`, skipping whitespace and comments. */
export function* tokenize(sql: string, from = 0): Generator<Token> {
  let i = from;
  while (i < sql.length) {
    if (isSpace(sql[i] ?? '')) {
      i++;
      continue;
    }
    const commentEnd = endOfComment(sql, i);
    if (commentEnd >= 0) {
      i = commentEnd;
      continue;
    }
    const t = readToken(sql, i);
    yield t;
    i = t.end;
  }
}

const isWord = (t: Token | undefined, word: string): boolean => t?.kind === 'word' && t.text.toUpperCase() === word;
const isName = (t: Token | undefined): t is Token => t?.kind === 'word' || t?.kind === 'quotedIdentifier';
const plainName = (t: Token | undefined): string | undefined => (isName(t) && PLAIN_NAME.test(t.text) ? t.text : undefined);

/** The INSERT target, column list and SETTINGS from the tokens between INSERT and its data. */
function parseInsertHead(head: Token[], insert: InsertClause): void {
  let i = 1;
  if (isWord(head[i], 'INTO')) i++;
  if (isWord(head[i], 'TABLE')) i++;
  if (isWord(head[i], 'FUNCTION')) return;
  const first = plainName(head[i]);
  if (first === undefined) return;
  i++;
  let table = first;
  if (head[i]?.text === '.' && head[i]?.kind === 'symbol') {
    const second = plainName(head[i + 1]);
    if (second === undefined) return;
    table = `${first}.${second}`;
    i += 2;
  }
  if (head[i]?.text === '(') {
    const columns: string[] = [];
    for (i++; i < head.length && head[i]?.text !== ')'; i++) {
      const t = head[i];
      if (t?.kind === 'symbol' && t.text === ',') continue;
      const column = plainName(t);
      if (column === undefined) return;
      columns.push(column);
    }
    i++;
    insert.columns = columns;
  }
  insert.hasSettings = isWord(head[i], 'SETTINGS');
  insert.table = table;
}

const OPENERS = new Set(['(', '[', '{']);
const CLOSERS = new Set([')', ']', '}']);

/** What the HTTP layer needs to know about one statement (see StatementInfo). */
export function analyzeStatement(sql: string): StatementInfo {
  const info: StatementInfo = { kind: '', placeholders: [], intoOutfile: false, changesSessionState: false };
  const head: Token[] = [];
  let depth = 0;
  let afterSemicolon = false;
  let insertHeadOpen = false;
  let previous: Token | undefined;
  const tokens = tokenize(sql);

  for (let t = tokens.next(); !t.done; t = tokens.next()) {
    const token = t.value;
    if (afterSemicolon && !(token.kind === 'symbol' && token.text === ';')) {
      info.secondStatementAt = token.start;
      break;
    }
    if (info.kind === '' && token.kind === 'word') {
      info.kind = token.text.toUpperCase();
      insertHeadOpen = info.kind === 'INSERT';
      if (insertHeadOpen) info.insert = { dataOffset: sql.length, hasSettings: false };
    }
    if (token.kind === 'placeholder') info.placeholders.push(placeholderOf(token));
    if (token.kind === 'symbol') {
      if (OPENERS.has(token.text)) depth++;
      else if (CLOSERS.has(token.text)) depth = Math.max(0, depth - 1);
      else if (token.text === ';') afterSemicolon = true;
    }
    if (depth === 0 && isWord(previous, 'INTO') && isWord(token, 'OUTFILE')) info.intoOutfile = true;

    if (insertHeadOpen && info.insert) head.push(token);
    if (insertHeadOpen && info.insert && depth === 0) {
      if (isWord(token, 'FORMAT')) {
        const name = tokens.next();
        if (!name.done && isName(name.value)) {
          info.insert.format = name.value.text;
          info.insert.dataOffset = name.value.end;
        }
        break; // what follows is data, not SQL
      }
      if (isWord(token, 'VALUES')) {
        info.insert.dataOffset = token.end;
        break;
      }
      if (isWord(token, 'SELECT') || isWord(token, 'WITH')) insertHeadOpen = false;
    }
    previous = token;
  }

  if (info.insert) parseInsertHead(head, info.insert);
  else info.outputFormat = trailingFormat(sql);
  info.changesSessionState =
    info.kind === 'SET' || info.kind === 'USE' || (info.kind === 'CREATE' && /^\s*CREATE\s+TEMPORARY\b/i.test(stripLeadingComments(sql)));
  return info;
}

const PLACEHOLDER_PARTS = /^\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]*?)\s*\}$/;

function placeholderOf(token: Token): Placeholder {
  const m = PLACEHOLDER_PARTS.exec(token.text);
  return { name: m?.[1] ?? '', type: m?.[2] ?? '', start: token.start, end: token.end };
}

function stripLeadingComments(sql: string): string {
  const first = tokenize(sql).next();
  return first.done ? '' : sql.slice(first.value.start);
}

/** `FORMAT <name>` at the top level, followed only by the end, ';' or a SETTINGS clause. */
function trailingFormat(sql: string): string | undefined {
  const tokens = [...tokenize(sql)];
  let depth = 0;
  let format: string | undefined;
  tokens.forEach((t, i) => {
    if (t.kind === 'symbol' && OPENERS.has(t.text)) depth++;
    else if (t.kind === 'symbol' && CLOSERS.has(t.text)) depth = Math.max(0, depth - 1);
    const name = tokens[i + 1];
    const after = tokens[i + 2];
    const endsClause = after === undefined || (after.kind === 'symbol' && after.text === ';') || isWord(after, 'SETTINGS');
    if (depth === 0 && isWord(t, 'FORMAT') && isName(name) && endsClause) format = name.text;
  });
  return format;
}
