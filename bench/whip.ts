/**
 * WHIP ingest (issue 18): what a WHIP publish costs the relay against RTMP ingest of the same media, and
 * glass-to-player latency WHIP → WHEP and WHIP → LL-HLS.
 *
 * CPU: a relay in this process (copy, LL-HLS on); BENCH_WHIP_STREAMS (4) publishers in child processes, so
 * this process's CPU is the relay's alone: first WHIP (the glasses simulator's publish: FFmpeg's H.264 +
 * Opus RTP through node-datachannel, this file with `--publish-whip`), then RTMP (FFmpeg: the same picture,
 * encode and bitrate, AAC instead of Opus), each measured over BENCH_WHIP_SECONDS (20) once running, minus
 * the relay's idle CPU over the same time. WHIP's share holds ICE/DTLS/SRTP (libdatachannel's threads), the
 * jitter buffer, depacketizing and RTCP; RTMP's holds TCP, chunks and FLV; both the CMAF copy and packaging.
 *
 * Latency: one WHIP publish of the same picture (steady 15 fps: no dropped frames) with its frame number drawn as blocks across the top
 * (test/fixtures/steady.ts); "glass" = when the frame's first RTP packet left the publisher (after encode,
 * on loopback). Chromium reads the number back from every presented frame over WHEP, then with hls.js in
 * low-latency mode, with its defaults and with catch-up to its target at 1.5× (the last 15 s of 25 each).
 *
 * Run: node --import tsx bench/whip.ts   (prints Markdown tables; BENCH_WHIP_ONLY=cpu|latency for one half)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../src/shared/logger.ts';
import { SimWhipPublish } from '../src/sim/whip-publish.ts';
import { STAMP_BITS, STAMP_HEIGHT, stampFilter } from '../test/fixtures/steady.ts';
import { launchBrowser } from '../test/helpers/browser.ts';
import { startTestRelay } from '../test/helpers/relay-harness.ts';
import { launchWhepBrowser } from '../test/helpers/whep-browser.ts';

const STREAMS = Number(process.env.BENCH_WHIP_STREAMS ?? 4);
const SECONDS = Number(process.env.BENCH_WHIP_SECONDS ?? 20);
const WARMUP_MS = 6_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};

/** Child mode: WHIP publishers for the URLs given, until killed; a failed one starts again (as glasses retry). */
async function publishWhip(urls: string[]): Promise<void> {
  const run = (url: string, attempt: number): void => {
    const p = new SimWhipPublish({ url, log: silentLogger() });
    p.once('closed', ({ error }) => {
      console.error(`publisher ${url.split('/').at(-1)} closed (${error?.message}), retrying`);
      if (attempt < 5) setTimeout(() => run(url, attempt + 1), 1_000);
    });
    void p.start();
  };
  for (const url of urls) run(url, 0);
  await new Promise(() => {});
}

/** RTMP: FFmpeg with the same picture and encode as the WHIP simulator, AAC audio, FLV over RTMP. */
function rtmpPublisher(url: string): ChildProcess {
  return spawn(
    'ffmpeg',
    [
      ...['-hide_banner', '-nostdin', '-loglevel', 'error', '-re'],
      ...['-f', 'lavfi', '-i', 'testsrc2=size=854x480:rate=15'],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
      ...['-vf', "select='not(eq(mod(n\\,5)\\,3))+eq(mod(n\\,7)\\,0)',setpts=N/FRAME_RATE/TB"],
      ...['-c:v', 'libx264', '-profile:v', 'baseline', '-preset', 'veryfast', '-tune', 'zerolatency'],
      ...['-g', '24', '-bf', '0', '-pix_fmt', 'yuv420p', '-b:v', '1M'],
      ...['-c:a', 'aac', '-ac', '2', '-b:a', '48k', '-f', 'flv', url],
    ],
    { stdio: 'ignore', detached: true },
  );
}

function kill(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within 60 s: ${what}`);
    await sleep(200);
  }
}

/** This process's CPU (user + system) over `ms`, in cores. */
async function cpuOver(ms: number): Promise<number> {
  const start = process.cpuUsage();
  const t0 = performance.now();
  await sleep(ms);
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000 / (performance.now() - t0);
}

async function cpuBench(): Promise<string> {
  const { relay } = await startTestRelay({ RECONNECT_WINDOW_SECONDS: '5' }, silentLogger(), {
    record: false,
  });
  try {
    const live = (prefix: string) =>
      relay.streams.streams.filter((s) => s.streamId.startsWith(prefix) && s.state === 'publishing').length;
    await sleep(2_000);
    const idle = await cpuOver(SECONDS * 1000);

    const whipUrls = Array.from(
      { length: STREAMS },
      (_, i) => `http://127.0.0.1:${relay.hlsPort}/whip/live/bench@example.com/whip${i}`,
    );
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--publish-whip', ...whipUrls],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
        detached: true,
      },
    );
    await until(() => live('whip') === STREAMS, `${STREAMS} WHIP streams live`);
    await sleep(WARMUP_MS);
    const whip = await cpuOver(SECONDS * 1000);
    const whipDecisions = relay.streams.streams
      .filter((s) => s.streamId.startsWith('whip'))
      .map((s) => s.decision);
    kill(child);

    const rtmp = Array.from({ length: STREAMS }, (_, i) =>
      rtmpPublisher(`rtmp://127.0.0.1:${relay.rtmpPort}/live/bench@example.com/rtmp${i}`),
    );
    await until(() => live('rtmp') === STREAMS, `${STREAMS} RTMP streams live`);
    await sleep(WARMUP_MS);
    const rtmpCpu = await cpuOver(SECONDS * 1000);
    for (const r of rtmp) kill(r);

    const per = (c: number) => ((c - idle) / STREAMS).toFixed(4);
    return [
      `### WHIP vs RTMP ingest: relay CPU per stream (${STREAMS} streams, ${SECONDS} s each, copy, LL-HLS on)`,
      '',
      '| ingest | relay CPU (cores) | minus idle, per stream (cores) | ratio to RTMP |',
      '| --- | --- | --- | --- |',
      `| idle relay | ${idle.toFixed(4)} | | |`,
      `| WHIP (H.264 + Opus, 854x480 ~12 fps 1 Mbit/s) | ${whip.toFixed(4)} | ${per(whip)} | ${((whip - idle) / (rtmpCpu - idle)).toFixed(2)} |`,
      `| RTMP (same picture, AAC) | ${rtmpCpu.toFixed(4)} | ${per(rtmpCpu)} | 1.00 |`,
      '',
      `WHIP streams' pipeline: ${[...new Set(whipDecisions)].join('; ')}`,
    ].join('\n');
  } finally {
    await relay.close();
  }
}

async function latencyBench(): Promise<string> {
  const { relay } = await startTestRelay({ RECONNECT_WINDOW_SECONDS: '5' }, silentLogger(), {
    record: false,
  });
  const whep = await launchWhepBrowser();
  const hls = await launchBrowser();
  const emitted = new Map<number, number>();
  let ts0: number | null = null;
  let lastTs: number | null = null;
  const publish = new SimWhipPublish({
    url: `http://127.0.0.1:${relay.hlsPort}/whip/live/lat@example.com/glass`,
    log: silentLogger(),
    videoFilter: stampFilter({ width: 854 }),
    dirty: false, // a steady 15 fps: the latency of the path, not of a publisher's lying clock
    onRtp: (kind, packet) => {
      if (kind !== 'video' || packet.length < 12) return;
      const ts = packet.readUInt32BE(4);
      if (ts === lastTs) return;
      lastTs = ts;
      ts0 ??= ts;
      // 15 fps on a 90 kHz clock: 6000 ticks a frame.
      const frame = Math.round(((ts - ts0) >>> 0) / 6000);
      emitted.set(frame % 2 ** STAMP_BITS, Date.now());
    },
  });
  try {
    await publish.start();
    await sleep(8_000);
    const rows: string[] = [];
    const summarize = (name: string, stamps: { value: number; presentedAt: number }[]): void => {
      const lat = stamps
        .map((s) => (emitted.has(s.value) ? s.presentedAt - emitted.get(s.value)! : Number.NaN))
        .filter((x) => Number.isFinite(x) && x > 0 && x < 30_000);
      rows.push(
        `| ${name} | ${lat.length} | ${quantile(lat, 0.5).toFixed(0)} | ${quantile(lat, 0.95).toFixed(0)} |`,
      );
    };
    const viewer = await whep.play(`http://127.0.0.1:${relay.hlsPort}/whep/lat-example.com/glass`, {
      audio: true,
      stamps: { bits: STAMP_BITS, height: STAMP_HEIGHT },
    });
    await sleep(15_000);
    const all = await viewer.stamps();
    summarize(
      'WHIP → WHEP (Chromium)',
      all.filter((s) => s.presentedAt > all[0]!.presentedAt + 3_000),
    );
    await viewer.close();
    const url = `http://127.0.0.1:${relay.hlsPort}/hls/lat-example.com/glass/index.m3u8`;
    for (const [name, hlsConfig] of [
      ['WHIP → LL-HLS (hls.js lowLatencyMode)', {}],
      ['WHIP → LL-HLS, catch-up 1.5× (maxLiveSyncPlaybackRate)', { maxLiveSyncPlaybackRate: 1.5 }],
    ] as const) {
      const report = await hls.playHls(url, {
        seconds: 25,
        lowLatency: true,
        hlsConfig,
        stamps: { bits: STAMP_BITS, height: STAMP_HEIGHT },
      });
      const start = report.stamps[0]?.presentedAt ?? 0;
      summarize(
        name,
        report.stamps.filter((s) => s.presentedAt > start + 10_000),
      );
    }
    return [
      '### WHIP glass-to-player latency (854x480 15 fps, loopback; glass = the frame left the publisher)',
      '',
      '| path | frames | p50 ms | p95 ms |',
      '| --- | --- | --- | --- |',
      ...rows,
    ].join('\n');
  } finally {
    await publish.close();
    await whep.close();
    await hls.close();
    await relay.close();
  }
}

if (process.argv[2] === '--publish-whip') {
  await publishWhip(process.argv.slice(3));
} else {
  // BENCH_WHIP_ONLY=cpu|latency runs one half.
  const only = process.env.BENCH_WHIP_ONLY;
  if (only !== 'cpu') console.log(`${await latencyBench()}\n`);
  if (only !== 'latency') console.log(await cpuBench());
  process.exit(0);
}
