#!/usr/bin/env node
// The README's first command: weir dev on the example project, events sent to it, and an
// endpoint answering with the numbers. Leaves weir dev running (Ctrl-C stops it) unless --once.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const once = process.argv.includes('--once');
const port = Number(process.env.WEIR_DEV_PORT ?? 7181);
const chPort = Number(process.env.WEIR_CLICKHOUSE_PORT ?? 8123);
const dataDir = process.env.WEIR_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'weir-example-'));
const example = 'manifests/examples/web-analytics';
const base = `http://127.0.0.1:${port}`;

const dev = spawn(
  process.execPath,
  ['dist/cli/main.js', 'dev', '-f', example, '--port', String(port), '--clickhouse-port', String(chPort), '--data-dir', dataDir],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
let ready;
const readyNow = new Promise((r) => (ready = r));
dev.stdout.on('data', (d) => {
  process.stdout.write(d);
  if (/endpoints: http/.test(d.toString())) ready();
});
dev.on('exit', (code) => {
  if (!once) process.exit(code ?? 1);
});
await Promise.race([readyNow, new Promise((_, reject) => setTimeout(() => reject(new Error('weir dev did not become ready in 60 s')), 60_000))]);

const gen = spawn(process.execPath, [join(example, 'generate-events.mjs'), '--url', base, '--events', '1000', '--malformed', '8'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let summary = '';
gen.stdout.on('data', (d) => (summary += d.toString()));
await new Promise((r) => gen.on('exit', r));
console.log(`\nevents: ${summary.trim()}`);

const res = await fetch(`${base}/v0/pipes/top_pages.json?tenant=acme&limit=5`);
const body = await res.json();
console.log(`\nGET ${base}/v0/pipes/top_pages.json?tenant=acme&limit=5 → ${res.status}`);
console.table(body.data);
console.log(`\nTry: curl '${base}/v0/pipes/top_pages.csv?tenant=globex'`);
if (once) {
  dev.kill('SIGTERM');
  await new Promise((r) => dev.on('exit', r));
} else {
  console.log('weir dev keeps running; edit manifests/examples/web-analytics/*.yaml to see plans applied. Ctrl-C stops it.');
}
