/**
 * SRT ingest cost: CPU per 1 Mbit/s SRT stream of our listener (transport + MPEG-TS demux to access units),
 * against srt-live-transmit (libsrt's receiver, no demux) and FFmpeg's SRT input (libsrt + its TS demuxer,
 * `-c copy -f null`) receiving the same streams in the same run; and delivery through a 5 %-each-way lossy
 * link at the default latency (video frames out / frames in). Goal: ≤ 1 % of a core per 1 Mbit/s stream.
 *
 * Each side receives SRT_BENCH_STREAMS (4) callers at once, FFmpeg `-re -c copy` of SRT_BENCH_SECONDS (20) of
 * the glasses fixture (about 1.2 Mbit/s). Our listener runs in this process (its CPU is process.cpuUsage from
 * the first publish to the last end, Node's own overhead included, the callers' spawning not); the others are
 * sampled from /proc while they run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { silentLogger } from '../src/shared/logger.ts';
import type { SrtConnectionStats } from '../src/srt/conn.ts';
import { SrtListener } from '../src/srt/listener.ts';
import type { SrtSource } from '../src/srt/source.ts';
import { startCaller, tsReference } from '../test/helpers/srt-publish.ts';
import { UdpLossProxy } from '../test/helpers/udp-loss-proxy.ts';
import { cpuOfPid, cpuSelf } from './cpu.ts';

const STREAMS = Number(process.env.SRT_BENCH_STREAMS ?? 4);
const SECONDS = Number(process.env.SRT_BENCH_SECONDS ?? 20);

interface Row {
  receiver: string;
  cpuPerStream: number;
  perMbit: number;
  note: string;
}

async function ours(file: string, mbit: number): Promise<Row & { frames: number }> {
  const listener = new SrtListener({ log: silentLogger() });
  const port = await listener.listen(0, '127.0.0.1');
  let frames = 0;
  let ended = 0;
  // The window opens at the first publish: spawning the callers (a fork of this process each) is not ours.
  let cpu0 = 0;
  let t0 = 0;
  const allEnded = new Promise<void>((resolve) => {
    listener.on('publish', (s: SrtSource) => {
      if (t0 === 0) {
        cpu0 = cpuSelf();
        t0 = performance.now();
      }
      s.on('au', (au) => {
        if (au.track === 'video') frames++;
      });
      s.once('end', () => {
        if (++ended === STREAMS) resolve();
      });
    });
  });
  const runs = Array.from({ length: STREAMS }, (_, i) =>
    startCaller('ffmpeg', { file, port, streamId: `publish:live/bench/s${i}` }),
  );
  await allEnded;
  const cpu = cpuSelf() - cpu0;
  const wall = (performance.now() - t0) / 1000;
  await Promise.all(runs.map((r) => r.done));
  await listener.close();
  const perStream = (cpu / wall / STREAMS) * 100;
  return {
    receiver: 'rtmp-relay SrtListener (+ TS demux)',
    cpuPerStream: perStream,
    perMbit: perStream / mbit,
    note: `${frames} video frames`,
    frames,
  };
}

/** Runs one receiver process per stream, each listening on its own port, and samples their CPU. */
async function external(
  name: string,
  argv: (port: number) => { command: string; args: string[] },
  file: string,
  mbit: number,
): Promise<Row> {
  const base = 42000 + Math.floor(Math.random() * 10000);
  const receivers = Array.from({ length: STREAMS }, (_, i) => {
    const { command, args } = argv(base + i);
    return spawn(command, args, { stdio: ['ignore', 'ignore', 'ignore'], detached: true });
  });
  const last = new Map<number, number>();
  const sampler = setInterval(() => {
    for (const r of receivers) {
      const c = cpuOfPid(r.pid ?? -1);
      if (c > 0) last.set(r.pid ?? -1, c);
    }
  }, 100);
  await new Promise((resolve) => setTimeout(resolve, 500)); // let the listeners bind
  const t0 = performance.now();
  const runs = Array.from({ length: STREAMS }, (_, i) =>
    startCaller('ffmpeg', { file, port: base + i, streamId: `publish:live/bench/s${i}` }),
  );
  await Promise.all(runs.map((r) => r.done));
  const wall = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  for (const r of receivers) {
    const c = cpuOfPid(r.pid ?? -1);
    if (c > 0) last.set(r.pid ?? -1, c);
    try {
      if (r.pid) process.kill(-r.pid, 'SIGKILL');
    } catch {
      // already exited with its caller
    }
  }
  const cpu = [...last.values()].reduce((a, b) => a + b, 0);
  const perStream = (cpu / wall / STREAMS) * 100;
  return { receiver: name, cpuPerStream: perStream, perMbit: perStream / mbit, note: '' };
}

async function lossy(
  file: string,
  framesIn: number,
): Promise<{ out: number; lost: number; retransmitted: number; dropped: number }> {
  const listener = new SrtListener({ log: silentLogger(), peerIdleTimeoutMs: 2000 });
  const port = await listener.listen(0, '127.0.0.1');
  const proxy = new UdpLossProxy({ port }, { upLoss: 0.05, downLoss: 0.05, jitterMs: 10, seed: 3 });
  const proxyPort = await proxy.listen();
  let out = 0;
  const done = new Promise<SrtConnectionStats>((resolve) => {
    listener.on('publish', (s) => {
      s.on('au', (au) => {
        if (au.track === 'video') out++;
      });
      s.once('end', () => resolve(s.transportStats()));
    });
  });
  const run = startCaller('ffmpeg', { file, port: proxyPort, streamId: 'publish:live/bench/lossy' });
  const t = await done;
  await run.done;
  await proxy.close();
  await listener.close();
  void framesIn;
  return {
    out,
    lost: t.packetsLost ?? 0,
    retransmitted: t.packetsRetransmitted ?? 0,
    dropped: t.packetsDropped ?? 0,
  };
}

const dir = mkdtempSync(path.join(tmpdir(), 'bench-srt-'));
try {
  const ref = await tsReference(dir, SECONDS);
  // The file's own duration (the fixture may be shorter than SECONDS): last frame + one frame interval.
  const duration = (ref.video.at(-1)!.dts + ref.video.at(-1)!.dts / (ref.video.length - 1)) / 1000;
  const mbit = (statSync(ref.file).size * 8) / duration / 1e6;
  const framesIn = ref.video.length;
  const rows: Row[] = [];
  const mine = await ours(ref.file, mbit);
  rows.push(mine);
  rows.push(
    await external(
      'srt-live-transmit (libsrt, no demux)',
      (port) => ({
        command: 'srt-live-transmit',
        args: ['-q', `srt://127.0.0.1:${port}?mode=listener&latency=120`, 'file://con'],
      }),
      ref.file,
      mbit,
    ),
  );
  rows.push(
    await external(
      'FFmpeg SRT input (libsrt + TS demux, -c copy -f null)',
      (port) => ({
        command: 'ffmpeg',
        args: [
          '-v',
          'error',
          '-i',
          `srt://127.0.0.1:${port}?mode=listener&latency=120000`,
          '-c',
          'copy',
          '-f',
          'null',
          '-',
        ],
      }),
      ref.file,
      mbit,
    ),
  );
  const loss = await lossy(ref.file, framesIn);
  const lines = [
    `${STREAMS} streams at once, ${duration.toFixed(1)} s each of the glasses fixture, ${mbit.toFixed(2)} Mbit/s (FFmpeg -re -c copy callers):`,
    '',
    '| receiver | CPU per stream (% of a core) | per 1 Mbit/s | |',
    '| --- | ---: | ---: | --- |',
    ...rows.map(
      (r) => `| ${r.receiver} | ${r.cpuPerStream.toFixed(2)} | ${r.perMbit.toFixed(2)} | ${r.note} |`,
    ),
    '',
    `Ours / srt-live-transmit: ${(rows[0]!.perMbit / rows[1]!.perMbit).toFixed(2)}×; ours / FFmpeg: ${(rows[0]!.perMbit / rows[2]!.perMbit).toFixed(2)}×. Video frames in ${framesIn} per stream, out ${(mine.frames / STREAMS).toFixed(1)}.`,
    '',
    `5 % loss each way, 10 ms jitter, 120 ms latency: ${loss.out} of ${framesIn} video frames (${((loss.out / framesIn) * 100).toFixed(1)} %), ${loss.lost} packets lost on the way, ${loss.retransmitted} retransmitted, ${loss.dropped} dropped too late.`,
    '',
    `Goal ≤ 1 % of a core per 1 Mbit/s: ${rows[0]!.perMbit <= 1 ? 'met' : 'NOT met'}.`,
  ];
  console.log(lines.join('\n'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
