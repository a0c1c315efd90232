// spec.auth as weir validate (and the CRD's schema and CEL rule) takes it: static tokens, signed
// tokens, or both; never neither; only the allow-listed algorithms.
import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../../src/api/endpoint.js';
import { endpointAuthRules } from '../../../src/api/endpoint.js';
import { validateResource } from '../../../src/api/validate.js';
import { endpoint, withSpec } from '../../fixtures/builders.js';

const errorsOf = (auth: unknown) =>
  validateResource(endpoint('top-pages', 'top-pages', withSpec<Endpoint>({ auth: auth as NonNullable<Endpoint['spec']['auth']> }))).map(
    (e) => `${e.path}: ${e.message}`,
  );
const jwt = { secretRef: { name: 'signing' }, issuer: 'https://app.example', audience: 'weir' };

describe('spec.auth', () => {
  it('takes static tokens, signed tokens, or both', () => {
    expect(errorsOf({ tokensSecretRef: { name: 'readers' } })).toEqual([]);
    expect(errorsOf({ jwt })).toEqual([]);
    expect(errorsOf({ tokensSecretRef: { name: 'readers' }, jwt: { ...jwt, algorithms: ['ES256'], clockSkewSeconds: 0 } })).toEqual([]);
  });

  it('refuses neither, with the field and what to set', () => {
    expect(errorsOf({})).toEqual(['.spec.auth: auth needs tokensSecretRef (static tokens), jwt (signed tokens), or both']);
    const [rule] = endpointAuthRules;
    expect(rule?.cel.rule).toBe('has(self.tokensSecretRef) || has(self.jwt)');
  });

  it('refuses a jwt block without its Secret, issuer or audience, an algorithm off the list, or a long skew', () => {
    expect(errorsOf({ jwt: { secretRef: { name: 'signing' } } }).join('\n')).toMatch(/issuer/);
    expect(errorsOf({ jwt: { ...jwt, audience: undefined } }).join('\n')).toMatch(/audience/);
    expect(errorsOf({ jwt: { ...jwt, algorithms: ['none'] } }).join('\n')).toMatch(/algorithms/);
    expect(errorsOf({ jwt: { ...jwt, algorithms: ['HS512'] } }).join('\n')).toMatch(/algorithms/);
    expect(errorsOf({ jwt: { ...jwt, clockSkewSeconds: 3600 } }).join('\n')).toMatch(/clockSkewSeconds/);
  });
});
