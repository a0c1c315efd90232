import { describe, expect, it } from 'vitest';
import type { Catalog } from '../../../src/plan/catalog.js';
import { tokenize } from '../../../src/plan/sql-text.js';
import { composeQuery, planPipe, viewMarker, type PipeStep } from '../../../src/plan/pipe-plan.js';
import { planProject } from '../../../src/plan/project-plan.js';
import { embedSql } from '../../../src/plan/sql.js';
import { stableHash } from '../../../src/runtime/hash.js';
import { dataSource, endpoint, inNamespace, materializedInto, node, pipe, withNodes } from '../../fixtures/builders.js';
import { catalogOf, tableFor } from '../../fixtures/catalog.js';

const source = dataSource('page-views', inNamespace('web'));
const target = dataSource('daily', inNamespace('web'));
const rollup = (sql = 'SELECT tenant_id, count() AS n FROM page_views GROUP BY tenant_id', backfill?: 'Full' | 'None') =>
  pipe('rollup', inNamespace('web'), withNodes(node('n', sql)), materializedInto('daily'), (p) => {
    if (backfill && p.spec.materialize) p.spec.materialize.backfill = backfill;
  });

function withView(catalog: Catalog, comment: string): Catalog {
  return { ...catalog, views: [{ database: 'web', name: 'rollup', target: 'web.daily', query: '', comment }] };
}

describe('composeQuery', () => {
  it('makes earlier nodes CTEs of the last one', () => {
    const nodes = [node('a', 'SELECT 1 AS x'), node('b', 'SELECT x FROM a;'), node('c', 'SELECT 2')];
    expect(composeQuery(nodes, 'b')).toBe('WITH a AS (\nSELECT 1 AS x\n)\nSELECT x FROM a');
    expect(composeQuery(nodes.slice(0, 1))).toBe('SELECT 1 AS x');
  });
});

describe('planPipe', () => {
  const catalog = catalogOf(tableFor(source), tableFor(target));

  it('creates the view TO the target with its sources derived from the SQL', () => {
    const plan = planPipe(rollup(), [source, target], catalog);
    expect(plan.steps).toEqual([
      expect.objectContaining({
        kind: 'CreateView',
        view: 'rollup',
        target: { database: 'web', table: 'daily' },
        sources: [{ database: 'web', table: 'page_views' }],
        backfill: 'Full',
      }),
    ]);
  });

  it('is up to date when the view carries the spec hash, and resumes an unfinished backfill', () => {
    const first = planPipe(rollup(), [source, target], catalog).steps[0];
    const hash = first && 'specHash' in first ? first.specHash : '';
    expect(planPipe(rollup(), [source, target], withView(catalog, viewMarker(hash))).steps).toEqual([]);
    expect(planPipe(rollup(), [source, target], withView(catalog, viewMarker(hash, true))).steps.map((s) => s.kind)).toEqual(['CreateView']);
  });

  it('changes the query in place with backfill: None, and recomputes the target with backfill: Full', () => {
    const changed = 'SELECT tenant_id, 2 * count() AS n FROM page_views GROUP BY tenant_id';
    const old = withView(catalog, viewMarker('old'));
    expect(planPipe(rollup(changed, 'None'), [source, target], old).steps.map((s) => s.kind)).toEqual(['ModifyViewQuery']);
    expect(planPipe(rollup(changed), [source, target], old).steps).toEqual([expect.objectContaining({ kind: 'RecomputeView', targetVersion: 1 })]);
  });

  it('refuses to touch a view weir did not create, or a target that does not exist', () => {
    expect(planPipe(rollup(), [source, target], withView(catalog, 'hand made')).refusals[0]).toMatch(/was not created by weir/);
    expect(planPipe(rollup(), [source], catalog).refusals[0]).toMatch(/does not exist/);
  });
});

const SQL = 'SELECT tenant_id, count() AS n FROM page_views GROUP BY tenant_id';
/** The endings a node's SQL may have that must not reach into weir's SQL around it. */
const ENDINGS: [string, string][] = [
  ['a trailing -- comment', `${SQL}\n-- per tenant`],
  ['a trailing /* comment */', `${SQL} /* per tenant */`],
  ['a trailing ;', `${SQL};`],
];
const tokensOf = (sql: string) => [...tokenize(sql)].map((t) => t.text);
const createStep = (plan: { steps: PipeStep[] }) => plan.steps[0] as Extract<PipeStep, { kind: 'CreateView' }>;

describe('planPipe: a recompute interrupted after its swap', () => {
  const changed = 'SELECT tenant_id, 2 * count() AS n FROM page_views GROUP BY tenant_id';
  const specHashOf = (p: ReturnType<typeof rollup>, catalog: Catalog) => {
    const step = planPipe(p, [source, target], withView(catalog, viewMarker('old'))).steps.find((s) => s.kind === 'RecomputeView');
    return step && 'specHash' in step ? step.specHash : '';
  };
  /** After the swap: the target is v2, the previous version (v1) still under the recompute name. */
  const swapped = catalogOf(tableFor(source), tableFor(target, { version: 2 }), tableFor(target, { name: 'daily__weir_recompute', version: 1 }));
  const finish = {
    kind: 'FinishRecompute',
    database: 'web',
    view: 'rollup',
    target: { database: 'web', table: 'daily' },
    leftover: 'daily__weir_recompute',
    version: 1,
    keepPreviousVersions: 1,
  };

  it('plans to retain the previous version under its name, though the view already carries the new marker', () => {
    const hash = specHashOf(rollup(changed), swapped);
    const plan = planPipe(rollup(changed), [source, target], withView(swapped, viewMarker(hash)));
    expect(plan).toEqual({ view: 'web.rollup', steps: [finish], refusals: [] });
  });

  it('keeps as many previous versions as the target DataSource says (0: the leftover is dropped)', () => {
    const none = dataSource('daily', inNamespace('web'), (d) => {
      d.spec.migration = { ...d.spec.migration, keepPreviousVersions: 0 };
    });
    const hash = specHashOf(rollup(changed), swapped);
    expect(planPipe(rollup(changed), [source, none], withView(swapped, viewMarker(hash))).steps).toEqual([{ ...finish, keepPreviousVersions: 0 }]);
  });

  it('finishes the interrupted recompute before recomputing again for a newer query', () => {
    const newer = 'SELECT tenant_id, 3 * count() AS n FROM page_views GROUP BY tenant_id';
    const plan = planPipe(rollup(newer), [source, target], withView(swapped, viewMarker(specHashOf(rollup(changed), swapped))));
    expect(plan.steps.map((s) => s.kind)).toEqual(['FinishRecompute', 'RecomputeView']);
    expect(plan.steps[1]).toMatchObject({ targetVersion: 2, keepPreviousVersions: 1 });
  });

  it('plans nothing more once it is finished (the previous version retained as daily__v1)', () => {
    const finished = catalogOf(tableFor(source), tableFor(target, { version: 2 }), tableFor(target, { name: 'daily__v1', version: 1 }));
    const hash = specHashOf(rollup(changed), finished);
    expect(planPipe(rollup(changed), [source, target], withView(finished, viewMarker(hash))).steps).toEqual([]);
  });

  it('leaves a recompute interrupted before its swap (the leftover is the next version) to RecomputeView', () => {
    const staged = catalogOf(tableFor(source), tableFor(target, { version: 1 }), tableFor(target, { name: 'daily__weir_recompute', version: 2 }));
    expect(planPipe(rollup(changed), [source, target], withView(staged, viewMarker('old'))).steps).toEqual([
      expect.objectContaining({ kind: 'RecomputeView', targetVersion: 1, keepPreviousVersions: 1 }),
    ]);
  });
});

describe('composeQuery and planPipe with what may end a node', () => {
  const catalog = catalogOf(tableFor(source), tableFor(target));

  for (const [what, sql] of ENDINGS) {
    it(`a node ending with ${what} composes into CTEs and embeds with nothing swallowed`, () => {
      const composed = composeQuery([node('a', sql), node('b', `SELECT * FROM a\n${what.includes('--') ? '-- last' : ''}`)]);
      expect(tokensOf(composed)).toEqual(['WITH', 'a', 'AS', '(', ...tokensOf(SQL), ')', 'SELECT', '*', 'FROM', 'a']);
      const step = createStep(planPipe(rollup(sql), [source, target], catalog));
      expect(step.kind).toBe('CreateView');
      expect(tokensOf(`CREATE MATERIALIZED VIEW v TO t AS ${embedSql(step.query)} COMMENT 'm'`).slice(-2)).toEqual(['COMMENT', "'m'"]);
      expect(tokensOf(`DESCRIBE TABLE (${embedSql(step.query)})`)).toEqual(['DESCRIBE', 'TABLE', '(', ...tokensOf(SQL), ')']);
    });
  }

  it('keeps the spec hash of SQL ending with ; as before (no recompute on upgrade)', () => {
    const step = createStep(planPipe(rollup(`${SQL};\n`), [source, target], catalog));
    expect(step.specHash).toBe(stableHash({ query: SQL, target: 'daily', backfill: 'Full' }));
  });

  it('refuses a node ending with FORMAT JSON or SETTINGS, creating nothing', () => {
    const plan = planPipe(rollup(`${SQL} FORMAT JSON`), [source, target], catalog);
    expect(plan).toEqual({
      steps: [],
      refusals: ['node n ends with FORMAT JSON; remove it: weir picks the output format (an endpoint takes it from its URL)'],
    });
    expect(planPipe(rollup(`${SQL} SETTINGS max_threads = 1`), [source, target], catalog).refusals).toEqual([
      expect.stringMatching(/^node n has a SETTINGS max_threads clause/),
    ]);
    const plain = pipe('plain', withNodes(node('a', 'SELECT 1 FORMAT CSV')));
    expect(planPipe(plain, [], catalog).refusals).toEqual([expect.stringMatching(/^node a ends with FORMAT CSV/)]);
  });
});

describe('planPipe: names taken', () => {
  const catalog = catalogOf(tableFor(source), tableFor(target));

  it('refuses a view name a table holds: CREATE MATERIALIZED VIEW IF NOT EXISTS would create nothing, and the backfill would run', () => {
    const weirs = catalogOf(tableFor(source), tableFor(target), tableFor(dataSource('rollup', inNamespace('web'))));
    expect(planPipe(rollup(), [source, target], weirs)).toMatchObject({
      steps: [],
      refusals: ["web.rollup exists as a DataSource's table, so the materialized view cannot be created; rename the Pipe (or the table)"],
    });
    const users = { ...catalog, tables: [...catalog.tables, { database: 'web', name: 'rollup', engine: 'MergeTree', columns: [], comment: '', totalRows: 0 }] };
    expect(planPipe(rollup(), [source, target], users).refusals).toEqual([
      'web.rollup exists as a table weir did not create, so the materialized view cannot be created; rename the Pipe (or the table)',
    ]);
  });

  it("refuses a weir view that writes to another table (another Pipe's)", () => {
    const other = { ...catalog, views: [{ database: 'web', name: 'rollup', target: 'web.elsewhere', query: '', comment: viewMarker('x') }] };
    expect(planPipe(rollup(), [source, target], other).refusals).toEqual([
      expect.stringMatching(/^view web\.rollup writes to web\.elsewhere, not to web\.daily: it is another Pipe's/),
    ]);
  });

  it('refuses a clash with a DataSource of its name', () => {
    const same = dataSource('rollup', inNamespace('web'));
    expect(planPipe(rollup(), [source, target, same], catalog).refusals).toEqual([
      'web.rollup would be both the table of DataSource web/rollup and the materialized view of Pipe web/rollup; two ClickHouse objects cannot share a name: rename one of them',
    ]);
  });
});

describe('planProject refuses a name clash on both resources, with one message', () => {
  it('the example plus a DataSource named like its rollup view', () => {
    const resources = [
      dataSource('page-views', inNamespace('web')),
      dataSource('page-views-daily', inNamespace('web')),
      pipe('daily-rollup', inNamespace('web'), withNodes(node('rollup', 'SELECT * FROM page_views')), materializedInto('page-views-daily')),
      dataSource('daily-rollup', inNamespace('web')),
      endpoint('e', 'daily-rollup', inNamespace('web')),
    ];
    const plan = planProject(resources, { databases: [], tables: [], views: [] });
    const message =
      'web.daily_rollup would be both the table of DataSource web/daily-rollup and the materialized view of Pipe web/daily-rollup; two ClickHouse objects cannot share a name: rename one of them';
    expect(plan.resources.filter((r) => r.refusals.length > 0)).toEqual([
      { key: 'DataSource/web/daily-rollup', steps: [], refusals: [message] },
      { key: 'Pipe/web/daily-rollup', steps: [], refusals: [message] },
    ]);
  });
});
