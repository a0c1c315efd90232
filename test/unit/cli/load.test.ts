// What a folder may hold that is not a good YAML file: each one is an error naming the file,
// never an exception, and the readable files around it still load.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadResources, MAX_FILE_BYTES } from '../../../src/cli/load.js';
import { formatValidationError } from '../../../src/api/validate.js';

const PIPE = 'apiVersion: weir.dev/v1alpha1\nkind: Pipe\nmetadata: {name: p}\nspec: {nodes: [{name: n, sql: SELECT 1}]}\n';

/** Nine levels of nine aliases: 9^9 strings once expanded. */
const BILLION_LAUGHS = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  .concat('bcdefghi'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`))
  .join('\n');

const project = (files: Record<string, string> = {}) => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-load-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
};

const messages = (dir: string) => {
  const r = loadResources(dir, { cwd: dir });
  return { errors: r.errors.map(formatValidationError), warnings: r.warnings.map(formatValidationError), resources: r.resources.map((x) => x.file) };
};

describe('loadResources on a hostile or clumsy folder', () => {
  it('reports a YAML bomb by file and line instead of expanding it', () => {
    const dir = project({ 'bomb.yaml': `${PIPE}---\n${BILLION_LAUGHS}\n`, 'good.yaml': PIPE.replace('name: p', 'name: q') });
    expect(messages(dir)).toEqual({
      errors: ['bomb.yaml:6: <yaml>: its aliases expand past 100 nodes (a "billion laughs" YAML bomb?); the document is not read'],
      warnings: [],
      resources: ['bomb.yaml', 'good.yaml'],
    });
  });

  it('reports nesting too deep to parse as an error, not a crash', () => {
    const dir = project({ 'deep.yaml': `${'['.repeat(100_000)}${']'.repeat(100_000)}` });
    const { errors } = messages(dir);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^deep\.yaml:1: <yaml>: Maximum call stack size exceeded/);
  });

  it('reports a dangling symlink named like YAML and ignores one that is not', () => {
    const dir = project({ 'good.yaml': PIPE });
    symlinkSync(join(dir, 'gone.yaml'), join(dir, 'broken.yaml'));
    symlinkSync(join(dir, 'gone'), join(dir, 'notes'));
    expect(messages(dir)).toEqual({
      errors: [`broken.yaml: is a symlink to ${join(dir, 'gone.yaml')}, which does not exist`],
      warnings: [],
      resources: ['good.yaml'],
    });
  });

  it('reports a symlink loop among folders once and reads every file once', () => {
    const dir = project({ 'good.yaml': PIPE });
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'inner.yaml'), PIPE.replace('name: p', 'name: inner'));
    symlinkSync(dir, join(dir, 'sub', 'up'));
    symlinkSync(join(dir, 'self.yaml'), join(dir, 'self.yaml'));
    expect(messages(dir)).toEqual({
      errors: ['self.yaml: is a symlink that leads back to itself', `sub/up: is a symlink to ${dir}, a folder that contains it (a loop); not followed`],
      warnings: [],
      resources: ['good.yaml', 'sub/inner.yaml'],
    });
  });

  it('refuses a file over the size cap and one that is not a regular file, without reading them', () => {
    const dir = project({ 'good.yaml': PIPE, 'huge.yaml': '' });
    truncateSync(join(dir, 'huge.yaml'), MAX_FILE_BYTES + 1);
    execFileSync('mkfifo', [join(dir, 'pipe.yaml')]);
    expect(messages(dir).errors).toEqual(['huge.yaml: is 10.0 MiB; weir reads YAML files of at most 10 MiB', 'pipe.yaml: is not a regular file']);
  });

  it('reports a path that does not exist as given', () => {
    const r = loadResources('/nonexistent-weir-project');
    expect(r.errors.map(formatValidationError)).toEqual(['/nonexistent-weir-project: does not exist']);
  });

  it('warns about a weir kind under another apiVersion, naming the file and the accepted one', () => {
    const dir = project({
      'typo.yaml': `${PIPE.replace('weir.dev/v1alpha1', 'weir.io/v1alpha1')}---\n${PIPE.replace('apiVersion: weir.dev/v1alpha1\n', '').replace('name: p', 'name: q')}---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n`,
    });
    expect(messages(dir)).toEqual({
      errors: [],
      warnings: [
        "typo.yaml: Pipe p: .apiVersion: has apiVersion weir.io/v1alpha1, so weir ignores it; weir's Pipe is apiVersion weir.dev/v1alpha1",
        "typo.yaml: Pipe q: .apiVersion: has no apiVersion, so weir ignores it; weir's Pipe is apiVersion weir.dev/v1alpha1",
      ],
      resources: [],
    });
  });
});
