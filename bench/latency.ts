/**
 * Glass-to-player latency, end to end, classic HLS against LL-HLS on the same URL.
 *
 * The publisher (a real-time RTMP publisher in this process, replaying a 540x960 15 fps fixture) sends
 * frames whose picture carries their number as black and white blocks across the top (test/fixtures/
 * steady.ts). The relay stamps nothing: the number goes through the whole media path (RTMP ingest, timestamp
 * repair, FFmpeg copy or transcode, packager, origin, hls.js, Chromium's decoder). In the browser a
 * requestVideoFrameCallback reads the number back from every presented frame, with the wall-clock time
 * Chromium presents it. Latency of a frame = presentation time − the time the relay received that frame
 * from the publisher (on loopback, when the publisher sent it). So "glass" here is the publisher's send:
 * a real pair of glasses adds its capture, encode and uplink before that.
 *
 * Players (Chromium + hls.js, defaults but for the mode, one after the other on the same stream, each for
 * 25 s, the first joining once the stream has run 20 s (issue 15's benchmark); the figures are over the
 * last 15 s, after the start-up and any catch-up; max is the worst frame of those):
 *   classic            lowLatencyMode off: starts HOLD-BACK (three TARGETDURATIONs) from the end
 *   LL                 lowLatencyMode on: PART-HOLD-BACK (3 × PART-TARGET = 1.5 s), blocking reloads, parts
 *   LL, catch-up 1.5×  the same with maxLiveSyncPlaybackRate 1.5, so it speeds up to its target after a
 *                      start on the keyframe part before it (what an app that wants the live edge sets)
 * Also shown: Date.now() − hls.js playingDate, which reads EXT-X-PROGRAM-DATE-TIME (ingest plus FFmpeg
 * time, so it leaves out the publisher→relay leg), hls.js's own latency estimate (to the playlist end), and
 * the HTTP requests the player made per second (the relay's request histogram counted before and after it:
 * playlists, blocking reloads, parts, segments), the cost side of a smaller PART-TARGET. And per stream,
 * when a plain playlist request (what a player joining first sends) first lists a segment, from the moment
 * the relay accepted the publish: how soon a player can start.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_PART_SECONDS } from '../src/hls/packager.ts';
import { FlvTagType, type MediaTag } from '../src/media/flv-tag.ts';
import type { Publish } from '../src/rtmp/publish.ts';
import { FIXTURE_DIR } from '../test/fixtures/generate.ts';
import { generateSteadyFlv, STAMP_BITS, STAMP_HEIGHT, type SteadyRecipe } from '../test/fixtures/steady.ts';
import { type BrowserHandle, launchBrowser, type PlaybackReport } from '../test/helpers/browser.ts';
import { publishFlv } from '../test/helpers/flv-publisher.ts';
import { startTestRelay } from '../test/helpers/relay-harness.ts';

const WATCH_SECONDS = 25;
/** The first player joins once the stream has run this long (issue 15: "a stream that has run 20 s"). */
const JOIN_AFTER_SECONDS = 20;
/** Frames presented in the first seconds of a player (start-up, catch-up) are left out. */
const SETTLE_SECONDS = 10;

const stamped = (gopSeconds: number): SteadyRecipe => ({
  width: 540,
  height: 960,
  fps: 15,
  seconds: 115,
  gopSeconds,
  videoKbps: 1000,
  stamp: true,
});

interface Scenario {
  name: string;
  profile: 'copy' | 'transcode';
  recipe: SteadyRecipe;
  env: Record<string, string>;
  /** TARGETDURATION the first segment should decide (2 s keyframes give 2). */
  targetDuration: number;
}

const SCENARIOS: Scenario[] = [
  // TARGETDURATION is the first GOP's (issue 15): 2 for 2 s keyframes in copy too.
  {
    name: 'copy, 15 fps, GOP 2 s, 0.5 s parts',
    profile: 'copy',
    recipe: stamped(2),
    env: { HLS_PART_SECONDS: '0.5' },
    targetDuration: 2,
  },
  {
    name: 'copy, 15 fps, GOP 2 s, 0.33 s parts',
    profile: 'copy',
    recipe: stamped(2),
    env: { HLS_PART_SECONDS: '0.33' },
    targetDuration: 2,
  },
  // A third of a second that five 15 fps frames (or ten at 30, three at 9) fill: 0.33 takes four at 15 fps.
  {
    name: 'copy, 15 fps, GOP 2 s, 0.334 s parts',
    profile: 'copy',
    recipe: stamped(2),
    env: { HLS_PART_SECONDS: '0.334' },
    targetDuration: 2,
  },
  {
    name: 'transcode (30 fps out), GOP 2 s',
    profile: 'transcode',
    recipe: stamped(2),
    env: {},
    targetDuration: 2,
  },
  {
    name: 'copy, 15 fps, GOP 1 s, 1 s segments',
    profile: 'copy',
    recipe: stamped(1),
    env: { HLS_SEGMENT_SECONDS: '1', COPY_MAX_SEGMENT_SECONDS: '1' },
    targetDuration: 1,
  },
];

const MODES = [
  { name: 'classic', lowLatency: false, hlsConfig: {} },
  { name: 'LL', lowLatency: true, hlsConfig: {} },
  { name: 'LL, catch-up 1.5×', lowLatency: true, hlsConfig: { maxLiveSyncPlaybackRate: 1.5 } },
] as const;

interface Row {
  scenario: string;
  mode: string;
  p50: number;
  p95: number;
  max: number;
  frames: number;
  /** Seconds from the publish accepted to the first plain playlist listing a segment (per stream). */
  firstSegment: number;
  pdtP50: number;
  hlsP50: number;
  stalls: number;
  errors: number;
  /** HTTP requests the player made per second of watching. */
  requestsPerSecond: number;
}

/** HLS requests the relay answered so far (its request-duration histogram's counts, all kinds). */
async function hlsRequestCount(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(/^rtmp_relay_hls_request_duration_seconds_count\{[^}]*\} (\d+)/gm)) {
    total += Number(m[1]);
  }
  return total;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The stamped fixture, generated once into the fixture cache (the generator's sources key it). */
async function stampedFixture(r: SteadyRecipe): Promise<string> {
  const file = path.join(FIXTURE_DIR, `stamped-${r.fps}fps-gop${r.gopSeconds}-${r.seconds}s.flv`);
  if (existsSync(file)) return file;
  mkdirSync(FIXTURE_DIR, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, await generateSteadyFlv(r));
  renameSync(tmp, file);
  return file;
}

async function runScenario(s: Scenario, browser: BrowserHandle): Promise<Row[]> {
  const file = await stampedFixture(s.recipe);
  const { relay, records, hls } = await startTestRelay({ HLS_LOW_LATENCY: 'on', ...s.env });
  try {
    // Frame n of the fixture is the n-th coded video frame the publisher sends: when the relay got it.
    const receivedAt: number[] = [];
    relay.rtmp.on('publish', (publish: Publish) => {
      publish.on('tag', (tag: MediaTag) => {
        if (tag.type === FlvTagType.Video && !tag.isConfig) receivedAt.push(Date.now());
      });
    });
    const pub = publishFlv(file, { port: relay.rtmpPort, user: 'bench', stream: `lat?profile=${s.profile}` });
    await pub.started;
    const startedAt = performance.now();
    const url = hls('bench/lat/index.m3u8');
    // A player that asks at once: plain requests (each held at most until the stream is startable) until
    // one lists a segment.
    let firstSegment = Number.NaN;
    while (performance.now() - startedAt < 30_000) {
      const res = await fetch(url);
      const text = res.ok ? await res.text() : '';
      if (/^[^#\s].*\.m4s$/m.test(text)) {
        firstSegment = (performance.now() - startedAt) / 1000;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const rec = records.get('lat')!;
    await rec.ready;
    const td = Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(rec.stream.packager.playlist())?.[1]);
    if (td !== s.targetDuration)
      process.stderr.write(`latency: TARGETDURATION ${td}, not ${s.targetDuration}\n`);
    const waitMs = JOIN_AFTER_SECONDS * 1000 - (performance.now() - startedAt);
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
    const reports: PlaybackReport[] = [];
    const rates: number[] = [];
    for (const m of MODES) {
      const before = await hlsRequestCount(relay.metricsPort);
      const t0 = performance.now();
      reports.push(
        await browser.playHls(url, {
          seconds: WATCH_SECONDS,
          lowLatency: m.lowLatency,
          hlsConfig: m.hlsConfig,
          stamps: { bits: STAMP_BITS, height: STAMP_HEIGHT },
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      rates.push(((await hlsRequestCount(relay.metricsPort)) - before) / seconds);
    }
    await pub.stop();
    return MODES.map((m, i) => row(s.name, m.name, reports[i]!, receivedAt, rates[i]!, firstSegment));
  } finally {
    await relay.close();
  }
}

function row(
  scenario: string,
  mode: string,
  report: PlaybackReport,
  receivedAt: number[],
  requestsPerSecond: number,
  firstSegment: number,
): Row {
  const seen = new Set<number>();
  const latencies: number[] = [];
  const settledAt = (report.stamps[0]?.presentedAt ?? 0) + SETTLE_SECONDS * 1000;
  for (const stamp of report.stamps) {
    if (seen.has(stamp.value)) continue; // a repeated frame (transcode's 30 fps from 15 fps input)
    seen.add(stamp.value);
    const sent = receivedAt[stamp.value];
    if (sent !== undefined && stamp.presentedAt >= settledAt) latencies.push(stamp.presentedAt - sent);
  }
  const settled = report.samples.filter(
    (x) => x.atMs - (report.startedAfterMs ?? 0) >= SETTLE_SECONDS * 1000,
  );
  const pdt = settled.map((x) => x.pdtLatencyMs).filter((x): x is number => x !== null);
  const est = settled.map((x) => x.hlsLatency).filter((x): x is number => x !== null);
  return {
    scenario,
    mode,
    p50: percentile(latencies, 50) / 1000,
    p95: percentile(latencies, 95) / 1000,
    max: percentile(latencies, 100) / 1000,
    frames: latencies.length,
    firstSegment,
    pdtP50: percentile(pdt, 50) / 1000,
    hlsP50: percentile(est, 50),
    stalls: report.stalls.length,
    errors: report.fatalErrors.length,
    requestsPerSecond,
  };
}

async function main(): Promise<void> {
  const browser = await launchBrowser();
  const rows: Row[] = [];
  try {
    // BENCH_LATENCY_ONLY=copy picks scenarios whose name contains one of the comma-separated words.
    const only = process.env.BENCH_LATENCY_ONLY?.split(',');
    for (const s of SCENARIOS.filter((x) => !only || only.some((w) => x.name.includes(w)))) {
      process.stderr.write(`latency: ${s.name}…\n`);
      rows.push(...(await runScenario(s, browser)));
    }
  } finally {
    await browser.close();
  }
  const f = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)} s` : '—');
  const lines = [
    `Glass-to-player latency: publisher send → frame presented in Chromium + hls.js, the first player joining after the stream ran ${JOIN_AFTER_SECONDS} s, each player ${WATCH_SECONDS} s, figures over its last ${WATCH_SECONDS - SETTLE_SECONDS} s (${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores; load ${os.loadavg()[0]!.toFixed(1)} at the end). PART-TARGET ${DEFAULT_PART_SECONDS} s unless the stream says otherwise. Goals (issue 15, 2 s keyframes): classic p50 ≤ 7.5 s and max ≤ 8.5 s; LL p50 ≤ 1.5 s with hls.js defaults; the first segment in a plain playlist ≤ 2.2 s after the publish starts.`,
    '',
    '| stream | player | p50 | p95 | max | frames | PDT-based p50 | hls.js latency p50 | requests/s | stalls / fatal errors | first segment in a plain playlist |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.mode} | ${f(r.p50)} | ${f(r.p95)} | ${f(r.max)} | ${r.frames} | ${f(r.pdtP50)} | ${f(r.hlsP50)} | ${r.requestsPerSecond.toFixed(1)} | ${r.stalls} / ${r.errors} | ${f(r.firstSegment)} |`,
    ),
  ];
  console.log(lines.join('\n'));
}

await main();
