// Column jsonPaths, compiled once: `$`, then `.name` and `[index]` segments, e.g. `$.payload.items[0].sku`.

/** The value at the path, or undefined when any step is missing. */
export type JsonPathGetter = (root: unknown) => unknown;

const SEGMENT = /\.([A-Za-z_][A-Za-z0-9_-]*)|\[([0-9]+)\]/y;

/** Splits a jsonPath into property names and array indexes; throws with the position of the first bad segment. */
export function parseJsonPath(path: string): (string | number)[] {
  if (!path.startsWith('$')) throw new Error(`jsonPath ${JSON.stringify(path)} must start with $`);
  const segments: (string | number)[] = [];
  SEGMENT.lastIndex = 1;
  while (SEGMENT.lastIndex < path.length) {
    const at = SEGMENT.lastIndex;
    const m = SEGMENT.exec(path);
    if (!m) {
      throw new Error(
        `jsonPath ${JSON.stringify(path)}: cannot read ${JSON.stringify(path.slice(at))} at position ${at}; use .name (letters, digits, _ and -) or [index]`,
      );
    }
    segments.push(m[1] !== undefined ? m[1] : Number(m[2]));
  }
  return segments;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A getter for `segments`; names that objects inherit (constructor, __proto__, toString) only match own keys. */
export function compileJsonPath(path: string): JsonPathGetter {
  const steps = parseJsonPath(path).map((s): JsonPathGetter => {
    if (typeof s === 'number') return (v) => (Array.isArray(v) ? (v as unknown[])[s] : undefined);
    if (s in Object.prototype) return (v) => (isObject(v) && Object.hasOwn(v, s) ? v[s] : undefined);
    return (v) => (isObject(v) ? v[s] : undefined);
  });
  if (steps.length === 0) return (root) => root;
  const [a, b, c] = steps;
  if (steps.length === 1) return a as JsonPathGetter;
  if (steps.length === 2) {
    const first = a as JsonPathGetter;
    const second = b as JsonPathGetter;
    return (root) => second(first(root));
  }
  if (steps.length === 3) {
    const first = a as JsonPathGetter;
    const second = b as JsonPathGetter;
    const third = c as JsonPathGetter;
    return (root) => third(second(first(root)));
  }
  return (root) => {
    let v = root;
    for (const step of steps) v = step(v);
    return v;
  };
}
