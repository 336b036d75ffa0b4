#!/usr/bin/env node
// Runs the whole suite as one `node --test` run: builds the shared fixtures once, then every
// test/**/*.test.ts file through tsx. Extra arguments are passed to node --test (e.g. a file to run alone).
//
// Its end says what failed: a second reporter (scripts/failures-reporter.mjs) writes each failing test's
// name to a file as it fails, printed after the run. An interrupted run (SIGINT, SIGTERM, SIGHUP, or
// TEST_RUN_TIMEOUT_SECONDS) leaves nothing behind: the run is its own process group, stopped as a group;
// every process of the run carries RTMP_RELAY_TEST_RUN in its environment, so those that left the group
// (relays, FFmpeg and GStreamer in their own groups) are found in /proc and killed too; and every Node process
// of the run exits when its parent or this runner dies (scripts/exit-with-parent.mjs), which covers a runner
// killed with -9.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return findTests(full);
    return entry.name.endsWith('.test.ts') ? [path.relative(root, full)] : [];
  });
}

const extra = process.argv.slice(2);
const files = extra.some((a) => a.endsWith('.ts')) ? [] : findTests(path.join(root, 'test')).sort();

const runId = `${process.pid}-${randomBytes(6).toString('hex')}`;
const failuresFile = path.join(os.tmpdir(), `rtmp-relay-test-failures-${runId}.txt`);
const guard = pathToFileURL(path.join(root, 'scripts/exit-with-parent.mjs')).href;
const env = {
  ...process.env,
  RTMP_RELAY_TEST_RUN: runId,
  RTMP_RELAY_TEST_RUNNER_PID: String(process.pid),
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${guard}`.trim(),
};
// Set when this runner is itself started from a test: `node --test` would then report to that test's
// runner instead of running as a suite of its own.
delete env.NODE_TEST_CONTEXT;

/** The current step's process group leader, while one runs. */
let current = null;
/**
 * The process group of the step that ran last: whatever is still in it when the step is over is left over.
 * Swept right after its leader exits and then forgotten: pids wrap around (32768 here), so an old group's
 * id may later belong to someone else's processes.
 */
const stepGroups = new Set();
/** Every process swept so far. */
const left = [];
/** What stopped the run early: a signal name or "timeout". */
let interrupted = null;

function step(args) {
  return new Promise((resolve) => {
    // Its own process group, so the whole step can be signalled at once (and a terminal's Ctrl-C reaches
    // only us: we stop it in order).
    const child = spawn(process.execPath, args, {
      cwd: root,
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
      detached: true,
    });
    current = child;
    if (child.pid) stepGroups.add(child.pid);
    child.once('error', (err) => {
      console.error(`test: ${err.message}`);
      resolve(1);
    });
    child.once('exit', (code, signal) => {
      current = null;
      void sweep().then((swept) => {
        left.push(...swept);
        stepGroups.clear();
        resolve(code ?? (signal ? 1 : 0));
      });
    });
  });
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

function stop(why) {
  if (interrupted) return;
  interrupted = why;
  console.error(`\ntest: ${why}: stopping the run`);
  const child = current;
  if (!child) return;
  killGroup(child.pid, 'SIGTERM');
  // Tests get a moment for their after() hooks; then the group goes.
  setTimeout(() => killGroup(child.pid, 'SIGKILL'), 5000).unref();
}

/**
 * Processes of this run still alive: in a step's process group, or (any group or session) with the run id
 * in their environment. Both, because a process may rewrite the memory /proc shows as its environment
 * (redis-server's process title does).
 */
function leftovers() {
  const marker = `\0RTMP_RELAY_TEST_RUN=${runId}\0`;
  const found = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue; // exited; its parent has not reaped it yet
      const ours =
        stepGroups.has(Number(pgrp)) ||
        `\0${readFileSync(`/proc/${pid}/environ`, 'latin1')}`.includes(marker);
      if (ours) found.push({ pid, comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
    } catch {
      // gone meanwhile, or not ours to read: not of this run
    }
  }
  return found;
}

/** Kills what is left of the run, and waits (5 s at most) until the kernel has taken them all down. */
async function sweep() {
  const left = leftovers();
  for (const { pid } of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  const deadline = Date.now() + 5000;
  while (left.length > 0 && leftovers().length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return left;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => stop(signal));
const runTimeout = Number(process.env.TEST_RUN_TIMEOUT_SECONDS ?? 0);
if (runTimeout > 0) setTimeout(() => stop(`timeout after ${runTimeout} s`), runTimeout * 1000).unref();

let status = await step(['--import', 'tsx', 'test/fixtures/build.ts']);
if (status !== 0 && !interrupted) console.error('test: building the fixtures failed');
if (status === 0 && !interrupted) {
  status = await step([
    '--expose-gc',
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    '--test-timeout=300000',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${pathToFileURL(path.join(root, 'scripts/failures-reporter.mjs')).href}`,
    `--test-reporter-destination=${failuresFile}`,
    ...extra,
    ...files,
  ]);
}

left.push(...(await sweep()));
let failures = [];
try {
  failures = readFileSync(failuresFile, 'utf8').split('\n').filter(Boolean);
  rmSync(failuresFile, { force: true });
} catch {
  // no test ran (the fixtures failed, or the run stopped before): nothing to list
}
const seconds = Math.round((Date.now() - started) / 1000);
const lines = [''];
if (failures.length > 0) lines.push(`failing tests (${failures.length}):`, ...failures.map((f) => `  ${f}`));
if (left.length > 0) {
  lines.push(
    `killed ${left.length} process${left.length === 1 ? '' : 'es'} of this run left behind: ` +
      left.map((p) => `${p.comm} (${p.pid})`).join(', '),
  );
}
if (interrupted) lines.push(`test: interrupted (${interrupted}) after ${seconds} s`);
else lines.push(`test: ${status === 0 ? 'passed' : 'FAILED'} in ${seconds} s`);
console.log(lines.join('\n'));
process.exitCode = interrupted ? 130 : status;
