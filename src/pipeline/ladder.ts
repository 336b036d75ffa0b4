/**
 * The adaptive-bitrate ladder, pure: which renditions an input gets, and the FFmpeg argv that makes them all
 * from one decode. Rungs are named by their short side (glasses stream portrait, so "720p" means 720 pixels
 * on the short side whichever way up). Rules:
 * - never upscale: the top rung is the input's own size when its short side is below the top class (540x960
 *   gives 540x960), else the top class scaled down with the aspect ratio kept;
 * - below the top, each smaller class at most 0.9 × the rung above it (a 360p under a 361p input adds
 *   nothing), up to MAX_RUNGS;
 * - every rung gets the same GOP and forced keyframes at the same times (`-force_key_frames` on a time
 *   expression, scene cuts off), so segment boundaries line up across renditions and a player can switch at
 *   any segment;
 * - dimensions are even (H.264 4:2:0).
 * One FFmpeg decodes once, splits the frames (`split`), scales each branch and writes each rendition as its
 * own fragmented MP4 on its own pipe (stdout for the first, fd 3, 4, … for the others); every rendition
 * carries the audio so each plays alone (AAC input is copied, anything else encoded once per rendition).
 * Frames: resampled to 30 fps, or, for input known to be at most 30 fps (glasses: 9–15), kept as they come,
 * which halves the ladder's CPU (see `capFps`; bench/abr.ts measures it).
 */
import { flvInputArgs, fmp4OutputArgs, SEED_AUDIO_ENCODE } from './ffmpeg-args.ts';

export interface LadderClass {
  /** Short side in pixels. */
  short: number;
  /** Video bitrate in kbit/s at this class. */
  kbps: number;
}

/** The seed's two qualities (480p at 1 Mbit/s, 720p at 2 Mbit/s) and one below for poor networks. */
export const LADDER_CLASSES: readonly LadderClass[] = [
  { short: 720, kbps: 2000 },
  { short: 480, kbps: 1000 },
  { short: 360, kbps: 600 },
];

export const MAX_RUNGS = 3;
/** Output frame rate and GOP: 2 s keyframes at 30 fps, like the seed's transcode. */
export const LADDER_FPS = 30;
export const LADDER_GOP_SECONDS = 2;

export interface Rung {
  /** Stable name used in URLs: `720p`, `480p`, `540p`… (the rung's short side). */
  name: string;
  width: number;
  height: number;
  videoKbps: number;
  /** Peak bandwidth for BANDWIDTH in the multivariant playlist, bits/s (video maxrate + audio). */
  bandwidth: number;
}

const AUDIO_KBPS = 128;

const even = (n: number): number => Math.max(2, Math.round(n / 2) * 2);
/** Rounds down to even: the input's own size never grows by a pixel. */
const evenDown = (n: number): number => Math.max(2, Math.floor(n / 2) * 2);
/** A lower rung must be at most this fraction of the one above (else it adds nothing but cost). */
const MIN_STEP = 0.9;

/** The renditions for an input of `width`×`height` (pure). */
export function ladderFor(width: number, height: number, classes = LADDER_CLASSES): Rung[] {
  if (!(width > 0 && height > 0)) throw new RangeError(`input size ${width}x${height}`);
  const inputShort = Math.min(width, height);
  const portrait = height > width;
  const sized = (short: number): { width: number; height: number } => {
    const long = even((Math.max(width, height) * short) / inputShort);
    const s = even(short);
    return portrait ? { width: s, height: long } : { width: long, height: s };
  };
  const rung = (short: number, kbps: number): Rung => {
    const size = short >= inputShort ? { width: evenDown(width), height: evenDown(height) } : sized(short);
    const name = `${Math.min(size.width, size.height)}p`;
    return { name, ...size, videoKbps: kbps, bandwidth: Math.round((kbps * 1.25 + AUDIO_KBPS) * 1000) };
  };
  const sorted = [...classes].sort((a, b) => b.short - a.short);
  // Top: the largest class the input reaches, or the input itself when it is below every class.
  const topClass = sorted.find((c) => c.short <= inputShort) ?? sorted.at(-1)!;
  const topShort = Math.min(inputShort, sorted[0]!.short);
  // Bitrate of the top: its own class's, or the class just above when the input sits between two classes.
  const above = [...sorted].reverse().find((c) => c.short >= topShort) ?? topClass;
  const rungs: Rung[] = [rung(topShort, topShort === topClass.short ? topClass.kbps : above.kbps)];
  for (const c of sorted) {
    if (rungs.length >= MAX_RUNGS) break;
    const last = rungs.at(-1)!;
    if (c.short <= Math.min(last.width, last.height) * MIN_STEP) rungs.push(rung(c.short, c.kbps));
  }
  return rungs;
}

export interface LadderArgsOptions {
  hasAudio: boolean;
  fragmentMs: number;
  /**
   * Resample to LADDER_FPS (default true). False keeps the input's frames as they come (`-fps_mode
   * passthrough`): for input known to be at most LADDER_FPS, such as glasses at 9–15 fps, encoding the
   * duplicates that a 30 fps output would invent costs about half of the ladder's CPU for nothing. Keyframes
   * stay aligned across rungs: they are forced on time, and every rung gets the same frames.
   */
  capFps?: boolean;
  /** The input's audio is AAC: every rendition carries it as is instead of encoding it once per rung. */
  copyAudio?: boolean;
}

/**
 * argv for the ABR profile: FLV on stdin, rendition i's fragmented MP4 on fd i + (i === 0 ? 1 : 2) — that
 * is stdout for the first and 3, 4, … for the others (spawn them with that many pipes).
 */
export function ladderArgs(rungs: readonly Rung[], options: LadderArgsOptions): string[] {
  if (rungs.length === 0) throw new RangeError('an empty ladder');
  const gop = LADDER_FPS * LADDER_GOP_SECONDS;
  const labels = rungs.map((_, i) => `v${i}`);
  const capFps = options.capFps ?? true;
  const graph = [
    `[0:v:0]${capFps ? `fps=${LADDER_FPS},` : ''}split=${rungs.length}${labels.map((l) => `[${l}in]`).join('')}`,
    ...rungs.map((r, i) => `[${labels[i]}in]scale=${r.width}:${r.height},format=yuv420p[${labels[i]}]`),
  ].join(';');
  const args = [...flvInputArgs(), '-filter_complex', graph];
  rungs.forEach((r, i) => {
    args.push('-map', `[${labels[i]}]`);
    // An output option: every rendition needs it (else FFmpeg picks its own frame-rate mode per output).
    if (!capFps) args.push('-fps_mode', 'passthrough');
    if (options.hasAudio) args.push('-map', '0:a:0');
    args.push(
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency'],
      ...['-profile:v', r.height * r.width > 921_600 ? 'high' : 'main'],
      ...['-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0'],
      // Keyframes at the same times in every rendition: segments line up for switching.
      ...['-force_key_frames', `expr:gte(t,n_forced*${LADDER_GOP_SECONDS})`],
      ...['-b:v', `${r.videoKbps}k`, '-maxrate', `${Math.round(r.videoKbps * 1.25)}k`],
      ...['-bufsize', `${r.videoKbps * 2}k`],
    );
    if (options.hasAudio) args.push(...(options.copyAudio ? ['-c:a', 'copy'] : SEED_AUDIO_ENCODE));
    args.push(...fmp4OutputArgs(options.fragmentMs, i === 0 ? 1 : i + 2));
  });
  return args;
}
