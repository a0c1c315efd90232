// Probes (--probe): what in weir's backfill and fenced section costs time, one difference at a
// time. Each copy variant copies the retained previous version (the old sorting key, the rows the
// migration copied) into a fresh table with the new key; variants run interleaved, in rounds,
// with merges settled before each, and the median is reported.
import { availableParallelism } from 'node:os';
import type { TableRef } from '../src/plan/catalog.js';
import type { ClickHouse } from '../src/clickhouse/connection.js';
import { createTableSql, keyTuple, qualified, quoteIdentifier, type TableShape } from '../src/plan/sql.js';
import { PageViewWriter, type PageViewWriterOptions } from './page-view-writer.js';

export interface ProbeResult {
  probe: string;
  samplesS: number[];
  /** CPU seconds of this process (chDB runs in it) over the same spans: steadier than wall time on a shared VM. */
  cpuS: number[];
}

interface CopyVariant {
  probe: string;
  /** bare: CREATE TABLE … AS with the new key only; weir: weir's DDL (enable_block_number_column = 1). */
  ddl: 'bare' | 'weir';
  select: string;
  settings?: Record<string, number>;
  withWriter?: boolean;
}

export interface ProbeSetup {
  ch: ClickHouse;
  /** A second connection for the writer of the `withWriter` variant. */
  writerCh: ClickHouse;
  /** The live table (the writer's target) and the retained previous version (the copy's source). */
  live: TableRef;
  source: TableRef;
  /** The new version's shape, as weir creates it. */
  shape: TableShape;
  /** The migration's backfill point (weir.migrations source_block): rows above it are its delta. */
  deltaFrom: string;
  writer: PageViewWriterOptions;
  rounds: number;
  settled: () => Promise<void>;
}

/** Wall and process CPU seconds of `work`. */
async function measure(work: () => Promise<unknown>): Promise<{ wallS: number; cpuS: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await work();
  const used = process.cpuUsage(cpu);
  return { wallS: (performance.now() - started) / 1000, cpuS: (used.user + used.system) / 1e6 };
}

export async function probeCopyCosts(s: ProbeSetup): Promise<ProbeResult[]> {
  const { ch, shape } = s;
  const source = qualified(s.source.database, s.source.table);
  const copyName = 'probe_copy';
  const copy = qualified(s.source.database, copyName);
  const [top] = await ch.query<{ b: string }>(`SELECT toString(max(_block_number)) AS b FROM ${source}`);
  const upTo = top?.b ?? '0';
  const cols = shape.columns.map((c) => quoteIdentifier(c.name)).join(', ');
  // As Executor.mapping builds it for a change that keeps every column.
  const casts = shape.columns.map((c) => `CAST(${quoteIdentifier(c.name)} AS ${c.type})`).join(', ');
  const e = shape.engine;
  const ddl = {
    bare: `CREATE TABLE ${copy} AS ${source} ENGINE = MergeTree PARTITION BY ${e.partitionKey ?? 'tuple()'} ORDER BY ${keyTuple(e.sortingKey)}${e.ttl ? ` TTL ${e.ttl}` : ''}`,
    weir: createTableSql(s.source.database, copyName, shape, 'weir bench probe'),
  };
  const variants: CopyVariant[] = [
    { probe: 'copy: bare DDL, SELECT * (the baseline)', ddl: 'bare', select: `SELECT * FROM ${source}` },
    { probe: 'copy: bare DDL, SELECT *, writer inserting', ddl: 'bare', select: `SELECT * FROM ${source}`, withWriter: true },
    { probe: 'copy: weir DDL (_block_number kept), SELECT *', ddl: 'weir', select: `SELECT ${cols} FROM ${source}` },
    { probe: 'copy: weir DDL, WHERE _block_number <= N', ddl: 'weir', select: `SELECT ${cols} FROM ${source} WHERE _block_number <= ${upTo}` },
    { probe: 'copy: weir DDL, WHERE, CAST per column (= backfill)', ddl: 'weir', select: `SELECT ${casts} FROM ${source} WHERE _block_number <= ${upTo}` },
    { probe: 'copy: bare DDL, CAST per column', ddl: 'bare', select: `SELECT ${casts} FROM ${source}` },
    // The insert side of INSERT … SELECT runs on one thread unless told otherwise.
    {
      probe: 'copy: backfill, max_insert_threads = cores',
      ddl: 'weir',
      select: `SELECT ${casts} FROM ${source} WHERE _block_number <= ${upTo}`,
      settings: { max_insert_threads: availableParallelism() },
    },
  ];
  // Statements the executor runs with writers fenced, against a metadata-only alternative.
  const parts = `FROM system.parts WHERE database = '${s.source.database}' AND table = '${s.source.table}' AND active`;
  const lookups: { probe: string; sql: string }[] = [
    { probe: 'fenced: max(_block_number) (scan)', sql: `SELECT toString(max(_block_number)) AS v FROM ${source}` },
    { probe: 'fenced: max(max_block_number) from system.parts', sql: `SELECT toString(max(max_block_number)) AS v ${parts}` },
    { probe: 'fenced: count() of the delta (scan)', sql: `SELECT toString(count()) AS v FROM ${source} WHERE _block_number > ${s.deltaFrom}` },
    {
      probe: 'fenced: same, parts pruned by _part',
      sql: `SELECT toString(count()) AS v FROM ${source} WHERE _part IN (SELECT name ${parts} AND max_block_number > ${s.deltaFrom}) AND _block_number > ${s.deltaFrom}`,
    },
  ];

  const samples = new Map<string, ProbeResult>();
  const record = (probe: string, m: { wallS: number; cpuS: number }) => {
    const r = samples.get(probe) ?? { probe, samplesS: [], cpuS: [] };
    r.samplesS.push(m.wallS);
    r.cpuS.push(m.cpuS);
    samples.set(probe, r);
  };
  for (let round = 0; round < s.rounds; round++) {
    for (const v of variants) {
      await s.settled();
      await ch.command(ddl[v.ddl]);
      const writer = v.withWriter ? new PageViewWriter(s.writerCh, s.live, s.writer) : undefined;
      writer?.start();
      await writer?.waitForRows(5 * s.writer.batchRows);
      record(v.probe, await measure(() => ch.command(`INSERT INTO ${copy} (${cols}) ${v.select}`, v.settings ? { settings: v.settings } : {})));
      await writer?.stop();
      await ch.command(`DROP TABLE ${copy} SYNC`);
    }
    for (const l of lookups) {
      record(l.probe, await measure(() => ch.query(l.sql)));
    }
  }
  // The metadata answers stand in for the scans only if they agree (or bound them from above).
  const answers = await Promise.all(lookups.map(async (l) => (await ch.query<{ v: string }>(l.sql))[0]?.v));
  if (BigInt(answers[1] ?? '0') < BigInt(answers[0] ?? '0') || answers[2] !== answers[3]) {
    throw new Error(`probe lookups disagree: ${lookups.map((l, i) => `${l.probe} = ${answers[i]}`).join('; ')}`);
  }
  return [...samples.values()];
}
