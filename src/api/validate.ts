import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { API_VERSION } from './common.js';
import { objectSchema, RESOURCE_NAME_MAX, RESOURCE_NAME_PATTERN } from './crds.js';
import { KIND_NAMES, KINDS, type KindName } from './kinds.js';
import type { Schema } from './schema-dsl.js';

/** One problem with one resource: where (file, resource, field) and what. */
export interface ValidationError {
  file?: string;
  resource: string;
  path: string;
  message: string;
}

/** `file: resource: .field: message`; a problem with a whole file (unreadable, too large) has no resource. */
export const formatValidationError = (e: ValidationError): string =>
  `${e.file ? `${e.file}: ` : ''}${e.resource ? `${e.resource}: ` : ''}${e.path ? `${e.path}: ` : ''}${e.message}`;

/**
 * Turn the CRD schema into the JSON Schema the API server effectively enforces:
 * unknown fields are errors (kubectl's default strict field validation), int-or-string
 * is a union, and list-map keys are unique.
 */
function toAjvSchema(s: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(s)) {
    if (key === 'properties') {
      out.properties = Object.fromEntries(Object.entries(value as Record<string, Schema>).map(([k, v]) => [k, toAjvSchema(v)]));
    } else if (key === 'items' || (key === 'additionalProperties' && typeof value === 'object')) {
      out[key] = toAjvSchema(value as Schema);
    } else if (key === 'x-kubernetes-int-or-string') {
      out.type = ['integer', 'string'];
    } else if (key === 'x-kubernetes-list-map-keys') {
      out.uniqueKeys = value;
    } else if (key === 'nullable' || key === 'format' || key.startsWith('x-kubernetes-')) {
      continue; // enforced elsewhere (CEL rules mirrored in checkRules) or informational
    } else {
      out[key] = value;
    }
  }
  if (s.properties && s.additionalProperties === undefined && !s['x-kubernetes-preserve-unknown-fields']) {
    out.additionalProperties = false;
  }
  return out;
}

function buildAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, strictTypes: false });
  ajv.addKeyword({
    keyword: 'uniqueKeys',
    type: 'array',
    errors: true,
    validate: function uniqueKeys(keys: string[], data: unknown[]) {
      const seen = new Set<string>();
      for (const [i, item] of data.entries()) {
        const key = JSON.stringify(keys.map((k) => (item as Record<string, unknown>)[k]));
        if (seen.has(key)) {
          (uniqueKeys as unknown as { errors: Partial<ErrorObject>[] }).errors = [
            { keyword: 'uniqueKeys', message: `duplicate ${keys.join('/')} ${key.slice(1, -1)}`, params: { index: i } },
          ];
          return false;
        }
        seen.add(key);
      }
      return true;
    },
  });
  return ajv;
}

const ajv = buildAjv();
const validators = new Map<KindName, ValidateFunction>();
function validatorFor(kind: KindName): ValidateFunction {
  let v = validators.get(kind);
  if (!v) {
    v = ajv.compile(toAjvSchema(objectSchema(KINDS[kind])));
    validators.set(kind, v);
  }
  return v;
}

const fieldPath = (instancePath: string): string =>
  instancePath
    .split('/')
    .slice(1)
    .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : `.${seg.replace(/~1/g, '/').replace(/~0/g, '~')}`))
    .join('');

function describeAjvError(e: ErrorObject): { path: string; message: string } {
  const path = fieldPath(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = (e.params as { additionalProperty: string }).additionalProperty;
      return { path: `${path}.${field}`, message: `unknown field "${field}"` };
    }
    case 'required': {
      const field = (e.params as { missingProperty: string }).missingProperty;
      return { path: `${path}.${field}`, message: 'required field is missing' };
    }
    case 'enum':
      return { path, message: `must be one of: ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}` };
    case 'uniqueKeys':
      return { path: `${path}[${(e.params as { index: number }).index}]`, message: e.message ?? 'duplicate key' };
    default:
      return { path, message: e.message ?? e.keyword };
  }
}

export interface WeirObject {
  apiVersion: string;
  kind: KindName;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  spec: Record<string, unknown>;
  [k: string]: unknown;
}

/** Is this document one of weir's kinds (by apiVersion)? Other documents in a folder are ignored. */
export const isWeirDocument = (doc: unknown): boolean =>
  typeof doc === 'object' && doc !== null && String((doc as { apiVersion?: unknown }).apiVersion).startsWith('weir.dev/');

/**
 * A document of a weir kind under another apiVersion (weir.io/v1alpha1, a typo, none at all):
 * not weir's, so it is not applied, but likely meant to be; what to tell the user, or undefined.
 */
export function misplacedWeirKind(doc: unknown): { resource: string; message: string } | undefined {
  if (typeof doc !== 'object' || doc === null || isWeirDocument(doc)) return undefined;
  const { kind, apiVersion } = doc as { kind?: unknown; apiVersion?: unknown };
  if (!KIND_NAMES.includes(kind as KindName)) return undefined;
  const given = apiVersion === undefined ? 'no apiVersion' : `apiVersion ${shown(apiVersion)}`;
  return { resource: describeResource(doc), message: `has ${given}, so weir ignores it; weir's ${String(kind)} is apiVersion ${API_VERSION}` };
}

export const describeResource = (doc: unknown): string => {
  const d = (doc ?? {}) as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  const ns = typeof d.metadata?.namespace === 'string' ? `${d.metadata.namespace}/` : '';
  return `${shown(d.kind ?? '<no kind>')} ${ns}${shown(d.metadata?.name ?? '<no name>')}`;
};

/** A value of a document as the user wrote it, for a message: a string as it is, anything else as JSON. */
const shown = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'bigint' ? v.toString() : (JSON.stringify(v) ?? typeof v));

/**
 * Validate one weir document the way the API server would (schema, defaults, CEL rules),
 * applying the schema defaults to it in place. Returns every error found, not just the first.
 */
export function validateResource(doc: unknown, file?: string): ValidationError[] {
  const resource = describeResource(doc);
  const err = (path: string, message: string): ValidationError => ({ ...(file ? { file } : {}), resource, path, message });
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return [err('', 'not an object')];
  const d = doc as Partial<WeirObject>;
  if (d.apiVersion !== API_VERSION) return [err('.apiVersion', `must be ${API_VERSION}, not ${String(d.apiVersion)}`)];
  if (!KIND_NAMES.includes(d.kind as KindName)) return [err('.kind', `must be one of: ${KIND_NAMES.join(', ')}`)];
  const kind = d.kind as KindName;

  const errors: ValidationError[] = [];
  const name = d.metadata?.name;
  if (typeof name !== 'string' || name === '') errors.push(err('.metadata.name', 'required field is missing'));
  else if (!new RegExp(RESOURCE_NAME_PATTERN).test(name) || name.length > RESOURCE_NAME_MAX)
    errors.push(
      err(
        '.metadata.name',
        `must be a DNS label matching ${RESOURCE_NAME_PATTERN}, at most ${RESOURCE_NAME_MAX} characters (it becomes a ClickHouse name with '-' read as '_'; write page-views for table page_views)`,
      ),
    );

  const validate = validatorFor(kind);
  if (!validate(doc)) {
    for (const e of validate.errors ?? []) {
      const { path, message } = describeAjvError(e);
      errors.push(err(path, message));
    }
  }
  // Cross-field rules assume a structurally valid spec, as CEL does.
  if (errors.length === 0) {
    for (const v of KINDS[kind].checkRules(d.spec)) errors.push(err(v.path, v.message));
  }
  return errors;
}
