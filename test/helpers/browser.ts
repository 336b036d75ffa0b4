/**
 * Plays an HLS URL in Debian's Chromium (/usr/bin/chromium, driven by playwright-core; no browser is ever
 * downloaded) with hls.js, and reports what a viewer would have seen: when playback started, how far
 * `video.currentTime` advanced, the stalls, and hls.js's errors. The page and hls.min.js come from a small
 * node:http server on 127.0.0.1 that the harness starts itself; the HLS URL is fetched cross-origin, so its
 * origin must send CORS headers.
 *
 * One browser per test file: `withBrowser((b) => b.playHls(url, { seconds: 10 }))`, or `launchBrowser()` in
 * `before` and `close()` in `after`. `playHls(url, options)` alone launches and closes one for a single run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Browser, chromium, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

/** How often `video.currentTime` is sampled. */
export const SAMPLE_INTERVAL_MS = 250;
/** currentTime not advancing for longer than this (while not ended) is a stall. */
export const STALL_THRESHOLD_MS = 2000;

export interface PlaybackSample {
  /** Milliseconds since loadSource() was called. */
  atMs: number;
  currentTime: number;
  ended: boolean;
  /** hls.js `latency`: seconds from the playlist's live edge to currentTime (null before it knows). */
  hlsLatency: number | null;
  /** Date.now() − hls.js `playingDate` (the playlist's PROGRAM-DATE-TIME of what plays), ms; null before. */
  pdtLatencyMs: number | null;
  /** Chromium's `webkitAudioDecodedByteCount`: audio bytes decoded so far (0 when no audio track played). */
  audioDecodedBytes: number;
}

/** A frame-number stamp read back from a presented frame (PlayOptions.stamps). */
export interface FrameStamp {
  value: number;
  /** Wall clock (ms since the epoch) at which Chromium presented the frame. */
  presentedAt: number;
}

export interface Stall {
  /** When currentTime was last seen advancing before it froze (ms since loadSource()). */
  atMs: number;
  /** How long it stayed frozen; for a stall still going when the run ended, until the last sample. */
  durationMs: number;
}

export interface PlaybackReport {
  /** How far currentTime advanced between the start of playback and the last sample. */
  playedSeconds: number;
  /** Milliseconds from loadSource() to the video's first 'playing' event; null if it never played. */
  startedAfterMs: number | null;
  stalls: Stall[];
  /** hls.js fatal ERROR events, media element errors and uncaught page exceptions. */
  fatalErrors: string[];
  /** hls.js non-fatal ERROR events and a rejected play(). */
  nonFatalErrors: string[];
  /**
   * hls.js's loads and appends (sn, part, discontinuity, what each buffered, how long it took) and the
   * video's 'waiting' events (the last TRACE_ENTRIES), for a failure's message: see stallTrace().
   */
  trace: TraceEntry[];
  /** currentTime every SAMPLE_INTERVAL_MS over the wanted duration, from the start of playback. */
  samples: PlaybackSample[];
  /** hls.js LEVEL_LOADED events: the media playlist loads, refreshes of a live playlist included. */
  levelsLoaded: number;
  /** With PlayOptions.stamps: the stamp of each presented frame, in order (requestVideoFrameCallback). */
  stamps: FrameStamp[];
  /** The variants hls.js found (MANIFEST_PARSED): one for a media playlist, one per rendition for ABR. */
  levels: HlsLevel[];
  /** hls.js LEVEL_SWITCHED events: the level whose fragments play from then on (ms since loadSource()). */
  levelSwitches: { atMs: number; level: number }[];
}

export interface TraceEntry {
  /** Milliseconds since loadSource(). */
  atMs: number;
  text: string;
}

/** Trace entries kept per playback (a 60 s LL-HLS run makes about 2,000). */
const TRACE_ENTRIES = 4000;

/**
 * What hls.js did around each stall (from `marginMs` before it to its end), with its errors: a stall
 * assertion's message, so a failure on a loaded machine says whether the media had a hole or arrived late.
 */
export function stallTrace(report: PlaybackReport, stalls = report.stalls, marginMs = 3000): string {
  const lines = [`errors: ${JSON.stringify(report.nonFatalErrors)}`];
  for (const stall of stalls) {
    lines.push(`stall at ${stall.atMs} ms for ${stall.durationMs} ms:`);
    for (const e of report.trace) {
      if (e.atMs >= stall.atMs - marginMs && e.atMs <= stall.atMs + stall.durationMs + 500) {
        lines.push(`  ${e.atMs} ms: ${e.text}`);
      }
    }
  }
  return lines.join('\n');
}

export interface HlsLevel {
  width: number;
  height: number;
  bitrate: number;
  url: string;
}

export interface PlayOptions {
  /** How long to watch once playback has started. */
  seconds: number;
  /** hls.js lowLatencyMode (default false). */
  lowLatency?: boolean;
  /** More hls.js config, spread after lowLatencyMode. */
  hlsConfig?: Record<string, unknown>;
  /** How long to wait for the first 'playing' event before giving up (default 30 s). */
  startTimeoutMs?: number;
  /**
   * Read a frame-number stamp from every presented frame: `bits` black/white blocks across the top `height`
   * pixels, bit b (least significant first) in block b (test/fixtures/steady.ts draws them).
   */
  stamps?: { bits: number; height: number };
  /** Pick a level once playback has gone on this long (`hls.nextLevel`: a switch at a fragment boundary). */
  switchLevels?: { afterSeconds: number; level: number }[];
}

export interface BrowserHandle {
  playHls(url: string, options: PlayOptions): Promise<PlaybackReport>;
  close(): Promise<void>;
}

/** What the page reports through the exposed `__report` function. */
type PageEvent =
  | { kind: 'playing' }
  | { kind: 'levelLoaded' }
  | { kind: 'manifest'; levels: HlsLevel[] }
  | { kind: 'levelSwitched'; level: number }
  | { kind: 'hlsError'; fatal: boolean; text: string }
  | { kind: 'videoError'; text: string }
  | { kind: 'playRejected'; text: string }
  | { kind: 'trace'; text: string };

const PAGE_HTML = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>hls playback harness</title></head>
<body>
<video id="video" muted playsinline></video>
<script src="/hls.min.js"></script>
<script>
  const video = document.getElementById('video');
  video.muted = true;
  const report = (event) => { window.__report(event).catch(() => {}); };
  video.addEventListener('playing', () => report({ kind: 'playing' }));
  video.addEventListener('error', () => {
    const e = video.error;
    report({ kind: 'videoError', text: 'video element: MediaError ' + (e ? e.code + ' ' + e.message : '?') });
  });
  window.sample = () => {
    const hls = window.hls;
    const latency = hls && Number.isFinite(hls.latency) && hls.latency > 0 ? hls.latency : null;
    const date = hls && hls.playingDate ? hls.playingDate.getTime() : null;
    return {
      currentTime: video.currentTime,
      ended: video.ended,
      hlsLatency: latency,
      pdtLatencyMs: date === null ? null : Date.now() - date,
      audioDecodedBytes: video.webkitAudioDecodedByteCount || 0,
    };
  };
  window.stamps = [];
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
  window.startPlayback = (url, config) => {
    if (typeof Hls === 'undefined') throw new Error('hls.js did not load');
    if (!Hls.isSupported()) throw new Error('hls.js is not supported here (no MediaSource with H.264/AAC)');
    const hls = new Hls(config);
    window.hls = hls;
    hls.on(Hls.Events.LEVEL_LOADED, (_event, data) => {
      report({ kind: 'levelLoaded' });
      const st = data.stats || {};
      const d = data.details || {};
      report({ kind: 'trace', text: 'playlist ' + (d.endSN ?? '?') + '/' + ((d.partList || []).length) +
        ' took ' + Math.round((st.loading && st.loading.end - st.loading.start) || 0) + ' ms' });
    });
    const frag = (data) => {
      const f = data.frag || {};
      const p = data.part ? '.p' + data.part.index : '';
      return 'sn ' + f.sn + p + ' cc ' + f.cc;
    };
    hls.on(Hls.Events.FRAG_LOADING, (_event, data) => report({ kind: 'trace', text: 'load ' + frag(data) }));
    hls.on(Hls.Events.FRAG_BUFFERED, (_event, data) => {
      const es = (data.frag && data.frag.elementaryStreams) || {};
      const span = (t) => (es[t] ? t[0] + ' ' + Number(es[t].startPTS).toFixed(3) + '-' + Number(es[t].endPTS).toFixed(3) : '');
      const st = (data.part || data.frag || {}).stats || {};
      const ranges = [];
      for (let i = 0; i < video.buffered.length; i++) {
        ranges.push(video.buffered.start(i).toFixed(3) + '-' + video.buffered.end(i).toFixed(3));
      }
      report({ kind: 'trace', text: 'buffered ' + frag(data) + ' ' + span('audio') + ' ' + span('video') + ' ' + span('audiovideo') +
        ' load ' + Math.round((st.loading && st.loading.end - st.loading.start) || 0) + ' ms; now ' +
        video.currentTime.toFixed(3) + ' in ' + ranges.join(' ') });
    });
    video.addEventListener('waiting', () => report({ kind: 'trace', text: 'waiting at ' + video.currentTime.toFixed(3) }));
    hls.on(Hls.Events.ERROR, (_event, data) => {
      const status = data.response && data.response.code ? ' HTTP ' + data.response.code : '';
      const url = data.url || (data.frag && data.frag.url) || (data.context && data.context.url) || '';
      const reason = data.reason || (data.error && data.error.message) || data.err || '';
      const text = [data.type + '/' + data.details + status, url, String(reason)].filter(Boolean).join(' ');
      report({ kind: 'hlsError', fatal: !!data.fatal, text });
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => report({ kind: 'levelSwitched', level: data.level }));
    hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => {
      const levels = (data.levels || []).map((l) => ({
        width: l.width, height: l.height, bitrate: l.bitrate, url: String(l.url),
      }));
      report({ kind: 'manifest', levels });
      const played = video.play();
      if (played) played.catch((err) => report({ kind: 'playRejected', text: 'play(): ' + err }));
    });
    hls.attachMedia(video);
    hls.loadSource(url);
  };
</script>
</body>
</html>
`;

function hlsScriptPath(): string {
  try {
    return createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js');
  } catch {
    throw new Error('hls.js is not installed (node_modules/hls.js); run "npm test" to install it');
  }
}

/** The page server: the inline HTML page and hls.min.js, nothing else. */
async function startPageServer(): Promise<{ server: Server; origin: string }> {
  const hlsJs = readFileSync(hlsScriptPath());
  const server = createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    if (pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE_HTML);
    } else if (pathname === '/hls.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(hlsJs);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return { server, origin: `http://127.0.0.1:${port}` };
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is missing (${CHROMIUM_PATH}); run "npm test", which installs it (Debian package chromium)`,
    );
  }
  try {
    return await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  } catch (err) {
    throw new Error(
      `Chromium (${CHROMIUM_PATH}) did not start: ${(err as Error).message}\n` +
        'run "npm test" to (re)install it (Debian package chromium)',
    );
  }
}

/**
 * Stalls from samples taken while playing: a freeze starts at the last sample whose currentTime was new,
 * and is a stall when no later sample advances within STALL_THRESHOLD_MS; samples after the video ended
 * don't count. A freeze still going at the last sample is a stall if it already lasted over the threshold.
 */
export function computeStalls(
  samples: Pick<PlaybackSample, 'atMs' | 'currentTime' | 'ended'>[],
  thresholdMs = STALL_THRESHOLD_MS,
): Stall[] {
  const stalls: Stall[] = [];
  const first = samples[0];
  if (!first) return stalls;
  let lastTime = first.currentTime;
  let frozenSince = first.atMs;
  let lastAt = first.atMs;
  for (const s of samples.slice(1)) {
    if (s.ended) break;
    lastAt = s.atMs;
    if (s.currentTime !== lastTime) {
      if (s.atMs - frozenSince > thresholdMs)
        stalls.push({ atMs: frozenSince, durationMs: s.atMs - frozenSince });
      lastTime = s.currentTime;
      frozenSince = s.atMs;
    }
  }
  if (lastAt - frozenSince > thresholdMs)
    stalls.push({ atMs: frozenSince, durationMs: lastAt - frozenSince });
  return stalls;
}

async function playInBrowser(
  browser: Browser,
  pageOrigin: string,
  url: string,
  options: PlayOptions,
): Promise<PlaybackReport> {
  const fatalErrors: string[] = [];
  const nonFatalErrors: string[] = [];
  const trace: TraceEntry[] = [];
  const samples: PlaybackSample[] = [];
  let levelsLoaded = 0;
  let levels: HlsLevel[] = [];
  const levelSwitches: { atMs: number; level: number }[] = [];
  let stamps: FrameStamp[] = [];
  let t0 = performance.now();
  const since = (): number => Math.round(performance.now() - t0);

  // Resolved by the first 'playing' (true) or by a fatal error before it (false): nothing to wait for then.
  let settleStart: (played: boolean) => void = () => {};
  const started = new Promise<boolean>((resolve) => {
    settleStart = resolve;
  });
  let startedAfterMs: number | null = null;
  const onEvent = (event: PageEvent): void => {
    switch (event.kind) {
      case 'playing':
        if (startedAfterMs === null) startedAfterMs = since();
        settleStart(true);
        break;
      case 'levelLoaded':
        levelsLoaded++;
        break;
      case 'manifest':
        levels = event.levels;
        break;
      case 'levelSwitched':
        levelSwitches.push({ atMs: since(), level: event.level });
        break;
      case 'hlsError':
        (event.fatal ? fatalErrors : nonFatalErrors).push(`${since()} ms: ${event.text}`);
        if (event.fatal) settleStart(false);
        break;
      case 'videoError':
        fatalErrors.push(`${since()} ms: ${event.text}`);
        settleStart(false);
        break;
      case 'playRejected':
        nonFatalErrors.push(`${since()} ms: ${event.text}`);
        break;
      case 'trace':
        trace.push({ atMs: since(), text: event.text });
        if (trace.length > TRACE_ENTRIES) trace.shift();
        break;
    }
  };

  const context = await browser.newContext();
  try {
    const page: Page = await context.newPage();
    page.on('pageerror', (err) => {
      fatalErrors.push(`${since()} ms: page exception: ${err.message}`);
      settleStart(false);
    });
    await page.exposeFunction('__report', onEvent);
    await page.goto(`${pageOrigin}/`, { waitUntil: 'load' });

    const config = { lowLatencyMode: options.lowLatency ?? false, ...options.hlsConfig };
    if (options.stamps) {
      await page.evaluate(`readStamps(${options.stamps.bits}, ${options.stamps.height})`);
    }
    t0 = performance.now();
    try {
      await page.evaluate(`startPlayback(${JSON.stringify(url)}, ${JSON.stringify(config)})`);
    } catch (err) {
      fatalErrors.push(`0 ms: ${(err as Error).message}`);
      settleStart(false);
    }

    const startTimeoutMs = options.startTimeoutMs ?? 30_000;
    const deadline = new AbortController();
    const played = await Promise.race([
      started,
      sleep(startTimeoutMs, false, { signal: deadline.signal }).catch(() => false),
    ]);
    deadline.abort();

    if (played) {
      // The measurement: sample for the wanted duration on a fixed grid (no drift from slow evaluates).
      const begin = performance.now();
      const switches = [...(options.switchLevels ?? [])].sort((a, b) => a.afterSeconds - b.afterSeconds);
      for (let tick = 0; ; tick++) {
        const wait = begin + tick * SAMPLE_INTERVAL_MS - performance.now();
        if (wait > 0) await sleep(wait);
        while (switches[0] && tick * SAMPLE_INTERVAL_MS >= switches[0].afterSeconds * 1000) {
          await page.evaluate(`window.hls.nextLevel = ${Number(switches.shift()!.level)}`);
        }
        const atMs = since();
        const s = (await page.evaluate('sample()')) as Omit<PlaybackSample, 'atMs'>;
        samples.push({ atMs, ...s });
        if (tick * SAMPLE_INTERVAL_MS >= options.seconds * 1000) break;
      }
      if (options.stamps) stamps = (await page.evaluate('window.stamps')) as FrameStamp[];
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
    fatalErrors,
    nonFatalErrors,
    trace,
    samples,
    levelsLoaded,
    stamps,
    levels,
    levelSwitches,
  };
}

/** Launches Chromium and the page server; each playHls() runs in its own browser context. */
export async function launchBrowser(): Promise<BrowserHandle> {
  const { server, origin } = await startPageServer();
  let browser: Browser;
  try {
    browser = await launchChromium();
  } catch (err) {
    await closeServer(server);
    throw err;
  }
  return {
    playHls: (url, options) => playInBrowser(browser, origin, url, options),
    close: async () => {
      try {
        await browser.close();
      } finally {
        await closeServer(server);
      }
    },
  };
}

export async function withBrowser<T>(fn: (browser: BrowserHandle) => Promise<T>): Promise<T> {
  const handle = await launchBrowser();
  try {
    return await fn(handle);
  } finally {
    await handle.close();
  }
}

/** One run in a browser of its own. */
export function playHls(url: string, options: PlayOptions): Promise<PlaybackReport> {
  return withBrowser((b) => b.playHls(url, options));
}
