// Small builders for structural OpenAPI v3 schemas, so every field carries a description
// and the CRDs, `kubectl explain` and the offline validator read the same source.

export interface CelRule {
  /** CEL expression, evaluated by the API server (x-kubernetes-validations). */
  rule: string;
  message: string;
  /** JSON path the API server reports the error at, relative to the schema it sits on. */
  fieldPath?: string;
}

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  additionalProperties?: Schema | boolean;
  enum?: (string | number)[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  pattern?: string;
  format?: string;
  nullable?: boolean;
  'x-kubernetes-validations'?: CelRule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
}

type Extra = Omit<Schema, 'type' | 'description'>;

export const str = (description: string, extra: Extra = {}): Schema => ({ type: 'string', description, ...extra });
export const int = (description: string, extra: Extra = {}): Schema => ({ type: 'integer', description, ...extra });
export const num = (description: string, extra: Extra = {}): Schema => ({ type: 'number', description, ...extra });
export const bool = (description: string, extra: Extra = {}): Schema => ({ type: 'boolean', description, ...extra });
export const intOrString = (description: string, extra: Extra = {}): Schema => ({
  description,
  'x-kubernetes-int-or-string': true,
  ...extra,
});
export const oneOf = (description: string, values: string[], extra: Extra = {}): Schema => str(description, { enum: values, ...extra });

export const arr = (description: string, items: Schema, extra: Extra = {}): Schema => ({
  type: 'array',
  description,
  items,
  ...extra,
});

/** A list of objects keyed by `name`: the API server rejects duplicates and merges by key. */
export const namedList = (description: string, items: Schema, extra: Extra = {}): Schema =>
  arr(description, items, { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], ...extra });

export const obj = (description: string, properties: Record<string, Schema>, required: string[] = [], extra: Extra = {}): Schema => ({
  type: 'object',
  description,
  properties,
  ...(required.length > 0 ? { required } : {}),
  ...extra,
});

export const stringMap = (description: string, extra: Extra = {}): Schema => ({
  type: 'object',
  description,
  additionalProperties: { type: 'string' },
  ...extra,
});

export const IDENTIFIER = '^[A-Za-z_][A-Za-z0-9_]*$';
