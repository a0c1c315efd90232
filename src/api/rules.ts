import type { CelRule } from './schema-dsl.js';

/**
 * A cross-field rule, written once: the CEL form is enforced by the API server at apply
 * time, the `holds` form by `weir validate` and `weir dev` offline. Both must agree; the
 * unit tests run each rule's cases through `holds`, the integration tests through CEL.
 */
export interface CrossFieldRule<T> {
  cel: CelRule;
  holds(self: T): boolean;
}

export const celRules = <T>(rules: CrossFieldRule<T>[]): CelRule[] => rules.map((r) => r.cel);

/** Field path (`.a.b`) of a CEL rule as the API server reports it, relative to its schema. */
export const rulePath = (rule: CelRule): string => rule.fieldPath ?? '';
