#!/usr/bin/env node
// Runs the whole suite as one `node --test` run: builds the shared fixtures once, then every
// test/**/*.test.ts file through tsx. Extra arguments are passed to node --test (e.g. a file to run alone).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return findTests(full);
    return entry.name.endsWith('.test.ts') ? [path.relative(root, full)] : [];
  });
}

const extra = process.argv.slice(2);
const files = extra.some((a) => a.endsWith('.ts')) ? [] : findTests(path.join(root, 'test')).sort();

const build = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/build.ts'], {
  cwd: root,
  stdio: 'inherit',
});
if (build.status !== 0) {
  console.error('test: building the fixtures failed');
  process.exit(build.status ?? 1);
}

const result = spawnSync(
  process.execPath,
  [
    '--expose-gc',
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    '--test-timeout=300000',
    ...extra,
    ...files,
  ],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
