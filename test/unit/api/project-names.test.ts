// loadResources (and so `weir validate`) checks the project as a whole: ClickHouse names that
// two resources would share, names weir reserves, and SQL weir cannot embed, by file.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadResources } from '../../../src/cli/load.js';
import { formatValidationError } from '../../../src/api/validate.js';

const exampleCopy = () => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-names-'));
  cpSync(join(process.cwd(), 'manifests/examples/web-analytics'), dir, { recursive: true });
  return dir;
};
const errorsOf = (dir: string) => loadResources(dir, { cwd: dir }).errors.map(formatValidationError);

const DAILY_ROLLUP_TABLE = `apiVersion: weir.dev/v1alpha1
kind: DataSource
metadata: {name: daily-rollup, namespace: web}
spec:
  columns: [{name: day, type: Date, jsonPath: $.day}]
  engine: {type: MergeTree, sortingKey: [day]}
`;

describe('loadResources: names two resources would share in ClickHouse', () => {
  it('reports a DataSource named like the materialized Pipe of the example, with both resources and both files', () => {
    const dir = exampleCopy();
    writeFileSync(join(dir, 'extra.yaml'), DAILY_ROLLUP_TABLE);
    expect(errorsOf(dir)).toEqual([
      // Files load in name order: extra.yaml's DataSource comes before pipes.yaml's Pipe.
      'pipes.yaml: Pipe web/daily-rollup: .metadata.name: web.daily_rollup would be both the table of DataSource web/daily-rollup and the materialized view of Pipe web/daily-rollup; ' +
        'two ClickHouse objects cannot share a name: rename one of them (DataSource web/daily-rollup is in extra.yaml, Pipe web/daily-rollup in pipes.yaml)',
    ]);
  });

  it("reports a DataSource named like another one's quarantine table", () => {
    const dir = exampleCopy();
    writeFileSync(join(dir, 'extra.yaml'), DAILY_ROLLUP_TABLE.replace('daily-rollup', 'page-views-quarantine'));
    expect(errorsOf(dir)).toEqual([
      expect.stringMatching(
        /^extra\.yaml: DataSource web\/page-views-quarantine: \.metadata\.name: web\.page_views_quarantine would be both the quarantine table of DataSource web\/page-views and the table of DataSource web\/page-views-quarantine/,
      ),
    ]);
  });

  it('reports the example as valid', () => {
    expect(errorsOf(exampleCopy())).toEqual([]);
  });
});

describe('loadResources: SQL weir cannot embed', () => {
  it('points at the node whose SQL ends with FORMAT, and accepts one ending with a comment', () => {
    const dir = exampleCopy();
    const file = join(dir, 'pipes.yaml');
    const text = readFileSync(file, 'utf8');
    writeFileSync(
      file,
      text.replace('GROUP BY day, tenant_id, pathname\n', 'GROUP BY day, tenant_id, pathname\n        -- one row per day, tenant and page\n'),
    );
    expect(errorsOf(dir)).toEqual([]);
    writeFileSync(file, text.replace('LIMIT {limit:UInt32}', 'LIMIT {limit:UInt32}\n        FORMAT JSON'));
    expect(errorsOf(dir)).toEqual([
      'pipes.yaml: Pipe web/top-pages: .spec.nodes[1].sql: node ranked ends with FORMAT JSON; remove it: weir picks the output format (an endpoint takes it from its URL)',
    ]);
  });
});
