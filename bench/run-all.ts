/**
 * `npm run bench`: every benchmark, one after the other (they measure CPU: never two at once), each in its
 * own process; their tables go to stdout and into one Markdown report, bench/RESULTS.md, with the machine
 * it ran on. A benchmark that fails is reported as failed and the others still run (exit code 1 at the end).
 * BENCH_ONLY=name,name re-runs a subset (names as listed below) and keeps the other sections of the existing
 * report; BENCH_RESULTS=path writes elsewhere.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { longRuns, machineLine } from './report.ts';

interface Bench {
  name: string;
  file: string;
  title: string;
  goal: string;
}

const BENCHES: Bench[] = [
  {
    name: 'rtmp-parse',
    file: 'rtmp-parse.ts',
    title: 'RTMP ingest parsing',
    goal: '< 0.5 % of a core per 1 Mbit/s stream',
  },
  {
    name: 'hls-pipeline',
    file: 'hls-pipeline.ts',
    title: 'Cleaning pipeline vs the seed',
    goal: 'auto on glasses input ≤ 1/20 of the seed CPU; transcode ≤ the seed; first segment ≤ 2.5 s',
  },
  {
    name: 'origin',
    file: 'origin.ts',
    title: 'Origin throughput against nginx',
    goal: 'segments and parts served per second ≥ 0.5× nginx serving the same bytes from tmpfs',
  },
  {
    name: 'abr',
    file: 'abr.ts',
    title: 'ABR ladder vs separate transcodes',
    goal: 'the ladder (3 rungs, one decode) ≤ 0.7 × the CPU of two separate seed-style transcodes',
  },
  {
    name: 'latency',
    file: 'latency.ts',
    title: 'Glass-to-player latency',
    goal: 'LL p50 ≤ 2.0 s, classic ≤ 5 s',
  },
  {
    name: 'restream',
    file: 'restream.ts',
    title: 'Re-streaming cost per destination',
    goal: '≤ 1 % of a core per destination (copy)',
  },
  {
    name: 'placement',
    file: 'placement.ts',
    title: 'Placement in Redis',
    goal: 'p99 ≤ 2 ms, ≥ 20× the seed scheme',
  },
  {
    name: 'managed-start',
    file: 'managed-start.ts',
    title: 'Managed start and status fan-out',
    goal: 'request → active → first segment ≤ 3 s p95; fan-out with two replicas against one',
  },
  {
    name: 'srt',
    file: 'srt.ts',
    title: 'SRT ingest cost and delivery under loss',
    goal: '≤ 1 % of a core per 1 Mbit/s SRT stream (transport + TS demux), against srt-live-transmit and FFmpeg in the same run; frames out / frames in at 5 % loss',
  },
  {
    name: 'webrtc',
    file: 'webrtc.ts',
    title: 'WebRTC (WHEP) playback through the relay',
    goal: 'glass-to-browser p50 ≤ 400 ms over WHEP (beside LL-HLS in the same run); ≤ 0.5 % of a core per WHEP viewer with 100 viewers on one stream',
  },
  {
    name: 'whip',
    file: 'whip.ts',
    title: 'WHIP ingest cost and latency',
    goal: 'relay CPU per WHIP stream within 2× RTMP ingest of the same media, same run; WHIP → WHEP under 0.5 s, WHIP → LL-HLS under 2 s p50',
  },
  {
    name: 'audio-encoders',
    file: 'audio-encoders.ts',
    title: 'Audio-only encoders (Opus → AAC for FLV outputs of WHIP streams)',
    goal: 'Opus → AAC within 1.5× the AAC → Opus encoder WHEP runs, same run; output under 100 ms behind real time p50',
  },
  {
    name: 'capacity',
    file: 'capacity.ts',
    title: 'Capacity per relay',
    goal: 'auto: an order of magnitude more streams per core than the seed (5–8 on 4 cores)',
  },
];

function run(file: string): Promise<{ code: number | null; stdout: string; seconds: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', path.join(import.meta.dirname, file)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      process.stdout.write(d);
    });
    child.once('close', (code) => resolve({ code, stdout, seconds: (performance.now() - t0) / 1000 }));
  });
}

const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
const selected = BENCHES.filter((b) => !only || only.includes(b.name));
const out = process.env.BENCH_RESULTS ?? path.join(import.meta.dirname, 'RESULTS.md');
/** A section of the existing report, by its heading, to keep when BENCH_ONLY re-runs only some. */
const previous = (b: Bench): string | undefined => {
  if (!only || !existsSync(out)) return undefined;
  const text = readFileSync(out, 'utf8');
  const start = text.indexOf(heading(b));
  if (start < 0) return undefined;
  const body = text.indexOf('\n', start); // past its own heading
  const next = body < 0 ? -1 : text.slice(body).search(/^#{1,2} /m);
  return `${text.slice(start, next < 0 ? undefined : body + next).trim()}\n`;
};
const heading = (b: Bench): string => `## ${b.title} (\`bench/${b.file}\`)`;
const sections: string[] = [];
let failed = false;
for (const b of BENCHES) {
  if (!selected.includes(b)) {
    const kept = previous(b);
    if (kept) sections.push(kept);
    continue;
  }
  process.stderr.write(`\n== ${b.name}\n`);
  const r = await run(b.file);
  failed ||= r.code !== 0;
  const when = only ? `\n\nRe-run on its own, after the rest of this report. ${machineLine()}` : '';
  sections.push(
    `${heading(b)}\n\nGoal: ${b.goal}. ${r.code === 0 ? `Ran in ${r.seconds.toFixed(0)} s.${when}` : `**Failed** (exit ${r.code}).`}\n\n${r.stdout.trim()}\n`,
  );
}
const report = [
  '# Benchmark results',
  '',
  `${only && existsSync(out) ? (readFileSync(out, 'utf8').split('\n')[2] ?? machineLine()) : `${machineLine()} Shared, noisy machines: compare the ratios within one run, not absolute figures across runs. Re-run with \`npm run bench\` (writes this file; \`BENCH_ONLY=name,…\` re-runs some and keeps the rest).`}`,
  '',
  ...sections,
  '# Long runs',
  '',
  'Not part of `npm run bench` (tens of minutes each): each writes its table to `bench/results/` and this report quotes the last run of each, with its own date.',
  '',
  ...longRuns([
    { name: 'soak', command: 'npm run soak' },
    { name: 'fuzz', command: 'npm run fuzz' },
  ]).map((s) => `${s.trim()}\n`),
].join('\n');
writeFileSync(out, report);
process.stderr.write(`\nwrote ${out}\n`);
process.exitCode = failed ? 1 : 0;
