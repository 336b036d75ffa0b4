/**
 * H.264 encoder choice: GPU encoders when the machine has one, libx264 otherwise. Debian's FFmpeg has
 * `h264_nvenc`, `h264_vaapi` and `h264_qsv` compiled in, but they only work with the hardware (and the
 * driver) present, and `ffmpeg -encoders` lists them either way: so the probe runs a one-frame encode with
 * each candidate, in preference order, and keeps the first that succeeds. libx264 is the fall-back and never
 * probed away. The argv per encoder is pure and golden-tested; the probe's runner is injected so the
 * selection logic is tested without hardware, and a real probe runs against this machine's FFmpeg.
 *
 * GPU sessions are a capacity limit of their own (consumer NVIDIA cards cap concurrent NVENC sessions):
 * `GpuSessions` hands them out and the stream falls back to libx264 when none is free or when the GPU
 * encoder fails while running.
 */
import { spawn } from 'node:child_process';

export const VIDEO_ENCODERS = ['h264_nvenc', 'h264_vaapi', 'h264_qsv', 'libx264'] as const;
export type VideoEncoder = (typeof VIDEO_ENCODERS)[number];
export type EncoderSetting = 'auto' | VideoEncoder;

export const isGpuEncoder = (encoder: VideoEncoder): boolean => encoder !== 'libx264';

/** The render node VA-API and QSV open (the first GPU); VAAPI_DEVICE overrides it. */
export const DEFAULT_VAAPI_DEVICE = '/dev/dri/renderD128';

export interface VideoEncodeTarget {
  /** Output size; omitted: the input's. */
  width?: number;
  height?: number;
  /** Output frame rate (the seed's 30). */
  fps: number;
  /** Keyframe interval in frames. */
  gop: number;
  bitrate: string;
  maxrate: string;
  bufsize: string;
}

export interface EncoderArgs {
  /** Before `-i` (hardware decode and device setup). */
  input: string[];
  /** After the maps: filters and the encoder. */
  output: string[];
}

/** The seed's encode target (reference/ffmpeg.md): 30 fps, a keyframe every 2 s, 2 Mbit/s. */
export const SEED_TARGET: VideoEncodeTarget = {
  fps: 30,
  gop: 60,
  bitrate: '2M',
  maxrate: '2.5M',
  bufsize: '4M',
};

function rateControl(t: VideoEncodeTarget): string[] {
  return ['-b:v', t.bitrate, '-maxrate', t.maxrate, '-bufsize', t.bufsize];
}

function gopArgs(t: VideoEncodeTarget): string[] {
  return ['-r', String(t.fps), '-g', String(t.gop), '-keyint_min', String(t.gop)];
}

function scale(filter: string, t: VideoEncodeTarget): string | null {
  return t.width && t.height ? `${filter}=${t.width}:${t.height}` : null;
}

/** argv for one encoder (pure). The libx264 branch is the seed's encode exactly. */
export function encoderArgs(
  encoder: VideoEncoder,
  target: VideoEncodeTarget = SEED_TARGET,
  options: { vaapiDevice?: string } = {},
): EncoderArgs {
  switch (encoder) {
    case 'libx264': {
      const vf = scale('scale', target);
      return {
        input: [],
        output: [
          ...(vf ? ['-vf', vf] : []),
          '-c:v',
          'libx264',
          '-preset',
          'veryfast',
          '-tune',
          'zerolatency',
          '-profile:v',
          'baseline',
          '-level',
          '3.1',
          ...gopArgs(target),
          '-sc_threshold',
          '0',
          ...rateControl(target),
          '-pix_fmt',
          'yuv420p',
        ],
      };
    }
    case 'h264_nvenc': {
      // The seed's planned GPU line: decode on the GPU, keep frames there, low-latency preset.
      const vf = scale('scale_cuda', target);
      return {
        input: ['-hwaccel', 'cuda', '-hwaccel_output_format', 'cuda'],
        output: [
          ...(vf ? ['-vf', vf] : []),
          '-c:v',
          'h264_nvenc',
          '-preset',
          'p4',
          '-tune',
          'll',
          '-profile:v',
          'baseline',
          ...gopArgs(target),
          '-forced-idr',
          '1',
          '-rc',
          'cbr',
          ...rateControl(target),
        ],
      };
    }
    case 'h264_vaapi': {
      const device = options.vaapiDevice ?? DEFAULT_VAAPI_DEVICE;
      const sized = scale('scale_vaapi', target);
      return {
        input: ['-vaapi_device', device],
        output: [
          '-vf',
          ['format=nv12', 'hwupload', ...(sized ? [sized] : [])].join(','),
          '-c:v',
          'h264_vaapi',
          '-profile:v',
          'constrained_baseline',
          ...gopArgs(target),
          ...rateControl(target),
        ],
      };
    }
    case 'h264_qsv': {
      const vf = scale('scale_qsv', target);
      return {
        input: ['-init_hw_device', 'qsv=hw', '-filter_hw_device', 'hw'],
        output: [
          '-vf',
          ['format=nv12', 'hwupload=extra_hw_frames=64', ...(vf ? [vf] : [])].join(','),
          '-c:v',
          'h264_qsv',
          '-preset',
          'veryfast',
          '-profile:v',
          'baseline',
          ...gopArgs(target),
          ...rateControl(target),
        ],
      };
    }
  }
}

/** argv of the probe: one tiny frame through the encoder, output discarded. */
export function probeArgs(encoder: VideoEncoder, options: { vaapiDevice?: string } = {}): string[] {
  const enc = encoderArgs(encoder, { ...SEED_TARGET, fps: 1, gop: 1 }, options);
  // `-hwaccel` applies to a decoder and the lavfi source has none: NVENC takes its frames from memory.
  const input = encoder === 'h264_nvenc' ? [] : enc.input;
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    ...input,
    '-f',
    'lavfi',
    '-i',
    'color=c=black:s=256x256:r=1',
    '-frames:v',
    '1',
    ...enc.output,
    '-f',
    'null',
    '-',
  ];
}

/** Runs one probe: resolves true when FFmpeg exits 0 within the timeout. */
export type ProbeRunner = (args: string[], timeoutMs: number) => Promise<{ ok: boolean; stderr: string }>;

export function ffmpegProbeRunner(ffmpegPath = 'ffmpeg'): ProbeRunner {
  return (args, timeoutMs) =>
    new Promise((resolve) => {
      let stderr = '';
      let settled = false;
      const child = spawn(ffmpegPath, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      const finish = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ok, stderr: stderr.slice(-2000) });
      };
      const timer = setTimeout(() => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        finish(false);
      }, timeoutMs);
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr = (stderr + d).slice(-4000);
      });
      child.once('error', (err) => {
        stderr += err.message;
        finish(false);
      });
      child.once('close', (code) => finish(code === 0));
    });
}

export interface EncoderProbeResult {
  encoder: VideoEncoder;
  /** Each candidate tried, in order, and why it was refused. */
  tried: { encoder: VideoEncoder; ok: boolean; reason?: string }[];
}

/**
 * Picks the encoder: `setting` names one (probed all the same: a named GPU encoder that fails falls back to
 * libx264, loudly) or `auto` tries the GPU encoders in preference order.
 */
export async function selectEncoder(
  setting: EncoderSetting,
  run: ProbeRunner,
  options: { timeoutMs?: number; vaapiDevice?: string } = {},
): Promise<EncoderProbeResult> {
  const candidates: VideoEncoder[] =
    setting === 'auto' ? VIDEO_ENCODERS.filter(isGpuEncoder) : setting === 'libx264' ? [] : [setting];
  const tried: EncoderProbeResult['tried'] = [];
  for (const encoder of candidates) {
    const result = await run(probeArgs(encoder, options), options.timeoutMs ?? 5000);
    const firstLine = result.stderr.trim().split('\n').at(-1)?.slice(0, 200);
    tried.push(result.ok ? { encoder, ok: true } : { encoder, ok: false, reason: firstLine || 'failed' });
    if (result.ok) return { encoder, tried };
  }
  return { encoder: 'libx264', tried };
}

const probed = new Map<string, Promise<EncoderProbeResult>>();

/**
 * `selectEncoder` with the real FFmpeg, once per process per setting (every relay in a process shares the
 * machine's GPUs, and a probe costs FFmpeg start-ups).
 */
export function probeEncoderOnce(
  setting: EncoderSetting,
  options: { ffmpegPath?: string; vaapiDevice?: string } = {},
): Promise<EncoderProbeResult> {
  const key = `${setting}|${options.ffmpegPath ?? 'ffmpeg'}|${options.vaapiDevice ?? ''}`;
  let result = probed.get(key);
  if (!result) {
    result = selectEncoder(setting, ffmpegProbeRunner(options.ffmpegPath), {
      ...(options.vaapiDevice ? { vaapiDevice: options.vaapiDevice } : {}),
    });
    probed.set(key, result);
  }
  return result;
}

/**
 * GPU encode sessions on this relay: at most `max` at once (NVENC on consumer cards: 3–8). A stream takes
 * one for its transcode and gives it back when its FFmpeg stops; none free means libx264.
 */
export class GpuSessions {
  readonly max: number;
  #used = 0;
  /** Transcodes that wanted the GPU and ran on the CPU (no session free, or the GPU encoder failed). */
  fallbacks = 0;

  constructor(max: number) {
    this.max = Math.max(0, Math.floor(max));
  }

  get used(): number {
    return this.#used;
  }

  /** A release function, or null when every session is taken. */
  acquire(): (() => void) | null {
    if (this.#used >= this.max) {
      this.fallbacks++;
      return null;
    }
    this.#used++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#used--;
    };
  }
}
