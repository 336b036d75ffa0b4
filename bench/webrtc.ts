/**
 * WHEP through a real relay (issue 17), on loopback, printed as Markdown tables:
 *
 * 1. Glass-to-browser latency, WHEP beside LL-HLS in the same run: a real-time RTMP publisher in this process
 *    replays a stamped 540x960 15 fps fixture (a keyframe every 2 s; each frame carries its number as blocks
 *    across the top, test/fixtures/steady.ts) into a relay (test/helpers/relay-harness.ts, `copy`). Chromium
 *    plays it over WHEP, then with hls.js in LL mode, on the same stream; each reads the number back from
 *    every presented frame. Latency of a frame = presentation time − when the relay received it from the
 *    publisher (as bench/latency.ts measures HLS; real glasses add capture, encode and uplink before that).
 *    First frame = from the WHEP POST to the first presented frame.
 * 2. CPU per WHEP viewer: the same stream (video passthrough) watched by BENCH_WHEP_VIEWERS (100)
 *    libdatachannel viewers (video only) running in a child process (this file with `--viewers`), so this
 *    process holds the relay side alone (fan-out, packetizing, SRTP, NACK/SR): its CPU over a window with the
 *    viewers minus the same window with none (the publisher and the relay's copy run in both), per viewer.
 * 3. (BENCH_WHEP_ONLY=modes) the start modes of src/webrtc/whep-output.ts against a stream that replays the
 *    fixture directly (no relay): first frame and latency after joining 1.2 s into a GOP.
 *
 * Run: node --import tsx bench/webrtc.ts   (BENCH_WHEP_ONLY=latency,cpu,modes picks parts; default latency,cpu)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { FlvTagType, type MediaTag } from '../src/media/flv-tag.ts';
import type { Publish } from '../src/rtmp/publish.ts';
import { silentLogger } from '../src/shared/logger.ts';
import type { StartMode } from '../src/webrtc/whep-output.ts';
import { buildWhepRoutes } from '../src/webrtc/whep-routes.ts';
import { WhepServer } from '../src/webrtc/whep-server.ts';
import { FIXTURE_DIR } from '../test/fixtures/generate.ts';
import { generateSteadyFlv, STAMP_BITS, STAMP_HEIGHT, type SteadyRecipe } from '../test/fixtures/steady.ts';
import { launchBrowser } from '../test/helpers/browser.ts';
import { FakeWhepSource } from '../test/helpers/fake-whep-source.ts';
import { readFlvAccessUnits } from '../test/helpers/flv-access-units.ts';
import { type FlvPublisher, publishFlv } from '../test/helpers/flv-publisher.ts';
import { startTestRelay } from '../test/helpers/relay-harness.ts';
import { whepClient } from '../test/helpers/webrtc-client.ts';
import { launchWhepBrowser } from '../test/helpers/whep-browser.ts';

/** bench/latency.ts's stamped fixture (the same file in the fixture cache): long enough for every part. */
const RECIPE: SteadyRecipe = {
  width: 540,
  height: 960,
  fps: 15,
  seconds: 115,
  gopSeconds: 2,
  videoKbps: 1000,
  stamp: true,
};
/** Seconds each latency player watches; the first LL_SETTLE_SECONDS of LL-HLS (start-up) are left out. */
const LATENCY_WATCH_SECONDS = Number(process.env.BENCH_WHEP_LATENCY_SECONDS ?? 20);
const LL_SETTLE_SECONDS = 10;
/** WHEP frames presented in the first seconds (the fast start's burst of the current GOP) are left out. */
const WHEP_SETTLE_SECONDS = 2;
const WATCH_SECONDS = Number(process.env.BENCH_WHEP_SECONDS ?? 12);
const MODES: StartMode[] = ['gop-fast', 'gop-realtime', 'next-keyframe'];

async function stampedFixture(r: SteadyRecipe): Promise<string> {
  const file = path.join(FIXTURE_DIR, `stamped-${r.fps}fps-gop${r.gopSeconds}-${r.seconds}s.flv`);
  if (existsSync(file)) return file;
  mkdirSync(FIXTURE_DIR, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, await generateSteadyFlv(r));
  renameSync(tmp, file);
  return file;
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};

/** A relay with the fixture published into it live, and when the relay received each coded video frame. */
async function relayWithStream(
  file: string,
): Promise<{ relay: Awaited<ReturnType<typeof startTestRelay>>; pub: FlvPublisher; receivedAt: number[] }> {
  const started = await startTestRelay({ HLS_LOW_LATENCY: 'on', THUMBNAIL_SECONDS: '3600' }, undefined, {
    record: false,
  });
  // Frame n of the fixture is the n-th coded video frame the publisher sends: when the relay got it.
  const receivedAt: number[] = [];
  started.relay.rtmp.on('publish', (publish: Publish) => {
    publish.on('tag', (tag: MediaTag) => {
      if (tag.type === FlvTagType.Video && !tag.isConfig) receivedAt.push(Date.now());
    });
  });
  const pub = publishFlv(file, { port: started.relay.rtmpPort, user: 'bench', stream: 'whep?profile=copy' });
  await pub.started;
  await started.records.get('whep')!.ready;
  return { relay: started, pub, receivedAt };
}

/** Latency of each distinct stamped frame presented after `fromMs` (epoch ms), in ms. */
function latencies(
  stamps: readonly { value: number; presentedAt: number }[],
  receivedAt: readonly number[],
  fromMs: number,
): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  for (const s of stamps) {
    if (seen.has(s.value)) continue;
    seen.add(s.value);
    const sent = receivedAt[s.value];
    if (sent !== undefined && s.presentedAt >= fromMs) out.push(s.presentedAt - sent);
  }
  return out;
}

async function glassToBrowser(file: string): Promise<string> {
  const { relay: started, pub, receivedAt } = await relayWithStream(file);
  const { relay, hls } = started;
  const rows: string[] = [];
  const ms = (x: number): string => (Number.isFinite(x) ? `${Math.round(x)} ms` : '–');
  try {
    // Join mid-GOP, a few GOPs in (LL-HLS then has a full playlist to start from).
    await new Promise((r) => setTimeout(r, 7_200));
    const whepBrowser = await launchWhepBrowser();
    try {
      const viewer = await whepBrowser.play(`http://127.0.0.1:${relay.hlsPort}/whep/bench/whep`, {
        stamps: { bits: STAMP_BITS, height: STAMP_HEIGHT },
      });
      if (viewer.answer.status !== 201)
        throw new Error(`WHEP ${viewer.answer.status}: ${viewer.answer.body}`);
      await new Promise((r) => setTimeout(r, LATENCY_WATCH_SECONDS * 1000));
      const stats = await viewer.stats();
      const stamps = await viewer.stamps();
      const from = (stamps[0]?.presentedAt ?? 0) + WHEP_SETTLE_SECONDS * 1000;
      const l = latencies(stamps, receivedAt, from);
      rows.push(
        `| WHEP (Chromium, jitter buffer ${ms(stats.jitterBufferMs ?? Number.NaN)}) | ${ms(quantile(l, 0.5))} | ${ms(quantile(l, 0.95))} | ${l.length} | ${ms(stats.firstFrameMs ?? Number.NaN)} | ${stats.freezeCount} freezes, ${stats.packetsLost} packets lost |`,
      );
      await viewer.close();
    } finally {
      await whepBrowser.close();
    }
    const hlsBrowser = await launchBrowser();
    try {
      const report = await hlsBrowser.playHls(hls('bench/whep/index.m3u8'), {
        seconds: LATENCY_WATCH_SECONDS + LL_SETTLE_SECONDS,
        lowLatency: true,
        stamps: { bits: STAMP_BITS, height: STAMP_HEIGHT },
      });
      const from = (report.stamps[0]?.presentedAt ?? 0) + LL_SETTLE_SECONDS * 1000;
      const l = latencies(report.stamps, receivedAt, from);
      rows.push(
        `| LL-HLS (Chromium + hls.js, lowLatencyMode, PART-TARGET 0.5 s) | ${ms(quantile(l, 0.5))} | ${ms(quantile(l, 0.95))} | ${l.length} | ${ms(report.startedAfterMs ?? Number.NaN)} | ${report.stalls.length} stalls, ${report.fatalErrors.length} fatal errors |`,
      );
    } finally {
      await hlsBrowser.close();
    }
  } finally {
    await pub.stop().catch(() => {}); // the relay closes next either way
    await relay.close();
  }
  return [
    `Glass-to-browser latency through the relay, same stream, same run: publisher send → frame presented (copy, 540x960 15 fps, GOP 2 s, loopback; ${LATENCY_WATCH_SECONDS} s per player; WHEP without its first ${WHEP_SETTLE_SECONDS} s, LL-HLS without its first ${LL_SETTLE_SECONDS} s). Goal: WHEP p50 ≤ 400 ms.`,
    '',
    '| player | p50 | p95 | frames | first frame | faults |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

async function measure(mode: StartMode, file: string): Promise<string> {
  const media = readFlvAccessUnits(file);
  const frames = media.units.filter((u) => u.track === 'video').length;
  const emitted = new Map<number, number>();
  let n = 0;
  const source = new FakeWhepSource(media, {
    map: (au) => {
      if (au.track === 'video') emitted.set((n++ % frames) % 2 ** STAMP_BITS, Date.now());
      return au;
    },
  });
  const server = await WhepServer.start({
    udpPort: 0,
    bindAddress: '127.0.0.1',
    hosts: [{ host: '127.0.0.1' }],
    lookup: () => source,
    log: silentLogger(),
    startMode: mode,
  });
  const app = Fastify();
  await app.register(buildWhepRoutes({ server, corsOrigins: '*' }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/whep/u/s`;
  const browser = await launchWhepBrowser();
  try {
    source.start();
    // Join 1.2 s into a 2 s GOP: the case where the start mode matters.
    await new Promise((r) => setTimeout(r, 3_200));
    const viewer = await browser.play(url, { stamps: { bits: STAMP_BITS, height: STAMP_HEIGHT } });
    await new Promise((r) => setTimeout(r, WATCH_SECONDS * 1000));
    const stats = await viewer.stats();
    const stamps = await viewer.stamps();
    const seen = new Set<number>();
    const all: number[] = [];
    const late: number[] = [];
    const t0 = stamps[0]?.presentedAt ?? 0;
    for (const s of stamps) {
      if (seen.has(s.value)) continue;
      seen.add(s.value);
      const at = emitted.get(s.value);
      if (at === undefined) continue;
      all.push(s.presentedAt - at);
      if (s.presentedAt - t0 > 4_000) late.push(s.presentedAt - at);
    }
    await viewer.close();
    const f = (x: number): string => (Number.isFinite(x) ? `${Math.round(x)}` : '–');
    return `| ${mode} | ${f(stats.firstFrameMs ?? Number.NaN)} | ${f(quantile(all.slice(0, 15), 0.5))} | ${f(quantile(late, 0.5))} | ${f(quantile(late, 0.95))} | ${stats.framesDecoded} |`;
  } finally {
    await browser.close();
    source.end();
    server.close();
    await app.close();
  }
}

const VIEWERS = Number(process.env.BENCH_WHEP_VIEWERS ?? 100);
const CPU_WINDOW_MS = 10_000;

/** Child mode: `n` viewers of `url`, connected one after the other; prints "ready" then waits for stdin. */
async function viewersChild(url: string, n: number): Promise<void> {
  const clients = [];
  for (let i = 0; i < n; i++) {
    const c = await whepClient(url);
    await c.connected(30_000);
    clients.push(c);
  }
  console.log(`ready ${clients.length}`);
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('end', resolve));
  for (const c of clients) await c.close({ delete: false });
  process.exit(0);
}

async function cpuPerViewer(file: string): Promise<string> {
  const { relay: started, pub } = await relayWithStream(file);
  const { relay } = started;
  const url = `http://127.0.0.1:${relay.hlsPort}/whep/bench/whep`;
  const cpuOver = async (ms: number): Promise<number> => {
    const a = process.cpuUsage();
    const t = performance.now();
    await new Promise((r) => setTimeout(r, ms));
    const d = process.cpuUsage(a);
    return (d.user + d.system) / 1000 / (performance.now() - t);
  };
  try {
    const idle = await cpuOver(CPU_WINDOW_MS);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--viewers', url, String(VIEWERS)],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    const lines = createInterface({ input: child.stdout! });
    const connectStart = performance.now();
    const ready = await new Promise<number>((resolve, reject) => {
      lines.on('line', (l) => {
        if (l.startsWith('ready ')) resolve(Number(l.slice(6)));
      });
      child.once('exit', (code) => reject(new Error(`viewers exited with ${code}`)));
    });
    const connectMs = performance.now() - connectStart;
    const loaded = await cpuOver(CPU_WINDOW_MS);
    const sessions = relay.webrtc.whep.sessionCount;
    child.stdin!.end();
    await new Promise((resolve) => child.once('exit', resolve));
    const per = ((loaded - idle) / ready) * 100;
    return [
      `WHEP CPU per viewer through the relay: ${ready} libdatachannel viewers (video only) of one stream (copy, 15 fps, ~1 Mbit/s passthrough), ${CPU_WINDOW_MS / 1000} s windows; the relay process includes the publisher and the stream's copy in both windows. ${ready} viewers connected one after the other in ${(connectMs / 1000).toFixed(1)} s. Goal: ≤ 0.5 % of a core per viewer.`,
      '',
      '| viewers | sessions | relay process CPU (share of one core) | per viewer |',
      '| --- | --- | --- | --- |',
      `| 0 | 0 | ${(idle * 100).toFixed(2)} % | – |`,
      `| ${ready} | ${sessions} | ${(loaded * 100).toFixed(2)} % | ${per.toFixed(3)} % |`,
    ].join('\n');
  } finally {
    await pub.stop().catch(() => {}); // the relay closes next either way
    await relay.close();
  }
}

if (process.argv[2] === '--viewers') {
  await viewersChild(process.argv[3]!, Number(process.argv[4]));
} else {
  const file = await stampedFixture(RECIPE);
  const only = (process.env.BENCH_WHEP_ONLY ?? 'latency,cpu').split(',');
  if (only.includes('latency')) console.log(`${await glassToBrowser(file)}\n`);
  if (only.includes('cpu')) console.log(`${await cpuPerViewer(file)}\n`);
  if (only.includes('modes')) {
    const rows: string[] = [];
    for (const mode of MODES) rows.push(await measure(mode, file));
    console.log(
      [
        `WHEP start modes (no relay: a stream replaying the fixture), Chromium joining 1.2 s into a 2 s GOP, 15 fps; latency = presented − emitted by the stream (ms)`,
        '',
        '| start mode | first frame after POST | latency, first 15 frames p50 | latency after 4 s p50 | p95 | frames decoded |',
        '| --- | --- | --- | --- | --- | --- |',
        ...rows,
      ].join('\n'),
    );
  }
  process.exit(0);
}
