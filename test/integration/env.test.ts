// Proves the integration environment: a real kube-apiserver (from test/env/global-setup.ts) reachable
// through client-node and the kubectl built by test/env/setup.sh, with env vars reaching the workers.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig, VersionApi, type V1Namespace } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const run = promisify(execFile);

describe('integration test environment', () => {
  const kubeconfigPath = inject('kubeconfig');
  const kc = new KubeConfig();
  const ns = `weir-env-${randomBytes(4).toString('hex')}`;
  let core: CoreV1Api;

  beforeAll(async () => {
    kc.loadFromFile(kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: ns, labels: { 'weir.dev/test': 'env' } } } });
  });

  afterAll(async () => {
    // Without a controller-manager the namespace stays Terminating; deleting still keeps listings tidy.
    await core?.deleteNamespace({ name: ns });
  });

  it('exposes the cluster to workers through env vars and inject()', () => {
    expect(process.env.WEIR_TEST_KUBECONFIG).toBe(kubeconfigPath);
    expect(process.env.KUBECONFIG).toBe(kubeconfigPath);
    expect(process.env.WEIR_TEST_BIN).toMatch(/\/bin$/);
    expect(kc.getCurrentContext()).toBe('weir-test');
    expect(kc.getCurrentCluster()?.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('serves Kubernetes v1.34 over verified TLS', async () => {
    const version = await kc.makeApiClient(VersionApi).getCode();
    expect(version.major).toBe('1');
    expect(version.minor).toBe('34');
    expect(version.gitVersion).toMatch(/^v1\.34\.\d+/);
  });

  it('creates and reads a ConfigMap', async () => {
    const created = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'probe' }, data: { greeting: 'hello', answer: '42' } },
    });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);

    const read = await core.readNamespacedConfigMap({ name: 'probe', namespace: ns });
    expect(read.metadata?.namespace).toBe(ns);
    expect(read.metadata?.uid).toBe(created.metadata?.uid);
    expect(read.data).toEqual({ greeting: 'hello', answer: '42' });
  });

  it('works with the kubectl built by setup.sh', async () => {
    const kubectl = join(process.env.WEIR_TEST_BIN ?? '', 'kubectl');
    const { stdout } = await run(kubectl, ['--kubeconfig', kubeconfigPath, 'get', 'ns', ns, '-o', 'json']);
    const got = JSON.parse(stdout) as V1Namespace;
    expect(got.kind).toBe('Namespace');
    expect(got.metadata?.name).toBe(ns);
    expect(got.metadata?.labels?.['weir.dev/test']).toBe('env');
    expect(got.status?.phase).toBe('Active');

    const { stdout: whoami } = await run(kubectl, ['--kubeconfig', kubeconfigPath, 'auth', 'whoami', '-o', 'json']);
    const review = JSON.parse(whoami) as { status: { userInfo: { username: string; groups: string[] } } };
    expect(review.status.userInfo.username).toBe('weir-admin');
    expect(review.status.userInfo.groups).toContain('system:masters');
  });

  it('enforces RBAC (authorization is not AlwaysAllow)', async () => {
    const kubectl = join(process.env.WEIR_TEST_BIN ?? '', 'kubectl');
    // kubectl exits 1 when the answer is "no"; the answer itself is on stdout either way.
    const canI = (...extra: string[]) =>
      run(kubectl, ['--kubeconfig', kubeconfigPath, 'auth', 'can-i', 'list', 'secrets', '-n', ns, ...extra]).then(
        (r) => r.stdout.trim(),
        (err: { stdout?: string }) => err.stdout?.trim(),
      );
    expect(await canI()).toBe('yes');
    expect(await canI('--as', 'system:serviceaccount:default:nobody')).toBe('no');
  });
});
