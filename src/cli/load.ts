import { lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { projectProblems } from '../plan/project-checks.js';
import { isWeirDocument, misplacedWeirKind, validateResource, type ValidationError, type WeirObject } from '../api/validate.js';

export interface LoadedResource {
  file: string;
  object: WeirObject;
}

export interface LoadResult {
  resources: LoadedResource[];
  errors: ValidationError[];
  /** Documents read but not applied that may have been meant for weir (a weir kind under another apiVersion). */
  warnings: ValidationError[];
  /** Documents of other kinds (Secrets, ConfigMaps…), kept for callers that want them. */
  others: { file: string; object: Record<string, unknown> }[];
}

/** Largest YAML file read: a project's manifests are kilobytes, so more is a mistake (a log, a dump) and would stall a save. */
export const MAX_FILE_BYTES = 10 * 1024 * 1024;

/** Alias expansions a document may have (the yaml package's default): past it, it is a "billion laughs" bomb. */
const MAX_ALIAS_COUNT = 100;

const isYamlName = (name: string) => /\.ya?ml$/.test(name);

/** What a failed stat or read of `path` means to the user, in words. */
function fileProblem(path: string, e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    const target = symlinkTarget(path);
    return target === undefined ? 'does not exist' : `is a symlink to ${target}, which does not exist`;
  }
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied)';
  if (code === 'ELOOP') return 'is a symlink that leads back to itself';
  if (code === 'EISDIR') return 'is a directory';
  return `cannot be read (${code ?? (e instanceof Error ? e.message : String(e))})`;
}

function symlinkTarget(path: string): string | undefined {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}

function realPath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

interface Walk {
  files: string[];
  problems: { path: string; message: string }[];
  /** YAML files in `tests/` folders: `weir test`'s cases, not resources. */
  testFiles: string[];
}

/**
 * Folders of a project that hold no resources: `fixtures/` (events for `weir test`, NDJSON) and
 * `tests/` (its test cases, YAML lists). Skipped at any depth, so a folder of several projects
 * validates too; the folder passed with -f is read whatever its name.
 */
export const TEST_FOLDERS: readonly string[] = ['fixtures', 'tests'];

/**
 * YAML files under `dir`, sorted, following symlinks. A directory that is its own ancestor (a
 * symlink loop) is reported, not entered; entries that cannot be read are reported by path.
 */
function yamlFiles(dir: string, walk: Walk, ancestors: Set<string>, inTests = false): void {
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch (e) {
    walk.problems.push({ path: dir, message: fileProblem(dir, e) });
    return;
  }
  for (const entry of entries) {
    if (entry.startsWith('.')) continue;
    const path = join(dir, entry);
    let stats: Stats;
    try {
      stats = statSync(path);
    } catch (e) {
      // Only a file named like YAML is surely part of the project; other broken entries are not ours to judge.
      if (isYamlName(entry)) walk.problems.push({ path, message: fileProblem(path, e) });
      continue;
    }
    if (stats.isDirectory()) {
      const real = realPath(path);
      if (real === undefined) continue; // gone since the stat
      if (ancestors.has(real)) {
        walk.problems.push({ path, message: `is a symlink to ${real}, a folder that contains it (a loop); not followed` });
        continue;
      }
      const testFolder = TEST_FOLDERS.includes(entry);
      if (testFolder && entry === 'fixtures') continue;
      yamlFiles(path, walk, new Set([...ancestors, real]), inTests || testFolder);
    } else if (isYamlName(entry)) {
      (inTests ? walk.testFiles : walk.files).push(path);
    }
  }
}

/** The text of one YAML file, or why it is not read: missing, unreadable, not a regular file, or too large. */
function readYamlFile(path: string): { text: string } | { problem: string } {
  try {
    const stats = statSync(path);
    if (stats.isDirectory()) return { problem: 'is a directory' };
    // A FIFO or a device would block or never end.
    if (!stats.isFile()) return { problem: 'is not a regular file' };
    if (stats.size > MAX_FILE_BYTES) {
      return { problem: `is ${(stats.size / 1024 / 1024).toFixed(1)} MiB; weir reads YAML files of at most ${MAX_FILE_BYTES / 1024 / 1024} MiB` };
    }
    return { text: readFileSync(path, 'utf8') };
  } catch (e) {
    return { problem: fileProblem(path, e) };
  }
}

/** Parse YAML text holding any number of documents; errors carry the file and line. */
export function parseResources(text: string, file: string, into: LoadResult, defaultNamespace?: string): void {
  const yamlError = (message: string, line?: number) => into.errors.push({ file: line ? `${file}:${line}` : file, resource: '<yaml>', path: '', message });
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text);
  } catch (e) {
    return void yamlError(`cannot be parsed (${e instanceof Error ? e.message : String(e)})`);
  }
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) yamlError(e.message.split('\n')[0] ?? e.message, e.linePos?.[0]?.line);
      continue;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e) {
      const line = doc.contents?.range ? lineOf(text, doc.contents.range[0]) : undefined;
      const bomb = e instanceof ReferenceError && /alias/i.test(e.message);
      yamlError(
        bomb
          ? `its aliases expand past ${MAX_ALIAS_COUNT} nodes (a "billion laughs" YAML bomb?); the document is not read`
          : `cannot be read (${e instanceof Error ? e.message : String(e)})`,
        line,
      );
      continue;
    }
    if (value === null || value === undefined) continue;
    if (!isWeirDocument(value)) {
      const misplaced = misplacedWeirKind(value);
      if (misplaced) into.warnings.push({ file, resource: misplaced.resource, path: '.apiVersion', message: misplaced.message });
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

const lineOf = (text: string, offset: number): number => text.slice(0, offset).split('\n').length;

/**
 * Load and validate every weir resource in a folder (recursively) or a single file. Never
 * throws for what is on disk: a file that cannot be read or parsed is an error naming it.
 */
export function loadResources(path: string, opts: { defaultNamespace?: string; cwd?: string } = {}): LoadResult {
  const result: LoadResult = { resources: [], errors: [], warnings: [], others: [] };
  const shown = (file: string) => relative(opts.cwd ?? process.cwd(), file) || file;
  const fileError = (file: string, message: string) => result.errors.push({ file: shown(file), resource: '', path: '', message });
  let root: Stats;
  try {
    root = statSync(path);
  } catch (e) {
    // The path as the user gave it.
    result.errors.push({ file: path, resource: '', path: '', message: fileProblem(path, e) });
    return result;
  }
  const walk: Walk = { files: [], problems: [], testFiles: [] };
  if (root.isDirectory()) yamlFiles(path, walk, new Set([realPath(path) ?? path]));
  else walk.files.push(path);
  for (const p of walk.problems) fileError(p.path, p.message);
  // A resource put in tests/ by mistake would be skipped without a word; say so (the text is enough: nothing there is parsed).
  for (const file of walk.testFiles) {
    const read = readYamlFile(file);
    if ('text' in read && /^\s*apiVersion:\s*["']?weir\.dev\//m.test(read.text))
      result.warnings.push({
        file: shown(file),
        resource: '',
        path: '',
        message: 'is in a tests/ folder, which holds `weir test` cases, not resources, so it is not applied; move weir resources out of tests/',
      });
  }
  for (const file of walk.files) {
    const read = readYamlFile(file);
    if ('problem' in read) fileError(file, read.problem);
    else parseResources(read.text, shown(file), result, opts.defaultNamespace);
  }
  checkDuplicates(result);
  result.errors.push(...projectProblems(result.resources));
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
