/**
 * Soak (a bench target, not CI: `npm run soak`): SOAK_STREAMS (20) glasses streams in `auto` with
 * SOAK_VIEWERS (5) viewers each for SOAK_MINUTES (30) on one relay in this process. Every SOAK_SAMPLE_SECONDS
 * (10) it samples RSS, V8 heap, open file descriptors, FFmpeg children and event-loop delay; at the end it
 * prints the samples' table and a verdict: memory, handles and event-loop delay flat (second-half growth
 * under 10 % / 5 MB, fds never above the first half's most, children constant, event-loop p99 steady), and no errors (FFmpeg crashes, RTMP errors, viewer errors).
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fixturePath } from '../test/fixtures/generate.ts';
import { startTestRelay } from '../test/helpers/relay-harness.ts';
import { child } from './load-child.ts';
import { saveLongRun } from './report.ts';

const STREAMS = Number(process.env.SOAK_STREAMS ?? 20);
const VIEWERS = Number(process.env.SOAK_VIEWERS ?? 5);
const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const SAMPLE_S = Number(process.env.SOAK_SAMPLE_SECONDS ?? 10);
const HERE = import.meta.dirname;

interface Sample {
  atS: number;
  rssMb: number;
  heapMb: number;
  /** Buffers outside the JS heap (media in the playlist windows, sockets): Node's arrayBuffers. */
  buffersMb: number;
  fds: number;
  ffmpeg: number;
  eldP99Ms: number;
  segments: number;
}

const fds = (): number => readdirSync('/proc/self/fd').length;
const mb = (bytes: number): number => bytes / 2 ** 20;

const { relay } = await startTestRelay(
  {
    CLEAN_PROFILE: 'auto',
    MAX_STREAMS: '10000',
    RTMP_MAX_CONNECTIONS_PER_IP: '10000',
    RTMP_IDLE_TIMEOUT_SECONDS: '60',
  },
  undefined,
  { record: false },
);
const seconds = MINUTES * 60;
const file = await fixturePath('glasses-854x480.flv');
const publisher = child([
  path.join(HERE, 'load-publisher.ts'),
  file,
  String(relay.rtmpPort),
  String(STREAMS),
  String(seconds + 30),
  'soak',
]);
let ready = 0;
await new Promise<void>((resolve) => {
  relay.streams.on('ready', () => {
    if (++ready === STREAMS) resolve();
  });
});
const viewers = child([
  path.join(HERE, 'load-viewers.ts'),
  `http://127.0.0.1:${relay.hlsPort}/hls`,
  'soak',
  String(STREAMS),
  String(VIEWERS),
  String(seconds),
]);
const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();
const samples: Sample[] = [];
const t0 = Date.now();
const take = (): void => {
  const mem = process.memoryUsage();
  samples.push({
    atS: Math.round((Date.now() - t0) / 1000),
    rssMb: mb(mem.rss),
    heapMb: mb(mem.heapUsed),
    buffersMb: mb(mem.arrayBuffers),
    fds: fds(),
    ffmpeg: relay.reaper.size,
    eldP99Ms: eld.percentile(99) / 1e6,
    segments: relay.streams.streams.reduce((n, s) => n + s.packager.stats.segments, 0),
  });
  eld.reset();
  process.stderr.write(`soak ${samples.at(-1)!.atS} s: ${JSON.stringify(samples.at(-1))}\n`);
};
take();
const timer = setInterval(take, SAMPLE_S * 1000);
const viewerReport = await viewers.report;
clearInterval(timer);
const errors = {
  ffmpegCrashes: relay.streams.streams.reduce((n, s) => n + s.supervisor.stats.crashes, 0),
  rtmpErrors: [...relay.rtmp.stats.errors.values()].reduce((a, b) => a + b, 0),
  viewerErrors: viewerReport.errors ?? 0,
  streamsLive: relay.streams.streams.filter((s) => s.state === 'publishing').length,
};
publisher.proc.kill('SIGKILL');
await relay.close();

const half = samples.slice(Math.floor(samples.length / 2));
const growth = (f: (s: Sample) => number): number => f(half.at(-1)!) - f(half[0]!);
const rssGrowth = growth((s) => s.rssMb);
const heapGrowth = growth((s) => s.heapMb);
// Viewers' keep-alive connections open and close, so the count of fds moves (±30 measured); a leak shows
// as the second half going past everything the first half reached.
const fdsFirstMax = Math.max(...samples.slice(1, Math.floor(samples.length / 2)).map((s) => s.fds));
const fdsSecondMax = Math.max(...half.map((s) => s.fds));
const eldWorst = Math.max(...half.map((s) => s.eldP99Ms));
// Event-loop delay is flat when the second half's median p99 is within 1.5× (+5 ms) of the first half's.
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const firstHalf = samples.slice(1, Math.floor(samples.length / 2)); // the first sample holds the start-up
const eldFirst = median(firstHalf.map((s) => s.eldP99Ms));
const eldSecond = median(half.map((s) => s.eldP99Ms));
const flat =
  rssGrowth < Math.max(5, half[0]!.rssMb * 0.1) &&
  heapGrowth < Math.max(5, half[0]!.heapMb * 0.1) &&
  fdsSecondMax <= fdsFirstMax + 4 &&
  eldSecond <= eldFirst * 1.5 + 5 &&
  half.every((s) => s.ffmpeg === STREAMS);
const clean = errors.ffmpegCrashes === 0 && errors.rtmpErrors === 0 && errors.viewerErrors === 0;
const every = Math.max(1, Math.floor(samples.length / 12));
const table = [
  `Soak: ${STREAMS} streams (auto, glasses 854x480 15 fps) × ${VIEWERS} viewers for ${MINUTES} min`,
  '',
  '| t | RSS | heap | buffers | fds | FFmpeg | event-loop p99 | segments |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ...samples
    .filter((_, i) => i % every === 0 || i === samples.length - 1)
    .map(
      (s) =>
        `| ${s.atS} s | ${s.rssMb.toFixed(0)} MB | ${s.heapMb.toFixed(1)} MB | ${s.buffersMb.toFixed(0)} MB | ${s.fds} | ${s.ffmpeg} | ${s.eldP99Ms.toFixed(1)} ms | ${s.segments} |`,
    ),
  '',
  `Second half: RSS ${rssGrowth >= 0 ? '+' : ''}${rssGrowth.toFixed(1)} MB, heap ${heapGrowth >= 0 ? '+' : ''}${heapGrowth.toFixed(1)} MB, fds at most ${fdsFirstMax} → ${fdsSecondMax}, event-loop p99 median ${eldFirst.toFixed(1)} → ${eldSecond.toFixed(1)} ms (worst ${eldWorst.toFixed(1)} ms).`,
  `Errors: ${JSON.stringify(errors)}; viewers fetched ${viewerReport.segments ?? 0} segments.`,
  `Verdict: ${flat ? 'flat' : '**not flat**'}, ${clean ? 'no errors' : '**errors**'}.`,
].join('\n');
console.log(table);
// Only the full run is the report's: a shortened one (SOAK_MINUTES) is a smoke test.
if (MINUTES >= 30) process.stderr.write(`wrote ${saveLongRun('soak', 'Soak (`bench/soak.ts`)', table)}\n`);
process.exitCode = flat && clean ? 0 : 1;
