// decideTable as a pure function of (DataSource, world, now): one test per condition reason
// a DataSource's table sets, with the world built by fixtures (no ClickHouse, no cluster).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { DataSource, DataSourceStatus } from '../../../src/api/datasource.js';
import { CONDITION_REASONS, type ConditionReason } from '../../../src/controllers/conditions.js';
import { APPROVE_ANNOTATION, decideTable, jobVerdict, lockedVerdict, planHash, statusFor } from '../../../src/controllers/datasource-decide.js';
import {
  column,
  dataSource,
  inNamespace,
  withAnnotations,
  withColumns,
  withGeneration,
  withSortingKey,
  withSpec,
  withStatus,
} from '../../fixtures/builders.js';
import { alteredByHand, applied, tableWorld, withoutClickHouse, withPreflight } from '../../fixtures/world.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const events = (...mods: ((d: DataSource) => void)[]) =>
  dataSource(
    'events',
    inNamespace('shop'),
    withColumns(column('ts', 'DateTime'), column('amount', 'String')),
    withSortingKey('ts'),
    withGeneration(4),
    ...mods,
  );
const toUInt = (d: DataSource) => {
  const amount = d.spec.columns[1];
  if (amount) amount.type = 'UInt32';
};
const manual = withSpec<DataSource>({ migration: { approval: 'Manual' } });

/** The decision's status, Ready condition and Events, for a decision that writes status. */
function written(ds: DataSource, world = tableWorld(applied(events()))) {
  const d = decideTable(ds, world, t0);
  if (!('decision' in d)) throw new Error(`expected a status to write, got steps to execute: ${d.execute.steps.join('; ')}`);
  const ready = d.decision.status.conditions?.find((c) => c.type === 'Ready');
  return { reason: d.reason, status: d.decision.status, ready, events: d.decision.events, plan: d.plan };
}

const tested = new Set<ConditionReason>();
const reasonOf = (r: ReturnType<typeof written>) => {
  tested.add(r.reason);
  return r.reason;
};

describe('decideTable: one verdict per reason', () => {
  it('NoClickHouseConnection: Reconciling, Pending, the spec hash, nothing planned', () => {
    const r = written(events(), tableWorld(withoutClickHouse));
    expect(reasonOf(r)).toBe('NoClickHouseConnection');
    expect(r.plan).toBeUndefined();
    expect(r.status).toMatchObject({ phase: 'Pending', observedGeneration: 4, database: 'shop', table: 'shop.events', specHash: expect.any(String) });
    expect(r.status.conditions?.map((c) => `${c.type}=${c.status}:${c.reason}`)).toEqual([
      'Ready=False:NoClickHouseConnection',
      'Reconciling=True:NoClickHouseConnection',
      'Stalled=False:Progressing',
    ]);
  });

  it('UpToDate: the live table matches; version and rows from its marker', () => {
    const r = written(events());
    expect(reasonOf(r)).toBe('UpToDate');
    expect(r.status).toMatchObject({ phase: 'Ready', version: 1, rows: 0 });
    expect(r.ready).toMatchObject({ status: 'True', message: 'Table shop.events matches the spec.', observedGeneration: 4 });
    // Idle and Progressing: the reasons of Reconciling and Stalled when they do not hold.
    expect(r.status.conditions?.map((c) => `${c.type}=${c.status}:${c.reason}`)).toEqual([
      'Ready=True:UpToDate',
      'Reconciling=False:Idle',
      'Stalled=False:Progressing',
      'Drifted=False:NoDrift',
    ]);
  });

  it('Drifted: a column added by hand sets Drifted=True naming it, beside Ready, and status.drift lists it', () => {
    const r = written(
      events(),
      tableWorld(
        applied(events()),
        alteredByHand('shop', 'events', (t) => t.columns.push({ name: 'note', type: 'String' })),
      ),
    );
    expect(reasonOf(r)).toBe('UpToDate');
    expect(r.status.drift).toEqual(['column note String was added by hand']);
    expect(r.status.conditions?.find((c) => c.type === 'Drifted')).toMatchObject({
      status: 'True',
      reason: 'Drifted',
      message: 'shop.events was changed outside weir: column note String was added by hand',
    });
    // Without a connection nothing was observed: the last Drifted condition stands.
    const offline = written(events(withStatus<DataSource>(r.status)), tableWorld(withoutClickHouse));
    expect(offline.status.conditions?.find((c) => c.type === 'Drifted')?.status).toBe('True');
  });

  it('PlanRefused: a dropped column without allowDestructive, Stalled with what to do', () => {
    const r = written(events((d) => d.spec.columns.splice(1, 1)));
    expect(reasonOf(r)).toBe('PlanRefused');
    expect(r.status.phase).toBe('Failed');
    expect(r.ready?.message).toBe('dropping column amount loses data; set spec.migration.allowDestructive: true to allow it');
    expect(r.status.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'PlanRefused' });
  });

  it('MigrationRefused: rows the preflight found that would not convert, before any approval is asked', () => {
    const world = tableWorld(
      applied(events()),
      withPreflight('shop.events', { unconvertible: [{ column: 'amount', from: 'String', to: 'UInt32', rows: 3, samples: ['a', 'b', 'c'] }] }),
    );
    const r = written(events(toUInt, manual), world);
    expect(reasonOf(r)).toBe('MigrationRefused');
    expect(r.status.phase).toBe('Failed');
    expect(r.status.pendingPlan).toBeUndefined();
    expect(r.ready?.message).toBe(
      '3 row(s) of shop.events have a amount that does not convert from String to UInt32 (e.g. "a", "b", "c"); handle them with spec.migration.forwardQuery. Nothing was changed.',
    );
    expect(r.events).toEqual([{ type: 'Warning', reason: 'MigrationRefused', message: r.ready?.message }]);
  });

  it('MigrationRefused: a dependent view that would break', () => {
    const r = written(
      events(toUInt),
      tableWorld(applied(events()), withPreflight('shop.events', { brokenViews: [{ view: 'shop.totals', error: 'Unknown identifier amount' }] })),
    );
    expect(reasonOf(r)).toBe('MigrationRefused');
    expect(r.ready?.message).toMatch(/^materialized view shop\.totals would break on the new version of shop\.events: Unknown identifier amount\./);
  });

  it('AwaitingApproval: a Manual copy-and-swap waits with the plan and its hash in status', () => {
    const r = written(events(toUInt, manual));
    expect(reasonOf(r)).toBe('AwaitingApproval');
    const pending = r.status.pendingPlan;
    expect(pending?.steps).toEqual([expect.stringMatching(/^migrate shop\.events v1 → v2 by copy-and-swap \(column amount: String → UInt32\)/)]);
    expect(pending?.hash).toBe(planHash(r.plan?.steps ?? []));
    expect(r.ready?.message).toBe(
      `A migration is planned; approve it with: kubectl annotate datasource events ${APPROVE_ANNOTATION}=${pending?.hash} --overwrite`,
    );
    expect(r.status.phase).toBe('AwaitingApproval');
  });
});

describe('decideTable: execute, events and status over time', () => {
  it('an approval naming the hash lets the plan run; a stale one does not', () => {
    const hash = written(events(toUInt, manual)).status.pendingPlan?.hash ?? '';
    const approved = decideTable(events(toUInt, manual, withAnnotations({ [APPROVE_ANNOTATION]: hash })), tableWorld(applied(events())), t0);
    expect('execute' in approved && approved.execute.planHash).toBe(hash);
    expect('execute' in approved && approved.execute.migrationId).toBe(`v2-${hash.slice(0, 8)}`);
    expect(written(events(toUInt, manual, withAnnotations({ [APPROVE_ANNOTATION]: 'stale' }))).reason).toBe('AwaitingApproval');
  });

  it('an Event only when the Ready reason changes; pendingPlan and migration go once not waiting', () => {
    const before: DataSourceStatus = {
      ...written(events()).status,
      pendingPlan: { hash: 'h', steps: ['x'] },
      migration: { id: 'm', state: 'Started', startedAt: '2026-01-01T00:00:00Z' },
    };
    const again = written(events(withStatus<DataSource>(written(events()).status)));
    expect(again.events).toEqual([]);
    const cleared = written(events(withStatus<DataSource>(before)));
    expect(cleared.status.pendingPlan).toBeUndefined();
    expect(cleared.status.migration).toBeUndefined();
  });

  it("the hash binds to the steps' content: another forwardQuery under the same description needs a new approval", () => {
    const forward = (sql: string) => withSpec<DataSource>({ migration: { approval: 'Manual', forwardQuery: sql } });
    const a = written(events(toUInt, forward('SELECT ts, toUInt32OrZero(amount) AS amount FROM {source}'))).status.pendingPlan;
    const b = written(events(toUInt, forward('SELECT ts, 0 AS amount FROM {source}'))).status.pendingPlan;
    expect(a?.steps).toEqual(b?.steps);
    expect(a?.hash).not.toBe(b?.hash);
  });

  it('observedGeneration follows the resource', () => {
    expect(written(events(withGeneration(9))).status.observedGeneration).toBe(9);
  });
});

describe('decideTable: a migration handed to a job', () => {
  const catalog = tableWorld(applied(events())).catalog;
  const verdictStatus = (v: ReturnType<typeof jobVerdict>) => {
    const { status } = statusFor(events(), v, t0);
    tested.add(v.health.reason);
    return status;
  };

  it('Migrating: the job runs in the background; the message and status carry its progress', () => {
    const progress = { phase: 'Backfilling' as const, rowsCopied: 400, rowsTotal: 1000, percent: 40, chunk: 2, chunks: 5, catchUpRounds: 0 };
    const migration = { id: 'v2-abc', state: 'Backfilling', startedAt: '2026-01-01T00:00:00Z', progress };
    const status = verdictStatus(
      jobVerdict(events(withStatus<DataSource>({ migration })), catalog, { state: 'running', running: ['shop/events'], maxConcurrent: 2 }, t0),
    );
    expect(status).toMatchObject({ phase: 'Migrating', migration });
    expect(status.conditions?.find((c) => c.type === 'Reconciling')).toMatchObject({
      status: 'True',
      reason: 'Migrating',
      message: 'Migrating shop.events in the background: Backfilling 40% (400 of 1000 rows, chunk 2 of 5).',
    });
  });

  it('MigrationQueued: no slot is free; the message names the running migrations and the flag', () => {
    const status = verdictStatus(jobVerdict(events(), catalog, { state: 'queued', running: ['a/x', 'b/y'], maxConcurrent: 2 }, t0));
    expect(status.phase).toBe('Pending');
    expect(status.migration).toBeUndefined();
    expect(status.conditions?.find((c) => c.type === 'Reconciling')?.message).toBe(
      'A migration of shop.events waits for a slot: 2 of 2 migrations run on this ClickHouse connection (a/x, b/y); it starts when one ends (--max-concurrent-migrations sets how many run at once).',
    );
  });

  it('TableLocked: another executor holds the table; Reconciling with its name, nothing Stalled', () => {
    const status = verdictStatus(lockedVerdict(events(), catalog, 'shop.events is being changed by weir apply on laptop (pid 7)'));
    expect(status.conditions?.map((c) => `${c.type}=${c.status}:${c.reason}`)).toEqual([
      'Ready=False:TableLocked',
      'Reconciling=True:TableLocked',
      'Stalled=False:Progressing',
      'Drifted=False:NoDrift',
    ]);
  });
});

describe('condition reasons', () => {
  it('every DataSource reason has a decide-level test above (Pipe, Endpoint and IngestionReady: their own decide tests)', () => {
    expect([...tested].sort()).toEqual([...CONDITION_REASONS.DataSource].sort());
  });

  it('docs/api.md lists every reason weir sets', () => {
    const doc = readFileSync('docs/api.md', 'utf8');
    const section = doc.slice(doc.indexOf('## Condition reasons in use'));
    const missing = Object.values(CONDITION_REASONS)
      .flat()
      .filter((r) => !section.includes(`\`${r}\``));
    expect(missing).toEqual([]);
  });
});
