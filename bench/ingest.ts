// Ingestion benchmark: one `weir ingest` worker draining a pre-filled Kafka topic into ClickHouse,
// next to inserting the same rows directly with @clickhouse/client, in the same run, into the
// same ClickHouse server (`weir clickhouse`, its own process), in batches of the same size.
//
//   npm run build && npx tsx bench/ingest.ts [--rows N] [--partitions P] [--batch-rows R] [--repeat K]
//
// Needs the test infrastructure (a real KRaft broker from test/env/kafka/setup.sh). See
// bench/README.md for what the figures mean.
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { API_VERSION } from '../src/api/common.js';
import type { DataSource } from '../src/api/datasource.js';
import { applyProject } from '../src/execute/apply.js';
import type { ClickHouse } from '../src/clickhouse/connection.js';
import { deduplicationOff } from '../src/clickhouse/dedup.js';
import { MAPPED_ROW_SETTINGS } from '../src/workers/rows.js';
import { createLogger } from '../src/runtime/log.js';
import { createTopic, kafkaClient, startClickHouseProcess, startIngester, writeConfig } from '../test/fixtures/ingest.js';
import { startKafka } from '../test/fixtures/kafka.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '4' },
    'batch-rows': { type: 'string', default: '100000' },
    repeat: { type: 'string', default: '1' },
  },
});
const ROWS = Number(values.rows);
const PARTITIONS = Number(values.partitions);
const BATCH = Number(values['batch-rows']);
const REPEAT = Number(values.repeat);

const PATHS = Array.from({ length: 500 }, (_, i) => `/page/${i}`);
const COUNTRIES = ['DE', 'FR', 'US', 'GB', 'ES', 'IT', 'NL'];

/** The i-th event, as a producer would send it (the example's page view shape). */
function event(i: number, base: number) {
  return {
    timestamp: new Date(base - (i % 86_400) * 1000).toISOString(),
    session_id: `s-${i}`,
    tenant_id: `t${i % 50}`,
    pathname: PATHS[i % PATHS.length],
    country: COUNTRIES[i % COUNTRIES.length],
    duration_ms: i % 5000,
  };
}

function dataSource(name: string, namespace: string, bootstrap: string, topic: string): DataSource {
  return {
    apiVersion: API_VERSION,
    kind: 'DataSource',
    metadata: { name, namespace },
    spec: {
      columns: [
        { name: 'timestamp', type: "DateTime64(3, 'UTC')", jsonPath: '$.timestamp' },
        { name: 'session_id', type: 'String', jsonPath: '$.session_id' },
        { name: 'tenant_id', type: 'LowCardinality(String)', jsonPath: '$.tenant_id' },
        { name: 'pathname', type: 'String', jsonPath: '$.pathname' },
        { name: 'country', type: 'LowCardinality(String)', jsonPath: '$.country' },
        { name: 'duration_ms', type: 'UInt32', jsonPath: '$.duration_ms' },
      ],
      engine: { type: 'MergeTree', sortingKey: ['tenant_id', 'timestamp'], partitionKey: 'toYYYYMM(timestamp)' },
      ingestion: { kafka: { bootstrapServers: [bootstrap], topic }, batch: { maxRows: BATCH, maxBytes: 256 * 1024 * 1024, maxDelayMs: 1000 } },
    },
  };
}

const count = async (ch: ClickHouse, table: string) => Number((await ch.query<{ n: string }>(`SELECT count() AS n FROM ${table}`))[0]?.n ?? 0);

/** CPU seconds (user + system) a process used so far; 0 once it is gone. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

/** The Kafka broker's JVM (started by the test fixture). */
const kafkaPid = () =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('kafka.Kafka');
      } catch {
        return false;
      }
    });

/** Peak resident set (VmHWM) of a process, in MiB. */
const peakRssMiB = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function main() {
  const log = createLogger({ format: 'pretty', level: 'warn' });
  const [kafka, clickhouse] = await Promise.all([startKafka(), startClickHouseProcess()]);
  const ch = clickhouse.ch;
  const admin = kafkaClient(kafka.bootstrap).admin();
  await admin.connect();
  const base = Date.now();
  const results: { direct: number; worker: number; ratio: number; rss: number; drainS: number }[] = [];
  try {
    for (let run = 1; run <= REPEAT; run++) {
      const namespace = `bench${run}`;
      const topic = `bench-${run}-${Date.now()}`;
      await createTopic(admin, topic, PARTITIONS);
      const ds = dataSource('views', namespace, kafka.bootstrap, topic);
      const twin = dataSource('views-direct', namespace, kafka.bootstrap, topic);
      delete twin.spec.ingestion;
      await applyProject(ch, [ds, twin], { log });

      // Fill the topic (not timed).
      const producer = kafkaClient(kafka.bootstrap).producer();
      await producer.connect();
      const fillStart = performance.now();
      for (let i = 0; i < ROWS; i += 10_000) {
        const messages = [];
        for (let j = i; j < Math.min(ROWS, i + 10_000); j++) messages.push({ key: String(j % PARTITIONS), value: JSON.stringify(event(j, base)) });
        await producer.send({ topic, messages });
      }
      await producer.disconnect();
      const fillS = (performance.now() - fillStart) / 1000;

      // Direct: the same rows, already objects, inserted in the worker's batch size.
      const rows = Array.from({ length: ROWS }, (_, i) => event(i, base));
      const settings = { ...MAPPED_ROW_SETTINGS, ...(await deduplicationOff(ch)) };
      const chPid = clickhouse.proc.child.pid;
      const chCpu0 = cpuSeconds(chPid);
      const benchCpu0 = process.cpuUsage();
      const directStart = performance.now();
      for (let i = 0; i < ROWS; i += BATCH) await ch.insert(`${namespace}.views_direct`, rows.slice(i, i + BATCH), { settings });
      const directS = (performance.now() - directStart) / 1000;
      const benchCpu = process.cpuUsage(benchCpu0);
      const directCpu = { client: (benchCpu.user + benchCpu.system) / 1e6, clickhouse: cpuSeconds(chPid) - chCpu0 };
      if ((await count(ch, `${namespace}.views_direct`)) !== ROWS) throw new Error('direct insert lost rows');

      // The worker, from the first row landing to the last (sustained), polled every 50 ms.
      // WEIR_BENCH_PROFILE=<dir> writes the worker's CPU profile there (node --cpu-prof).
      const profile = process.env.WEIR_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.WEIR_BENCH_PROFILE}`] : [];
      const worker = await startIngester(
        writeConfig(ds),
        clickhouse.url,
        process.env.WEIR_BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.WEIR_BENCH_NODE_OPTIONS } : {},
        profile,
      );
      const kPid = kafkaPid();
      const cpu0 = { clickhouse: cpuSeconds(chPid), kafka: cpuSeconds(kPid) };
      let first = 0;
      let firstCount = 0;
      let workerCpuAtFirst = 0;
      let last = 0;
      let rss = 0;
      for (;;) {
        const n = await count(ch, `${namespace}.views`);
        const now = performance.now();
        rss = Math.max(rss, peakRssMiB(worker.child.pid ?? 0));
        if (n > 0 && first === 0) {
          first = now;
          firstCount = n;
          workerCpuAtFirst = cpuSeconds(worker.child.pid);
        }
        if (n >= ROWS) {
          last = now;
          if (n !== ROWS) throw new Error(`worker inserted ${n} rows, expected ${ROWS}`);
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      const workerCpu = { worker: cpuSeconds(worker.child.pid), clickhouse: cpuSeconds(chPid) - cpu0.clickhouse, kafka: cpuSeconds(kPid) - cpu0.kafka };
      await worker.kill('SIGTERM');
      const drainS = (last - first) / 1000;
      const workerRate = (ROWS - firstCount) / drainS;
      const directRate = ROWS / directS;
      results.push({ direct: directRate, worker: workerRate, ratio: workerRate / directRate, rss, drainS });
      console.log(
        `run ${run}: topic filled in ${fillS.toFixed(1)} s; direct ${Math.round(directRate).toLocaleString('en')} rows/s (${directS.toFixed(2)} s); ` +
          `worker ${Math.round(workerRate).toLocaleString('en')} rows/s (${drainS.toFixed(2)} s after the first batch); ratio ${(workerRate / directRate).toFixed(2)}; worker peak RSS ${rss.toFixed(0)} MiB\n` +
          `  CPU s, direct: client ${directCpu.client.toFixed(1)}, clickhouse ${directCpu.clickhouse.toFixed(1)}; worker path: worker ${workerCpu.worker.toFixed(1)} (${workerCpuAtFirst.toFixed(1)} of it before the first rows landed), clickhouse ${workerCpu.clickhouse.toFixed(1)}, kafka ${workerCpu.kafka.toFixed(1)}`,
      );
    }
  } finally {
    await admin.disconnect();
    await clickhouse.stop();
    await kafka.stop();
  }
  if (results.length > 1) {
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    console.log(
      `median: ratio ${median(results.map((r) => r.ratio)).toFixed(2)}, worker ${Math.round(median(results.map((r) => r.worker))).toLocaleString('en')} rows/s, direct ${Math.round(median(results.map((r) => r.direct))).toLocaleString('en')} rows/s`,
    );
  }
  console.log(
    `${ROWS.toLocaleString('en')} rows, ${PARTITIONS} partitions, batch ${BATCH.toLocaleString('en')} rows; ${os.cpus().length} CPUs, Node ${process.version}`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
