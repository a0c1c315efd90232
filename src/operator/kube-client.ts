// The operator's API client limits (client-go's QPS and burst) and its connection reuse.
import type { Agent } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import { sleep } from '../runtime/backoff.js';
import { TokenBucket } from '../runtime/token-bucket.js';

export interface KubeClientLimits {
  /** Requests per second to the API server, after the burst (≤ 0: no limit). Watches are not counted. */
  qps: number;
  /** Requests that may go at once before qps applies. */
  burst: number;
}

/** Higher than controller-runtime's 20/30: a first sync of 10,000 resources makes about 3 requests each. */
export const DEFAULT_KUBE_CLIENT_LIMITS: KubeClientLimits = { qps: 100, burst: 200 };

/** The agent options that make one TLS identity: requests that differ in none of them share an agent. */
const AGENT_IDENTITY = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'servername', 'rejectUnauthorized'];
const identity = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('base64') : typeof v === 'string' || typeof v === 'boolean' ? String(v) : '');

type AgentFactory = (cluster: unknown, options: Record<string, unknown>) => Agent;

/**
 * Every API client made from `kc` after this waits for a token before each request, and all
 * requests share one keep-alive agent per TLS identity: client-node makes a new agent (a new TLS
 * handshake) per request otherwise.
 */
export function limitKubeClient(
  kc: KubeConfig,
  limits: KubeClientLimits,
  hooks: { onRequest?: (method: string, url: string) => void; onThrottled?: (waitedMs: number) => void } = {},
): void {
  const bucket = new TokenBucket(limits.qps, limits.burst);
  const authenticate = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context) => {
    hooks.onRequest?.(String(context.getHttpMethod()), context.getUrl());
    const wait = bucket.reserve();
    if (wait > 0) {
      hooks.onThrottled?.(wait);
      await sleep(wait);
    }
    return authenticate(context);
  };
  const target = kc as unknown as { createAgent: AgentFactory };
  const create = target.createAgent.bind(kc);
  const agents = new Map<string, Agent>();
  target.createAgent = (cluster, options) => {
    const key = JSON.stringify([(cluster as { server?: string } | null)?.server, ...AGENT_IDENTITY.map((k) => identity(options[k]))]);
    let agent = agents.get(key);
    if (!agent) {
      agent = create(cluster, { ...options, keepAlive: true });
      agents.set(key, agent);
    }
    return agent;
  };
}
