// How a value fails to convert: made only on the error path, so the happy path never throws.

/** A converter's answer for a value it refuses. */
export class Failure {
  constructor(
    /** The type the value should have had, as written in the column type, e.g. `UInt32`. */
    readonly expected: string,
    readonly value: unknown,
    /** Why, when "expected X, got V" alone does not say it. */
    readonly detail?: string,
    /** Where inside the column's value, e.g. `[2]` or `.key`: filled in by Array, Map and Tuple. */
    public at = '',
  ) {}
}

/** What a converter does with one non-null JSON value: the JSONEachRow value, or a Failure. */
export type Convert = (value: unknown) => unknown;

const SHOWN_CHARS = 100;

/** The offending value as JSON text, cut to about 100 characters: errors never carry more of the message. */
export function showValue(value: unknown): string {
  let text: string;
  if (typeof value === 'string') {
    text = JSON.stringify(value.length > SHOWN_CHARS ? value.slice(0, SHOWN_CHARS) : value);
    if (value.length > SHOWN_CHARS) return `${text.slice(0, -1)}…`;
  } else if (typeof value === 'object' && value !== null) {
    try {
      text = JSON.stringify(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  } else {
    // Numbers (NaN and Infinity too), booleans, null, and what only mapValue can meet.
    text = String(value);
  }
  return text.length > SHOWN_CHARS + 2 ? `${text.slice(0, SHOWN_CHARS)}…` : text;
}

/** The path of a key inside a value: `.name` when it reads as one, `["odd key"]` otherwise. */
export const keyPath = (key: string): string => (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`);
