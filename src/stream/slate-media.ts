/**
 * What a slate is made of, pure (no I/O): the spec that decides one encode (codec constraints, size, audio
 * format), the FFmpeg argv that encodes it once (golden-tested, never a shell), and the access units read
 * back from that encode: one GOP of H.264 (an IDR, then P frames that repeat the still picture for a few
 * bytes each) and one silent audio frame, which ./slate.ts stamps onto a stream's timeline as often as
 * needed: AAC from the encode, or for an Opus stream (WHIP) the 3-byte silent Opus frame (a 20 ms CELT
 * frame that decodes to zeros), which needs no encode: an audio track that disappears mid-stream is fatal
 * to hls.js (measured: whip-relay), so an Opus stream's slate keeps an Opus track.
 *
 * One encode serves every frame rate: a still picture's frames differ only in their timestamps, which the
 * relay writes itself (the SPS's timing info is advisory; MP4 and FLV carry times per sample), so the spec
 * has no frame rate and a stream at 9 fps takes the first 9 frames of the GOP per second, one at 30 the
 * first 30. Only H.264 with AAC, Opus or no audio: HEVC cannot go into FLV with FFmpeg 5.1, and the
 * glasses publish H.264.
 */
import { isAbsolute, resolve } from 'node:path';
import type { AccessUnit, AudioConfig, VideoConfig } from '../media/access-unit.ts';
import { FlvDemuxer } from '../media/flv-demux.ts';
import { readFlv } from '../media/flv-reader.ts';
import type { Fmp4Init } from '../media/fmp4.ts';
import { parseAvcConfig } from '../media/nal.ts';
import { silentOpusFrame } from '../media/silence.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';

/** Frames in the encoded GOP: a second at up to 60 fps, the most a slate GOP uses (see slateGopFrames). */
export const SLATE_ENCODED_FRAMES = 60;
/** Encoded frame rate (only decides x264's rate control; the relay stamps every frame itself). */
const ENCODE_FPS = 30;
const BACKGROUND = '0x1e1e1e';
export const SLATE_TEXT = 'Reconnecting…';

export type H264Profile = 'baseline' | 'main' | 'high';

/** Everything one slate encode depends on; streams with equal specs share the encode. */
export interface SlateSpec {
  profile: H264Profile;
  /** level_idc (31 = 3.1). */
  level: number;
  width: number;
  height: number;
  /** Silent AAC-LC or Opus (48 kHz) in this format, or no audio track. */
  audio: { codec: 'aac' | 'opus'; sampleRate: number; channels: number } | null;
}

/** The encoded slate: configurations, the GOP (first frame an IDR) and one silent audio frame. */
export interface SlateMedia {
  spec: SlateSpec;
  video: VideoConfig;
  audio: AudioConfig | null;
  /** Video access units of one GOP in decode order (PTS = DTS: no B-frames), times meaningless. */
  frames: Buffer[];
  /** One silent audio frame, repeated for every audio access unit; null without audio. */
  silence: Buffer | null;
}

export function slateKey(spec: SlateSpec): string {
  const a = spec.audio;
  const audio = a ? `${a.codec === 'opus' ? 'opus-' : ''}${a.sampleRate}x${a.channels}` : 'none';
  return `h264-${spec.profile}-${spec.level}/${spec.width}x${spec.height}/${audio}`;
}

/** x264's profile for an SPS profile_idc: baseline (66) and main (77) as they are, anything else high. */
export function profileOf(profileIdc: number): H264Profile {
  if (profileIdc === 66) return 'baseline';
  if (profileIdc === 77) return 'main';
  return 'high';
}

function evenSize(n: number): number | null {
  if (!Number.isFinite(n) || n < 16 || n > 8192) return null;
  return Math.round(n / 2) * 2; // yuv420p needs even sizes
}

function levelOf(levelIdc: number): number {
  return Number.isInteger(levelIdc) && levelIdc >= 10 && levelIdc <= 62 ? levelIdc : 40;
}

function audioOf(
  audio: { codec: string; sampleRate: number; channels: number } | null | undefined,
): SlateSpec['audio'] {
  const channels = Math.min(2, Math.max(1, audio?.channels || 2));
  if (audio?.codec === 'opus') return { codec: 'opus', sampleRate: OPUS_RATE, channels };
  if (audio?.codec !== 'aac') return null;
  if (!(audio.sampleRate >= 8000 && audio.sampleRate <= 96_000)) return null;
  return { codec: 'aac', sampleRate: audio.sampleRate, channels };
}

const OPUS_RATE = 48_000;

/**
 * The spec matching a publish's configuration (what re-streams and copy streams carry): its H.264 profile,
 * level and size, its AAC format. Null when no slate can match it (not H.264, size unknown).
 */
export function specOfInput(video: VideoConfig | null, audio: AudioConfig | null): SlateSpec | null {
  if (video?.codec !== 'h264') return null;
  let record: ReturnType<typeof parseAvcConfig>;
  try {
    record = parseAvcConfig(video.record);
  } catch (err) {
    // The copy writer refused it too: no slate for a configuration nobody can describe.
    if (err instanceof RelayError) return null;
    throw err;
  }
  const width = evenSize(video.width || record.width || 0);
  const height = evenSize(video.height || record.height || 0);
  if (width === null || height === null) return null;
  return {
    profile: profileOf(record.profile),
    level: levelOf(record.level),
    width,
    height,
    audio: audioOf(audio),
  };
}

/**
 * The spec matching an init segment (what a packager serves: the copy writer's, FFmpeg's transcode or an
 * ABR rung): `avc1.PPCCLL` gives profile and level, the track its size, `mp4a.40.*` its audio format.
 */
export function specOfInit(init: Fmp4Init): SlateSpec | null {
  const video = init.tracks.find((t) => t.kind === 'video');
  const m = video ? /^avc[13]\.([0-9a-f]{2})[0-9a-f]{2}([0-9a-f]{2})$/i.exec(video.codec) : null;
  if (!video || !m) return null;
  const width = evenSize(video.width ?? 0);
  const height = evenSize(video.height ?? 0);
  if (width === null || height === null) return null;
  const audio = init.tracks.find((t) => t.kind === 'audio');
  return {
    profile: profileOf(Number.parseInt(m[1]!, 16)),
    level: levelOf(Number.parseInt(m[2]!, 16)),
    width,
    height,
    audio: audio?.codec.startsWith('mp4a.40.')
      ? audioOf({ codec: 'aac', sampleRate: audio.sampleRate ?? 0, channels: audio.channels ?? 2 })
      : audio?.codec === 'opus'
        ? audioOf({ codec: 'opus', sampleRate: OPUS_RATE, channels: audio.channels ?? 2 })
        : null,
  };
}

/**
 * The picture: SLATE_IMAGE scaled into the frame (letterboxed), or the built-in dark frame with the text;
 * `text: false` is the fallback without drawtext (FFmpeg built without libfreetype, or no font installed).
 */
function pictureArgs(spec: SlateSpec, image: string | undefined, text: boolean): string[] {
  const { width: w, height: h } = spec;
  if (image) {
    // `file:` so that a configured path is only ever a file, never a protocol or an option.
    const file = `file:${isAbsolute(image) ? image : resolve(image)}`;
    const fit =
      `scale=${w}:${h}:force_original_aspect_ratio=decrease,` +
      `pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2:color=${BACKGROUND},format=yuv420p`;
    return ['-loop', '1', '-framerate', String(ENCODE_FPS), '-i', file, '-vf', fit];
  }
  const size = Math.max(12, Math.round(Math.min(w, h) / 14));
  const source = `color=c=${BACKGROUND}:s=${w}x${h}:r=${ENCODE_FPS}`;
  const draw = text
    ? `,drawtext=text='${SLATE_TEXT}':fontcolor=white:fontsize=${size}:x=(w-tw)/2:y=(h-th)/2`
    : `,drawbox=x=iw/4:y=ih/2-${size / 4}:w=iw/2:h=${Math.max(2, size / 2)}:color=white@0.6:t=fill`;
  return ['-f', 'lavfi', '-i', source + draw];
}

/** FFmpeg argv of one slate encode: one GOP of H.264 (+ silent AAC) as FLV on stdout; Opus needs no encode. */
export function slateArgs(spec: SlateSpec, options: { image?: string; text?: boolean } = {}): string[] {
  const audio = spec.audio?.codec === 'aac' ? spec.audio : null;
  const level = `${Math.floor(spec.level / 10)}.${spec.level % 10}`;
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    ...pictureArgs(spec, options.image, options.text ?? true),
    ...(audio
      ? ['-f', 'lavfi', '-i', `anullsrc=r=${audio.sampleRate}:cl=${audio.channels === 1 ? 'mono' : 'stereo'}`]
      : []),
    '-map',
    '0:v:0',
    ...(audio ? ['-map', '1:a:0'] : []),
    '-frames:v',
    String(SLATE_ENCODED_FRAMES),
    '-t',
    String(SLATE_ENCODED_FRAMES / ENCODE_FPS),
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-tune',
    'stillimage',
    '-profile:v',
    spec.profile,
    '-level',
    level,
    '-pix_fmt',
    'yuv420p',
    '-r',
    String(ENCODE_FPS),
    '-g',
    String(SLATE_ENCODED_FRAMES),
    '-keyint_min',
    String(SLATE_ENCODED_FRAMES),
    '-sc_threshold',
    '0',
    '-bf',
    '0',
    '-threads',
    '1',
    ...(audio
      ? ['-c:a', 'aac', '-b:a', '32k', '-ar', String(audio.sampleRate), '-ac', String(audio.channels)]
      : []),
    '-f',
    'flv',
    'pipe:1',
  ];
}

function invalid(message: string): never {
  throw new RelayError(ErrorCodes.SLATE_ENCODE_FAILED, `slate: ${message}`);
}

/**
 * Reads the encode's FLV back: the H.264 configuration and GOP (it must open with an IDR and hold no other),
 * the AAC configuration and a silent frame from the middle (past the encoder's priming). Throws
 * SLATE_ENCODE_FAILED when the output is not that.
 */
export function slateFromFlv(spec: SlateSpec, flv: Buffer): SlateMedia {
  let tags: ReturnType<typeof readFlv>['tags'];
  try {
    tags = readFlv(flv).tags;
  } catch (err) {
    throw new RelayError(ErrorCodes.SLATE_ENCODE_FAILED, 'slate: the encode wrote no valid FLV', {
      cause: err,
    });
  }
  const demux = new FlvDemuxer();
  const frames: AccessUnit[] = [];
  const audioFrames: AccessUnit[] = [];
  for (const tag of tags) {
    const out = demux.push(tag);
    if (out?.au?.track === 'video') frames.push(out.au);
    else if (out?.au?.track === 'audio') audioFrames.push(out.au);
  }
  const video = demux.video;
  if (video?.kind !== 'video' || video.codec !== 'h264') invalid('no H.264 track');
  if (frames.length === 0 || !frames[0]!.keyframe) invalid('the GOP does not open with an IDR');
  if (frames.slice(1).some((f) => f.keyframe)) invalid('more than one IDR in the GOP');
  let audio: AudioConfig | null = null;
  let silence: Buffer | null = null;
  if (spec.audio?.codec === 'opus') {
    // As WebRTC's Opus is configured (no OpusHead: the CMAF writer builds dOps from these numbers).
    const { channels } = spec.audio;
    audio = {
      kind: 'audio',
      codec: 'opus',
      config: Buffer.alloc(0),
      sampleRate: OPUS_RATE,
      channels,
      frameSamples: 960,
    };
    silence = silentOpusFrame(channels);
  } else if (spec.audio) {
    const a = demux.audio;
    if (a?.kind !== 'audio' || a.codec !== 'aac' || audioFrames.length === 0) invalid('no AAC track');
    audio = a;
    silence = audioFrames[audioFrames.length >> 1]!.data;
  }
  return {
    spec,
    video: { ...video, width: spec.width, height: spec.height },
    audio,
    frames: frames.map((f) => f.data),
    silence,
  };
}
