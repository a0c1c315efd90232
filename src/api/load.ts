import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { isWeirDocument, validateResource, type ValidationError, type WeirObject } from './validate.js';

export interface LoadedResource {
  file: string;
  object: WeirObject;
}

export interface LoadResult {
  resources: LoadedResource[];
  errors: ValidationError[];
  /** Documents of other kinds (Secrets, ConfigMaps…), kept for callers that want them. */
  others: { file: string; object: Record<string, unknown> }[];
}

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    if (entry.startsWith('.')) continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(entry)) out.push(path);
  }
  return out;
}

/** Parse YAML text holding any number of documents; errors carry the file and line. */
export function parseResources(text: string, file: string, into: LoadResult, defaultNamespace?: string): void {
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const line = e.linePos?.[0]?.line;
        into.errors.push({ file: line ? `${file}:${line}` : file, resource: '<yaml>', path: '', message: e.message.split('\n')[0] ?? e.message });
      }
      continue;
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (!isWeirDocument(value)) {
      into.others.push({ file, object: value as Record<string, unknown> });
      continue;
    }
    const obj = value as WeirObject;
    if (defaultNamespace && obj.metadata && typeof obj.metadata === 'object' && !obj.metadata.namespace) {
      obj.metadata.namespace = defaultNamespace;
    }
    const errors = validateResource(obj, file);
    if (errors.length > 0) into.errors.push(...errors);
    else into.resources.push({ file, object: obj });
  }
}

/** Load and validate every weir resource in a folder (recursively) or a single file. */
export function loadResources(path: string, opts: { defaultNamespace?: string; cwd?: string } = {}): LoadResult {
  const result: LoadResult = { resources: [], errors: [], others: [] };
  const files = statSync(path).isDirectory() ? yamlFiles(path) : [path];
  for (const file of files) {
    parseResources(readFileSync(file, 'utf8'), relative(opts.cwd ?? process.cwd(), file) || file, result, opts.defaultNamespace);
  }
  checkDuplicates(result);
  return result;
}

function checkDuplicates(result: LoadResult): void {
  const seen = new Map<string, string>();
  for (const { file, object } of result.resources) {
    const key = `${object.kind} ${object.metadata.namespace ?? 'default'}/${object.metadata.name}`;
    const first = seen.get(key);
    if (first) result.errors.push({ file, resource: key, path: '.metadata.name', message: `also defined in ${first}` });
    else seen.set(key, file);
  }
}
