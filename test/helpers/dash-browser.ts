/**
 * Plays a DASH MPD in Debian's Chromium with dash.js (npm `dashjs`, its UMD build), the way browser.ts plays
 * HLS with hls.js, and reports what a viewer saw: when playback started, how far `currentTime` advanced,
 * stalls, dash.js errors, the Periods it switched to and the live latency it measured. The page comes from a
 * small node:http server on 127.0.0.1 started here, so the MPD is fetched cross-origin (CORS needed).
 *
 * `launchDashBrowser()` in `before`, `playDash(url, options)` per run (a browser context each), `close()`.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  computeStalls,
  type FrameStamp,
  SAMPLE_INTERVAL_MS,
  type Stall,
} from './browser.ts';

export interface DashSample {
  atMs: number;
  currentTime: number;
  ended: boolean;
  /** dash.js getCurrentLiveLatency(), seconds; null before it knows (or for a static MPD). */
  latency: number | null;
  /** Id of the Period playing. */
  period: string | null;
  /** Chromium's webkitAudioDecodedByteCount: audio was decoded (the muxed Representation's audio plays). */
  audioBytes: number;
  /** Video frames decoded so far (getVideoPlaybackQuality). */
  videoFrames: number;
}

export interface DashReport {
  playedSeconds: number;
  startedAfterMs: number | null;
  stalls: Stall[];
  /** dash.js ERROR events, media element errors, page exceptions. */
  errors: string[];
  samples: DashSample[];
  /** Periods switched to (PERIOD_SWITCH_COMPLETED), in order. */
  periods: string[];
  /** Representations (id, width × height, bandwidth) of the video AdaptationSet dash.js found. */
  representations: { id: string; width: number; height: number; bandwidth: number }[];
  /** MPD loads (MANIFEST_LOADED): the first and every refresh. */
  manifestLoads: number;
  /** With DashPlayOptions.stamps: the stamp of each presented frame, in order. */
  stamps: FrameStamp[];
}

export interface DashPlayOptions {
  seconds: number;
  /** dash.js settings (`player.updateSettings`). */
  settings?: Record<string, unknown>;
  startTimeoutMs?: number;
  /** Read a frame-number stamp from every presented frame (as PlayOptions.stamps in browser.ts). */
  stamps?: { bits: number; height: number };
}

export interface DashBrowser {
  playDash(url: string, options: DashPlayOptions): Promise<DashReport>;
  close(): Promise<void>;
}

type PageEvent =
  | { kind: 'playing' }
  | { kind: 'error'; text: string }
  | { kind: 'period'; id: string }
  | { kind: 'manifest' }
  | { kind: 'reps'; reps: DashReport['representations'] };

const PAGE_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>dash playback harness</title></head>
<body>
<video id="video" muted playsinline></video>
<script src="/dash.all.min.js"></script>
<script>
  const video = document.getElementById('video');
  video.muted = true;
  const report = (event) => { window.__report(event).catch(() => {}); };
  video.addEventListener('playing', () => report({ kind: 'playing' }));
  video.addEventListener('error', () => {
    const e = video.error;
    report({ kind: 'error', text: 'video element: MediaError ' + (e ? e.code + ' ' + e.message : '?') });
  });
  window.sample = () => {
    const p = window.player;
    let latency = null;
    let period = null;
    try {
      const l = p.getCurrentLiveLatency();
      latency = Number.isFinite(l) && l > 0 ? l : null;
      const s = p.getActiveStream && p.getActiveStream();
      period = s ? s.getStreamInfo().id : null;
    } catch (e) {
      // before the player knows its stream: nothing to sample yet
    }
    const audioBytes = video.webkitAudioDecodedByteCount ?? 0;
    const videoFrames = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames : 0;
    return { currentTime: video.currentTime, ended: video.ended, latency, period, audioBytes, videoFrames };
  };
  window.stamps = [];
  // Frame-number stamps (test/fixtures/steady.ts), read back as browser.ts does for hls.js.
  window.readStamps = (bits, height) => {
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const onFrame = (_now, meta) => {
      const w = video.videoWidth;
      if (w > 0) {
        canvas.width = w;
        canvas.height = height;
        ctx.drawImage(video, 0, 0, w, height, 0, 0, w, height);
        const row = ctx.getImageData(0, Math.floor(height / 2), w, 1).data;
        const block = Math.floor(w / bits);
        let value = 0;
        for (let b = 0; b < bits; b++) {
          const x = b * block + Math.floor(block / 2);
          if (row[x * 4] > 128) value += 2 ** b;
        }
        window.stamps.push({ value, presentedAt: performance.timeOrigin + meta.expectedDisplayTime });
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  window.startPlayback = (url, settings) => {
    if (typeof dashjs === 'undefined') throw new Error('dash.js did not load');
    const player = dashjs.MediaPlayer().create();
    window.player = player;
    const E = dashjs.MediaPlayer.events;
    player.updateSettings(settings);
    player.on(E.ERROR, (e) => {
      const err = e.error || {};
      report({ kind: 'error', text: 'dash.js ' + (err.code || '') + ' ' + (err.message || JSON.stringify(e).slice(0, 300)) });
    });
    player.on(E.PERIOD_SWITCH_COMPLETED, (e) => report({ kind: 'period', id: e.toStreamInfo ? e.toStreamInfo.id : '?' }));
    player.on(E.MANIFEST_LOADED, () => report({ kind: 'manifest' }));
    player.on(E.STREAM_INITIALIZED, () => {
      const reps = (player.getRepresentationsByType ? player.getRepresentationsByType('video') : []) || [];
      report({ kind: 'reps', reps: reps.map((r) => ({ id: String(r.id), width: r.width, height: r.height, bandwidth: r.bandwidth })) });
    });
    player.initialize(video, url, true);
  };
</script>
</body></html>
`;

function dashScript(): Buffer {
  try {
    // The package exports only its ESM build (its "require" target is not shipped); the UMD build a plain
    // <script> loads sits beside it.
    const esm = fileURLToPath(import.meta.resolve('dashjs'));
    return readFileSync(path.join(esm, '../../../legacy/umd/dash.all.min.js'));
  } catch {
    throw new Error('dash.js is not installed (node_modules/dashjs); run "npm test" to install it');
  }
}

async function startPageServer(): Promise<{ server: Server; origin: string }> {
  const js = dashScript();
  const server = createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    if (pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE_HTML);
    } else if (pathname === '/dash.all.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(js);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function play(
  browser: Browser,
  pageOrigin: string,
  url: string,
  o: DashPlayOptions,
): Promise<DashReport> {
  const errors: string[] = [];
  const periods: string[] = [];
  const samples: DashSample[] = [];
  let representations: DashReport['representations'] = [];
  let manifestLoads = 0;
  let stamps: FrameStamp[] = [];
  let t0 = performance.now();
  const since = (): number => Math.round(performance.now() - t0);
  let settle: (played: boolean) => void = () => {};
  const started = new Promise<boolean>((resolve) => {
    settle = resolve;
  });
  let startedAfterMs: number | null = null;
  const onEvent = (e: PageEvent): void => {
    if (e.kind === 'playing') {
      startedAfterMs ??= since();
      settle(true);
    } else if (e.kind === 'error') {
      errors.push(`${since()} ms: ${e.text}`);
    } else if (e.kind === 'period') {
      periods.push(e.id);
    } else if (e.kind === 'manifest') {
      manifestLoads++;
    } else {
      representations = e.reps;
    }
  };
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.on('pageerror', (err) => {
      errors.push(`${since()} ms: page exception: ${err.message}`);
      settle(false);
    });
    await page.exposeFunction('__report', onEvent);
    await page.goto(`${pageOrigin}/`, { waitUntil: 'load' });
    if (o.stamps) await page.evaluate(`readStamps(${o.stamps.bits}, ${o.stamps.height})`);
    t0 = performance.now();
    await page.evaluate(`startPlayback(${JSON.stringify(url)}, ${JSON.stringify(o.settings ?? {})})`);
    const deadline = new AbortController();
    const played = await Promise.race([
      started,
      sleep(o.startTimeoutMs ?? 30_000, false, { signal: deadline.signal }).catch(() => false),
    ]);
    deadline.abort();
    if (played) {
      const begin = performance.now();
      for (let tick = 0; ; tick++) {
        const wait = begin + tick * SAMPLE_INTERVAL_MS - performance.now();
        if (wait > 0) await sleep(wait);
        const s = (await page.evaluate('sample()')) as Omit<DashSample, 'atMs'>;
        samples.push({ atMs: since(), ...s });
        if (tick * SAMPLE_INTERVAL_MS >= o.seconds * 1000) break;
      }
      if (o.stamps) stamps = (await page.evaluate('window.stamps')) as FrameStamp[];
    }
  } finally {
    await context.close();
  }
  const first = samples[0];
  const last = samples.at(-1);
  return {
    playedSeconds: first && last ? last.currentTime - first.currentTime : 0,
    startedAfterMs,
    stalls: computeStalls(samples),
    errors,
    samples,
    periods,
    representations,
    manifestLoads,
    stamps,
  };
}

export async function launchDashBrowser(): Promise<DashBrowser> {
  const { server, origin } = await startPageServer();
  let browser: Browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  } catch (err) {
    server.closeAllConnections();
    server.close();
    throw new Error(`Chromium (${CHROMIUM_PATH}) did not start: ${(err as Error).message}`);
  }
  return {
    playDash: (url, options) => play(browser, origin, url, options),
    close: async () => {
      try {
        await browser.close();
      } finally {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}
