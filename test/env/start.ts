// Start the test control plane by hand: `npx tsx test/env/start.ts`, then use the printed exports.
// Runs until Ctrl-C (or SIGTERM), then shuts etcd and kube-apiserver down and removes the temp dir.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestCluster } from './cluster.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const started = Date.now();
const cluster = await startTestCluster({
  crdDir: join(repoRoot, 'crds'),
  logDir: process.env.WEIR_TEST_LOG_DIR || undefined,
});

console.log(`weir test cluster ready in ${((Date.now() - started) / 1000).toFixed(1)}s at ${cluster.server}`);
console.log(`export KUBECONFIG=${cluster.kubeconfigPath}`);
console.log(`export PATH=${cluster.binDir}:$PATH   # kubectl: ${join(cluster.binDir, 'kubectl')}`);
console.log('Ctrl-C to stop.');

let stopping = false;
const shutdown = (signal: NodeJS.Signals): void => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping...`);
  cluster.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
process.on('SIGHUP', shutdown);
// Signal handlers don't keep node alive by themselves; this interval does, until shutdown exits.
setInterval(() => {}, 1 << 30);
