// Query parameters ({name:Type} placeholders) for a pooled chdb session.
//
// chdb's queryBind runs parameterised queries one at a time in the whole process (its parameter state races across
// connections), so parameters are set on the session instead, with `SET param_<name> = '<text>'`, as
// clickhouse-client does. The text is exactly what ClickHouse's HTTP interface receives (`param_<name>` in its
// escaped form) and the engine parses it the same way, so values never become SQL.
//
// Parameters set on a session stay there. So that no request can read a value an earlier request set, every
// placeholder the request provides a value for is renamed into a reserved prefix and set right before the statement;
// a placeholder it does not provide keeps its name, which no request ever sets, and fails as UNKNOWN_QUERY_PARAMETER.

import { quoteStringLiteral, type StatementInfo } from '../plan/sql-text.js';

export const PARAM_PREFIX = '__http_';

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface BoundQuery {
  /** The statement with the provided placeholders renamed into PARAM_PREFIX. */
  sql: string;
  /** `param_<prefixed name> = '<text>'`, for a SET before the statement. */
  assignments: string[];
}

/** Binds HTTP query parameters (`param_<name>` values, in ClickHouse's escaped text form) to a statement. */
export function bindParameters(sql: string, info: StatementInfo, values: Readonly<Record<string, string>>): BoundQuery {
  const provided = new Set(Object.keys(values).filter((name) => PARAM_NAME.test(name)));
  const assignments = [...provided].map((name) => `param_${PARAM_PREFIX}${name} = ${quoteStringLiteral(values[name] ?? '')}`);

  let rewritten = '';
  let from = 0;
  for (const p of info.placeholders) {
    if (!provided.has(p.name)) continue;
    rewritten += `${sql.slice(from, p.start)}{${PARAM_PREFIX}${p.name}:${p.type}}`;
    from = p.end;
  }
  return { sql: rewritten + sql.slice(from), assignments };
}
