import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadResources } from '../../../src/cli/load.js';
import { formatValidationError, validateResource } from '../../../src/api/validate.js';
import { dataSourceRules } from '../../../src/api/datasource.js';
import { endpointParamRules } from '../../../src/api/endpoint.js';
import {
  column,
  dataSource,
  endpoint,
  materializedInto,
  pipe,
  withColumns,
  withEngine,
  withParams,
  withSortingKey,
  withSpec,
} from '../../fixtures/builders.js';

const errorsOf = (obj: unknown) => validateResource(obj).map((e) => `${e.path}: ${e.message}`);

describe('validateResource', () => {
  it('accepts a minimal DataSource and applies the schema defaults', () => {
    const ds = dataSource('events');
    expect(validateResource(ds)).toEqual([]);
    expect(ds.spec.deletionPolicy).toBe('Retain');
    expect(ds.spec.engine.type).toBe('MergeTree');
  });

  it('names the field of an unknown key', () => {
    const ds = dataSource('events', withSpec({ sortKey: ['a'] } as never));
    expect(errorsOf(ds)).toEqual(['.spec.sortKey: unknown field "sortKey"']);
  });

  it('lists the allowed values of an enum', () => {
    expect(errorsOf(dataSource('events', withEngine({ type: 'Log' as never })))).toEqual([
      '.spec.engine.type: must be one of: MergeTree, ReplacingMergeTree, SummingMergeTree, AggregatingMergeTree, CollapsingMergeTree, VersionedCollapsingMergeTree',
    ]);
  });

  it('reports a missing required field', () => {
    const ds = dataSource('events');
    delete (ds.spec as Partial<typeof ds.spec>).engine;
    expect(errorsOf(ds)).toEqual(['.spec.engine: required field is missing']);
  });

  it('reports duplicate columns at the second occurrence', () => {
    const ds = dataSource('events', withColumns(column('a', 'String'), column('a', 'UInt8')), withSortingKey('a'));
    expect(errorsOf(ds)).toEqual(['.spec.columns[1]: duplicate name "a"']);
  });

  it('reports every error, not just the first', () => {
    const ds = dataSource('events', withEngine({ type: 'Log' as never }), withSpec({ deletionPolicy: 'Keep' as never }));
    expect(errorsOf(ds)).toHaveLength(2);
  });

  it('rejects names that are not DNS labels, explaining the ClickHouse mapping', () => {
    expect(errorsOf(dataSource('page_views'))[0]).toMatch(/^\.metadata\.name: must be a DNS label.*write page-views for table page_views/);
    expect(errorsOf(dataSource('a.b'))).toHaveLength(1);
  });

  it('rejects the wrong apiVersion and an unknown kind', () => {
    expect(errorsOf({ ...dataSource('x'), apiVersion: 'weir.dev/v1' })).toEqual(['.apiVersion: must be weir.dev/v1alpha1, not weir.dev/v1']);
    expect(errorsOf({ ...dataSource('x'), kind: 'Table' })).toEqual(['.kind: must be one of: DataSource, Pipe, Endpoint']);
  });

  it('applies the cross-field rules offline, with the same messages as CEL', () => {
    expect(errorsOf(dataSource('x', withSortingKey('tenant_id', 'missing')))).toEqual([
      '.spec.engine.sortingKey: every sortingKey entry that is a plain column name must name a column in spec.columns',
    ]);
    expect(errorsOf(pipe('p', materializedInto('t', 'nope')))).toEqual(['.spec.materialize.node: materialize.node must name one of spec.nodes']);
    expect(errorsOf(endpoint('e', 'p', withParams({ name: 'a', min: 5, max: 1 })))).toEqual(['.spec.params[0].min: min must not exceed max']);
  });

  it('formats an error with file, resource and field path', () => {
    const [e] = validateResource(dataSource('x', withEngine({ type: 'Log' as never })), 'project/ds.yaml');
    expect(e && formatValidationError(e)).toMatch(/^project\/ds\.yaml: DataSource default\/x: \.spec\.engine\.type: must be one of/);
  });
});

describe('cross-field rules', () => {
  const rule = (fragment: string) => {
    const r = dataSourceRules.find((x) => x.cel.rule.includes(fragment));
    if (!r) throw new Error(`no rule with ${fragment}`);
    return r;
  };

  it('sortingKey entries that are expressions need not be columns', () => {
    expect(rule('sortingKey.all').holds(dataSource('x', withSortingKey('tenant_id', 'toStartOfHour(timestamp)')).spec)).toBe(true);
    expect(rule('sortingKey.all').holds(dataSource('x', withSortingKey('nope')).spec)).toBe(false);
  });

  it('primaryKey must be within sortingKey', () => {
    const r = rule('size(self.engine.primaryKey)');
    expect(r.holds(dataSource('x', withEngine({ primaryKey: ['tenant_id'] })).spec)).toBe(true);
    expect(r.holds(dataSource('x', withEngine({ primaryKey: ['timestamp', 'tenant_id', 'x'] })).spec)).toBe(false);
  });

  it('engine parameters must match the engine', () => {
    const withSign = dataSource('x', withColumns(column('tenant_id', 'String'), column('sign', 'Int8')), withSortingKey('tenant_id'));
    withEngine({ type: 'CollapsingMergeTree', signColumn: 'sign' })(withSign);
    expect(validateResource(withSign)).toEqual([]);
    const versioned = structuredClone(withSign);
    versioned.spec.engine.type = 'VersionedCollapsingMergeTree';
    expect(errorsOf(versioned)).toEqual(['.spec.engine.versionColumn: VersionedCollapsingMergeTree needs engine.versionColumn']);
    expect(errorsOf(dataSource('x', withEngine({ sumColumns: ['tenant_id'] })))).toEqual([
      '.spec.engine.sumColumns: engine.sumColumns is only valid for SummingMergeTree',
    ]);
  });

  it('ingestion needs at least one column fed from JSON', () => {
    const ds = dataSource('x', withColumns(column('tenant_id', 'String')), withSortingKey('tenant_id'));
    ds.spec.ingestion = { kafka: { bootstrapServers: ['k:9092'], topic: 't' } };
    expect(errorsOf(ds)).toEqual(['.spec.ingestion: a DataSource with ingestion needs at least one column with a jsonPath']);
  });

  it('a required parameter has no default', () => {
    const [requiredRule] = endpointParamRules;
    expect(requiredRule?.holds({ name: 'a', required: true })).toBe(true);
    expect(requiredRule?.holds({ name: 'a', required: true, default: 1 })).toBe(false);
  });
});

describe('loadResources', () => {
  const project = (files: Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-load-'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  };

  it('loads the example project', () => {
    const r = loadResources(join(process.cwd(), 'manifests/examples/web-analytics'));
    expect(r.errors).toEqual([]);
    expect(r.resources.map((x) => `${x.object.kind}/${x.object.metadata.name}`).sort()).toEqual([
      'DataSource/page-views',
      'DataSource/page-views-daily',
      'Endpoint/top-pages',
      'Pipe/daily-rollup',
      'Pipe/top-pages',
    ]);
  });

  it('reports YAML syntax errors with file and line', () => {
    const dir = project({ 'bad.yaml': 'apiVersion: weir.dev/v1alpha1\nkind: DataSource\nmetadata: {name: x\n' });
    const r = loadResources(dir, { cwd: dir });
    expect(r.resources).toEqual([]);
    expect(r.errors[0]?.file).toMatch(/^bad\.yaml:\d+$/);
  });

  it('reports the same resource defined twice', () => {
    const doc = 'apiVersion: weir.dev/v1alpha1\nkind: Pipe\nmetadata: {name: p}\nspec: {nodes: [{name: n, sql: SELECT 1}]}\n';
    const r = loadResources(project({ 'a.yaml': doc, 'b.yaml': doc }));
    expect(r.errors.map((e) => e.message)).toEqual([expect.stringMatching(/^also defined in .*a\.yaml$/)]);
  });

  it('keeps documents of other kinds aside and gives resources without a namespace the default one', () => {
    const r = loadResources(
      project({
        'x.yaml':
          'apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\napiVersion: weir.dev/v1alpha1\nkind: Pipe\nmetadata: {name: p}\nspec: {nodes: [{name: n, sql: SELECT 1}]}\n',
      }),
      { defaultNamespace: 'dev' },
    );
    expect(r.others.map((o) => o.object.kind)).toEqual(['Secret']);
    expect(r.resources[0]?.object.metadata.namespace).toBe('dev');
  });
});
