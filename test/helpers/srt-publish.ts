/**
 * SRT test plumbing shared by the SRT integration tests: a short MPEG-TS cut of a fixture with what ffprobe
 * reads in it (the reference a publish is judged against), the real SRT callers (FFmpeg with libsrt,
 * srt-live-transmit fed by a paced FFmpeg, GStreamer srtsink) as argv arrays, and a recorder of what one
 * SrtSource yields. Tools run in their own process group and are killed with it (test/helpers/process.ts).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { EndReason } from '../../src/contracts/publish.ts';
import type { AccessUnit, SourceStart } from '../../src/media/access-unit.ts';
import type { SrtListener } from '../../src/srt/listener.ts';
import type { SrtSource } from '../../src/srt/source.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { runTool, startTool } from './process.ts';

export interface TsReference {
  file: string;
  /** ms, relative to the first video packet. */
  video: { dts: number; key: boolean }[];
  audio: number[];
}

/** `seconds` of the glasses fixture as MPEG-TS (-c copy), and its packets as ffprobe reads them. */
export async function tsReference(dir: string, seconds: number): Promise<TsReference> {
  const file = path.join(dir, `glasses-${seconds}s.ts`);
  const input = await fixturePath('glasses-854x480.flv');
  await runTool('ffmpeg', [
    '-v',
    'error',
    '-t',
    String(seconds),
    '-i',
    input,
    '-c',
    'copy',
    '-f',
    'mpegts',
    '-y',
    file,
  ]);
  const csv = await runTool('ffprobe', [
    ...['-v', 'error', '-show_entries', 'packet=codec_type,pts,dts,flags', '-of', 'csv=p=0', file],
  ]);
  const video: { dts: number; key: boolean }[] = [];
  const audio: number[] = [];
  for (const line of csv.trim().split('\n')) {
    const [type, pts, dts, flags] = line.split(',');
    if (type === 'video') video.push({ dts: Number(dts) / 90, key: flags!.startsWith('K') });
    else if (type === 'audio') audio.push(Number(pts) / 90);
  }
  const t0 = video[0]!.dts;
  return {
    file,
    video: video.map((v) => ({ dts: v.dts - t0, key: v.key })),
    audio: audio.map((a) => a - t0),
  };
}

export type SrtCaller = 'ffmpeg' | 'srt-live-transmit' | 'srtsink';

/** A caller publishing `file` in real time to the listener at `port` with this stream id. */
export function startCaller(
  caller: SrtCaller,
  o: {
    file: string;
    port: number;
    streamId: string;
    passphrase?: string;
    latencyMs?: number;
    /** More FFmpeg srt:// URL options. */
    extra?: Record<string, string>;
  },
): { done: Promise<number | null>; kill: () => void } {
  const latency = o.latencyMs ?? 120;
  if (caller === 'ffmpeg') {
    // linger: FFmpeg's close then waits for its send buffer to empty; libsrt's live mode drops it otherwise.
    const q = new URLSearchParams({ streamid: o.streamId, latency: String(latency * 1000), linger: '2' });
    if (o.passphrase) q.set('passphrase', o.passphrase);
    for (const [k, v] of Object.entries(o.extra ?? {})) q.set(k, v);
    const run = startTool(
      'ffmpeg',
      ['-v', 'error', '-re', '-i', o.file, '-c', 'copy', '-f', 'mpegts', `srt://127.0.0.1:${o.port}?${q}`],
      { timeoutMs: 120_000 },
    );
    return { done: run.done.then((r) => r.code), kill: () => run.kill() };
  }
  if (caller === 'srtsink') {
    const args = ['-q', 'filesrc', `location=${o.file}`, '!', 'tsparse', 'set-timestamps=true', '!'];
    args.push('srtsink', `uri=srt://127.0.0.1:${o.port}`, `streamid=${o.streamId}`, `latency=${latency}`);
    if (o.passphrase) args.push(`passphrase=${o.passphrase}`);
    const run = startTool('gst-launch-1.0', args, { timeoutMs: 120_000 });
    return { done: run.done.then((r) => r.code), kill: () => run.kill() };
  }
  // srt-live-transmit reads stdin as fast as it comes: a paced FFmpeg feeds it, as a live encoder would.
  const q = new URLSearchParams({ streamid: o.streamId, latency: String(latency) });
  if (o.passphrase) q.set('passphrase', o.passphrase);
  const feeder = spawn(
    'ffmpeg',
    ['-v', 'error', '-re', '-i', o.file, '-c', 'copy', '-f', 'mpegts', 'pipe:1'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    },
  );
  const slt = spawn('srt-live-transmit', ['-q', 'file://con', `srt://127.0.0.1:${o.port}?${q}`], {
    stdio: ['pipe', 'ignore', 'inherit'],
    detached: true,
  });
  feeder.stdout.pipe(slt.stdin);
  // srt-live-transmit does not stop at the end of its input: once the feeder is done and the last packets
  // had time to leave (its latency, and then some), it is interrupted and closes with a shutdown.
  let interrupt: NodeJS.Timeout | undefined;
  feeder.once('close', () => {
    interrupt = setTimeout(() => slt.kill('SIGINT'), 1500);
  });
  slt.stdin.on('error', () => {}); // srt-live-transmit gone (refused): the feeder's writes fail, nothing to do
  const killGroup = (pid: number | undefined) => {
    try {
      if (pid !== undefined) process.kill(-pid, 'SIGKILL');
    } catch {
      // already exited
    }
  };
  const timer = setTimeout(() => {
    killGroup(feeder.pid);
    killGroup(slt.pid);
  }, 120_000);
  const done = new Promise<number | null>((resolve, reject) => {
    slt.once('error', (err) => reject(new Error(`srt-live-transmit could not start (${err.message})`)));
    slt.once('close', (code) => {
      clearTimeout(timer);
      clearTimeout(interrupt);
      killGroup(feeder.pid);
      resolve(code);
    });
  });
  return {
    done,
    kill: () => {
      killGroup(feeder.pid);
      killGroup(slt.pid);
    },
  };
}

export interface Recording {
  source: SrtSource;
  start: SourceStart | null;
  aus: AccessUnit[];
  ended: Promise<EndReason>;
}

/** Records the next publish of `streamId` on the listener (resolves when it is published). */
export function nextPublish(listener: SrtListener, streamId: string): Promise<Recording> {
  return new Promise((resolve) => {
    const onPublish = (source: SrtSource) => {
      if (source.info.streamId !== streamId) return;
      listener.off('publish', onPublish);
      const rec: Recording = {
        source,
        start: null,
        aus: [],
        ended: new Promise((r) => source.once('end', r)),
      };
      source.on('start', (s) => {
        rec.start = s;
      });
      source.on('au', (au) => rec.aus.push(au));
      resolve(rec);
    };
    listener.on('publish', onPublish);
  });
}

/** The publish, or a failure as soon as the caller exits without having published. */
export function publishedBy(
  published: Promise<Recording>,
  run: { done: Promise<number | null> },
  label: string,
) {
  return Promise.race([
    published,
    run.done.then((code) => {
      throw new Error(`${label} exited (${code}) without publishing`);
    }),
  ]);
}
