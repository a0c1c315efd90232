// The CRDs as the real API server enforces them: valid resources are accepted, invalid ones
// are rejected at apply time with a message naming the field.
import type { KubeConfig } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { validateResource } from '../../../src/api/validate.js';
import {
  column,
  dataSource,
  endpoint,
  inNamespace,
  materializedInto,
  pipe,
  withColumns,
  withEngine,
  withParams,
  withSortingKey,
  withSpec,
} from '../../fixtures/builders.js';
import { waitFor } from '../../env/wait.js';
import { createNamespace, createResource, exampleResources, getResource, kubectl, rejection, testKubeConfig } from '../../fixtures/kube.js';

let kc: KubeConfig;
let ns: string;

beforeAll(async () => {
  kc = testKubeConfig();
  ns = await createNamespace(kc, 'crds');
});

describe('valid resources', () => {
  it('accepts the web-analytics example and applies schema defaults', async () => {
    for (const obj of exampleResources(ns)) await createResource(kc, obj);
    const ds = await getResource<DataSource>(kc, 'DataSource', ns, 'page-views');
    expect(ds.spec.engine.sortingKey).toEqual(['tenant_id', 'timestamp']);
    expect(ds.spec.deletionPolicy).toBe('Retain');
    expect(ds.spec.migration).toEqual({ approval: 'Automatic', keepPreviousVersions: 1, allowDestructive: false, verify: 'Checksum' });
    expect(ds.spec.ingestion?.kafka?.startFrom).toBe('earliest');
    expect(ds.spec.ingestion?.batch).toEqual({ maxRows: 100000, maxDelayMs: 1000, maxBytes: 16777216 });
  });

  it('lists them under the weir category and short names, with printer columns', async () => {
    // Aggregated discovery picks up new CRD categories a few seconds after they are established.
    const all = await waitFor('kubectl get weir', async () => {
      const out = await kubectl(['get', 'weir', '-n', ns, '-o', 'name']);
      return out.code === 0 ? out : undefined;
    });
    expect(all.stdout.trim().split('\n').sort()).toEqual([
      'datasource.weir.dev/page-views',
      'datasource.weir.dev/page-views-daily',
      'endpoint.weir.dev/top-pages',
      'pipe.weir.dev/daily-rollup',
      'pipe.weir.dev/top-pages',
    ]);
    const ds = await kubectl(['get', 'wds', '-n', ns]);
    expect(ds.stdout.split('\n')[0]).toMatch(/^NAME\s+VERSION\s+PHASE\s+ROWS\s+PROGRESS\s+LAG\s+READY\s+AGE/);
    const ep = await kubectl(['get', 'wep', '-n', ns]);
    expect(ep.stdout.split('\n')[0]).toMatch(/^NAME\s+URL\s+REPLICAS\s+PHASE\s+READY\s+AGE/);
  });

  it('documents every field for kubectl explain', async () => {
    const out = await kubectl(['explain', 'datasource.spec.engine']);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('The table engine (MergeTree family) and its keys.');
    expect(out.stdout).toMatch(/sortingKey\s+<\[\]string> -required-/);
    const type = await kubectl(['explain', 'datasource.spec.engine.type']);
    expect(type.stdout).toMatch(/ENUM:[\s\S]*AggregatingMergeTree/);
  });
});

describe('invalid resources are rejected with the field named', () => {
  const cases: [string, () => object, RegExp][] = [
    ['an unknown engine type', () => dataSource('bad-engine', withEngine({ type: 'LogTree' as never })), /spec\.engine\.type: Unsupported value: "LogTree"/],
    [
      'a sorting key naming a missing column',
      () => dataSource('bad-key', withSortingKey('tenant_id', 'nope')),
      /spec\.engine\.sortingKey: Invalid value: .*must name a column in spec\.columns/,
    ],
    [
      'a duplicate column',
      () => dataSource('dup-col', withColumns(column('a', 'String'), column('a', 'UInt8')), withSortingKey('a')),
      /spec\.columns\[1\]: Duplicate value/,
    ],
    [
      'a column name that is not an identifier',
      () => dataSource('bad-col', withColumns(column('tenant-id', 'String')), withSortingKey('tenant_id')),
      /spec\.columns\[0\]\.name: Invalid value: "tenant-id"/,
    ],
    ['a resource name that is not a ClickHouse identifier', () => dataSource('page.views'), /metadata\.name must be a DNS label/],
    [
      'a collapsing engine without a sign column',
      () => dataSource('no-sign', withEngine({ type: 'CollapsingMergeTree' })),
      /spec\.engine\.signColumn: Invalid value: .*need engine\.signColumn/,
    ],
    [
      'a materialize node that is not a node',
      () => pipe('bad-pipe', materializedInto('page_views', 'missing')),
      /spec\.materialize\.node: Invalid value: .*must name one of spec\.nodes/,
    ],
    [
      'an Endpoint param declared twice',
      () => endpoint('dup-param', 'top-pages', withParams({ name: 'limit' }, { name: 'limit' })),
      /spec\.params\[1\]: Duplicate value/,
    ],
    [
      'a required Endpoint param with a default',
      () => endpoint('req-default', 'top-pages', withParams({ name: 'limit', required: true, default: 10 })),
      /spec\.params\[0\]\.default: Invalid value: .*a required parameter cannot have a default/,
    ],
    [
      'Endpoint auth with neither static nor signed tokens',
      () => endpoint('no-auth', 'top-pages', withSpec({ auth: {} })),
      /spec\.auth: Invalid value: .*auth needs tokensSecretRef \(static tokens\), jwt \(signed tokens\), or both/,
    ],
    [
      'a signed-token algorithm off the allow-list',
      () =>
        endpoint('alg-none', 'top-pages', withSpec({ auth: { jwt: { secretRef: { name: 's' }, issuer: 'i', audience: 'a', algorithms: ['none' as never] } } })),
      /spec\.auth\.jwt\.algorithms\[0\]: Unsupported value: "none"/,
    ],
  ];

  for (const [what, build, message] of cases) {
    it(`rejects ${what}, and weir validate rejects it too`, async () => {
      const obj = build() as { metadata: { namespace?: string } };
      inNamespace(ns)(obj);
      expect(await rejection(kc, obj as never)).toMatch(message);
      expect(validateResource(structuredClone(obj)).length).toBeGreaterThan(0);
    });
  }

  it('rejects an unknown field under strict field validation, as kubectl apply does', async () => {
    const manifest = JSON.stringify({
      ...dataSource('unknown-field'),
      metadata: { name: 'unknown_field', namespace: ns },
      spec: { ...dataSource('x').spec, sortKey: ['a'] },
    });
    const out = await kubectl(['create', '--validate=strict', '-f', '-'], manifest);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(/unknown field "spec\.sortKey"/);
  });
});
