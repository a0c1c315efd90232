import { API_VERSION, GROUP, VERSION } from './common.js';
import { CATEGORY, KIND_NAMES, KINDS, type KindInfo } from './kinds.js';
import { obj, str, type Schema } from './schema-dsl.js';

/**
 * Resource names become ClickHouse identifiers with '-' read as '_' (DataSource page-views
 * is table page_views), so they are DNS labels: no dots, which ClickHouse reads as a
 * database separator. Kubernetes itself forbids '_' in names.
 */
export const RESOURCE_NAME_PATTERN = '^[a-z]([-a-z0-9]*[a-z0-9])?$';
export const RESOURCE_NAME_MAX = 63;
const nameRule = {
  rule: `self.metadata.name.matches('${RESOURCE_NAME_PATTERN}') && size(self.metadata.name) <= ${RESOURCE_NAME_MAX}`,
  message: `metadata.name must be a DNS label (lowercase letters, digits and '-', starting with a letter, at most ${RESOURCE_NAME_MAX} characters): it becomes a ClickHouse name with '-' read as '_'`,
};

/** The full object schema of a kind, as served by the API server. */
export function objectSchema(info: KindInfo): Schema {
  return obj(
    info.description,
    {
      apiVersion: str('APIVersion defines the versioned schema of this representation of an object.'),
      kind: str('Kind is a string value representing the REST resource this object represents.'),
      metadata: { type: 'object' },
      spec: info.specSchema,
      status: info.statusSchema,
    },
    ['spec'],
    { 'x-kubernetes-validations': [nameRule] },
  );
}

export function customResourceDefinition(info: KindInfo): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${info.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'weir' } },
    spec: {
      group: GROUP,
      names: {
        kind: info.kind,
        listKind: `${info.kind}List`,
        plural: info.plural,
        singular: info.singular,
        shortNames: info.shortNames,
        categories: [CATEGORY],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: info.printerColumns,
          schema: { openAPIV3Schema: objectSchema(info) },
        },
      ],
    },
  };
}

export const allCustomResourceDefinitions = () => KIND_NAMES.map((k) => customResourceDefinition(KINDS[k]));
export { API_VERSION };
