import { describe, expect, it } from 'vitest';
import { collectParameters, findPlaceholders, findTableReferences, retargetTable } from '../../../src/plan/sql-scan.js';

describe('findPlaceholders', () => {
  it('finds {name:Type} placeholders with their types, in order', () => {
    expect(findPlaceholders('SELECT * FROM t WHERE a = {tenant:String} AND d BETWEEN {from:Date} AND {to: Date } LIMIT {limit:UInt32}')).toMatchObject([
      { name: 'tenant', type: 'String' },
      { name: 'from', type: 'Date' },
      { name: 'to', type: 'Date' },
      { name: 'limit', type: 'UInt32' },
    ]);
  });

  it('keeps parameterised types whole', () => {
    expect(findPlaceholders("SELECT {ts:DateTime64(3, 'UTC')}, {ids:Array(UInt64)}, {m:Map(String, Nullable(Int8))}").map((p) => p.type)).toEqual([
      "DateTime64(3, 'UTC')",
      'Array(UInt64)',
      'Map(String, Nullable(Int8))',
    ]);
  });

  it('ignores placeholders inside strings, quoted identifiers and comments', () => {
    const sql = "SELECT '{a:String}', `{b:String}` -- {c:String}\n/* {d:String} */ FROM t WHERE x = {e:UInt8} AND y = 'it''s {f:String}'";
    expect(findPlaceholders(sql).map((p) => p.name)).toEqual(['e']);
  });

  it('handles backslash escapes in strings', () => {
    expect(findPlaceholders("SELECT 'a\\'{x:String}' , {y:String}").map((p) => p.name)).toEqual(['y']);
  });
});

describe('collectParameters', () => {
  it('merges the same parameter across nodes and flags conflicting types', () => {
    expect(collectParameters(['SELECT {a:String}', 'SELECT {a: String}, {b:UInt8}'])).toEqual({
      params: [
        { name: 'a', type: 'String' },
        { name: 'b', type: 'UInt8' },
      ],
      conflicts: [],
    });
    expect(collectParameters(['SELECT {a:String}', 'SELECT {a:UInt8}']).conflicts).toEqual(['parameter a is used as String and as UInt8']);
  });
});

describe('findTableReferences', () => {
  it('finds FROM and JOIN targets, database-qualified or not', () => {
    expect(findTableReferences('SELECT * FROM page_views AS p JOIN web.tenants t ON p.tenant_id = t.id LEFT JOIN `odd name` USING (x)')).toEqual([
      'page_views',
      'web.tenants',
      'odd name',
    ]);
  });

  it('skips table functions, subqueries, strings and comments', () => {
    const sql = "SELECT 'FROM fake' FROM numbers(10) -- FROM commented\nJOIN (SELECT 1 FROM real_one) s ON 1 /* JOIN ghost */";
    expect(findTableReferences(sql)).toEqual(['real_one']);
  });

  it('is case-insensitive about keywords', () => {
    expect(findTableReferences('select x from a join b on 1')).toEqual(['a', 'b']);
  });
});

describe('retargetTable', () => {
  it('points qualified reads of one table at another, leaving strings, other tables and prefixes alone', () => {
    const sql = "SELECT 'web.page_views' AS s FROM web.page_views JOIN web.page_views_daily USING x JOIN `web`.`page_views` AS p ON 1";
    expect(retargetTable(sql, 'web', 'page_views', 'page_views__weir_next')).toBe(
      "SELECT 'web.page_views' AS s FROM web.`page_views__weir_next` JOIN web.page_views_daily USING x JOIN `web`.`page_views__weir_next` AS p ON 1",
    );
  });
});
