/**
 * DASH against HLS in the same run, on one relay (in this process) fed by a real-time copy stream.
 *
 * 1. Origin cost per viewer. Simulated viewers (a child process of this file, so their CPU is not the
 *    relay's) watch one 540x960 copy stream for SECONDS each way: HLS viewers as a classic player does
 *    (reload index.m3u8 every TARGETDURATION / 2, fetch the init once and each new segment), DASH viewers as
 *    dash.js does (reload index.mpd every minimumUpdatePeriod, fetch the init once and each new segment
 *    the timeline lists, from the same HLS URLs). The relay process's CPU over the window, less the same
 *    window with no viewer, divided by the viewers: the origin's cost per viewer. Also the cost of making
 *    one document, MPD against media playlist, timed in process.
 * 2. Live latency, glass to player: the publisher's frames carry their number as black and white blocks
 *    (test/fixtures/steady.ts); Chromium reads it back from each presented frame (requestVideoFrameCallback).
 *    Latency of a frame = presented − received by the relay. Players one after the other on the same
 *    stream: hls.js classic, hls.js LL, dash.js defaults on the MPD of complete segments (the default: its
 *    ServiceDescription target is 3 segments), dash.js defaults on the low-latency MPD (`?ll=1`: the segment being made
 *    streamed part by part; target 6 parts). (dash.js told liveDelay 2 s with catch-up on the low-latency
 *    MPD played 50 s behind in one run: not kept.)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { renderMpd } from '../src/dash/mpd.ts';
import { DashPresentation } from '../src/dash/presentation.ts';
import { FlvTagType, type MediaTag } from '../src/media/flv-tag.ts';
import type { Publish } from '../src/rtmp/publish.ts';
import { FIXTURE_DIR } from '../test/fixtures/generate.ts';
import { generateSteadyFlv, STAMP_BITS, STAMP_HEIGHT, type SteadyRecipe } from '../test/fixtures/steady.ts';
import { type FrameStamp, launchBrowser } from '../test/helpers/browser.ts';
import { launchDashBrowser } from '../test/helpers/dash-browser.ts';
import { publishFlv } from '../test/helpers/flv-publisher.ts';
import { startTestRelay } from '../test/helpers/relay-harness.ts';

const VIEWERS = Number(process.env.BENCH_DASH_VIEWERS ?? 100);
const LOAD_SECONDS = Number(process.env.BENCH_DASH_LOAD_SECONDS ?? 20);
const WATCH_SECONDS = 25;
const SETTLE_SECONDS = 10;
const SEGMENT_SECONDS = 2;

// ---- the viewers' process -------------------------------------------------------------------------------

/** Runs `count` viewers of `url` (HLS playlist or MPD) for `seconds`; prints what they fetched as JSON. */
async function viewers(kind: 'hls' | 'dash', url: string, count: number, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let requests = 0;
  let errors = 0;
  let segments = 0;
  let bytes = 0;
  const get = async (u: string): Promise<Response | null> => {
    requests++;
    try {
      const res = await fetch(u);
      if (res.status !== 200) errors++;
      return res;
    } catch {
      errors++; // a refused or reset request: counted, the viewer goes on
      return null;
    }
  };
  const one = async (): Promise<void> => {
    const seen = new Set<string>();
    let init: string | null = null;
    // Viewers start spread over a second, as real ones would.
    await new Promise((r) => setTimeout(r, Math.random() * 1000));
    while (Date.now() < deadline) {
      let wait = 1000;
      const res = await get(url);
      if (res?.status === 200) {
        const text = await res.text();
        let wanted: string[] = [];
        let initUri: string | null = null;
        if (kind === 'hls') {
          wait = (Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(text)?.[1] ?? 2) * 1000) / 2;
          initUri = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)?.[1] ?? null;
          wanted = text
            .split('\n')
            .filter((l) => l && !l.startsWith('#'))
            .slice(-2);
        } else {
          wait = Number(/minimumUpdatePeriod="PT([\d.]+)S"/.exec(text)?.[1] ?? 1) * 1000;
          const periods = text.split('<Period').slice(1);
          const last = periods.at(-1) ?? '';
          initUri = /initialization="([^"]+)"/.exec(last)?.[1] ?? null;
          const media = /media="([^"]+)"/.exec(last)?.[1] ?? '';
          let n = Number(/startNumber="(\d+)"/.exec(last)?.[1] ?? 0);
          const numbers: number[] = [];
          for (const s of last.matchAll(/<S(?: t="\d+")? d="\d+"(?: r="(\d+)")?\/>/g)) {
            for (let k = 0; k <= Number(s[1] ?? 0); k++) numbers.push(n++);
          }
          wanted = numbers.slice(-2).map((x) => media.replace('$Number$', String(x)));
        }
        const base = new URL(url);
        if (initUri && initUri !== init) {
          const r = await get(new URL(initUri, base).href);
          if (r) bytes += (await r.arrayBuffer()).byteLength;
          init = initUri;
        }
        for (const w of wanted) {
          if (seen.has(w)) continue;
          seen.add(w);
          const r = await get(new URL(w, base).href);
          if (r?.status === 200) {
            bytes += (await r.arrayBuffer()).byteLength;
            segments++;
          }
        }
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  };
  const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: count }, one));
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({ requests, errors, segments, bytes, cpu: (cpu.user + cpu.system) / 1e6 }));
}

// ---- the bench -----------------------------------------------------------------------------------------

interface LoadRow {
  kind: string;
  viewers: number;
  cpu: number;
  requests: number;
  errors: number;
  segments: number;
  mb: number;
}

function runViewers(kind: 'hls' | 'dash', url: string, count: number, seconds: number): Promise<LoadRow> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', import.meta.filename, 'viewers', kind, url, String(count), String(seconds)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) return reject(new Error(`viewers exited with ${code}`));
      const r = JSON.parse(out.trim().split('\n').at(-1)!) as Omit<LoadRow, 'kind' | 'viewers' | 'mb'> & {
        bytes: number;
      };
      resolve({
        kind,
        viewers: count,
        cpu: 0,
        requests: r.requests,
        errors: r.errors,
        segments: r.segments,
        mb: r.bytes / 1e6,
      });
    });
  });
}

const cpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function stampedFixture(r: SteadyRecipe): Promise<string> {
  const file = path.join(FIXTURE_DIR, `stamped-${r.fps}fps-gop${r.gopSeconds}-${r.seconds}s.flv`);
  if (existsSync(file)) return file;
  mkdirSync(FIXTURE_DIR, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, await generateSteadyFlv(r));
  renameSync(tmp, file);
  return file;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Frame latencies (ms) after the settle time, each frame once. */
function latencies(stamps: FrameStamp[], receivedAt: number[]): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  const settledAt = (stamps[0]?.presentedAt ?? 0) + SETTLE_SECONDS * 1000;
  for (const s of stamps) {
    if (seen.has(s.value)) continue;
    seen.add(s.value);
    const sent = receivedAt[s.value];
    if (sent !== undefined && s.presentedAt >= settledAt) out.push(s.presentedAt - sent);
  }
  return out;
}

async function main(): Promise<void> {
  const recipe: SteadyRecipe = {
    width: 540,
    height: 960,
    fps: 15,
    seconds: 240,
    gopSeconds: SEGMENT_SECONDS,
    videoKbps: 1000,
    stamp: true,
  };
  const file = await stampedFixture(recipe);
  const { relay, records, hls } = await startTestRelay(
    { HLS_LOW_LATENCY: 'on', CLEAN_PROFILE: 'copy' },
    undefined,
    {
      record: false,
    },
  );
  const receivedAt: number[] = [];
  relay.rtmp.on('publish', (publish: Publish) => {
    publish.on('tag', (tag: MediaTag) => {
      if (tag.type === FlvTagType.Video && !tag.isConfig) receivedAt.push(Date.now());
    });
  });
  const pub = publishFlv(file, { port: relay.rtmpPort, user: 'bench', stream: 'dash' });
  const loadRows: LoadRow[] = [];
  const latencyRows: string[] = [];
  let docRow = '';
  try {
    await pub.started;
    const rec = records.get('dash')!;
    await rec.ready;
    await new Promise((r) => setTimeout(r, 12_000)); // a full window of segments
    const hlsUrl = hls('bench/dash/index.m3u8');
    const mpdUrl = `http://127.0.0.1:${relay.hlsPort}/dash/bench/dash/index.mpd`;

    // The cost of one document, in process.
    const packager = rec.stream.packager;
    const presentation = new DashPresentation([{ id: 'v0', packager }]);
    const view = {
      url: (_r: unknown, name: string) => `../../../hls/bench/dash/${name}`,
      utcTiming: [{ scheme: 'urn:mpeg:dash:utc:http-iso:2014', value: 'http://x/dash/time' }],
    };
    const time = (f: () => unknown): number => {
      for (let i = 0; i < 200; i++) f();
      const t0 = performance.now();
      const n = 5000;
      for (let i = 0; i < n; i++) f();
      return ((performance.now() - t0) / n) * 1000;
    };
    const mpdUs = time(() => renderMpd(presentation.model(view)!));
    const m3u8Us = time(() => packager.playlist());
    docRow = `Making one document (in process, ${packager.segments.length} segments listed): MPD ${mpdUs.toFixed(1)} µs, LL-HLS media playlist ${m3u8Us.toFixed(1)} µs.`;

    // Origin cost per viewer (BENCH_DASH_ONLY=latency skips it).
    process.stderr.write('dash bench: origin cost…\n');
    const only = process.env.BENCH_DASH_ONLY;
    const idle0 = cpuSeconds();
    if (only !== 'latency') await new Promise((r) => setTimeout(r, LOAD_SECONDS * 1000));
    const idle = cpuSeconds() - idle0;
    for (const kind of only === 'latency' ? [] : (['hls', 'dash', 'hls', 'dash'] as const)) {
      const c0 = cpuSeconds();
      // DASH viewers take complete segments (the default MPD), as the classic HLS viewers do.
      const row = await runViewers(kind, kind === 'hls' ? hlsUrl : mpdUrl, VIEWERS, LOAD_SECONDS);
      row.cpu = cpuSeconds() - c0 - idle;
      loadRows.push(row);
    }

    // Latency.
    const players: {
      name: string;
      run: () => Promise<{ stamps: FrameStamp[]; stalls: number; errors: number }>;
    }[] = [];
    const hlsBrowser = await launchBrowser();
    const dashBrowser = await launchDashBrowser();
    const stamps = { bits: STAMP_BITS, height: STAMP_HEIGHT };
    players.push(
      {
        name: 'hls.js classic',
        run: async () => {
          const r = await hlsBrowser.playHls(hlsUrl, { seconds: WATCH_SECONDS, lowLatency: false, stamps });
          return { stamps: r.stamps, stalls: r.stalls.length, errors: r.fatalErrors.length };
        },
      },
      {
        name: 'hls.js LL',
        run: async () => {
          const r = await hlsBrowser.playHls(hlsUrl, { seconds: WATCH_SECONDS, lowLatency: true, stamps });
          return { stamps: r.stamps, stalls: r.stalls.length, errors: r.fatalErrors.length };
        },
      },
      {
        name: 'dash.js defaults, complete segments',
        run: async () => {
          const r = await dashBrowser.playDash(mpdUrl, { seconds: WATCH_SECONDS, stamps });
          return { stamps: r.stamps, stalls: r.stalls.length, errors: r.errors.length };
        },
      },
      {
        name: 'dash.js defaults, low-latency DASH (?ll=1)',
        run: async () => {
          const r = await dashBrowser.playDash(`${mpdUrl}?ll=1`, { seconds: WATCH_SECONDS, stamps });
          return { stamps: r.stamps, stalls: r.stalls.length, errors: r.errors.length };
        },
      },
    );
    try {
      for (const p of players.filter((x) => !only || only === 'latency' || x.name.includes(only))) {
        process.stderr.write(`dash bench: latency, ${p.name}…\n`);
        const r = await p.run();
        const l = latencies(r.stamps, receivedAt);
        const f = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '—');
        latencyRows.push(
          `| ${p.name} | ${f(percentile(l, 50))} | ${f(percentile(l, 95))} | ${l.length} | ${r.stalls} / ${r.errors} |`,
        );
      }
    } finally {
      await hlsBrowser.close();
      await dashBrowser.close();
    }
    await pub.stop();
  } finally {
    await relay.close();
  }

  const cpuModel = `${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores`;
  const lines = [
    `Origin cost per viewer: ${VIEWERS} simulated viewers of one 540x960 15 fps copy stream (2 s segments, LL-HLS on), ${LOAD_SECONDS} s each, HLS and DASH twice alternately; relay process CPU less the same window with no viewer (${cpuModel}).`,
    '',
    '| protocol | viewers | relay CPU s | CPU ms per viewer per minute | % of a core per 100 viewers | requests | segments | MB | errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...loadRows.map(
      (r) =>
        `| ${r.kind === 'hls' ? 'HLS (classic polling)' : 'DASH, complete segments (MPD every minimumUpdatePeriod)'} | ${r.viewers} | ${r.cpu.toFixed(2)} | ${((r.cpu * 1000 * 60) / LOAD_SECONDS / r.viewers).toFixed(1)} | ${((r.cpu / LOAD_SECONDS) * (100 / r.viewers) * 100).toFixed(2)}% | ${r.requests} | ${r.segments} | ${r.mb.toFixed(0)} | ${r.errors} |`,
    ),
    '',
    docRow,
    '',
    `Live latency, publisher send → frame presented in Chromium, each player ${WATCH_SECONDS} s, figures over its last ${WATCH_SECONDS - SETTLE_SECONDS} s; copy, 15 fps, GOP 2 s, PART-TARGET 0.5 s.`,
    '',
    '| player | p50 | p95 | frames | stalls / errors |',
    '| --- | --- | --- | --- | --- |',
    ...latencyRows,
  ];
  console.log(lines.join('\n'));
}

if (process.argv[2] === 'viewers') {
  const [, , , kind, url, count, seconds] = process.argv;
  await viewers(kind as 'hls' | 'dash', url!, Number(count), Number(seconds));
} else {
  await main();
}
