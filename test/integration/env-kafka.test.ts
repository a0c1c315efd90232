// Proves the Kafka test environment: a real KRaft broker (test/fixtures/kafka.ts, jars from Maven
// Central via test/env/kafka/setup.sh) that kafkajs can administer, produce to and consume from with a
// consumer group and committed offsets.
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, type Admin, type Consumer, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../env/wait.js';
import { startKafka, type TestKafka } from '../fixtures/kafka.js';

const MESSAGES = 1000;
const PARTITIONS = 3;

describe('kafka test environment', () => {
  let kafka: TestKafka;
  let client: Kafka;
  let admin: Admin;
  const toClose: (Producer | Consumer)[] = [];

  beforeAll(async () => {
    kafka = await startKafka({ logDir: process.env.WEIR_TEST_LOG_DIR || undefined });
    client = new Kafka({ clientId: 'weir-env-kafka-test', brokers: [kafka.bootstrap], logLevel: logLevel.NOTHING });
    admin = client.admin();
    await admin.connect();
  });

  afterAll(async () => {
    for (const c of toClose) await c.disconnect().catch(() => undefined);
    await admin?.disconnect().catch(() => undefined);
    await kafka?.stop();
  });

  it('listens on loopback and answers metadata requests', async () => {
    expect(kafka.bootstrap).toMatch(/^127\.0\.0\.1:\d+$/);
    const topics = await admin.listTopics();
    expect(topics.filter((t) => !t.startsWith('__'))).toEqual([]);
  });

  it('produces and consumes 1000 keyed messages through a consumer group', async () => {
    const suffix = randomBytes(4).toString('hex');
    const topic = `weir-env-${suffix}`;
    const groupId = `weir-env-group-${suffix}`;

    expect(await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }], waitForLeaders: true })).toBe(true);
    const [meta] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
    expect(meta?.partitions).toHaveLength(PARTITIONS);

    const producer = client.producer();
    toClose.push(producer);
    await producer.connect();
    const sent = Array.from({ length: MESSAGES }, (_, i) => ({ key: `key-${i}`, value: `value-${i}` }));
    await producer.send({ topic, messages: sent });

    // The high watermarks: every message landed, spread over all partitions by key.
    const watermarks = await admin.fetchTopicOffsets(topic);
    expect(watermarks.reduce((sum, p) => sum + Number(p.high), 0)).toBe(MESSAGES);
    expect(watermarks.filter((p) => Number(p.high) > 0)).toHaveLength(PARTITIONS);

    // A short fetch long-poll: stop() waits for the fetch in flight (kafkajs default: up to 5 s).
    const consumer = client.consumer({ groupId, maxWaitTimeInMs: 100 });
    toClose.push(consumer);
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = new Map<string, string>();
    const perPartition = new Map<number, number>();
    let duplicates = 0;
    await consumer.run({
      autoCommit: true,
      eachMessage: async ({ partition, message }) => {
        const key = message.key?.toString() ?? '';
        if (received.has(key)) duplicates++;
        received.set(key, message.value?.toString() ?? '');
        perPartition.set(partition, (perPartition.get(partition) ?? 0) + 1);
      },
    });
    await waitFor(`${MESSAGES} messages consumed`, () => (received.size >= MESSAGES ? true : undefined), { timeoutMs: 45_000 });
    await consumer.stop(); // commits the offsets of what eachMessage processed

    expect(duplicates).toBe(0);
    expect(received.size).toBe(MESSAGES);
    for (let i = 0; i < MESSAGES; i++) expect(received.get(`key-${i}`)).toBe(`value-${i}`);
    expect(perPartition.size).toBe(PARTITIONS);

    // Committed offsets per partition equal what was consumed there and sum to all messages.
    const committed = await waitFor(
      'committed offsets to reach the high watermarks',
      async () => {
        const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
        const partitions = offsets?.partitions ?? [];
        const total = partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
        return total === MESSAGES ? partitions : undefined;
      },
      { timeoutMs: 15_000 },
    );
    expect(committed).toHaveLength(PARTITIONS);
    for (const p of committed) {
      expect(Number(p.offset)).toBe(perPartition.get(p.partition));
      expect(p.offset).toBe(watermarks.find((w) => w.partition === p.partition)?.high);
    }
  });
});
