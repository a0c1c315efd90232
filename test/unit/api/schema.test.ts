import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderCustomResourceDefinitions } from '../../../src/api/crd-files.js';
import { KIND_NAMES, KINDS } from '../../../src/api/kinds.js';
import type { Schema } from '../../../src/api/schema-dsl.js';

function undocumented(schema: Schema, path: string): string[] {
  const missing = schema.description ? [] : [path];
  for (const [name, child] of Object.entries(schema.properties ?? {})) missing.push(...undocumented(child, `${path}.${name}`));
  if (schema.items && schema.items.type === 'object') missing.push(...undocumented(schema.items, `${path}[]`));
  return missing;
}

describe('CRD schemas', () => {
  it.each(KIND_NAMES)('%s documents every field, so kubectl explain is useful', (kind) => {
    expect(undocumented(KINDS[kind].specSchema, 'spec')).toEqual([]);
    expect(undocumented(KINDS[kind].statusSchema, 'status')).toEqual([]);
  });

  it('checked-in crds/ and the Helm chart copy are what `npm run crds` generates', () => {
    for (const [file, text] of renderCustomResourceDefinitions()) {
      for (const dir of ['crds', 'helm/weir/crds']) {
        const onDisk = readFileSync(join(process.cwd(), dir, file), 'utf8');
        expect(onDisk, `${dir}/${file} is stale: run npm run crds`).toBe(text);
      }
    }
  });

  it('bounds every list and string a CEL rule walks, so the API server accepts the rule cost', () => {
    const ds = KINDS.DataSource.specSchema;
    expect(ds.properties?.columns?.maxItems).toBeLessThanOrEqual(500);
    expect(ds.properties?.engine?.properties?.sortingKey?.maxItems).toBeLessThanOrEqual(32);
    expect(ds.properties?.columns?.items?.properties?.name?.maxLength).toBeDefined();
  });
});
