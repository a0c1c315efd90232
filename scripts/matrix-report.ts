// Renders the safety-of-change matrix (docs/safety-matrix.md) from the results that
// test/matrix/matrix.test.ts appends, one JSON CellResult a line.
//   tsx scripts/matrix-report.ts <results.jsonl>[,<more.jsonl>…] <out.md>
// Rows in the results but not in ROWS (the scale row, whose results are kept in
// test/matrix/scale-results.jsonl by npm run matrix:scale) are listed after ROWS, cell by cell.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ROWS } from '../test/matrix/rows.js';
import { conditionsOf } from '../test/matrix/conditions.js';
import type { CellResult } from '../test/matrix/harness.js';

const [resultsFiles = '.weir-matrix.jsonl', out = 'docs/safety-matrix.md'] = process.argv.slice(2);
const results: CellResult[] = resultsFiles
  .split(',')
  .filter((f) => existsSync(f))
  .flatMap((f) => readFileSync(f, 'utf8').split('\n'))
  .filter(Boolean)
  .map((l) => JSON.parse(l) as CellResult);
// A cell run again (a partial rerun appended to the same file) counts by its last result only.
const byCell = new Map(results.map((r) => [`${r.row}|${r.condition}`, r]));
const latest = [...byCell.values()];

/** ✓ with the writer pause and fence held, ✗ with the reason, — for a cell that cannot run, ? for one not run. */
function cell(r: CellResult | undefined): string {
  if (!r) return '? not run';
  if (r.notApplicable) return `— ${r.notApplicable}`;
  const pause = `pause ${r.longestPauseMs ?? '–'} ms, fence ${r.fenceHeldMs ?? '–'} ms`;
  return r.ok ? `✓ ${pause}` : `✗ ${(r.reason ?? '').replace(/\|/g, '\\|').slice(0, 300)} (${pause})`;
}

const lines: string[] = [
  '# The safety-of-change matrix',
  '',
  'Every kind of change (rows) under every condition (columns), each cell run by one harness',
  '(`test/matrix/`). Regenerate with `npm run matrix`; `npm test` runs the CI subset (idle and live',
  'for every row and the first executor kill of each).',
  '',
  'Every ✓ cell proved all of this:',
  '',
  '- **writer**: a weir-managed writer (the events API in process, the events API pod `weir events` over HTTP, or `weir ingest` from a Kafka topic) wrote page views with unique ids, and a few malformed inputs;',
  '- **counts**: at the end `page_views` holds exactly the rows acknowledged, by `count()` and by `uniqExact(session_id)`; the rollup `page_views_daily` equals a recomputation from `page_views`; the quarantine holds exactly the malformed inputs;',
  '- **reads**: a reader queried `page_views` itself through an Endpoint served by `weir serve`; no read failed, went backwards or counted an id twice, and every read saw every row acknowledged before it started;',
  '- **leftovers**: no `__weir_next`, staging or recompute table is left; a refused change left the schema (every table, column and marker) as it was.',
  '',
  'Columns: **idle** (nothing writes or reads during the change); **live** (the writer writes and the',
  'reader reads throughout); **kill@P** (`weir apply` SIGKILLed at fault point P, then run again, with',
  'live traffic); **clickhouse-killed** (`weir clickhouse` SIGKILLed while the executor stands at the',
  "row's mid-way fault point, restarted on the same data directory and port, and `weir apply` run again).",
  '',
  'In each cell, *pause* is the longest a writer batch waited at a fence and *fence* the longest the',
  'executor held one (measured, not asserted). While ClickHouse itself is down, reads through an',
  "Endpoint answer 5xx and the events API answers 503; the harness's clients retry, and those reads are",
  'counted apart (not as failures); before the kill and after the restart every read succeeds.',
  '',
];

for (const row of ROWS) {
  lines.push(
    `## ${row.id}: ${row.title}`,
    '',
    `Writer: ${row.writer === 'kafka' ? '`weir ingest` (Kafka)' : row.writer === 'http' ? '`weir events` over HTTP, an `Idempotency-Key` per batch' : 'events API'}. Outcome: ${row.outcome}.`,
    '',
    '| condition | result |',
    '|---|---|',
  );
  for (const { condition } of conditionsOf(row)) {
    const r = byCell.get(`${row.id}|${condition.id}`);
    lines.push(`| ${condition.id} | ${cell(r)} |`);
  }
  lines.push('');
}

// Rows that are not in ROWS unless asked for (the scale row): their cells as they ran.
const known = new Set(ROWS.map((r) => r.id));
for (const id of [...new Set(latest.map((r) => r.row))].filter((id) => !known.has(id))) {
  const cells = latest.filter((r) => r.row === id);
  const first = cells[0] as CellResult;
  const acked = Math.max(...cells.map((r) => r.rowsBefore));
  lines.push(
    `## ${id}: ${first.title}`,
    '',
    `Writer: ${first.writer === 'kafka' ? '`weir ingest` (Kafka)' : 'events API'}. ${acked.toLocaleString('en')} rows before the change. Run by \`npm run matrix:scale\` (not by \`npm run matrix\`); cell time in brackets.`,
    '',
    '| condition | result |',
    '|---|---|',
    ...cells.map((r) => `| ${r.condition} | ${cell(r)}${r.notApplicable ? '' : ` (${Math.round(r.durationMs / 1000)} s)`} |`),
    '',
  );
}

// What a person learnt about cells (flakes seen in reruns, what a ✗ means to a user) survives a rerun.
const notes = readFileSync(new URL('../test/matrix/notes.md', import.meta.url), 'utf8').replace(/^<!--.*-->\n/, '');
lines.push(notes.trim(), '');

const ran = latest.filter((r) => !r.notApplicable);
const failed = ran.filter((r) => !r.ok);
lines.push(
  '## Summary',
  '',
  `${ran.length} cells ran, ${ran.length - failed.length} ✓, ${failed.length} ✗; ${latest.length - ran.length} cannot run by design (—).`,
  `Longest writer pause in any cell: ${Math.max(0, ...ran.map((r) => r.longestPauseMs ?? 0))} ms; longest fence held: ${Math.max(0, ...ran.map((r) => r.fenceHeldMs ?? 0))} ms.`,
  `Time: ${Math.round(ran.reduce((s, r) => s + r.durationMs, 0) / 1000)} s of cells.`,
  '',
);
writeFileSync(out, lines.join('\n'));
console.log(`wrote ${out}: ${ran.length} cells, ${failed.length} ✗`);
