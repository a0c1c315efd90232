import { GROUP, VERSION } from './common.js';
import { dataSourceRules, dataSourceSpecSchema, dataSourceStatusSchema } from './datasource.js';
import { endpointAuthRules, endpointParamRules, endpointSpecSchema, endpointStatusSchema, type EndpointSpec } from './endpoint.js';
import { pipeRules, pipeSpecSchema, pipeStatusSchema } from './pipe.js';
import type { CrossFieldRule } from './rules.js';
import type { Schema } from './schema-dsl.js';

export type KindName = 'DataSource' | 'Pipe' | 'Endpoint';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  priority?: number;
}

/** A cross-field violation found offline: the field path (from the resource root) and the rule's message. */
export interface RuleViolation {
  path: string;
  message: string;
}

export interface KindInfo {
  kind: KindName;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  specSchema: Schema;
  statusSchema: Schema;
  printerColumns: PrinterColumn[];
  /** Cross-field rules evaluated offline, mirroring the CEL rules in the schema. */
  checkRules(spec: unknown): RuleViolation[];
}

const readyColumn: PrinterColumn = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: 'Whether ClickHouse and the owned workloads match the spec.',
};
const reasonColumn: PrinterColumn = {
  name: 'Reason',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  description: 'Why the resource is or is not ready.',
  priority: 1,
};
const ageColumn: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'Time since creation.',
};
const phaseColumn: PrinterColumn = {
  name: 'Phase',
  type: 'string',
  jsonPath: '.status.phase',
  description: 'Summary of the current state.',
};

function checkAll<T>(rules: CrossFieldRule<T>[], self: T, at: string): RuleViolation[] {
  return rules.filter((r) => !r.holds(self)).map((r) => ({ path: at + (r.cel.fieldPath ?? ''), message: r.cel.message }));
}

export const KINDS: Record<KindName, KindInfo> = {
  DataSource: {
    kind: 'DataSource',
    plural: 'datasources',
    singular: 'datasource',
    // Not 'ds' and 'ep': kubectl resolves those to DaemonSets and core Endpoints, and warns on every use.
    shortNames: ['wds'],
    description:
      'A ClickHouse table managed by weir. Compatible changes apply in place; incompatible ones run a versioned copy-and-swap migration that loses and doubles no row.',
    specSchema: dataSourceSpecSchema,
    statusSchema: dataSourceStatusSchema,
    printerColumns: [
      { name: 'Version', type: 'integer', jsonPath: '.status.version', description: 'Table version (increments per swap).' },
      phaseColumn,
      { name: 'Rows', type: 'integer', jsonPath: '.status.rows', description: 'Rows in the live table.' },
      { name: 'Progress', type: 'number', jsonPath: '.status.migration.progress.percent', description: 'Percent of the running copy-and-swap copied.' },
      { name: 'Lag', type: 'integer', jsonPath: '.status.ingestion.lag', description: 'Kafka consumer lag (sum over partitions).' },
      readyColumn,
      reasonColumn,
      ageColumn,
    ],
    checkRules: (spec) => checkAll(dataSourceRules, spec as never, '.spec'),
  },
  Pipe: {
    kind: 'Pipe',
    plural: 'pipes',
    singular: 'pipe',
    shortNames: ['pipe'],
    description: 'A chain of named SQL nodes over DataSources, optionally materialized into a DataSource through a ClickHouse materialized view.',
    specSchema: pipeSpecSchema,
    statusSchema: pipeStatusSchema,
    printerColumns: [
      { name: 'Into', type: 'string', jsonPath: '.spec.materialize.into', description: 'DataSource it materializes into.' },
      phaseColumn,
      readyColumn,
      reasonColumn,
      ageColumn,
    ],
    checkRules: (spec) => checkAll(pipeRules, spec as never, '.spec'),
  },
  Endpoint: {
    kind: 'Endpoint',
    plural: 'endpoints',
    singular: 'endpoint',
    shortNames: ['wep'],
    description: 'A Pipe node published as an HTTP API, served by a query Deployment that weir runs and scales.',
    specSchema: endpointSpecSchema,
    statusSchema: endpointStatusSchema,
    printerColumns: [
      { name: 'URL', type: 'string', jsonPath: '.status.url', description: 'In-cluster URL.' },
      { name: 'Replicas', type: 'string', jsonPath: '.status.replicasSummary', description: 'Ready/desired query pods.' },
      phaseColumn,
      readyColumn,
      reasonColumn,
      ageColumn,
    ],
    checkRules: (spec) => [
      ...((spec as EndpointSpec).params ?? []).flatMap((p, i) => checkAll(endpointParamRules, p, `.spec.params[${i}]`)),
      ...((spec as EndpointSpec).auth ? checkAll(endpointAuthRules, (spec as EndpointSpec).auth as never, '.spec.auth') : []),
    ],
  },
};

export const KIND_NAMES = Object.keys(KINDS) as KindName[];
export const CATEGORY = 'weir';
export { GROUP, VERSION };
