import { describe, expect, it } from 'vitest';
import { LAST_APPLIED_ANNOTATION, stripForCache } from '../../../src/operator/informer.js';
import { SeenVerdicts } from '../../../src/operator/verdicts.js';

const applied = () => ({
  apiVersion: 'weir.dev/v1alpha1',
  kind: 'DataSource',
  metadata: {
    name: 'events',
    namespace: 'web',
    resourceVersion: '7',
    finalizers: ['weir.dev/cleanup'],
    labels: { team: 'a' },
    annotations: { [LAST_APPLIED_ANNOTATION]: '{"spec":{}}', 'weir.dev/approve': 'v2' },
    managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': {} } }],
  },
  spec: { columns: [{ name: 'a', type: 'String' }] },
  status: { phase: 'Ready' },
});

describe('stripForCache', () => {
  it('drops managedFields and the last-applied annotation, and keeps everything reconciles read', () => {
    const obj = applied();
    const stripped = stripForCache(obj);
    expect(stripped).toBe(obj); // in place: the cache keeps the one parsed copy
    expect(stripped).toEqual({
      apiVersion: 'weir.dev/v1alpha1',
      kind: 'DataSource',
      metadata: {
        name: 'events',
        namespace: 'web',
        resourceVersion: '7',
        finalizers: ['weir.dev/cleanup'],
        labels: { team: 'a' },
        annotations: { 'weir.dev/approve': 'v2' },
      },
      spec: { columns: [{ name: 'a', type: 'String' }] },
      status: { phase: 'Ready' },
    });
  });

  it('removes annotations left empty, and leaves an object without metadata alone', () => {
    const obj = applied();
    obj.metadata.annotations = { [LAST_APPLIED_ANNOTATION]: '{}' } as never;
    expect(stripForCache(obj).metadata).not.toHaveProperty('annotations');
    expect(stripForCache({ kind: 'X' })).toEqual({ kind: 'X' });
  });
});

describe('SeenVerdicts', () => {
  const ds = (generation: number, version: number | undefined, ready: string, extra: Record<string, unknown> = {}) => ({
    metadata: { name: 'events', namespace: 'web', generation },
    status: { version, phase: 'Ready', conditions: [{ type: 'Ready', status: ready, reason: 'UpToDate' }], ...extra },
  });

  it('tells a change dependants read from a status patch they do not', () => {
    const seen = new SeenVerdicts();
    expect(seen.changed(ds(1, undefined, 'False'))).toBe(true); // new
    expect(seen.changed(ds(1, undefined, 'False', { rows: 10 }))).toBe(false); // rows, progress: not read downstream
    expect(seen.changed(ds(1, 1, 'False'))).toBe(true); // version
    expect(seen.changed(ds(1, 1, 'True'))).toBe(true); // Ready
    expect(seen.changed(ds(2, 1, 'True'))).toBe(true); // spec
    expect(seen.changed(ds(2, 1, 'True'))).toBe(false);
  });

  it('a deletion is always a change, and forgets the object', () => {
    const seen = new SeenVerdicts();
    seen.changed(ds(1, 1, 'True'));
    expect(seen.changed(ds(1, 1, 'True'), true)).toBe(true);
    expect(seen.changed(ds(1, 1, 'True'))).toBe(true); // created again
  });
});
