#!/usr/bin/env node
// Realistic page-view events for the web-analytics example, sent to weir's events API.
// Usage: node generate-events.mjs [--url http://127.0.0.1:7181] [--events 1000] [--malformed 10] [--seed 42]
// Prints one JSON summary line: what was sent, what weir accepted and quarantined.
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const url = args.url ?? 'http://127.0.0.1:7181';
const total = Number(args.events ?? 1000);
const malformed = Number(args.malformed ?? 10);
let seed = Number(args.seed ?? 42);
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = (xs) => xs[Math.floor(random() * xs.length)];

const tenants = ['acme', 'globex', 'initech'];
const pages = ['/', '/pricing', '/docs', '/docs/getting-started', '/blog', '/blog/launch', '/signup', '/login'];
const countries = ['DE', 'US', 'FR', 'JP', 'BR', undefined];

const events = [];
const now = Date.now();
for (let i = 0; i < total; i++) {
  const country = pick(countries);
  events.push(
    JSON.stringify({
      timestamp: new Date(now - Math.floor(random() * 7 * 86_400_000)).toISOString(),
      session_id: `s-${Math.floor(random() * total / 3)}`,
      tenant_id: pick(tenants),
      payload: { pathname: pick(pages), ...(country ? { country } : {}), duration_ms: Math.floor(random() * 30_000) },
    }),
  );
}
const bad = [
  '{"timestamp": "not a time", "session_id": "s", "tenant_id": "acme", "payload": {"pathname": "/"}}',
  '{"session_id": "s-missing-tenant", "payload": {"pathname": "/"}}',
  'this is not json',
  '{"timestamp": "2026-01-01T00:00:00Z", "session_id": "s", "tenant_id": "acme", "payload": {"pathname": "/", "duration_ms": -1}}',
];
for (let i = 0; i < malformed; i++) events.splice(Math.floor(random() * events.length), 0, bad[i % bad.length]);

let accepted = 0;
let quarantined = 0;
for (let i = 0; i < events.length; i += 500) {
  const res = await fetch(`${url}/v0/events?name=page_views`, { method: 'POST', body: events.slice(i, i + 500).join('\n') });
  if (!res.ok) throw new Error(`events API answered ${res.status}: ${await res.text()}`);
  const r = await res.json();
  accepted += r.successful_rows;
  quarantined += r.quarantined_rows;
}
console.log(JSON.stringify({ sent: events.length, valid: total, malformed, accepted, quarantined }));
