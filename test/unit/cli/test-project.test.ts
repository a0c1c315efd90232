// weir test around the project: which DataSource a fixture feeds, the scratch databases of a run
// against a live server, and the fingerprint a --from migration compares; and the resource loader
// leaving fixtures/ and tests/ alone.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { formatValidationError } from '../../../src/api/validate.js';
import { loadResources } from '../../../src/cli/load.js';
import {
  defaultDatabase,
  fingerprintQuery,
  fixtureTarget,
  inScratchDatabases,
  isMaterializedInto,
  namesDatabase,
  sameFeed,
  scratchDatabase,
  sharedColumns,
} from '../../../src/cli/test-project.js';
import type { ProjectResource } from '../../../src/plan/graph.js';
import { column, dataSource, inNamespace, materializedInto, node, pipe, withColumns, withEngine, withNodes, withSpec } from '../../fixtures/builders.js';

const pageViews = dataSource('page-views', inNamespace('web'));
const daily = dataSource(
  'page-views-daily',
  inNamespace('web'),
  withColumns(column('day', 'Date'), column('views', 'AggregateFunction(count)')),
  withEngine({ type: 'AggregatingMergeTree', sortingKey: ['day'] }),
);
const rollup = pipe(
  'rollup',
  inNamespace('web'),
  withNodes(node('r', 'SELECT toDate(timestamp) AS day, countState() AS views FROM page_views GROUP BY day')),
  materializedInto('page_views_daily'),
);
const project: ProjectResource[] = [pageViews, daily, rollup];

describe('fixtureTarget', () => {
  it('finds the DataSource by resource or table name', () => {
    expect(fixtureTarget('page_views', project)).toEqual({ ds: pageViews });
    expect(fixtureTarget('page-views', project)).toEqual({ ds: pageViews });
  });

  it('says what is wrong with a name that feeds nothing', () => {
    expect(fixtureTarget('clicks', project)).toEqual({
      problem: 'no DataSource clicks in the project (it has page-views, page-views-daily); a fixture file is named after the DataSource it feeds',
    });
    expect(fixtureTarget('page_views_daily', project)).toEqual({
      problem:
        "DataSource page-views-daily has no column with a jsonPath, so events cannot fill it (a materialized Pipe does); load its source's fixtures instead",
    });
    expect(fixtureTarget('page_views', [...project, dataSource('page-views', inNamespace('other'))])).toEqual({
      problem: 'names DataSources in 2 namespaces (web, other); weir test loads a fixture into one',
    });
  });

  it('knows which DataSources a materialized Pipe writes into', () => {
    expect(isMaterializedInto(daily, project)).toBe(true);
    expect(isMaterializedInto(pageViews, project)).toBe(false);
  });
});

describe('scratch databases (--clickhouse)', () => {
  const rename = (db: string) => scratchDatabase('ab12cd34', db);

  it('moves every DataSource to its scratch database; Pipes follow them', () => {
    const moved = inScratchDatabases(project, rename);
    expect('resources' in moved).toBe(true);
    if (!('resources' in moved)) return;
    expect(moved.resources.filter((r) => r.kind === 'DataSource').map((r) => (r as DataSource).spec.database)).toEqual([
      'weir_test_ab12cd34_web',
      'weir_test_ab12cd34_web',
    ]);
    expect(pageViews.spec.database).toBeUndefined();
    expect(defaultDatabase(moved.resources, 'default')).toBe('weir_test_ab12cd34_web');
  });

  it('a pinned spec.database gets a scratch database of its own', () => {
    const pinned = dataSource('clicks', inNamespace('web'), withSpec<DataSource>({ database: 'analytics' }));
    const moved = inScratchDatabases([...project, pinned], rename);
    if (!('resources' in moved)) throw new Error(JSON.stringify(moved));
    expect(moved.resources.filter((r) => r.kind === 'DataSource').map((r) => (r as DataSource).spec.database)).toEqual([
      'weir_test_ab12cd34_web',
      'weir_test_ab12cd34_web',
      'weir_test_ab12cd34_analytics',
    ]);
  });

  it('refuses SQL that names a database of the project, which the scratch database cannot catch', () => {
    const qualified = pipe('q', inNamespace('web'), withNodes(node('n', 'SELECT count() FROM web.page_views')));
    expect(inScratchDatabases([...project, qualified], rename, [{ what: 'tests/t.yaml: case "c"', sql: 'SELECT * FROM `web`.`page_views_daily`' }])).toEqual({
      problems: [
        'Pipe q, node n names database web explicitly; against a live server weir test runs in a scratch database, so write table names unqualified',
        'tests/t.yaml: case "c" names database web explicitly; against a live server weir test runs in a scratch database, so write table names unqualified',
      ],
    });
  });

  it('refuses a Pipe whose queries would run in a database with none of the DataSources', () => {
    const elsewhere = pipe('lonely', inNamespace('reports'), withNodes(node('n', 'SELECT 1')));
    expect(inScratchDatabases([...project, elsewhere], rename)).toEqual({
      problems: ["Pipe lonely's queries run in database reports, where none of the project's DataSources are; weir test cannot move it to a scratch database"],
    });
  });

  it('tells a database reference from a column or a longer name', () => {
    expect(namesDatabase('SELECT * FROM web.t', 'web')).toBe(true);
    expect(namesDatabase('SELECT * FROM "web" . t', 'web')).toBe(true);
    expect(namesDatabase('SELECT web_x.t FROM t', 'web')).toBe(false);
    expect(namesDatabase('SELECT a.web.t FROM t', 'web')).toBe(false);
    expect(namesDatabase("SELECT 'web' FROM t", 'web')).toBe(false);
  });
});

describe('migration fingerprints (--from)', () => {
  it('finalizes aggregate states and merges rows for engines that merge', () => {
    expect(fingerprintQuery(daily, ['day', 'views'])).toBe(
      'SELECT toString(count()) AS rows, toString(sum(cityHash64(`day`, finalizeAggregation(`views`)))) AS hash FROM `web`.`page_views_daily` FINAL',
    );
    expect(fingerprintQuery(pageViews, ['timestamp'])).toBe(
      'SELECT toString(count()) AS rows, toString(sum(cityHash64(`timestamp`))) AS hash FROM `web`.`page_views`',
    );
  });

  it('compares on the columns both versions have with the same type', () => {
    const next = dataSource(
      'page-views',
      inNamespace('web'),
      withColumns(column('timestamp', 'DateTime64(3)'), column('tenant_id', 'String'), column('country', 'String')),
    );
    expect(sharedColumns(pageViews, next)).toEqual(['timestamp']);
  });

  it('a rollup is compared only when the same Pipe feeds it', () => {
    const changed = {
      ...rollup,
      spec: { ...rollup.spec, nodes: [node('r', 'SELECT toDate(timestamp) AS day, countState() AS views FROM page_views WHERE 1 GROUP BY day')] },
    };
    expect(sameFeed('page-views-daily', project, project)).toBe(true);
    expect(sameFeed('page-views-daily', project, [pageViews, daily, changed])).toBe(false);
  });
});

describe('the resource loader and a project with fixtures/ and tests/', () => {
  const PIPE = 'apiVersion: weir.dev/v1alpha1\nkind: Pipe\nmetadata: {name: p}\nspec: {nodes: [{name: n, sql: SELECT 1}]}\n';

  it('skips them at any depth (bad YAML there is no error), and warns of a resource put in tests/', () => {
    const root = mkdtempSync(join(tmpdir(), 'weir-load-tests-'));
    const dir = join(root, 'examples', 'web');
    mkdirSync(join(dir, 'tests'), { recursive: true });
    mkdirSync(join(dir, 'fixtures'));
    writeFileSync(join(dir, 'pipes.yaml'), PIPE);
    writeFileSync(join(dir, 'tests', 'broken.yaml'), '- name: x\n  params: {a: [\n');
    writeFileSync(join(dir, 'tests', 'cases.yaml'), '- name: a\n  endpoint: e\n');
    writeFileSync(join(dir, 'tests', 'misplaced.yaml'), PIPE.replace('name: p', 'name: q'));
    writeFileSync(join(dir, 'fixtures', 'page_views.ndjson'), '{"a": 1}\n');
    writeFileSync(join(dir, 'fixtures', 'odd.yaml'), 'kind: [\n');
    const r = loadResources(root, { cwd: root });
    expect(r.errors.map(formatValidationError)).toEqual([]);
    expect(r.resources.map((x) => x.file)).toEqual(['examples/web/pipes.yaml']);
    expect(r.warnings.map(formatValidationError)).toEqual([
      'examples/web/tests/misplaced.yaml: is in a tests/ folder, which holds `weir test` cases, not resources, so it is not applied; move weir resources out of tests/',
    ]);
  });

  it('reads a folder named tests when it is the one passed', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'weir-load-tests-')), 'tests');
    mkdirSync(dir);
    writeFileSync(join(dir, 'pipes.yaml'), PIPE);
    expect(loadResources(dir, { cwd: dir }).resources.map((x) => x.file)).toEqual(['pipes.yaml']);
  });
});
