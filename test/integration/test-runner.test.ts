/**
 * The suite's runner (scripts/test.mjs), run for real on small target files: its output ends with the names
 * of the failing tests, and an interrupted run (SIGTERM, as a timeout sends, or the runner killed with -9)
 * leaves none of what the tests started: test file, cloud and relay processes (own process groups), the
 * relay's FFmpeg, a publisher FFmpeg (own group) and redis-server.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eventually, procStat } from '../helpers/relay-process.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), 'test-runner-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function runner(
  file: string,
  env: Record<string, string> = {},
): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ['scripts/test.mjs', file], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    output += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    output += d;
  });
  return { child, output: () => output };
}

const running = (pid: number): boolean => {
  const s = procStat(pid);
  return s !== null && s.state !== 'Z' && s.state !== 'X';
};

/** Starts the interrupt target, waits until everything it starts runs, and returns their pids. */
async function startTarget(name: string): Promise<{
  child: ChildProcess;
  output: () => string;
  pids: Record<string, number>;
}> {
  const pidsFile = path.join(dir, `${name}.json`);
  const run = runner('test/helpers/interrupt-target.ts', { INTERRUPT_PIDS_FILE: pidsFile });
  // On any failure here, stop the run: it would wait for an interrupt that never comes (until the file's timeout).
  const stop = async (): Promise<void> => {
    if (run.child.exitCode !== null || run.child.signalCode !== null) return;
    const exited = once(run.child, 'exit');
    run.child.kill('SIGTERM');
    await exited;
  };
  let pids: Record<string, number>;
  try {
    pids = await eventually(
      'the target writes its pids',
      () => {
        if (run.child.exitCode !== null) throw new Error(`the runner exited early:\n${run.output()}`);
        return JSON.parse(readFileSync(pidsFile, 'utf8')) as Record<string, number>;
      },
      120_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const notRunning = Object.entries(pids).filter(([, pid]) => !running(pid));
  if (notRunning.length > 0) {
    await stop();
    assert.fail(`not running: ${JSON.stringify(notRunning)}\n${run.output()}`);
  }
  return { ...run, pids };
}

describe('scripts/test.mjs', () => {
  it('ends its output with the names of the failing tests', async () => {
    const run = runner('test/helpers/failing-target.ts');
    const [code] = await once(run.child, 'exit');
    assert.equal(code, 1);
    const tail = run.output().trimEnd().split('\n').slice(-5);
    const file = 'test/helpers/failing-target.ts';
    assert.deepEqual(tail.slice(0, 4), [
      'failing tests (3):',
      `  ${file} > outer suite > inner suite > fails on an assertion  (Expected values to be strictly equal:)`,
      `  ${file} > outer suite > fails on a throw  (boom)`,
      `  ${file} > fails at the top level  (deliberately)`,
    ]);
    assert.match(tail[4]!, /^test: FAILED in \d+ s$/);
  });

  it('SIGTERM: the run stops and nothing it started is left', async () => {
    const { child, output, pids } = await startTarget('sigterm');
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 130);
    assert.match(output(), /test: interrupted \(SIGTERM\) after \d+ s/);
    // The runner sweeps before it exits: nothing of the run may run now.
    const left = Object.entries(pids).filter(([, pid]) => running(pid));
    assert.deepEqual(left, [], output());
  });

  it('the runner killed with -9: everything it started exits by itself', async () => {
    const { child, output, pids } = await startTarget('sigkill');
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    // Nothing sweeps now: each process notices its runner or parent is gone (polled every 250 ms).
    await eventually(
      'every process of the killed run exits',
      () => Object.values(pids).every((pid) => !running(pid)),
      30_000,
    ).catch((err: Error) => {
      const left = Object.entries(pids).filter(([, pid]) => running(pid));
      for (const [, pid] of left) process.kill(pid, 'SIGKILL');
      throw new Error(`${err.message}: left ${JSON.stringify(left)}\n${output()}`);
    });
  });
});
