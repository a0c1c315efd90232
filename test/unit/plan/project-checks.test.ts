import { describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/api/datasource.js';
import type { ProjectResource } from '../../../src/plan/graph.js';
import {
  describeClash,
  forwardQueryProblem,
  nameClashes,
  nameRefusals,
  objectsOf,
  pipeSqlProblems,
  projectProblems,
  reservedNameProblems,
} from '../../../src/plan/project-checks.js';
import { dataSource, endpoint, inNamespace, materializedInto, node, pipe, withNodes, withSpec } from '../../fixtures/builders.js';

const web = inNamespace<DataSource>('web');
const inWeb = <T extends { metadata: { namespace?: string } }>() => inNamespace<T>('web');
const example = (): ProjectResource[] => [
  dataSource('page-views', web),
  dataSource('page-views-daily', web),
  pipe('daily-rollup', inWeb(), withNodes(node('rollup', 'SELECT * FROM page_views')), materializedInto('page-views-daily')),
  pipe('top-pages', inWeb(), withNodes(node('n', 'SELECT * FROM page_views_daily'))),
  endpoint('top-pages', 'top-pages', inWeb()),
];
const clashes = (resources: ProjectResource[]) => nameClashes(resources).map(describeClash);

describe('objectsOf: what each resource creates in ClickHouse', () => {
  it("a DataSource its table and quarantine table, a materialized Pipe its view in its target's database, nothing else", () => {
    const resources = example();
    const objects = resources.flatMap((r) => objectsOf(r, resources)).map((o) => `${o.owner}: ${o.what} ${o.database}.${o.name}`);
    expect(objects).toEqual([
      'DataSource web/page-views: table web.page_views',
      'DataSource web/page-views: quarantine table web.page_views_quarantine',
      'DataSource web/page-views-daily: table web.page_views_daily',
      'DataSource web/page-views-daily: quarantine table web.page_views_daily_quarantine',
      'Pipe web/daily-rollup: materialized view web.daily_rollup',
    ]);
  });

  it('computes the database from spec.database, else the namespace', () => {
    const target = dataSource('daily', web, withSpec<DataSource>({ database: 'analytics' }));
    const rollup = pipe('rollup', inWeb(), materializedInto('daily'));
    expect(objectsOf(rollup, [target, rollup]).map((o) => `${o.database}.${o.name}`)).toEqual(['analytics.rollup']);
    expect(objectsOf(dataSource('a-b', inNamespace('my-team')), []).map((o) => `${o.database}.${o.name}`)).toEqual(['my_team.a_b', 'my_team.a_b_quarantine']);
  });

  it('a materialized Pipe whose target is unknown creates nothing (its own refusal says why)', () => {
    expect(objectsOf(pipe('rollup', materializedInto('nowhere')), [])).toEqual([]);
  });
});

describe('nameClashes', () => {
  it('finds none in the example', () => {
    expect(nameClashes(example())).toEqual([]);
  });

  it('a DataSource named like a materialized Pipe (the daily-rollup case), naming both', () => {
    expect(clashes([...example(), dataSource('daily-rollup', web)])).toEqual([
      'web.daily_rollup would be both the table of DataSource web/daily-rollup and the materialized view of Pipe web/daily-rollup; two ClickHouse objects cannot share a name: rename one of them',
    ]);
  });

  it("a DataSource named like another's quarantine table", () => {
    expect(clashes([dataSource('events', web), dataSource('events-quarantine', web)])).toEqual([
      'web.events_quarantine would be both the quarantine table of DataSource web/events and the table of DataSource web/events-quarantine; two ClickHouse objects cannot share a name: rename one of them',
    ]);
  });

  it('a materialized Pipe named like a quarantine table', () => {
    const resources = [...example(), pipe('page-views-quarantine', inWeb(), materializedInto('page-views-daily'))];
    expect(clashes(resources)).toEqual([
      expect.stringMatching(
        /^web\.page_views_quarantine would be both the quarantine table of DataSource web\/page-views and the materialized view of Pipe web\/page-views-quarantine/,
      ),
    ]);
  });

  it('a materialized Pipe that materializes into a DataSource of its own name', () => {
    const resources = [dataSource('daily', web), pipe('daily', inWeb(), materializedInto('daily'))];
    expect(clashes(resources)).toEqual([
      expect.stringMatching(/^web\.daily would be both the table of DataSource web\/daily and the materialized view of Pipe web\/daily/),
    ]);
  });

  it('DataSources of two namespaces that spec.database puts in one database', () => {
    const a = dataSource('events', inNamespace('a'), withSpec<DataSource>({ database: 'shared' }));
    const b = dataSource('events', inNamespace('b'), withSpec<DataSource>({ database: 'shared' }));
    expect(clashes([a, b])).toEqual([
      'shared.events would be both the table of DataSource a/events and the table of DataSource b/events; two ClickHouse objects cannot share a name: rename one of them',
      'shared.events_quarantine would be both the quarantine table of DataSource a/events and the quarantine table of DataSource b/events; two ClickHouse objects cannot share a name: rename one of them',
    ]);
  });

  it("a DataSource whose spec.database is another namespace's database", () => {
    const a = dataSource('events', inNamespace('team-a'));
    const b = dataSource('events', inNamespace('b'), withSpec<DataSource>({ database: 'team_a' }));
    expect(nameClashes([a, b])).toHaveLength(2);
  });

  it('materialized Pipes of two namespaces whose targets share a database', () => {
    const ta = dataSource('ta', inNamespace('a'), withSpec<DataSource>({ database: 'shared' }));
    const tb = dataSource('tb', inNamespace('b'), withSpec<DataSource>({ database: 'shared' }));
    const pa = pipe('rollup', inNamespace('a'), materializedInto('ta'));
    const pb = pipe('rollup', inNamespace('b'), materializedInto('tb'));
    expect(clashes([ta, tb, pa, pb])).toEqual([
      expect.stringMatching(/^shared\.rollup would be both the materialized view of Pipe a\/rollup and the materialized view of Pipe b\/rollup/),
    ]);
  });

  it('no clash across databases, nor with plain Pipes and Endpoints, which create nothing', () => {
    const resources: ProjectResource[] = [
      dataSource('events', inNamespace('a')),
      dataSource('events', inNamespace('b')),
      pipe('events', inNamespace('a')),
      endpoint('events', 'events', inNamespace('a')),
    ];
    expect(nameClashes(resources)).toEqual([]);
  });

  it('counts one resource given twice once (the later spec wins)', () => {
    const old = dataSource('events', web);
    const now = dataSource('events', web, withSpec<DataSource>({ database: 'moved' }));
    expect(nameClashes([old, now])).toEqual([]);
  });
});

describe('reservedNameProblems', () => {
  it('refuses "--" (ClickHouse "__") in the name of a resource that creates objects', () => {
    const [problem] = reservedNameProblems(dataSource('events--v2', web), []);
    expect(problem).toEqual({
      path: '.metadata.name',
      message:
        'events--v2 is ClickHouse name events__v2, and "__" (written "--" in a resource name) is reserved for the tables weir keeps next to a table or view (events__v2__v2, events__v2__weir_next); use single dashes',
    });
    const target = dataSource('t', web);
    expect(reservedNameProblems(pipe('p--weir-next', inWeb(), materializedInto('t')), [target])).toHaveLength(1);
  });

  it('allows "--" where nothing is created: a plain Pipe, an Endpoint', () => {
    expect(reservedNameProblems(pipe('a--b'), [])).toEqual([]);
    expect(reservedNameProblems(endpoint('a--b', 'p'), [])).toEqual([]);
  });

  it("refuses weir's and ClickHouse's own databases, by the field that set them", () => {
    expect(reservedNameProblems(dataSource('events', inNamespace('weir')), [])).toEqual([
      { path: '.metadata.namespace', message: "database weir is weir's own (migrations, fences); set spec.database to another database" },
    ]);
    expect(reservedNameProblems(dataSource('events', withSpec<DataSource>({ database: 'system' })), [])).toEqual([
      { path: '.spec.database', message: "database system is ClickHouse's; set spec.database to another database" },
    ]);
    expect(reservedNameProblems(dataSource('events', inNamespace('weir'), withSpec<DataSource>({ database: 'events' })), [])).toEqual([]);
  });
});

describe('nameRefusals: what a planner refuses for one resource', () => {
  const ds = dataSource('daily-rollup', web);
  const message =
    'web.daily_rollup would be both the table of DataSource web/daily-rollup and the materialized view of Pipe web/daily-rollup; two ClickHouse objects cannot share a name: rename one of them';

  it('names the clash for both resources in it, with the same message', () => {
    const resources = [...example(), ds];
    expect(nameRefusals(ds, resources)).toEqual([message]);
    expect(nameRefusals(resources[2] as ProjectResource, resources)).toEqual([message]);
    expect(nameRefusals(resources[0] as ProjectResource, resources)).toEqual([]);
  });

  it("sees the resource itself even when the others given do not hold it (an operator's view of the project)", () => {
    expect(nameRefusals(ds, example())).toEqual([message]);
    expect(nameRefusals(ds, [])).toEqual([]);
  });

  it('holds reserved names too', () => {
    expect(nameRefusals(dataSource('a--b'), [])).toEqual([expect.stringMatching(/is reserved for the tables weir keeps/)]);
  });
});

describe('pipeSqlProblems and forwardQueryProblem', () => {
  it('names each node weir cannot embed', () => {
    const p = pipe('p', withNodes(node('a', 'SELECT 1 -- fine'), node('b', 'SELECT * FROM a FORMAT JSON'), node('c', 'SELECT 1 SETTINGS max_threads = 1')));
    expect(pipeSqlProblems(p)).toEqual([
      { index: 1, message: 'node b ends with FORMAT JSON; remove it: weir picks the output format (an endpoint takes it from its URL)' },
      { index: 2, message: expect.stringMatching(/^node c has a SETTINGS max_threads clause/) },
    ]);
  });

  it('checks a forwardQuery for what would break the copy around it', () => {
    const ds = (q: string) => dataSource('t', withSpec<DataSource>({ migration: { forwardQuery: q } }));
    expect(forwardQueryProblem(ds('SELECT * FROM {source} -- keep all'))).toBeUndefined();
    expect(forwardQueryProblem(ds('SELECT * FROM {source}; DROP TABLE x'))).toMatch(/^spec\.migration\.forwardQuery holds more than one statement/);
    expect(forwardQueryProblem(dataSource('t'))).toBeUndefined();
  });
});

describe('projectProblems: validation errors with files', () => {
  it('names both resources and both files of a clash', () => {
    const loaded = [...example().map((object) => ({ file: 'app.yaml', object })), { file: 'extra.yaml', object: dataSource('daily-rollup', web) }];
    expect(projectProblems(loaded)).toEqual([
      {
        file: 'extra.yaml',
        resource: 'DataSource web/daily-rollup',
        path: '.metadata.name',
        message:
          'web.daily_rollup would be both the table of DataSource web/daily-rollup and the materialized view of Pipe web/daily-rollup; two ClickHouse objects cannot share a name: rename one of them (DataSource web/daily-rollup is in extra.yaml, Pipe web/daily-rollup in app.yaml)',
      },
    ]);
  });

  it('points SQL problems at the node and forwardQuery problems at the field', () => {
    const loaded = [
      { file: 'p.yaml', object: pipe('p', withNodes(node('a', 'SELECT 1'), node('b', 'SELECT 1;;SELECT 2'))) },
      { file: 'd.yaml', object: dataSource('t', withSpec<DataSource>({ migration: { forwardQuery: 'SELECT (1' } })) },
      { file: 'r.yaml', object: dataSource('t--v1') },
    ];
    expect(projectProblems(loaded).map((e) => `${e.file} ${e.resource} ${e.path}: ${e.message}`)).toEqual([
      "p.yaml Pipe default/p .spec.nodes[1].sql: node b holds more than one statement (a second one starts after ';': SELECT 2)",
      'd.yaml DataSource default/t .spec.migration.forwardQuery: spec.migration.forwardQuery leaves 1 parenthesis open',
      'r.yaml DataSource default/t--v1 .metadata.name: t--v1 is ClickHouse name t__v1, and "__" (written "--" in a resource name) is reserved for the tables weir keeps next to a table or view (t__v1__v2, t__v1__weir_next); use single dashes',
    ]);
  });

  it('finds nothing in the example', () => {
    expect(projectProblems(example().map((object) => ({ file: 'app.yaml', object })))).toEqual([]);
  });
});
