// The query Deployment of an Endpoint with auth: the static tokens' Secret and the JWT signing
// keys' Secret are each mounted under the tokens directory weir serve reads, once when they are one.
import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../../src/api/endpoint.js';
import { endpointObjects, TOKENS_DIR } from '../../../src/controllers/endpoint.js';
import type { WorkerSettings } from '../../../src/controllers/workloads.js';
import { compileEndpoint, type CompiledEndpoint } from '../../../src/plan/endpoint/compile.js';
import { endpoint, node, pipe, withNodes, withSpec } from '../../fixtures/builders.js';

const settings: WorkerSettings = { image: 'weir:1', clickhouseUrl: 'http://ch:8123' };
const p = pipe('top-pages', withNodes(node('main', 'SELECT {tenant:String} AS t')));
const jwt = { secretRef: { name: 'signing' }, issuer: 'https://app.example', audience: 'weir' };

function objectsOf(auth: Endpoint['spec']['auth']) {
  const ep = endpoint('top-pages', 'top-pages', withSpec<Endpoint>(auth ? { auth } : {}));
  const c = compileEndpoint(ep, p, 'web') as CompiledEndpoint;
  const pod = endpointObjects(ep, c, settings).deployment.spec?.template.spec;
  return {
    args: pod?.containers[0]?.args ?? [],
    mounts: (pod?.containers[0]?.volumeMounts ?? []).filter((m) => m.mountPath.startsWith(TOKENS_DIR)).map((m) => [m.name, m.mountPath]),
    secrets: (pod?.volumes ?? []).flatMap((v) => (v.secret ? [[v.name, v.secret.secretName, v.secret.optional]] : [])),
  };
}

describe('endpointObjects: auth Secrets', () => {
  it('mounts the jwt Secret under the tokens directory, next to the static tokens', () => {
    const both = objectsOf({ tokensSecretRef: { name: 'readers' }, jwt });
    expect(both.args).toEqual(expect.arrayContaining(['--tokens-dir', TOKENS_DIR]));
    expect(both.mounts).toEqual([
      ['secret-0', `${TOKENS_DIR}/readers`],
      ['secret-1', `${TOKENS_DIR}/signing`],
    ]);
    expect(both.secrets).toEqual([
      ['secret-0', 'readers', true],
      ['secret-1', 'signing', true],
    ]);
  });

  it('mounts a Secret used for both once, and only the jwt Secret when there are no static tokens', () => {
    expect(objectsOf({ tokensSecretRef: { name: 'signing' }, jwt }).mounts).toEqual([['secret-0', `${TOKENS_DIR}/signing`]]);
    const only = objectsOf({ jwt });
    expect(only.mounts).toEqual([['secret-0', `${TOKENS_DIR}/signing`]]);
    expect(only.args).toContain('--tokens-dir');
  });

  it('mounts nothing and passes no --tokens-dir without auth', () => {
    const open = objectsOf(undefined);
    expect(open.mounts).toEqual([]);
    expect(open.args).not.toContain('--tokens-dir');
  });
});
