/**
 * WHEP start and latency, per start mode (src/webrtc/whep-output.ts): a stream replays a stamped fixture
 * (540x960, 15 fps, a keyframe every 2 s; each frame carries its number as blocks across the top, see
 * test/fixtures/steady.ts) in real time; Chromium joins mid-GOP over WHEP on loopback and reads the number
 * back from every presented frame. Latency of a frame = presentation time − the time the stream emitted it
 * (what the relay's output would get from the repaired timeline; ingest and repair come on top in a relay).
 * First frame = from the POST to the first presented frame.
 *
 * Then CPU per viewer: one stream (the same fixture, video only) watched by BENCH_WHEP_VIEWERS (100)
 * libdatachannel viewers that run in a child process (this file with `--viewers`), so the relay side's CPU
 * (this process: fan-out, packetizing, SRTP, NACK/SR) is measured alone: process CPU over a window with the
 * viewers minus the same window with none, divided by the viewers.
 *
 * Run: node --import tsx bench/webrtc.ts   (prints Markdown tables)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { silentLogger } from '../src/shared/logger.ts';
import type { StartMode } from '../src/webrtc/whep-output.ts';
import { buildWhepRoutes } from '../src/webrtc/whep-routes.ts';
import { WhepServer } from '../src/webrtc/whep-server.ts';
import { FIXTURE_DIR } from '../test/fixtures/generate.ts';
import { generateSteadyFlv, STAMP_BITS, STAMP_HEIGHT, type SteadyRecipe } from '../test/fixtures/steady.ts';
import { FakeWhepSource } from '../test/helpers/fake-whep-source.ts';
import { readFlvAccessUnits } from '../test/helpers/flv-access-units.ts';
import { whepClient } from '../test/helpers/webrtc-client.ts';
import { launchWhepBrowser } from '../test/helpers/whep-browser.ts';

const RECIPE: SteadyRecipe = {
  width: 540,
  height: 960,
  fps: 15,
  seconds: 40,
  gopSeconds: 2,
  videoKbps: 1000,
  stamp: true,
};
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
  const media = readFlvAccessUnits(file);
  const source = new FakeWhepSource({
    ...media,
    audio: null,
    units: media.units.filter((u) => u.track === 'video'),
  });
  const server = await WhepServer.start({
    udpPort: 0,
    bindAddress: '127.0.0.1',
    hosts: [{ host: '127.0.0.1' }],
    lookup: () => source,
    log: silentLogger(),
    maxSessions: VIEWERS + 10,
  });
  const app = Fastify();
  await app.register(buildWhepRoutes({ server, corsOrigins: '*' }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/whep/u/s`;
  const cpuOver = async (ms: number): Promise<number> => {
    const a = process.cpuUsage();
    const t = performance.now();
    await new Promise((r) => setTimeout(r, ms));
    const d = process.cpuUsage(a);
    return (d.user + d.system) / 1000 / (performance.now() - t);
  };
  try {
    source.start();
    const idle = await cpuOver(CPU_WINDOW_MS);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--viewers', url, String(VIEWERS)],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    const lines = createInterface({ input: child.stdout! });
    const ready = await new Promise<number>((resolve, reject) => {
      lines.on('line', (l) => {
        if (l.startsWith('ready ')) resolve(Number(l.slice(6)));
      });
      child.once('exit', (code) => reject(new Error(`viewers exited with ${code}`)));
    });
    const loaded = await cpuOver(CPU_WINDOW_MS);
    const sessions = server.sessionCount;
    child.stdin!.end();
    await new Promise((resolve) => child.once('exit', resolve));
    const per = ((loaded - idle) / ready) * 100;
    return [
      `WHEP CPU per viewer: ${ready} libdatachannel viewers of one stream (15 fps, ~1 Mbit/s video passthrough), ${CPU_WINDOW_MS / 1000} s windows`,
      '',
      '| viewers | sessions | relay process CPU (share of one core) | per viewer |',
      '| --- | --- | --- | --- |',
      `| 0 | 0 | ${(idle * 100).toFixed(2)} % | – |`,
      `| ${ready} | ${sessions} | ${(loaded * 100).toFixed(2)} % | ${per.toFixed(3)} % |`,
    ].join('\n');
  } finally {
    source.end();
    server.close();
    await app.close();
  }
}

if (process.argv[2] === '--viewers') {
  await viewersChild(process.argv[3]!, Number(process.argv[4]));
} else {
  const file = await stampedFixture(RECIPE);
  if (process.env.BENCH_WHEP_ONLY !== 'cpu') {
    const rows: string[] = [];
    for (const mode of MODES) rows.push(await measure(mode, file));
    console.log(
      [
        `WHEP on loopback, Chromium joining 1.2 s into a 2 s GOP, 15 fps; latency = presented − emitted by the stream (ms)`,
        '',
        '| start mode | first frame after POST | latency, first 15 frames p50 | latency after 4 s p50 | p95 | frames decoded |',
        '| --- | --- | --- | --- | --- | --- |',
        ...rows,
      ].join('\n'),
    );
  }
  console.log(`\n${await cpuPerViewer(file)}`);
}
