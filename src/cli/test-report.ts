// What `weir test` found, as CI systems read it: JUnit XML (--junit FILE) and one JSON document
// (-o json). Pure: results in, text out.
import type { Row } from './test-cases.js';

export type Outcome = 'passed' | 'failed' | 'updated';

/** One test's result: a case of a test file, or a check of the run itself (the rows a --from migration kept). */
export interface TestResult {
  file: string;
  name: string;
  outcome: Outcome;
  durationMs: number;
  /** Why it failed, in lines (the diff included), as the text output prints them. */
  failure?: string[];
  /** For an endpoint case: the status answered and, when it was not 200, the error (ClickHouse's message when it had one). */
  status?: number;
  error?: string;
  /** ClickHouse's own message for a failed query (type: message), when there was one. */
  clickhouse?: string;
  expectedRows?: Row[];
  actualRows?: Row[];
}

export interface RunSummary {
  project: string;
  from?: string;
  clickhouse: string;
  /** ms: the engine's start (0 against a live server), the applies, loading the fixtures, and the tests. */
  timings: { engineMs: number; applyMs: number; fixturesMs: number; migrationMs?: number; testsMs: number };
  fixtures: { file: string; datasource: string; lines: number; accepted: number; quarantined: number }[];
  results: TestResult[];
}

export const counts = (results: readonly TestResult[]) => ({
  passed: results.filter((r) => r.outcome === 'passed').length,
  failed: results.filter((r) => r.outcome === 'failed').length,
  updated: results.filter((r) => r.outcome === 'updated').length,
});

/** The -o json document. */
export function jsonReport(run: RunSummary) {
  return { ...run, ...counts(run.results), ok: counts(run.results).failed === 0 };
}

const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Text safe in XML attributes and content; characters XML 1.0 cannot hold at all are dropped. */
export function xmlText(s: string): string {
  return s.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '').replace(/[&<>"']/g, (c) => XML_ESCAPES[c] ?? c);
}

const seconds = (ms: number) => (ms / 1000).toFixed(3);

/** JUnit XML: one testsuite per file, one testcase per test, the failure's lines as its text. */
export function junitReport(run: RunSummary): string {
  const byFile = new Map<string, TestResult[]>();
  for (const r of run.results) byFile.set(r.file, [...(byFile.get(r.file) ?? []), r]);
  const total = counts(run.results);
  const allMs = run.results.reduce((n, r) => n + r.durationMs, 0);
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="weir test" tests="${run.results.length}" failures="${total.failed}" errors="0" time="${seconds(allMs)}">`,
  ];
  for (const [file, results] of byFile) {
    const failed = results.filter((r) => r.outcome === 'failed').length;
    const ms = results.reduce((n, r) => n + r.durationMs, 0);
    lines.push(`  <testsuite name="${xmlText(file)}" tests="${results.length}" failures="${failed}" errors="0" skipped="0" time="${seconds(ms)}">`);
    for (const r of results) {
      const open = `    <testcase classname="${xmlText(file)}" name="${xmlText(r.name)}" time="${seconds(r.durationMs)}"`;
      if (r.outcome !== 'failed') {
        lines.push(`${open}/>`);
        continue;
      }
      const message = r.failure?.[0]?.trim() ?? 'failed';
      lines.push(`${open}>`, `      <failure message="${xmlText(message)}">${xmlText((r.failure ?? []).join('\n'))}</failure>`, '    </testcase>');
    }
    lines.push('  </testsuite>');
  }
  lines.push('</testsuites>', '');
  return lines.join('\n');
}
