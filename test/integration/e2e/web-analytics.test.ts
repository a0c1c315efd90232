// End to end: the example project through two operators (leader election) in a real API server,
// a real Kafka broker and weir's ClickHouse server (its own process, over HTTP). The ingestion
// and endpoint pods are started from the Deployments the operator wrote, as a kubelet would
// (test/fixtures/kubelet.ts), and a small "kubelet" loop reports their readiness back in the
// Deployment status. While events flow (malformed ones included) and a client calls the
// endpoint in a loop, page_views's sorting key changes; during the migration the leading
// operator is SIGKILLed once and an ingester once. Then everything is counted.
//
//   npm run e2e     (builds, then runs this file; about two minutes)
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Condition } from '../../../src/api/common.js';
import type { DataSource } from '../../../src/api/datasource.js';
import type { Endpoint } from '../../../src/api/endpoint.js';
import { groupIdOf } from '../../../src/api/names.js';
import { mergePatch } from '../../../src/operator/events.js';
import { waitFor } from '../../env/wait.js';
import { count, rollupMismatches } from '../../fixtures/clickhouse.js';
import { caughtUp, createTopic, kafkaClient, startClickHouseProcess, type ClickHouseProcess } from '../../fixtures/ingest.js';
import { startKafka, type TestKafka } from '../../fixtures/kafka.js';
import { apps, condition, createNamespace, getResource, kubectl, patchResource, testKubeConfig } from '../../fixtures/kube.js';
import { Kubelet, podReady, running } from '../../fixtures/kubelet.js';
import { startWeir, type WeirProcess } from '../../fixtures/processes.js';

const EXAMPLE = join(process.cwd(), 'manifests/examples/web-analytics');
const TOKEN = 'e2e-reader';
const PREFILL = 2_000_000;
const TENANTS = ['t1', 't2', 't3'];

let kc: KubeConfig;
let ns: string;
let db: string;
let kafka: TestKafka;
let clickhouse: ClickHouseProcess;
const operators: WeirProcess[] = [];
let kubelet: Kubelet;

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

/** The kubelet and the Deployment controller's part: ready pods counted into the Deployment status. */
function reportReadiness(): () => Promise<void> {
  let reporting = true;
  const loop = (async () => {
    while (reporting) {
      for (const name of new Set(kubelet.pods().map((p) => p.deployment.metadata?.name ?? ''))) {
        const live = kubelet.pods(name).filter(running);
        const readyCount = (await Promise.all(live.map(podReady))).filter(Boolean).length;
        await apps(kc)
          .patchNamespacedDeploymentStatus(
            { name, namespace: ns, body: { status: { replicas: live.length, readyReplicas: readyCount, updatedReplicas: live.length } } },
            mergePatch(),
          )
          .catch(() => undefined);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return async () => {
    reporting = false;
    await loop;
  };
}

/** Page views as the example's producers send them, with a unique session_id each; every 40th is malformed. */
class PageViews {
  valid = 0;
  malformed = 0;
  private seq = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly producer;

  constructor(topic: string) {
    this.producer = kafkaClient(kafka.bootstrap).producer();
    this.topic = topic;
  }

  private readonly topic: string;

  async start(perTick: number, everyMs: number): Promise<void> {
    await this.producer.connect();
    this.loop = (async () => {
      while (!this.stopped) {
        const messages = [];
        for (let i = 0; i < perTick; i++) {
          const n = this.seq++;
          if (n % 40 === 39) {
            this.malformed++;
            messages.push({
              value:
                n % 80 === 39
                  ? `{"timestamp": "yesterday", "session_id": "bad-${n}"`
                  : JSON.stringify({ timestamp: 'not a time', session_id: `bad-${n}`, tenant_id: 't1', payload: { pathname: '/x' } }),
            });
          } else {
            this.valid++;
            messages.push({
              key: `k${n % 16}`,
              value: JSON.stringify({
                timestamp: new Date(Date.now() - (n % 3600) * 1000).toISOString(),
                session_id: `live-${n}`,
                tenant_id: TENANTS[n % 3],
                payload: { pathname: `/page/${n % 25}`, country: 'DE', duration_ms: n % 900 },
              }),
            });
          }
        }
        await this.producer.send({ topic: this.topic, messages });
        await new Promise((r) => setTimeout(r, everyMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.producer.disconnect();
  }
}

/** A client calling the endpoint through the ready query pods (the Service's part), recording every answer. */
class EndpointClient {
  readonly calls: { at: number; ms: number; status: number; views: number }[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;

  start(): void {
    let i = 0;
    this.loop = (async () => {
      while (!this.stopped) {
        const serving = [];
        for (const p of kubelet.pods('top-pages-serve').filter(running)) if (await podReady(p)) serving.push(p);
        const pod = serving[i++ % Math.max(1, serving.length)];
        if (!pod) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const started = performance.now();
        const res = await fetch(`http://127.0.0.1:${pod.httpPort}/v0/pipes/top_pages.json?tenant=t1&limit=1000`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        }).catch(() => undefined);
        const ms = performance.now() - started;
        const body = res?.status === 200 ? ((await res.json()) as { data: { views: string }[] }) : undefined;
        if (res && !body) await res.text();
        this.calls.push({ at: Date.now(), ms, status: res?.status ?? -1, views: body ? body.data.reduce((n, r) => n + Number(r.views), 0) : -1 });
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

beforeAll(async () => {
  kc = testKubeConfig();
  ns = await createNamespace(kc, 'web');
  db = ns.replace(/-/g, '_');
  kubelet = new Kubelet(kc, ns);
  [kafka, clickhouse] = await Promise.all([startKafka(), startClickHouseProcess()]);
  const admin = kafkaClient(kafka.bootstrap).admin();
  await admin.connect();
  await createTopic(admin, 'page_views', 3);
  await admin.disconnect();
  for (let i = 0; i < 2; i++) {
    const op = startWeir([
      'operator',
      '--namespace',
      ns,
      '--lease-namespace',
      ns,
      '--metrics-port',
      '0',
      '--metrics-host',
      '127.0.0.1',
      '--clickhouse-url',
      clickhouse.url,
      '--worker-image',
      'weir:e2e',
      '--resync',
      '3000',
      '--fence-ttl',
      '5000',
      '--lease-duration',
      '3000',
      '--renew-deadline',
      '2000',
      '--retry-period',
      '500',
    ]);
    operators.push(op);
  }
  await Promise.all(operators.map((o) => o.waitForLog('operator started', (l) => l.message === 'operator started')));
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'top-pages-readers' }, stringData: { dashboard: TOKEN } } });
}, 180_000);

afterAll(async () => {
  await kubelet?.killAll();
  await Promise.all(operators.map((o) => o.kill('SIGKILL')));
  await clickhouse?.stop();
  await kafka?.stop();
});

describe('the example project end to end', () => {
  it('ingests, serves and migrates under load through an operator and an ingester SIGKILL, losing and doubling nothing', async () => {
    // 1. The example, in this namespace and pointed at this Kafka, applied as `kubectl apply` does.
    const dir = mkdtempSync(join(tmpdir(), 'weir-e2e-'));
    for (const file of ['datasources.yaml', 'pipes.yaml', 'endpoints.yaml']) {
      const docs = parseAllDocuments(readFileSync(join(EXAMPLE, file), 'utf8')).map(
        (d) => d.toJS() as { kind: string; metadata: { namespace?: string }; spec: { ingestion?: { kafka: { bootstrapServers: string[] } } } },
      );
      for (const d of docs) {
        d.metadata.namespace = ns;
        if (d.spec.ingestion) d.spec.ingestion.kafka.bootstrapServers = [kafka.bootstrap];
      }
      writeFileSync(join(dir, file), docs.map((d) => stringify(d)).join('---\n'));
    }
    const applied = await kubectl(['apply', '--server-side', '-f', dir]);
    expect(applied.code, applied.stderr).toBe(0);
    const pv = await waitFor(
      'page-views Ready',
      async () => {
        const o = await getResource<DataSource>(kc, 'DataSource', ns, 'page-views');
        return condition(o, 'Ready')?.status === 'True' && o.status?.version === 1 ? o : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(pv.status?.table).toBe(`${db}.page_views`);
    // The rollup view must exist before rows arrive: a writer weir does not fence racing a view's
    // creation is outside what weir can make exact (docs/operations.md, unmanaged writers).
    await waitFor(
      'daily-rollup Ready',
      async () => {
        const o = await getResource<{ status?: { conditions?: Condition[] } }>(kc, 'Pipe', ns, 'daily-rollup');
        return condition(o, 'Ready')?.status === 'True' ? true : undefined;
      },
      { timeoutMs: 60_000 },
    );
    // Rows from before ingestion, so the migration has a table worth copying.
    await clickhouse.ch.command(
      `INSERT INTO ${db}.page_views (timestamp, session_id, tenant_id, pathname) SELECT now64(3) - number % 86400, concat('old-', toString(number)), ['t1','t2','t3'][number % 3 + 1], concat('/page/', toString(number % 25)) FROM numbers(${PREFILL})`,
      { settings: { deduplicate_insert: 'disable' } },
    );

    // 2. The workers, from what the operator wrote.
    const ingest = await waitFor('ingest Deployment', () => apps(kc).readNamespacedDeployment({ name: 'page-views-ingest', namespace: ns }), {
      timeoutMs: 60_000,
    });
    const serve = await waitFor('serve Deployment', () => apps(kc).readNamespacedDeployment({ name: 'top-pages-serve', namespace: ns }), { timeoutMs: 60_000 });
    expect(ingest.spec?.replicas).toBe(2);
    expect(serve.spec?.replicas).toBe(2);
    for (let i = 0; i < 2; i++) await kubelet.startPod('page-views-ingest');
    for (let i = 0; i < 2; i++) await kubelet.startPod('top-pages-serve');
    const stopReporting = reportReadiness();
    await waitFor('every pod ready', async () => ((await Promise.all(kubelet.pods().map(podReady))).every(Boolean) ? true : undefined), { timeoutMs: 60_000 });

    // 3. Events and endpoint calls, continuously.
    const events = new PageViews('page_views');
    await events.start(200, 50);
    const client = new EndpointClient();
    client.start();
    await waitFor('live rows', async () => ((await count(clickhouse.ch, `SELECT count() AS n FROM ${db}.page_views`)) > PREFILL + 2000 ? true : undefined), {
      timeoutMs: 60_000,
    });

    // 4. The sorting key changes; mid-migration the leader and an ingester are SIGKILLed.
    const patchedAt = Date.now();
    await patchResource(kc, 'DataSource', ns, 'page-views', { spec: { engine: { sortingKey: ['tenant_id', 'pathname', 'timestamp'] } } });
    await waitFor(
      'the migration under way',
      async () => ((await getResource<DataSource>(kc, 'DataSource', ns, 'page-views')).status?.migration ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    const holder = (await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'weir-operator', namespace: ns })).spec?.holderIdentity;
    const leader = operators.find((o) => o.logs.some((l) => l.message === 'operator started' && l.identity === holder));
    expect(leader).toBeDefined();
    await leader?.kill('SIGKILL');
    const killedIngester = kubelet.pods('page-views-ingest')[0];
    await killedIngester?.kill('SIGKILL');
    await kubelet.startPod('page-views-ingest'); // the kubelet restarts it
    const migrated = await waitFor(
      'page-views at version 2 and Ready',
      async () => {
        const o = await getResource<DataSource>(kc, 'DataSource', ns, 'page-views');
        return o.status?.version === 2 && condition(o, 'Ready')?.status === 'True' && !o.status.migration ? o : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    const migratedAt = Date.now();

    // 5. Load goes on into the new version for a while; then stop it and count.
    const atMigration = await count(clickhouse.ch, `SELECT count() AS n FROM ${db}.page_views`);
    await waitFor(
      '2,000 rows ingested after the migration',
      async () => ((await count(clickhouse.ch, `SELECT count() AS n FROM ${db}.page_views`)) >= atMigration + 2000 ? true : undefined),
      { timeoutMs: 60_000 },
    );
    await events.stop();
    await client.stop();
    const expected = PREFILL + events.valid;
    await waitFor(
      `${expected} rows and ${events.malformed} quarantined`,
      async () => {
        const [rows, bad] = await Promise.all([
          count(clickhouse.ch, `SELECT count() AS n FROM ${db}.page_views`),
          count(clickhouse.ch, `SELECT count() AS n FROM ${db}.page_views_quarantine`),
        ]);
        return rows >= expected && bad >= events.malformed ? true : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    const admin = kafkaClient(kafka.bootstrap).admin();
    await admin.connect();
    await caughtUp(admin, groupIdOf(migrated), 'page_views'); // nothing is inserted after this, so anything doubled has landed
    await admin.disconnect();
    const rows = await count(clickhouse.ch, `SELECT count() AS n FROM ${db}.page_views`);
    const sessions = await count(clickhouse.ch, `SELECT uniqExact(session_id) AS n FROM ${db}.page_views`);
    const quarantined = await count(clickhouse.ch, `SELECT count() AS n FROM ${db}.page_views_quarantine`);
    const quarantinedIds = await count(clickhouse.ch, `SELECT uniqExact(offset, partition) AS n FROM ${db}.page_views_quarantine`);
    expect({ rows, sessions, quarantined, quarantinedIds }).toEqual({
      rows: expected,
      sessions: expected,
      quarantined: events.malformed,
      quarantinedIds: events.malformed,
    });
    const mismatches = await rollupMismatches(clickhouse.ch, db);
    if (mismatches > 0) {
      console.log(
        JSON.stringify(
          await clickhouse.ch.query(
            `SELECT * FROM (SELECT day, tenant_id, pathname, countMerge(views) AS v, uniqMerge(visitors) AS u FROM ${db}.page_views_daily GROUP BY day, tenant_id, pathname) AS r
         FULL OUTER JOIN (SELECT toDate(timestamp) AS day, tenant_id, pathname, count() AS v, uniq(session_id) AS u FROM ${db}.page_views GROUP BY day, tenant_id, pathname) AS x
         USING (day, tenant_id, pathname) WHERE r.v != x.v OR r.u != x.u LIMIT 5`,
          ),
        ),
      );
    }
    expect(mismatches).toBe(0);
    expect(migrated.status?.history?.map((h) => h.version)).toEqual([1, 2]);

    // Every endpoint call returned 200, and the counts never went backwards.
    const calls = client.calls;
    expect(calls.length).toBeGreaterThan(20);
    expect(calls.filter((c) => c.status !== 200)).toEqual([]);
    const backwards = calls.filter((c, i) => i > 0 && c.views < (calls[i - 1]?.views ?? 0));
    expect(backwards).toEqual([]);

    // Events record each migration step.
    const recorded = await waitFor(
      'migration events',
      async () => {
        const list = await kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=page-views' });
        const reasons = new Set(list.items.map((e) => e.reason ?? ''));
        return ['MigrationStarted', 'MigrationBackfilled', 'MigrationFenced', 'MigrationVerified', 'MigrationSwapped', 'MigrationCompleted'].every((r) =>
          reasons.has(r),
        )
          ? list.items
          : undefined;
      },
      { timeoutMs: 30_000 },
    );

    // 6. What an SRE would look at.
    const get = await kubectl(['get', 'wds,pipe,wep', '-n', ns]);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout).toMatch(/VERSION\s+PHASE\s+ROWS/);
    expect(get.stdout).toMatch(/page-views\s+2\s+Ready\s+\d+/);
    const describeOut = await kubectl(['describe', 'datasource', 'page-views', '-n', ns]);
    expect(describeOut.stdout).toMatch(/Conditions:/);
    expect(describeOut.stdout).toMatch(/IngestionReady/);
    expect(describeOut.stdout).toMatch(/Events:[\s\S]*Migration/);
    const explain = await kubectl(['explain', 'datasource.spec.engine']);
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout).toMatch(/sortingKey/);

    // The figures for the record.
    // The fence waited for the ingesters (they heartbeat and acknowledge between batches).
    const swapped = recorded.find((e) => e.reason === 'MigrationSwapped');
    expect(Number(/"writers":(\d+)/.exec(swapped?.message ?? '')?.[1] ?? 0)).toBeGreaterThanOrEqual(1);
    console.log(
      'migration events:',
      recorded
        .filter((e) => e.reason?.startsWith('Migration'))
        .map((e) => `${e.reason}: ${e.message}`)
        .join(' | '),
    );
    const fenceHeld = Number(/"fenceHeldMs":(\d+)/.exec(swapped?.message ?? '')?.[1] ?? NaN);
    const pauses = await Promise.all(
      kubelet
        .pods('page-views-ingest')
        .filter(running)
        .map(async (p) => {
          const text = await (await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`)).text();
          const line = text.split('\n').find((l) => l.startsWith('weir_ingest_longest_fence_pause_seconds '));
          return Number(line?.split(' ')[1] ?? 0) * 1000;
        }),
    );
    const during = calls.filter((c) => c.at >= patchedAt && c.at <= migratedAt).map((c) => c.ms);
    console.log(
      JSON.stringify({
        eventsProduced: events.valid + events.malformed,
        validEvents: events.valid,
        malformedEvents: events.malformed,
        prefilledRows: PREFILL,
        rowsCounted: rows,
        migrationSeconds: (migratedAt - patchedAt) / 1000,
        fenceHeldMs: fenceHeld,
        longestIngestFencePauseMs: Math.max(0, ...pauses),
        endpointCalls: calls.length,
        endpointCallsDuringMigration: during.length,
        endpointP50MsDuringMigration: Number(percentile(during, 50).toFixed(1)),
        endpointP99MsDuringMigration: Number(percentile(during, 99).toFixed(1)),
      }),
    );
    await stopReporting();
    const ep = await getResource<Endpoint>(kc, 'Endpoint', ns, 'top-pages');
    expect(condition(ep, 'Ready')?.status).toBe('True');
  }, 400_000);
});
