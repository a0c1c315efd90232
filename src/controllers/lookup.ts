// A ResourceLookup over a fixed list of resources: the files of a project folder, read the way
// the operator's informer caches are (`weir plan` decides with it as the operator would).
import type { DataSource } from '../api/datasource.js';
import type { Endpoint } from '../api/endpoint.js';
import type { Pipe } from '../api/pipe.js';
import type { ProjectResource } from '../plan/graph.js';
import type { ResourceLookup } from './types.js';

export function listLookup(resources: readonly ProjectResource[]): ResourceLookup {
  const find =
    <T extends ProjectResource>(kind: T['kind']) =>
    (namespace: string, name: string): T | undefined =>
      resources.find((r) => r.kind === kind && (r.metadata.namespace ?? 'default') === namespace && r.metadata.name === name) as T | undefined;
  return {
    dataSource: find<DataSource>('DataSource'),
    dataSourcesIn: (namespace) => resources.filter((r): r is DataSource => r.kind === 'DataSource' && (r.metadata.namespace ?? 'default') === namespace),
    pipe: find<Pipe>('Pipe'),
    endpoint: find<Endpoint>('Endpoint'),
  };
}
