// vitest globalSetup for the 'integration' project: one real control plane shared by all test files.
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startTestCluster } from './cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of the admin kubeconfig of the test cluster (read with `inject('kubeconfig')`). */
    kubeconfig: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await startTestCluster({
    crdDir: join(project.config.root, 'crds'),
    logDir: process.env.WEIR_TEST_LOG_DIR || undefined,
  });
  // Workers are spawned after globalSetup and inherit this process's env, so plain env vars reach
  // tests and any child process they run (kubectl, the operator binary) without extra plumbing.
  process.env.KUBECONFIG = cluster.kubeconfigPath;
  process.env.WEIR_TEST_KUBECONFIG = cluster.kubeconfigPath;
  process.env.WEIR_TEST_BIN = cluster.binDir;
  project.provide('kubeconfig', cluster.kubeconfigPath);
  return () => cluster.stop();
}
