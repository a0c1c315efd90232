import { conditionsSchema, observedGenerationSchema, type CommonStatus, type Resource } from './common.js';
import { celRules, type CrossFieldRule } from './rules.js';
import { arr, IDENTIFIER, namedList, obj, oneOf, str, type Schema } from './schema-dsl.js';

export interface PipeNode {
  name: string;
  sql: string;
  description?: string;
}

export interface Materialize {
  node?: string;
  into: string;
  backfill?: 'Full' | 'None';
}

export interface PipeSpec {
  description?: string;
  nodes: PipeNode[];
  materialize?: Materialize;
}

export interface PipeStatus extends CommonStatus {
  /** DataSources and Pipes this Pipe reads, derived from its SQL. */
  reads?: string[];
  view?: string;
  specHash?: string;
}

export type Pipe = Resource<PipeSpec, PipeStatus>;

export const pipeRules: CrossFieldRule<PipeSpec>[] = [
  {
    cel: {
      rule: '!has(self.materialize) || !has(self.materialize.node) || self.nodes.exists(n, n.name == self.materialize.node)',
      message: 'materialize.node must name one of spec.nodes',
      fieldPath: '.materialize.node',
    },
    holds: (s) => s.materialize?.node === undefined || s.nodes.some((n) => n.name === s.materialize?.node),
  },
];

export const pipeSpecSchema: Schema = obj(
  'A chain of named SQL nodes; each node can read the earlier ones by name and any DataSource. Optionally materialized into a DataSource.',
  {
    description: str('What the Pipe computes, for people.', { maxLength: 4096 }),
    nodes: namedList(
      'SQL nodes, in order. A node reads earlier nodes by name, as if they were tables.',
      obj(
        'One SQL node.',
        {
          name: str('Node name, unique in the Pipe.', { pattern: IDENTIFIER, maxLength: 128 }),
          sql: str('A SELECT. Endpoint parameters are written {name:Type}.', { minLength: 1, maxLength: 262144 }),
          description: str('What the node does, for people.', { maxLength: 4096 }),
        },
        ['name', 'sql'],
      ),
      { minItems: 1, maxItems: 64 },
    ),
    materialize: obj(
      'Materialize a node into a DataSource with a ClickHouse materialized view (TO the DataSource table).',
      {
        node: str('Node to materialize; default: the last node.', { pattern: IDENTIFIER, maxLength: 128 }),
        into: str('Target DataSource name, in the same namespace.', { minLength: 1, maxLength: 253 }),
        backfill: oneOf(
          'Full: existing source rows are backfilled exactly once, and a query change recomputes the target through a copy-and-swap. None: only new rows; a query change applies to future rows only.',
          ['Full', 'None'],
          { default: 'Full' },
        ),
      },
      ['into'],
    ),
  },
  ['nodes'],
  { 'x-kubernetes-validations': celRules(pipeRules) },
);

export const pipeStatusSchema: Schema = obj('Observed state, written by the operator.', {
  observedGeneration: observedGenerationSchema,
  phase: oneOf('Summary for people: Pending, Ready, Failed, Deleting.', ['Pending', 'Ready', 'Failed', 'Deleting']),
  conditions: conditionsSchema,
  reads: arr('DataSources and Pipes this Pipe reads, derived from its SQL.', str('A resource name.'), {
    'x-kubernetes-list-type': 'set',
  }),
  view: str('The materialized view, database.name, when materialized.'),
  specHash: str('Hash of the spec last applied.'),
});
