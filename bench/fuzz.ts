/**
 * The long fuzzing runs (issue 8): the suite's RTMP, HTTP and SRT fuzz tests with their case counts raised,
 * 1,000,000 RTMP connections (handshake, chunk, AMF0 and command layers), 100,000 HTTP requests and
 * 1,000,000 SRT datagrams (issue 19) by default (BENCH_RTMP_FUZZ_CASES, BENCH_HTTP_FUZZ_CASES,
 * BENCH_SRT_FUZZ_CASES). The same assertions as CI apply: nothing throws
 * out, every connection is released, memory stays flat, no 5xx. Prints a table; exits non-zero on a failure.
 * Separate from `npm run bench` because it runs for tens of minutes: `npm run fuzz`.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { saveLongRun } from './report.ts';

const RUNS = [
  {
    name: 'RTMP stack',
    file: 'test/integration/rtmp-fuzz.test.ts',
    env: 'RTMP_FUZZ_CASES',
    cases: Number(process.env.BENCH_RTMP_FUZZ_CASES ?? 1_000_000),
    full: 1_000_000,
  },
  {
    name: 'HTTP (origin, control API, cloud)',
    file: 'test/integration/http-fuzz.test.ts',
    env: 'HTTP_FUZZ_CASES',
    cases: Number(process.env.BENCH_HTTP_FUZZ_CASES ?? 100_000),
    full: 100_000,
  },
  {
    name: 'SRT listener (random and mutated datagrams)',
    file: 'test/integration/srt-hostile.test.ts',
    env: 'SRT_FUZZ_CASES',
    cases: Number(process.env.BENCH_SRT_FUZZ_CASES ?? 1_000_000),
    full: 1_000_000,
  },
];

function run(file: string, env: Record<string, string>): Promise<{ code: number | null; tail: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', '--test', '--test-timeout=86400000', file],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out = (out + d).slice(-20_000);
    });
    child.once('close', (code) => resolve({ code, tail: out }));
  });
}

const rows: string[] = [];
let failed = false;
for (const r of RUNS) {
  const t0 = performance.now();
  const { code, tail } = await run(r.file, { [r.env]: String(r.cases) });
  const seconds = (performance.now() - t0) / 1000;
  const pass = /# fail 0/.test(tail) && code === 0;
  failed ||= !pass;
  if (!pass) console.error(tail);
  rows.push(
    `| ${r.name} | ${r.cases.toLocaleString('en')} | ${seconds.toFixed(0)} s | ${Math.round(r.cases / seconds).toLocaleString('en')} | ${pass ? 'pass' : 'FAIL'} |`,
  );
}
const table = [
  '| fuzz target | cases | wall | cases/s | result |',
  '| --- | --- | --- | --- | --- |',
  ...rows,
].join('\n');
console.log(`\n${table}`);
// Only a run at the issue's counts is the report's; smaller ones are smoke tests.
if (RUNS.every((r) => r.cases >= r.full)) {
  process.stderr.write(`wrote ${saveLongRun('fuzz', 'Fuzzing (`bench/fuzz.ts`)', table)}\n`);
}
process.exitCode = failed ? 1 : 0;
