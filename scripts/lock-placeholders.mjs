// Records in package-lock.json chdb's optional native libraries that the registry does not serve
// (@chdb/lib-darwin-*, @chdb/lib-linux-arm64-gnu answer 404). npm install leaves them out of the lock
// and npm ci then refuses that lock ("Missing: @chdb/lib-darwin-arm64@ from lock file", npm/cli#9846).
// An entry with the version, os, cpu and libc lets npm ci skip them on other platforms; npm install
// keeps such entries as they are. Run after regenerating the lock: node scripts/lock-placeholders.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const LOCK = new URL('../package-lock.json', import.meta.url);
const NATIVE = /^@chdb\/lib-(darwin|linux)-(x64|arm64)(?:-(gnu))?$/;

/** The lock entry npm would write for a platform package, without the tarball's integrity. */
function placeholder(name, version, license) {
  const [, os, cpu, libc] = NATIVE.exec(name);
  return { version, cpu: [cpu], ...(libc ? { libc: ['glibc'] } : {}), license, optional: true, os: [os] };
}

const lock = JSON.parse(readFileSync(LOCK, 'utf8'));
const chdb = lock.packages['node_modules/chdb'];
const added = [];
for (const [name, version] of Object.entries(chdb?.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`;
  if (!NATIVE.test(name) || lock.packages[key]) continue;
  lock.packages[key] = placeholder(name, version, chdb.license);
  added.push(name);
}
// npm writes packages sorted by location; keep that order so npm install leaves the file unchanged.
const [root, ...rest] = Object.entries(lock.packages);
lock.packages = Object.fromEntries([root, ...rest.sort(([a], [b]) => a.localeCompare(b, 'en'))]);
writeFileSync(LOCK, JSON.stringify(lock, null, 2) + '\n');
console.log(added.length ? `added ${added.join(', ')}` : 'nothing to add');
