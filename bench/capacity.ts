/**
 * Capacity: how many concurrent glasses streams one relay sustains in real time on this machine, per
 * profile, with VIEWERS (5) classic-HLS viewers each, against the seed's FFmpeg command run the same way.
 * The load generators replay the pre-encoded glasses fixture (854x480, 15 fps, 2 s GOP) in their own
 * processes (no encoder anywhere in them; the seed's is this process, which then runs no relay) and their
 * CPU is reported apart. Levels go up until one fails.
 *
 * A stream is on time while its segments keep arriving: none later than 1.5 × TARGETDURATION against the
 * stream's own media clock (see judge); and for ours its viewers keep up: no fetch errors, and their
 * lateness p99 (segment fetched minus its media's end by PROGRAM-DATE-TIME) within one TD of the profile's
 * first level. A level passes when every stream was ready within 30 s and on time for the whole window.
 *   seed     N × the seed's command (bench/seed.ts) writing HLS files, each fed the looped fixture through a
 *            pipe in real time by this process (its publisher); segment arrival from the files' appearance.
 *            It stamps frames with the wall clock, so a starved seed's segments stay punctual while it reads
 *            its input late: it keeps up while no write into its pipe is later than 1.5 × TD
 *   ours     the relay in this process (RTMP ingest → access units → CMAF writer in-process for copies, FFmpeg
 *            for transcodes → packager → origin); segment arrival from the packager; CPU = this process +
 *            its FFmpeg children over the window; memory = this process's RSS (and media buffers) at the
 *            window's end against the relay's start with no stream, per stream
 * Env: BENCH_CAPACITY_PROFILES (seed,auto,copy,transcode), BENCH_CAPACITY_LEVELS (one list for all),
 * BENCH_CAPACITY_SECONDS (window, 20), BENCH_CAPACITY_VIEWERS (5).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, watch } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readFlv } from '../src/media/flv-reader.ts';
import { fixturePath } from '../test/fixtures/generate.ts';
import { startTestRelay } from '../test/helpers/relay-harness.ts';
import { cpuOfPid, cpuSelf } from './cpu.ts';
import { looped } from './fixture-loop.ts';
import { child } from './load-child.ts';
import { feedFlvPaced, type PacedFeed, seedArgs } from './seed.ts';

const PROFILES = (process.env.BENCH_CAPACITY_PROFILES ?? 'seed,auto,copy,transcode').split(',');
/** Levels per profile: fine where transcodes run out, coarse where copies go far. */
const LEVELS_ENV = process.env.BENCH_CAPACITY_LEVELS?.split(',').map(Number);
const levelsOf = (profile: string): number[] =>
  LEVELS_ENV ??
  (profile === 'transcode'
    ? [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16]
    : profile === 'seed'
      ? [2, 4, 6, 8, 10, 12, 16, 20, 24, 28, 32, 40]
      : [4, 8, 16, 24, 32, 40, 48, 64, 80, 96, 128]);
const WINDOW_S = Number(process.env.BENCH_CAPACITY_SECONDS ?? 20);
const VIEWERS = Number(process.env.BENCH_CAPACITY_VIEWERS ?? 5);
const WARMUP_S = 4;
const READY_TIMEOUT_MS = 30_000;
const HERE = import.meta.dirname;

interface LevelResult {
  profile: string;
  streams: number;
  pass: boolean;
  why: string;
  worstGapOverTd: number;
  /** The latest segment against its stream's media clock, in TARGETDURATIONs (the judged figure). */
  worstLateOverTd: number;
  relayCores: number;
  /** The relay's event-loop delay p99 over the window (ms). */
  eldP99Ms: number;
  publisherCores: number;
  /** The worst lateness of a publisher's tag against real time over the window (ms). */
  publisherLateMs: number;
  viewerCores: number;
  /** Whole-machine CPU busy over the window (cores), everything included. */
  machineCores: number;
  viewerSegments: number;
  viewerErrors: number;
  viewerLateP99Ms: number;
  viewerLateMaxMs: number;
  /** The relay process's RSS growth per live stream at the window's end (MB), from its start with none. */
  rssPerStreamMb: number;
  /** Of it, buffers outside the JS heap (media held for the HLS window), per stream (MB). */
  buffersPerStreamMb: number;
}

/** Segment completion times (ms) and media durations (s) of one stream. */
interface Arrivals {
  times: number[];
  durations: number[];
}

/**
 * A segment's lateness: how much later than the media clock it arrived. The clock is each stream's own, set
 * by its most punctual segment in the window (arrival minus media time so far, at its least), so a stream
 * whose segments come 2 s apart one moment and 2.1 s the next is on time while one falling behind is not.
 * The window's end counts too: a stream whose next segment is overdue by then (its last one plus one TD)
 * is late by that much. The gap between two arrivals is reported, not judged: an early segment followed by
 * a punctual one makes a long gap without anything being late.
 */
function judge(arrivals: Arrivals[], td: number, from: number, to: number) {
  let worstGap = 0;
  let worstLate = 0;
  for (const a of arrivals) {
    const idx = a.times.map((t, i) => [t, i] as const).filter(([t]) => t >= from && t <= to);
    if (idx.length < 2) {
      worstGap = Number.POSITIVE_INFINITY;
      worstLate = Number.POSITIVE_INFINITY;
      continue;
    }
    const offsets: number[] = []; // arrival minus media time since the window's first segment (s)
    let media = 0;
    for (let k = 0; k < idx.length; k++) {
      if (k > 0) {
        media += a.durations[idx[k]![1]]!;
        worstGap = Math.max(worstGap, (idx[k]![0] - idx[k - 1]![0]) / 1000);
      }
      offsets.push((idx[k]![0] - idx[0]![0]) / 1000 - media);
    }
    const clock = Math.min(...offsets);
    const overdue = (to - idx[0]![0]) / 1000 - (media + td); // the next segment, due by the window's end
    worstLate = Math.max(worstLate, Math.max(overdue, ...offsets) - clock);
  }
  const pass = worstLate <= 1.5 * td;
  return { worstGapOverTd: worstGap / td, worstLateOverTd: worstLate / td, pass };
}

const td2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '∞');
const ms = (v: number): string => (Number.isFinite(v) ? `${(v / 1000).toFixed(2)} s` : '–');

/** CPU seconds the whole machine has been busy (all cores, /proc/stat: everything but idle and iowait). */
function machineBusy(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - fields[3]! - fields[4]!) * 0.01;
}

/**
 * `baselineLateMs`: the viewers' lateness p99 at this profile's first level, nearly unloaded. Lateness holds
 * the pipeline's own delay (an encoder's lookahead, the segment closing at the next keyframe) and the
 * players' polling (up to TD / 2), so a level's viewers are on time while theirs stays within one TD of it.
 */
async function ours(
  profile: string,
  n: number,
  file: string,
  baselineLateMs: number | null,
): Promise<LevelResult> {
  const { relay } = await startTestRelay(
    {
      CLEAN_PROFILE: profile,
      MAX_STREAMS: '10000',
      RTMP_MAX_CONNECTIONS_PER_IP: '10000',
      RECONNECT_WINDOW_SECONDS: '1',
      RTMP_IDLE_TIMEOUT_SECONDS: '60',
      FFMPEG_WATCHDOG_SECONDS: '15',
    },
    undefined,
    { record: false },
  );
  const arrivals = new Map<string, Arrivals>();
  let td = 0;
  relay.streams.on('created', (stream) => {
    const a: Arrivals = { times: [], durations: [] };
    arrivals.set(stream.key, a);
    td = stream.packager.targetDuration;
    stream.packager.on('segment', (s) => {
      a.times.push(Date.now());
      a.durations.push(s.duration);
    });
  });
  // Memory before any stream (this process runs only the relay: publishers and viewers are children).
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const mem0 = process.memoryUsage();
  const ready = new Set<string>();
  let readyInTime = 0;
  const allReady = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      readyInTime = ready.size;
      resolve(false);
    }, READY_TIMEOUT_MS);
    relay.streams.on('ready', (s) => {
      ready.add(s.key);
      if (ready.size === n) {
        clearTimeout(timer);
        resolve(true);
      }
    });
  });
  const publisher = child([
    path.join(HERE, 'load-publisher.ts'),
    file,
    String(relay.rtmpPort),
    String(n),
    String(WINDOW_S + WARMUP_S + 40),
    'cap',
  ]);
  const readyOk = await allReady;
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  const viewers = child([
    path.join(HERE, 'load-viewers.ts'),
    `http://127.0.0.1:${relay.hlsPort}/hls`,
    'cap',
    String(n),
    String(VIEWERS),
    String(WINDOW_S),
  ]);
  const ffmpegCpu = (): number =>
    relay.streams.streams.reduce((sum, s) => sum + cpuOfPid(s.supervisor.running?.pid ?? -1), 0);
  const publisherCpu = (): number => cpuOfPid(publisher.proc.pid ?? -1);
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  publisher.proc.kill('SIGUSR2'); // its lateness counts from here
  const from = Date.now();
  const cpu0 = cpuSelf() + ffmpegCpu();
  const pub0 = publisherCpu();
  const machine0 = machineBusy();
  const viewerReport = await viewers.report;
  const to = Date.now();
  const seconds = (to - from) / 1000;
  const relayCores = (cpuSelf() + ffmpegCpu() - cpu0) / seconds;
  const publisherCores = (publisherCpu() - pub0) / seconds;
  const machineCores = (machineBusy() - machine0) / seconds;
  eld.disable();
  gc?.();
  const mem1 = process.memoryUsage();
  publisher.proc.kill('SIGTERM');
  const publisherReport = await publisher.report;
  const verdict = judge([...arrivals.values()], td || 2, from, to);
  await relay.close();
  const lateMax = viewerReport.lateMaxMs ?? Number.POSITIVE_INFINITY;
  const lateP99 = viewerReport.lateP99Ms ?? Number.POSITIVE_INFINITY;
  const viewersOnTime =
    (viewerReport.errors ?? 1) === 0 && lateP99 <= (baselineLateMs ?? lateP99) + (td || 2) * 1000;
  const why = !readyOk
    ? `${readyInTime}/${n} ready in ${READY_TIMEOUT_MS / 1000} s`
    : !verdict.pass
      ? 'late segments'
      : !viewersOnTime
        ? 'viewers late'
        : '';
  return {
    profile,
    streams: n,
    pass: readyOk && verdict.pass && viewersOnTime && arrivals.size === n,
    why,
    worstGapOverTd: verdict.worstGapOverTd,
    worstLateOverTd: verdict.worstLateOverTd,
    relayCores,
    eldP99Ms: eld.percentile(99) / 1e6,
    publisherCores,
    publisherLateMs: publisherReport.maxLateMs ?? Number.NaN,
    viewerCores: (viewerReport.cpuSeconds ?? 0) / WINDOW_S,
    machineCores,
    viewerSegments: viewerReport.segments ?? 0,
    viewerErrors: viewerReport.errors ?? 0,
    viewerLateP99Ms: viewerReport.lateP99Ms ?? Number.NaN,
    viewerLateMaxMs: lateMax,
    rssPerStreamMb: (mem1.rss - mem0.rss) / n / 1048576,
    buffersPerStreamMb: (mem1.arrayBuffers - mem0.arrayBuffers) / n / 1048576,
  };
}

async function seed(n: number, file: string): Promise<LevelResult> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'bench-capacity-seed-'));
  const flv = readFlv(readFileSync(file));
  const tags = looped(flv.tags, (WARMUP_S + 4 + WINDOW_S + 30) * 1000);
  const arrivals: Arrivals[] = [];
  const procs: ChildProcess[] = [];
  const feeds: PacedFeed[] = [];
  const watchers: ReturnType<typeof watch>[] = [];
  for (let i = 0; i < n; i++) {
    const dir = path.join(root, `s${i}`);
    mkdirSync(dir);
    const a: Arrivals = { times: [], durations: [] };
    arrivals.push(a);
    const seen = new Set<string>();
    watchers.push(
      watch(dir, (_event, name) => {
        // The seed opens segment_NNN.ts when the one before it is complete (its GOP is a fixed 2 s).
        if (name && /segment_\d+\.ts$/.test(name) && !seen.has(name)) {
          seen.add(name);
          a.times.push(Date.now());
          a.durations.push(2);
        }
      }),
    );
    const proc = spawn('ffmpeg', seedArgs(dir), { stdio: ['pipe', 'ignore', 'ignore'] });
    procs.push(proc);
    // Staggered over about a second, as the publishers are, so keyframes do not all align.
    await new Promise((r) => setTimeout(r, (Math.random() * 2000) / n));
    feeds.push(feedFlvPaced(proc.stdin!, flv.header, tags));
  }
  await new Promise((r) => setTimeout(r, (WARMUP_S + 4) * 1000));
  const cpu = (): number => procs.reduce((sum, p) => sum + cpuOfPid(p.pid ?? -1), 0);
  for (const f of feeds) f.takeMaxLateMs();
  const from = Date.now();
  const cpu0 = cpu();
  const feeder0 = cpuSelf();
  const machine0 = machineBusy();
  await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
  const to = Date.now();
  const window = (to - from) / 1000;
  const cores = (cpu() - cpu0) / window;
  const feederCores = (cpuSelf() - feeder0) / window;
  const machineCores = (machineBusy() - machine0) / window;
  // The seed stamps frames with the wall clock, so a starved seed still writes a 2 s segment every 2 s:
  // it falls behind by reading its input late (the pipe stays full), which the feeders' lateness shows.
  const inputLateMs = Math.max(0, ...feeds.map((f) => f.takeMaxLateMs()));
  for (const f of feeds) f.stop();
  for (const p of procs) p.kill('SIGKILL');
  for (const w of watchers) w.close();
  await Promise.all(feeds.map((f) => f.done));
  rmSync(root, { recursive: true, force: true });
  // nginx would serve the files (not measured here).
  const verdict = judge(arrivals, 2, from, to);
  const keptUp = inputLateMs <= 1.5 * 2 * 1000;
  return {
    profile: 'seed',
    streams: n,
    pass: verdict.pass && keptUp,
    why: !verdict.pass ? 'late segments' : keptUp ? '' : 'input read late',
    worstGapOverTd: verdict.worstGapOverTd,
    worstLateOverTd: verdict.worstLateOverTd,
    relayCores: cores,
    eldP99Ms: Number.NaN,
    // Its publisher is this process, pacing the fixture into each seed's stdin.
    publisherCores: feederCores,
    publisherLateMs: inputLateMs,
    viewerCores: 0,
    machineCores,
    viewerSegments: 0,
    viewerErrors: 0,
    viewerLateP99Ms: Number.NaN,
    viewerLateMaxMs: Number.NaN,
    rssPerStreamMb: Number.NaN,
    buffersPerStreamMb: Number.NaN,
  };
}

async function main(): Promise<void> {
  const file = await fixturePath('glasses-854x480.flv');
  const results: LevelResult[] = [];
  for (const profile of PROFILES) {
    for (const n of levelsOf(profile)) {
      process.stderr.write(`capacity: ${profile} × ${n}…\n`);
      const baseline = results.find((x) => x.profile === profile)?.viewerLateP99Ms ?? null;
      const r = profile === 'seed' ? await seed(n, file) : await ours(profile, n, file, baseline);
      results.push(r);
      process.stderr.write(
        `  ${r.pass ? 'pass' : `FAIL (${r.why})`}: memory ${r.rssPerStreamMb.toFixed(1)} MB/stream, worst segment ${td2(r.worstLateOverTd)} TD late (gap ${td2(r.worstGapOverTd)} TD), viewers late p99 ${ms(r.viewerLateP99Ms)} max ${ms(r.viewerLateMaxMs)}, relay ${r.relayCores.toFixed(2)} cores (loop p99 ${ms(r.eldP99Ms)}), publisher ${r.publisherCores.toFixed(2)} cores (late ${ms(r.publisherLateMs)}), machine ${r.machineCores.toFixed(2)} cores\n`,
      );
      if (!r.pass) break;
    }
  }
  const cores = os.cpus().length;
  const best = (p: string): number =>
    Math.max(0, ...results.filter((r) => r.profile === p && r.pass).map((r) => r.streams));
  const seedBest = best('seed');
  const lines = [
    `Capacity on ${os.cpus()[0]?.model ?? 'cpu'}, ${cores} cores, Node ${process.versions.node}: glasses 854x480 15 fps, ${VIEWERS} viewers per stream, ${WINDOW_S} s windows`,
    '',
    '| profile | streams | result | worst segment lateness (× TD) | worst gap between segments (× TD) | viewers: segments / errors, lateness p99 / max | relay CPU (cores) | per stream | relay event-loop p99 | relay memory per stream (RSS / media buffers) | publisher CPU (late) | viewers CPU | machine busy (cores) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...results.map(
      (r) =>
        `| ${r.profile} | ${r.streams} | ${r.pass ? 'on time' : `**late** (${r.why})`} | ${td2(r.worstLateOverTd)} | ${td2(r.worstGapOverTd)} | ${r.profile === 'seed' ? '–' : `${r.viewerSegments} / ${r.viewerErrors}, ${ms(r.viewerLateP99Ms)} / ${ms(r.viewerLateMaxMs)}`} | ${r.relayCores.toFixed(2)} | ${(r.relayCores / r.streams).toFixed(3)} | ${ms(r.eldP99Ms)} | ${r.profile === 'seed' ? '–' : `${r.rssPerStreamMb.toFixed(1)} / ${r.buffersPerStreamMb.toFixed(1)} MB`} | ${r.publisherCores.toFixed(2)} (${ms(r.publisherLateMs)}) | ${r.profile === 'seed' ? '–' : r.viewerCores.toFixed(2)} | ${r.machineCores.toFixed(2)} |`,
    ),
    '',
    '| profile | most streams on time | per core | vs seed |',
    '| --- | --- | --- | --- |',
    ...PROFILES.map((p) => {
      const b = best(p);
      return `| ${p} | ${b} | ${(b / cores).toFixed(1)} | ${seedBest ? `${(b / seedBest).toFixed(1)}×` : '–'} |`;
    }),
  ];
  console.log(lines.join('\n'));
}

await main();
