// Path (c) of bench/ingest.ts: the Kafka → ClickHouse consumer a user would write by hand instead
// of `weir ingest`. kafkajs with the worker's fetch settings; each fetched batch is JSON.parse'd,
// its six fields picked into row objects and inserted with @clickhouse/client (JSONEachRow), then
// its offsets committed. At least once (a crash between insert and commit inserts again), no
// quarantine (a bad message fails the batch), no fence, no ledger.
//
//   node --import tsx bench/ingest-kafkajs-consumer.ts <brokers> <topic> <group> <table> <clickhouse-url>
import { createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';

const [brokers, topic, groupId, table, url] = process.argv.slice(2);
if (!brokers || !topic || !groupId || !table || !url) throw new Error('usage: <brokers> <topic> <group> <table> <clickhouse-url>');

interface Event {
  timestamp: string;
  session_id: string;
  tenant_id: string;
  pathname: string;
  country: string;
  duration_ms: number;
}

const ch = createClient({ url, clickhouse_settings: { date_time_input_format: 'best_effort', insert_deduplicate: 0 } });
const kafka = new Kafka({ clientId: 'bench-consumer', brokers: brokers.split(','), logLevel: logLevel.WARN });
const consumer = kafka.consumer({ groupId, maxBytesPerPartition: 2 * 1024 * 1024, maxBytes: 16 * 1024 * 1024, maxWaitTimeInMs: 500 });

await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
await consumer.run({
  partitionsConsumedConcurrently: 4,
  eachBatch: async ({ batch }) => {
    const rows = batch.messages.map((m) => {
      const e = JSON.parse(m.value?.toString('utf8') ?? 'null') as Event;
      return {
        timestamp: e.timestamp,
        session_id: e.session_id,
        tenant_id: e.tenant_id,
        pathname: e.pathname,
        country: e.country,
        duration_ms: e.duration_ms,
      };
    });
    await ch.insert({ table, values: rows, format: 'JSONEachRow' });
  },
});
console.log('consuming');
const stop = async () => {
  await consumer.disconnect();
  await ch.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
