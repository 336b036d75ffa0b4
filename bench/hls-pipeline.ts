/**
 * The cleaning pipeline against the seed, in one run, on the same inputs (the fixture generator's dirty
 * 540x960 stream and the current-firmware 854x480 glasses stream), paced in real time:
 *   seed       the seed's exact FFmpeg command (reference/ffmpeg.md) writing HLS files, fed the FLV through a
 *              pipe in real time (its -use_wallclock_as_timestamps needs live input)
 *   ours/PROF  the relay in this process: RTMP ingest → timestamp repair → FFmpeg → in-memory packager,
 *              fed over RTMP by a real-time publisher
 * CPU is user+sys seconds per second of media: FFmpeg's (children, reaped), and for ours also this Node
 * process's from the publish to the stream's end, which runs the relay (the publisher that stands in for the
 * glasses runs in its own process; copies run no FFmpeg at all);
 * memory is FFmpeg's peak RSS (VmHWM); first segment is from the first byte written (seed) or the publish
 * (ours: the moment the relay accepts it, a few ms after its first byte) to the first complete segment.
 * Goals: auto on the glasses stream ≤ 1/20 of the seed's CPU; transcode ≤ the seed; first segment ≤ 2.5 s.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, watch } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readFlv } from '../src/media/flv-reader.ts';
import { onceEvent } from '../src/shared/typed-emitter.ts';
import { fixturePath } from '../test/fixtures/generate.ts';
import { startTestRelay } from '../test/helpers/relay-harness.ts';
import { cpuChildren, cpuSelf, peakRss } from './cpu.ts';
import { feedFlvPaced, seedArgs } from './seed.ts';

interface Result {
  input: string;
  impl: string;
  mediaS: number;
  /** FFmpeg children, per media second. */
  cpuPerS: number;
  /** This Node process (relay + the test publisher), per media second; 0 for the seed. */
  nodePerS: number;
  peakMb: number;
  firstSegmentS: number;
}

async function seed(file: string, input: string, mediaS: number): Promise<Result> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-seed-'));
  const flv = readFlv(readFileSync(file));
  const before = cpuChildren();
  const child = spawn('ffmpeg', seedArgs(dir), { stdio: ['pipe', 'ignore', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, peakRss(child.pid!))), 250);
  let firstSegmentS = Number.NaN;
  const t0 = Date.now();
  const watcher = watch(dir, () => {
    if (Number.isNaN(firstSegmentS) && readdirSync(dir).includes('index.m3u8')) {
      const text = readFileSync(path.join(dir, 'index.m3u8'), 'utf8');
      if (text.includes('#EXTINF')) firstSegmentS = (Date.now() - t0) / 1000;
    }
  });
  await feedFlvPaced(child.stdin!, flv.header, flv.tags).done;
  child.stdin!.end();
  await exited;
  clearInterval(sampler);
  watcher.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    input,
    impl: 'seed (FFmpeg HLS files)',
    mediaS,
    cpuPerS: (cpuChildren() - before) / mediaS,
    nodePerS: 0,
    peakMb: peak,
    firstSegmentS,
  };
}

async function ours(file: string, input: string, mediaS: number, profile: string): Promise<Result> {
  const { relay, records } = await startTestRelay({
    CLEAN_PROFILE: profile,
    RECONNECT_WINDOW_SECONDS: '0.5',
  });
  let peak = 0;
  const sampler = setInterval(() => {
    for (const rec of records.values()) {
      const pid = rec.stream.supervisor.running?.pid;
      if (pid) peak = Math.max(peak, peakRss(pid));
    }
  }, 250);
  const beforeChildren = cpuChildren();
  // The relay's own CPU counts from the publish to the stream's end: starting the relay is not a stream's cost.
  let beforeSelf = Number.NaN;
  let t0 = 0;
  relay.rtmp.once('publish', () => {
    t0 = Date.now();
    beforeSelf = cpuSelf();
  });
  const publisher = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'publish-child.ts'),
      file,
      String(relay.rtmpPort),
      'bench',
      profile,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let report = '';
  publisher.stdout!.setEncoding('utf8').on('data', (d: string) => (report += d));
  const published = new Promise<number | null>((resolve) => publisher.once('close', (code) => resolve(code)));
  const [created] = await onceEvent(relay.streams, 'created');
  let firstSegmentS = Number.NaN;
  void onceEvent(created, 'ready').then(() => (firstSegmentS = (Date.now() - t0) / 1000));
  const code = await published;
  if (code !== 0) throw new Error(`the publisher exited with ${code}`);
  const rec = records.get(profile)!;
  await rec.ended;
  const afterSelf = cpuSelf();
  clearInterval(sampler);
  await relay.close();
  // The publisher was a child too (it counts in the children's total, which this process cannot split):
  // it reports its own CPU, which comes off. Its Node start-up before that report stays in: a small bias
  // against us.
  const publisherCpu = (JSON.parse(report.trim().split('\n').at(-1)!) as { cpuSeconds: number }).cpuSeconds;
  return {
    input,
    impl: `ours: ${profile}${profile === 'auto' ? ` (→ ${rec.stream.pipelineProfile})` : ''}`,
    mediaS,
    cpuPerS: (cpuChildren() - beforeChildren - publisherCpu) / mediaS,
    nodePerS: (afterSelf - beforeSelf) / mediaS,
    peakMb: peak,
    firstSegmentS,
  };
}

function ratio(value: number, reference: number): string {
  return `${(value / reference).toFixed(3)} (1/${(reference / value).toFixed(1)})`;
}

async function main(): Promise<void> {
  const inputs = [
    { name: 'glasses 854x480 15 fps, GOP 2 s', fixture: 'glasses-854x480.flv' as const, mediaS: 20 },
    { name: 'dirty 540x960 9–15 fps, irregular GOP', fixture: 'dirty-540x960.flv' as const, mediaS: 24 },
  ];
  const results: Result[] = [];
  for (const input of inputs) {
    const file = await fixturePath(input.fixture);
    process.stderr.write(`${input.name}: seed…\n`);
    results.push(await seed(file, input.name, input.mediaS));
    for (const profile of ['auto', 'copy', 'transcode']) {
      process.stderr.write(`${input.name}: ours ${profile}…\n`);
      results.push(await ours(file, input.name, input.mediaS, profile));
    }
  }
  const lines = [
    `Cleaning pipeline vs the seed, real-time input (${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores, Node ${process.versions.node})`,
    '',
    '| input | pipeline | FFmpeg CPU s per media s | FFmpeg CPU vs seed | relay process CPU | total vs seed | FFmpeg peak RSS | first segment after |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    const ref = results.find((x) => x.input === r.input && x.impl.startsWith('seed'))!;
    const total = r.cpuPerS + r.nodePerS;
    lines.push(
      `| ${r.input} | ${r.impl} | ${r.cpuPerS.toFixed(3)} | ${ratio(r.cpuPerS, ref.cpuPerS)} | ${r.nodePerS.toFixed(3)} | ${ratio(total, ref.cpuPerS)} | ${r.peakMb.toFixed(0)} MB | ${r.firstSegmentS.toFixed(2)} s |`,
    );
  }
  console.log(lines.join('\n'));
}

await main();
