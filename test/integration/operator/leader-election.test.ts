// Two operator replicas: only the Lease holder acts; when it is SIGKILLed the other takes over
// within seconds and reconciles what changed meanwhile.
import { CoordinationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import { dataSource, inNamespace } from '../../fixtures/builders.js';
import { createNamespace, createResource, getResource, testKubeConfig } from '../../fixtures/kube.js';
import { operatorArgs, startWeir, type WeirProcess } from '../../fixtures/processes.js';
import { waitFor } from '../../env/wait.js';

let kc: KubeConfig;
let ns: string;
const replicas: WeirProcess[] = [];

const replicaArgs = (namespace: string) => operatorArgs(namespace, '--lease-duration', '3000', '--renew-deadline', '2000', '--retry-period', '300');

beforeAll(async () => {
  kc = testKubeConfig();
  ns = await createNamespace(kc, 'leader');
  replicas.push(startWeir(replicaArgs(ns)), startWeir(replicaArgs(ns)));
  await Promise.all(replicas.map((r) => r.waitForLog('operator started', (l) => l.message === 'operator started')));
});

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.kill('SIGKILL')));
});

const leaseHolder = async () =>
  (await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'weir-operator', namespace: ns })).spec?.holderIdentity ?? '';
const identityOf = (r: WeirProcess) => r.logs.find((l) => l.message === 'operator started')?.identity as string;
const reconciledBy = async (name: string) =>
  waitFor(`${name} reconciled`, async () => {
    const ds = await getResource<DataSource>(kc, 'DataSource', ns, name);
    return ds.status?.observedGeneration === ds.metadata.generation ? ds : undefined;
  });

it('elects exactly one leader, and a standby takes over within seconds when the leader is SIGKILLed', async () => {
  const holder = await waitFor('a leader', async () => (await leaseHolder()) || undefined);
  const leader = replicas.find((r) => identityOf(r) === holder);
  const standby = replicas.find((r) => r !== leader);
  expect(leader).toBeDefined();
  expect(standby).toBeDefined();
  if (!leader || !standby) return;

  await createResource(kc, dataSource('before-failover', inNamespace(ns)));
  await reconciledBy('before-failover');
  // Its log line is written after the status it logs: wait for it rather than race its pipe.
  await leader.waitForLog('the leader wrote the status', (l) => l.message === 'status updated' && l.name === 'before-failover');
  expect(standby.logs.some((l) => l.message === 'controllers started')).toBe(false);

  const killedAt = Date.now();
  await leader.kill('SIGKILL');
  await createResource(kc, dataSource('after-failover', inNamespace(ns)));
  await standby.waitForLog('standby leads', (l) => l.message === 'became leader', 15_000);
  const takeoverMs = Date.now() - killedAt;
  await reconciledBy('after-failover');
  expect(await leaseHolder()).toBe(identityOf(standby));
  await standby.waitForLog('the new leader wrote the status', (l) => l.message === 'status updated' && l.name === 'after-failover');
  // Bounded by waitForLog's 15 s; the figure (about lease duration + retry period) is for the log.
  console.log(`leader failover took ${takeoverMs} ms (lease duration 3000 ms)`);
});
