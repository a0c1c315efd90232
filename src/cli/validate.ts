import { loadResources } from './load.js';
import { formatValidationError } from '../api/validate.js';

/** `weir validate`: every error with file, resource and field path; 0 when all is valid. Warnings do not fail it. */
export function runValidate(path: string, namespace: string): number {
  const result = loadResources(path, { defaultNamespace: namespace });
  for (const w of result.warnings) console.error(`warning: ${formatValidationError(w)}`);
  for (const e of result.errors) console.error(formatValidationError(e));
  if (result.errors.length > 0) {
    console.error(`\n${result.errors.length} error(s); nothing was applied.`);
    return 1;
  }
  const counts = result.resources.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.object.kind]: (acc[r.object.kind] ?? 0) + 1 }), {});
  console.log(
    `valid: ${
      Object.entries(counts)
        .map(([k, n]) => `${n} ${k}${n === 1 ? '' : 's'}`)
        .join(', ') || 'no weir resources'
    } in ${path}`,
  );
  return 0;
}
