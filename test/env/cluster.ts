// A real control plane for integration tests: etcd + kube-apiserver on loopback, envtest-style,
// built from source by test/env/setup.sh (no binary downloads). No controller-manager or scheduler
// runs, so tests see API semantics only (no pods scheduled, no namespace GC, no SA token controller).
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { waitFor } from './wait.js';
import { freePorts, installExitHook, livePaths, logTail, runSetupScript, startProcess, stopProcess, type Proc } from './processes.js';

export interface TestCluster {
  kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** Bearer token of `weir-admin` (group system:masters, i.e. cluster-admin through RBAC bootstrap). */
  token: string;
  /** CA bundle that verifies the apiserver's serving certificate. */
  caFile: string;
  /** Directory holding etcd, kube-apiserver and kubectl. */
  binDir: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Apply every CustomResourceDefinition in `*.yaml`/`*.yml` files of this directory (skipped if missing). */
  crdDir?: string;
  /** Keep etcd.log and kube-apiserver.log here (survives stop()); default: the cluster's temp dir. */
  logDir?: string | undefined;
}

const here = dirname(fileURLToPath(import.meta.url));
const SETUP_SCRIPT = join(here, 'setup.sh');
const ADMIN_USER = 'weir-admin';
const CONTEXT = 'weir-test';
const STOP_GRACE_MS = 10_000;
const ETCD_READY_MS = 30_000;
const APISERVER_READY_MS = 90_000;
const CRD_READY_MS = 30_000;
/** Port collisions (a free port taken between probe and bind) are retried this many times. */
const START_ATTEMPTS = 3;

/** Runs setup.sh and checks it produced the three binaries; returns the bin dir. */
async function ensureBinaries(): Promise<string> {
  const binDir = await runSetupScript(SETUP_SCRIPT);
  for (const bin of ['etcd', 'kube-apiserver', 'kubectl']) {
    if (!existsSync(join(binDir, bin))) throw new Error(`${SETUP_SCRIPT} did not produce ${join(binDir, bin)}`);
  }
  return binDir;
}

function failure(message: string, procs: Proc[], keptLogs: boolean, cause?: unknown): Error {
  const tails = procs.map((p) => `--- ${p.name} (${p.exitReason ?? 'running'}), ${p.logFile}, last lines:\n${logTail(p.logFile)}`);
  const hint = keptLogs ? [] : ['(the temp dir is removed; pass logDir / set WEIR_TEST_LOG_DIR to keep full logs)'];
  return new Error([message, ...tails, ...hint].join('\n'), { cause });
}

function abortIfExited(proc: Proc): () => void {
  return () => {
    if (proc.exitReason !== undefined) throw new Error(`${proc.name} ${proc.exitReason}`);
  };
}

// ---- helpers ----

/** GET over TLS verified against `ca`; resolves with status and body, never rejects on HTTP status. */
function httpsGet(url: string, ca: Buffer, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: { authorization: `Bearer ${token}` }, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

function isPortClash(procs: Proc[]): boolean {
  return procs.some((p) => /address already in use/i.test(logTail(p.logFile, 200)));
}

// ---- the cluster ----

/** A free port was grabbed by someone else between probing and binding; worth another attempt. */
class PortClash extends Error {}

export async function startTestCluster(opts: StartOptions = {}): Promise<TestCluster> {
  installExitHook();
  const binDir = await ensureBinaries();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binDir, opts);
    } catch (err) {
      if (!(err instanceof PortClash) || attempt >= START_ATTEMPTS) throw err;
    }
  }
}

async function startOnce(binDir: string, opts: StartOptions): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'weir-test-cluster-'));
  livePaths.add(dir);
  const logDir = opts.logDir ?? dir;
  await mkdir(logDir, { recursive: true });
  const procs: Proc[] = [];

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      // apiserver first so it doesn't spend its shutdown retrying a vanished etcd.
      for (const proc of [...procs].reverse()) await stopProcess(proc, STOP_GRACE_MS);
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      livePaths.delete(dir);
    })());

  try {
    const [etcdClientPort, etcdPeerPort, apiPort] = (await freePorts(3)) as [number, number, number];
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;

    // etcd: single member; the cluster lives for one test run, so durability is traded for speed.
    const etcd = startProcess(
      'etcd',
      join(binDir, 'etcd'),
      [
        '--name=weir-test',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=weir-test=${peerUrl}`,
        '--unsafe-no-fsync=true',
        '--quota-backend-bytes=4294967296', // 4 GiB: stay clear of the 2 GiB default alarm in long runs
        '--log-level=warn',
      ],
      join(logDir, 'etcd.log'),
    );
    procs.push(etcd);
    await waitFor(
      'etcd /health',
      async () => {
        const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2_000) });
        const body = (await res.json()) as { health?: string };
        return body.health === 'true' ? true : undefined;
      },
      { timeoutMs: ETCD_READY_MS, intervalMs: 50, abortIf: abortIfExited(etcd) },
    );

    // Service-account signing keys: the apiserver refuses to start without them.
    const { publicKey, privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const saPub = join(dir, 'sa.pub');
    const saKey = join(dir, 'sa.key');
    await writeFile(saPub, publicKey);
    await writeFile(saKey, privateKey, { mode: 0o600 });

    // Static token auth: token,user,uid,"groups". system:masters is bound to cluster-admin by RBAC bootstrap.
    const token = randomBytes(24).toString('hex');
    const tokenFile = join(dir, 'tokens.csv');
    await writeFile(tokenFile, `${token},${ADMIN_USER},${ADMIN_USER},"system:masters"\n`, { mode: 0o600 });

    // No --tls-cert-file: the apiserver generates a throwaway CA plus a serving cert for the bind
    // address into --cert-dir and writes both into apiserver.crt, so that file is a usable CA bundle.
    const certDir = join(dir, 'certs');
    const caFile = join(certDir, 'apiserver.crt');
    const apiserver = startProcess(
      'kube-apiserver',
      join(binDir, 'kube-apiserver'),
      [
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--cert-dir=${certDir}`,
        `--etcd-servers=${etcdUrl}`,
        `--token-auth-file=${tokenFile}`,
        `--service-account-key-file=${saPub}`,
        `--service-account-signing-key-file=${saKey}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        '--authorization-mode=RBAC',
        '--service-cluster-ip-range=10.0.0.0/24',
        // Nothing creates default ServiceAccounts (no controller-manager), so pods would be rejected.
        '--disable-admission-plugins=ServiceAccount',
        '--allow-privileged=true',
      ],
      join(logDir, 'kube-apiserver.log'),
    );
    procs.push(apiserver);

    const server = `https://127.0.0.1:${apiPort}`;
    // /readyz includes etcd, RBAC bootstrap roles and the CRD informers, i.e. everything tests rely on.
    await waitFor(
      'kube-apiserver /readyz',
      async () => {
        if (!existsSync(caFile)) return undefined;
        const res = await httpsGet(`${server}/readyz`, await readFile(caFile), token);
        if (res.status !== 200 || res.body.trim() !== 'ok') throw new Error(`/readyz ${res.status}: ${res.body.slice(-500)}`);
        return true;
      },
      { timeoutMs: APISERVER_READY_MS, intervalMs: 100, abortIf: abortIfExited(apiserver) },
    );

    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeconfigYaml(server, caFile, token), { mode: 0o600 });

    if (opts.crdDir) await installCrds(kubeconfigPath, opts.crdDir, binDir);

    return { kubeconfigPath, server, token, caFile, binDir, stop };
  } catch (err) {
    const error = failure(`weir test cluster failed to start: ${err instanceof Error ? err.message : String(err)}`, procs, opts.logDir !== undefined, err);
    const clash = isPortClash(procs);
    await stop(); // logs in the temp dir go with it; the error carries their tails
    throw clash ? new PortClash(error.message, { cause: err }) : error;
  }
}

function kubeconfigYaml(server: string, caFile: string, token: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: CONTEXT, cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: ADMIN_USER, user: { token } }],
    contexts: [{ name: CONTEXT, context: { cluster: CONTEXT, user: ADMIN_USER, namespace: 'default' } }],
    'current-context': CONTEXT,
  });
}

async function installCrds(kubeconfigPath: string, crdDir: string, binDir: string): Promise<void> {
  if (!existsSync(crdDir)) return;
  const files = (await readdir(crdDir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  const crds: V1CustomResourceDefinition[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(await readFile(join(crdDir, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${join(crdDir, file)}: ${doc.errors[0]?.message}`);
      const obj = doc.toJS() as V1CustomResourceDefinition | null;
      if (obj?.kind === 'CustomResourceDefinition') crds.push(obj);
    }
  }
  if (crds.length === 0) return;

  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const api = kc.makeApiClient(ApiextensionsV1Api);
  // kubectl, not client-node: client-node's typed serializer drops schema keys it spells
  // differently (default, enum, x-kubernetes-validations), silently disabling validation.
  await runKubectl(binDir, kubeconfigPath, ['apply', '--server-side', '--field-manager=weir-test', '-f', crdDir]);
  await Promise.all(
    crds.map((crd) => {
      const name = crd.metadata?.name ?? '';
      return waitFor(
        `CRD ${name} Established`,
        async () => {
          const current = await api.readCustomResourceDefinition({ name });
          const established = current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
          return established ? true : undefined;
        },
        { timeoutMs: CRD_READY_MS },
      );
    }),
  );
}

function runKubectl(binDir: string, kubeconfigPath: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(binDir, 'kubectl'), ['--kubeconfig', kubeconfigPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`kubectl ${args.join(' ')} exited ${code}: ${stderr}`))));
  });
}
