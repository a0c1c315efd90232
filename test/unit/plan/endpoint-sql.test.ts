// Endpoint SQL is a Pipe's nodes composed into one query, which the endpoint server wraps:
// DESCRIBE TABLE (…) for readiness and OpenAPI, `…\nFORMAT x` for requests. A node ending in a
// comment or ';' must not reach into that; one ending in FORMAT or SETTINGS is refused.
import { describe, expect, it } from 'vitest';
import type { ClickHouse } from '../../../src/clickhouse/connection.js';
import { tokenize } from '../../../src/plan/sql-text.js';
import { compileEndpoint, type CompiledEndpoint } from '../../../src/plan/endpoint/compile.js';
import { describeEndpointQuery } from '../../../src/clickhouse/describe.js';
import { endpoint, node, pipe, withNodes } from '../../fixtures/builders.js';

const SQL = 'SELECT pathname, count() AS views FROM page_views WHERE tenant_id = {tenant:String} GROUP BY pathname';
const tokensOf = (sql: string) => [...tokenize(sql)].map((t) => t.text);

const compiledWith = (...sqls: string[]): CompiledEndpoint | { problem: string } =>
  compileEndpoint(endpoint('e', 'p'), pipe('p', withNodes(...sqls.map((sql, i) => node(`n${i}`, sql)))), 'web');

const served = (c: CompiledEndpoint | { problem: string }): CompiledEndpoint => {
  if ('problem' in c) throw new Error(c.problem);
  return c;
};

/** What describeEndpointQuery sends; the SQL's shape is what is tested here, ClickHouse's verdict in the integration tests. */
async function describeSql(ep: CompiledEndpoint): Promise<string> {
  const sent: string[] = [];
  const ch: Pick<ClickHouse, 'query'> = {
    query: <T>(sql: string) => {
      sent.push(sql);
      return Promise.resolve([] as T[]);
    },
  };
  await describeEndpointQuery(ch, ep);
  return sent[0] ?? '';
}

describe('an Endpoint whose node ends with a comment or ;', () => {
  for (const [what, sql] of [
    ['a trailing -- comment', `${SQL}\n-- top pages`],
    ['a trailing /* comment */', `${SQL} /* top pages */`],
    ['a trailing ;', `${SQL};`],
    ['a ; then a comment', `${SQL}; -- top pages`],
  ] as const) {
    it(`compiles, and its DESCRIBE and FORMAT wrappers survive ${what}`, async () => {
      const ep = served(compiledWith(sql));
      expect(tokensOf(ep.sql)).toEqual(tokensOf(SQL));
      expect(tokensOf(await describeSql(ep))).toEqual(['DESCRIBE', 'TABLE', '(', ...tokensOf(SQL), ')']);
      // As connection.queryFormatted sends it.
      expect(tokensOf(`${ep.sql}\nFORMAT JSON`).slice(-2)).toEqual(['FORMAT', 'JSON']);
      const chained = served(compiledWith(sql, 'SELECT * FROM n0 -- all of it'));
      expect(tokensOf(await describeSql(chained)).slice(-5)).toEqual(['SELECT', '*', 'FROM', 'n0', ')']);
    });
  }

  it('keeps its compiled SQL (and so its version) as it was for SQL that needed no change', () => {
    expect(served(compiledWith(`${SQL};`)).sql).toBe(SQL);
    expect(served(compiledWith(SQL, 'SELECT * FROM n0')).sql).toBe(`WITH n0 AS (\n${SQL}\n)\nSELECT * FROM n0`);
  });
});

describe('an Endpoint whose nodes end with FORMAT or SETTINGS, or leave something open', () => {
  it('is refused, naming the node', () => {
    expect(compiledWith(`${SQL} FORMAT JSON`)).toEqual({
      problem: 'node n0 of Pipe p ends with FORMAT JSON; remove it: the endpoint picks the format from the URL',
    });
    expect(compiledWith(`${SQL} FORMAT JSON`, 'SELECT * FROM n0')).toEqual({
      problem: 'node n0 of Pipe p ends with FORMAT JSON; remove it: weir picks the output format (an endpoint takes it from its URL)',
    });
    expect(compiledWith(`${SQL} SETTINGS max_result_rows = 0`)).toEqual({
      problem:
        "node n0 of Pipe p has a SETTINGS max_result_rows clause; remove it: weir sets the settings of the queries it runs (an endpoint's limits, a backfill's filters)",
    });
    expect(compiledWith(`${SQL} /* unfinished`)).toEqual({ problem: 'node n0 of Pipe p leaves a /* comment open (its */ is missing)' });
    expect(compiledWith(`SELECT * FROM (${SQL}`)).toEqual({ problem: 'node n0 of Pipe p leaves 1 parenthesis open' });
  });
});
