/**
 * FFmpeg argv per cleaning profile, pure (style rule 7: golden-tested, never a shell). FFmpeg reads FLV on
 * stdin and writes fragmented MP4 on stdout: ftyp+moov once, then a moof+mdat fragment at every keyframe
 * and at least every `fragmentMs`, which the packager cuts into segments and, for low-latency HLS, groups
 * into parts. Nothing from a request or a stream key ever reaches these arguments.
 */

import { encoderArgs, SEED_TARGET } from './encoders.ts';

export type PipelineProfile = 'copy' | 'transcode';

export interface FfmpegArgsOptions {
  profile: PipelineProfile;
  hasVideo: boolean;
  hasAudio: boolean;
  /**
   * FFmpeg's fragment duration in ms (default 500): a fragment ends at the first packet this long after its
   * start (or at a keyframe), so it can run one frame interval longer. With low latency on, see
   * partFragmentMs.
   */
  fragmentMs?: number;
  /**
   * The video encode for `transcode` (see ./encoders.ts): `input` goes before `-i` (hardware decode and
   * device setup), `output` replaces the seed's libx264 encode. Default: the seed's encode.
   */
  videoEncode?: { input: readonly string[]; output: readonly string[] };
}

/**
 * Fragment duration for low-latency HLS: a tenth of the part target (50 ms for 0.5 s parts), so a fragment
 * holds a frame or two at 9–30 fps and the packager can group whole frames into parts of 85–100 % of the
 * PART-TARGET (rfc8216bis §4.4.4.9). With fragments as long as the part target, a part would run up to a
 * frame interval past it, and with any fixed margin below it a 9 fps part would fall under 85 %. The cost is
 * a moof per fragment (about 20 kbit/s, 2 % of a 1 Mbit/s stream, measured) and audio-only fragments
 * between sparse frames, which the packager counts as no time of their own.
 */
export function partFragmentMs(partSeconds: number): number {
  return Math.min(100, Math.max(20, Math.round(partSeconds * 100)));
}

/**
 * The seed's encode (reference/ffmpeg.md), reproduced exactly: libx264 at the seed's target, written once in
 * ./encoders.ts (golden-tested in ffmpeg-args.test.ts).
 */
export const SEED_VIDEO_ENCODE: readonly string[] = encoderArgs('libx264', SEED_TARGET).output;

export const SEED_AUDIO_ENCODE = ['-c:a', 'aac', '-ar', '48000', '-ac', '2', '-b:a', '128k'] as const;

/** FFmpeg's start, for every pipeline: quiet, a small probe, FLV on stdin; `beforeInput` precedes `-i`. */
export function flvInputArgs(beforeInput: readonly string[] = []): string[] {
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'warning',
    // The relay sends the codec configuration first, so a small probe is enough (start-up latency).
    '-analyzeduration',
    '100000',
    '-probesize',
    '32768',
    ...beforeInput,
    '-f',
    'flv',
    '-i',
    'pipe:0',
  ];
}

/** One fragmented-MP4 output on `pipe:{fd}`: a fragment at every keyframe and at least every `fragmentMs`. */
export function fmp4OutputArgs(fragmentMs: number, fd: number): string[] {
  return [
    '-f',
    'mp4',
    '-movflags',
    '+frag_keyframe+empty_moov+default_base_moof',
    '-frag_duration',
    String(Math.round(fragmentMs * 1000)),
    `pipe:${fd}`,
  ];
}

export function buildFfmpegArgs(options: FfmpegArgsOptions): string[] {
  const args = flvInputArgs(
    options.profile === 'transcode' && options.hasVideo ? (options.videoEncode?.input ?? []) : [],
  );
  // Only the first video and audio stream: mid-stream metadata would otherwise add a data stream.
  if (options.hasVideo) args.push('-map', '0:v:0');
  if (options.hasAudio) args.push('-map', '0:a:0');
  if (options.profile === 'copy') {
    args.push('-c', 'copy');
  } else {
    if (options.hasVideo) args.push(...(options.videoEncode?.output ?? SEED_VIDEO_ENCODE));
    if (options.hasAudio) args.push(...SEED_AUDIO_ENCODE);
  }
  args.push(...fmp4OutputArgs(options.fragmentMs ?? 500, 1));
  return args;
}
