// Writes crds/*.yaml (and the Helm chart's copy) from the schemas in src/api.
// `npm run crds` after changing a schema; a unit test fails when the files are stale.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCustomResourceDefinitions } from '../src/api/crd-files.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const [file, text] of renderCustomResourceDefinitions()) {
  for (const dir of ['crds', 'helm/weir/crds']) {
    mkdirSync(join(root, dir), { recursive: true });
    writeFileSync(join(root, dir, file), text);
  }
  console.log(`wrote crds/${file}`);
}
