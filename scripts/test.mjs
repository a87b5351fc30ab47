#!/usr/bin/env node
// `npm test`: makes sure the system packages the tests need are present (installing them with
// apt-get when running as root, otherwise failing with the exact command to run), then runs every
// vitest suite and ends with one plain line: "N passed, N failed, N skipped".
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** System packages some suites need: what to look for, and the Debian package that provides it. */
const REQUIREMENTS = [
  { what: 'chromium', present: () => existsSync('/usr/bin/chromium'), apt: 'chromium' },
  { what: 'nats-server', present: () => onPath('nats-server'), apt: 'nats-server' },
  { what: 'espeak-ng', present: () => onPath('espeak-ng'), apt: 'espeak-ng' },
];

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function ensureSystemPackages() {
  const missing = REQUIREMENTS.filter((r) => !r.present());
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((r) => r.apt))];
  const command = `apt-get update && apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !onPath('apt-get')) {
    console.error(`npm test: missing ${missing.map((r) => r.what).join(', ')}. Install them with:\n  sudo sh -c '${command}'`);
    process.exit(1);
  }
  console.error(`npm test: installing ${pkgs.join(' ')} …`);
  const r = spawnSync('sh', ['-c', command], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const still = missing.filter((m) => !m.present());
  if (r.status !== 0 || still.length > 0) {
    console.error(`npm test: could not install ${still.map((m) => m.what).join(', ')} (exit ${r.status}). Run:\n  ${command}`);
    process.exit(1);
  }
}

ensureSystemPackages();

const out = mkdtempSync(join(tmpdir(), 'lifeline-test-'));
const jsonFile = join(out, 'results.json');
const vitest = join('node_modules', 'vitest', 'vitest.mjs');
const r = spawnSync(process.execPath, [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${jsonFile}`, ...process.argv.slice(2)], {
  stdio: 'inherit',
});
let code = r.status ?? 1;
if (existsSync(jsonFile)) {
  const res = JSON.parse(readFileSync(jsonFile, 'utf8'));
  const skipped = (res.numPendingTests ?? 0) + (res.numTodoTests ?? 0);
  // The Durable Streams conformance suite's own count, per store (its outer describe block).
  const conformance = new Map();
  for (const file of res.testResults ?? []) {
    for (const t of file.assertionResults ?? []) {
      const suite = t.ancestorTitles?.[0] ?? '';
      if (!suite.startsWith('Durable Streams conformance')) continue;
      const c = conformance.get(suite) ?? { passed: 0, failed: 0, skipped: 0 };
      if (t.status === 'passed') c.passed++;
      else if (t.status === 'failed') c.failed++;
      else c.skipped++;
      conformance.set(suite, c);
    }
  }
  for (const [suite, c] of conformance) console.log(`${suite}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`);
  console.log(`${res.numPassedTests} passed, ${res.numFailedTests} failed, ${skipped} skipped`);
  if (res.numTotalTests === 0) {
    console.error('npm test: no test ran');
    code = 1;
  }
} else {
  console.error('npm test: vitest wrote no results');
  code = code || 1;
}
rmSync(out, { recursive: true, force: true });
process.exit(code);
