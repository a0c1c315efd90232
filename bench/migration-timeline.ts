// Where a migration's time goes: the executor's progress states split it into phases, and a
// ClickHouse wrapper times every statement the executor sends and files it under its phase.
import type { ClickHouse, QueryOptions } from '../src/clickhouse/connection.js';

export interface StatementTiming {
  /** The statement with database names and whitespace folded, its middle cut: enough to tell them apart. */
  statement: string;
  ms: number;
}

export interface StatementTotal {
  statement: string;
  runs: number;
  ms: number;
}

export interface PhaseTiming {
  /** `from → to`: the progress states (onProgress) that open and close the phase. */
  phase: string;
  ms: number;
  statements: StatementTiming[];
}

const STATEMENT_CHARS = 120;

/** Bench output only: weir's own logs never carry SQL. */
function statementLabel(sql: string): string {
  const folded = sql
    .replace(/`[^`]+`\.(`[^`]+`)/g, '$1')
    .replace(/\s+/g, ' ')
    .trim();
  if (folded.length <= STATEMENT_CHARS) return folded;
  // Head and tail: an INSERT … SELECT's WHERE clause is what tells the backfill from the delta copy.
  const half = Math.floor((STATEMENT_CHARS - 3) / 2);
  return `${folded.slice(0, half)} … ${folded.slice(-half)}`;
}

export class MigrationTimeline {
  private readonly marks: { state: string; at: number }[] = [];
  /** Statements by the index of the mark they started after. */
  private readonly statements: (StatementTiming & { after: number })[] = [];

  /** The first mark; call right before applying. */
  start(label = 'apply'): void {
    this.marks.length = 0;
    this.statements.length = 0;
    this.mark(label);
  }

  /** A progress state was reached (wire to ExecutionHooks.onProgress). */
  mark(state: string): void {
    this.marks.push({ state, at: performance.now() });
  }

  phases(): PhaseTiming[] {
    return this.marks.slice(1).map((m, i) => {
      const prev = this.marks[i] as { state: string; at: number };
      return {
        phase: `${prev.state} → ${m.state}`,
        ms: m.at - prev.at,
        statements: this.statements.filter((s) => s.after === i).map(({ statement, ms }) => ({ statement, ms })),
      };
    });
  }

  /** Every statement label with how often it ran and its total time, costliest first. */
  statementTotals(): StatementTotal[] {
    const totals = new Map<string, StatementTotal>();
    for (const s of this.statements) {
      const t = totals.get(s.statement) ?? { statement: s.statement, runs: 0, ms: 0 };
      t.runs++;
      t.ms += s.ms;
      totals.set(s.statement, t);
    }
    return [...totals.values()].sort((a, b) => b.ms - a.ms);
  }

  /** `ch`, with every call timed and filed under the phase it started in. */
  timed(ch: ClickHouse): ClickHouse {
    const time = async <T>(sql: string, call: () => Promise<T>): Promise<T> => {
      const after = this.marks.length - 1;
      const started = performance.now();
      try {
        return await call();
      } finally {
        this.statements.push({ after, statement: statementLabel(sql), ms: performance.now() - started });
      }
    };
    return {
      ping: () => ch.ping(),
      query: <T>(sql: string, opts?: QueryOptions) => time(sql, () => ch.query<T>(sql, opts)),
      command: (sql, opts) => time(sql, () => ch.command(sql, opts)),
      insert: (table, rows, opts) => time(`INSERT INTO ${table} (${rows.length} rows)`, () => ch.insert(table, rows, opts)),
      insertLines: (table, lines, opts) => time(`INSERT INTO ${table} (${lines.length} rows)`, () => ch.insertLines(table, lines, opts)),
      close: () => ch.close(),
    };
  }
}
