/**
 * Re-streaming cost per destination in copy mode: the glasses fixture (854x480, 15 fps, about 1 Mbit/s
 * H.264 + AAC, 20 s) fed to a RestreamManager pushing to N destinations, over RTMP and over RTMPS. The
 * destinations are RtmpServers in a child process (bench/restream-receiver.ts), so only the pushing side is
 * measured: this process's CPU (process.cpuUsage) while it feeds, per media second. Each N runs BENCH_REPEATS
 * times (median); the same feed loop with no destination is the baseline, subtracted. The cost per
 * destination is the CPU above the baseline divided by N, and the least-squares slope of CPU over N.
 *
 * Reference, measured in the same run: one `ffmpeg -re -i fixture.flv -c copy -f flv rtmp://…` per
 * destination (the FFmpeg-child-per-destination design), its CPU from the reaped children's times
 * (/proc/self/stat cutime + cstime; the receiver child is still alive then, so it is not among them),
 * including its start and probing, as a per-destination child would.
 * Goal: ours ≤ 1% of a core per destination.
 *
 * BENCH_SPEED (default 4: media seconds per second; costs stay per media second, the tags and timer
 * wake-ups per media second being the same), BENCH_REPEATS (default 3), BENCH_DESTINATIONS (default
 * 1,5,10,20) and BENCH_FFMPEG (default 1,5) choose the runs. FFmpeg always runs in real time (-re).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { promisify } from 'node:util';
import { readFlv } from '../src/media/flv-reader.ts';
import { FlvTagType, type MediaTag } from '../src/media/flv-tag.ts';
import { RestreamManager } from '../src/restream/manager.ts';
import type { RestreamStart } from '../src/restream/pusher.ts';
import { silentLogger } from '../src/shared/logger.ts';
import { fixturePath } from '../test/fixtures/generate.ts';
import { cpuChildren, cpuSelf } from './cpu.ts';

const SPEED = Number(process.env.BENCH_SPEED ?? 4);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const COUNTS = (process.env.BENCH_DESTINATIONS ?? '1,5,10,20').split(',').map(Number);
const FFMPEG_COUNTS = (process.env.BENCH_FFMPEG ?? '1,5').split(',').map(Number);

interface ReceiverStats {
  publishes: number;
  tags: number;
  bytes: number;
}

interface Receiver {
  port: number;
  tlsPort: number;
  stats(): Promise<ReceiverStats>;
  close(): Promise<void>;
}

async function startReceiver(cert: string, key: string): Promise<Receiver> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(import.meta.dirname, 'restream-receiver.ts'), cert, key],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines: Interface = createInterface({ input: child.stdout! });
  const next = (): Promise<string> => new Promise((resolve) => lines.once('line', resolve));
  const { port, tlsPort } = JSON.parse(await next()) as { port: number; tlsPort: number };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    port,
    tlsPort,
    async stats() {
      const answer = next();
      child.stdin!.write('stats\n');
      return JSON.parse(await answer) as ReceiverStats;
    },
    async close() {
      child.stdin!.end('exit\n');
      await exited;
    },
  };
}

interface Row {
  impl: string;
  destinations: number;
  cpuS: number;
  mediaS: number;
  /** Media tags the destinations received / tags fed × destinations. */
  delivered: number;
}

/** Feeds tags at real time / SPEED; returns the media seconds fed. */
async function pace(tags: readonly MediaTag[], write: (tag: MediaTag) => void): Promise<number> {
  const t0 = performance.now();
  const first = tags[0]!.timestamp;
  for (const tag of tags) {
    const due = t0 + (tag.timestamp - first) / SPEED - performance.now();
    if (due > 0) await new Promise((r) => setTimeout(r, due));
    write(tag);
  }
  return (tags.at(-1)!.timestamp - first) / 1000;
}

async function until(predicate: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function ours(
  rx: Receiver,
  n: number,
  scheme: 'rtmp' | 'rtmps',
  ca: Buffer,
  config: RestreamStart,
  media: MediaTag[],
): Promise<Row> {
  const manager = new RestreamManager({
    log: silentLogger(),
    maxDestinations: Math.max(1, n),
    publisher: { ca },
  });
  const port = scheme === 'rtmp' ? rx.port : rx.tlsPort;
  const host = scheme === 'rtmp' ? '127.0.0.1' : 'localhost';
  const run = `${scheme}-${n}-${Date.now()}`;
  manager.setDestinations(
    Array.from({ length: n }, (_, i) => ({
      url: `${scheme}://${host}:${port}/live/bench/${run}-${i}?token=x`,
    })),
  );
  const before = await rx.stats();
  manager.start(config);
  await until(() => manager.statuses().every((s) => s.status === 'active'));
  const cpu0 = cpuSelf();
  const mediaS = await pace(media, (tag) => manager.tag(tag));
  const cpuS = cpuSelf() - cpu0;
  // Everything fed reaches the destinations (the keyframe wait skips at most the first GOP's audio).
  const expected = media.length * n;
  await until(async () => (await rx.stats()).tags - before.tags >= expected * 0.99, 10_000).catch(() => {});
  const after = await rx.stats();
  manager.close();
  return {
    impl: `ours ${scheme}`,
    destinations: n,
    cpuS,
    mediaS,
    delivered: n === 0 ? 1 : (after.tags - before.tags) / expected,
  };
}

async function ffmpeg(rx: Receiver, n: number, file: string, mediaTags: number): Promise<Row> {
  const before = await rx.stats();
  const cpu0 = cpuChildren();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const child = spawn(
        'ffmpeg',
        [
          ...['-hide_banner', '-loglevel', 'error', '-nostdin', '-re', '-i', file, '-c', 'copy'],
          ...['-f', 'flv', `rtmp://127.0.0.1:${rx.port}/live/bench/ffmpeg-${n}-${i}-${Date.now()}`],
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      return new Promise<void>((resolve, reject) =>
        child.once('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`ffmpeg exited with ${code}`)),
        ),
      );
    }),
  );
  const wallS = (performance.now() - t0) / 1000;
  const cpuS = cpuChildren() - cpu0;
  const after = await rx.stats();
  return {
    impl: 'ffmpeg -c copy',
    destinations: n,
    cpuS,
    mediaS: wallS, // -re: one media second per second
    delivered: (after.tags - before.tags) / (mediaTags * n),
  };
}

async function selfSigned(dir: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  await promisify(execFile)('openssl', [
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-keyout', key, '-out', cert],
    ...['-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
  ]);
  return { cert, key };
}

async function main(): Promise<void> {
  const file = await fixturePath('glasses-854x480.flv');
  const tags = readFlv(readFileSync(file)).tags;
  const find = (type: number): MediaTag => tags.find((t) => t.type === type && t.isConfig)!;
  const config: RestreamStart = {
    metadataTag: find(FlvTagType.Script).data,
    videoConfig: find(FlvTagType.Video),
    audioConfig: find(FlvTagType.Audio),
    hasVideo: true,
  };
  const media = tags.filter((t) => !t.isConfig);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-restream-'));
  const { cert, key } = await selfSigned(dir);
  const rx = await startReceiver(cert, key);
  const ca = readFileSync(cert);
  const rows: Row[] = [];
  const median = (xs: number[]): number => {
    const sorted = [...xs].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  };
  /** CPU seconds per media second, median of REPEATS runs (the last run's other fields). */
  const measure = async (n: number, scheme: 'rtmp' | 'rtmps'): Promise<Row> => {
    const runs: Row[] = [];
    for (let i = 0; i < REPEATS; i++) runs.push(await ours(rx, n, scheme, ca, config, media));
    const perS = median(runs.map((r) => r.cpuS / r.mediaS));
    return {
      ...runs.at(-1)!,
      cpuS: perS * runs.at(-1)!.mediaS,
      delivered: Math.min(...runs.map((r) => r.delivered)),
    };
  };
  try {
    process.stderr.write('baseline (feed loop, no destination)…\n');
    const baseline = await measure(0, 'rtmp');
    const basePerS = baseline.cpuS / baseline.mediaS;
    for (const scheme of ['rtmp', 'rtmps'] as const) {
      for (const n of COUNTS) {
        process.stderr.write(`ours ${scheme} × ${n}…\n`);
        rows.push(await measure(n, scheme));
      }
    }
    for (const n of FFMPEG_COUNTS) {
      process.stderr.write(`ffmpeg × ${n}…\n`);
      rows.push(await ffmpeg(rx, n, file, media.length));
    }
    /** CPU per media second attributable to the pushers or to FFmpeg. */
    const own = (r: Row): number => r.cpuS / r.mediaS - (r.impl.startsWith('ours') ? basePerS : 0);
    const ref = rows.filter((r) => r.impl.startsWith('ffmpeg'));
    const refPer = ref.reduce((a, r) => a + own(r) / r.destinations, 0) / Math.max(1, ref.length);
    /** Least-squares slope of CPU per media second over N, baseline included as N = 0. */
    const slope = (impl: string): number => {
      const pts = [
        { n: 0, y: 0 },
        ...rows.filter((r) => r.impl === impl).map((r) => ({ n: r.destinations, y: own(r) })),
      ];
      const mn = pts.reduce((a, p) => a + p.n, 0) / pts.length;
      const my = pts.reduce((a, p) => a + p.y, 0) / pts.length;
      const num = pts.reduce((a, p) => a + (p.n - mn) * (p.y - my), 0);
      const den = pts.reduce((a, p) => a + (p.n - mn) ** 2, 0);
      return den === 0 ? 0 : num / den;
    };
    const pctOf = (perS: number): string => `${(perS * 100).toFixed(2)}%`;
    const lines = [
      `Re-streaming cost per destination, copy, glasses 854x480 ~1 Mbit/s, fed at ${SPEED}× real time, ` +
        `median of ${REPEATS} (${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores, Node ${process.versions.node})`,
      `baseline (the feed loop, no destination): ${pctOf(basePerS)} of a core, subtracted from the "ours" rows`,
      '',
      '| destinations | pusher | CPU above baseline, % of a core | per destination | vs ffmpeg per destination | delivered |',
      '| --- | --- | --- | --- | --- | --- |',
    ];
    for (const r of rows) {
      const per = own(r) / r.destinations;
      const vs = r.impl.startsWith('ours')
        ? `1/${(refPer / Math.max(per, 1e-6)).toFixed(1)}`
        : (per / refPer).toFixed(2);
      lines.push(
        `| ${r.destinations} | ${r.impl} | ${pctOf(own(r))} | ${pctOf(per)} | ${vs} | ${(r.delivered * 100).toFixed(1)}% |`,
      );
    }
    lines.push(
      '',
      `Marginal cost per destination (slope over N): ours rtmp ${pctOf(slope('ours rtmp'))}, ` +
        `ours rtmps ${pctOf(slope('ours rtmps'))}, ffmpeg ${pctOf(slope('ffmpeg -c copy'))} of a core.`,
      'Goal: ours ≤ 1% of a core per destination.',
    );
    console.log(lines.join('\n'));
  } finally {
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
