/**
 * Stamps an encoded slate (./slate-media.ts) onto a stream's timeline, pure (no timers, no I/O): video frame
 * n at `startMs + n × 1000 / fps`, a GOP of about a second (the first `round(fps)` frames of the encoded
 * GOP, its IDR first, so every second starts with a keyframe where a segment may be cut), and one silent
 * AAC frame every `1024 / sampleRate` s. The caller asks for everything up to a media time and gets the
 * access units, both tracks in DTS order, each marked `slate: true` (recordings and WHEP skip them).
 */
import type { AccessUnit } from '../media/access-unit.ts';
import type { SlateMedia } from './slate-media.ts';

/** The slate's frame rate stays within these (a stream's measured rate can be anything). */
export const MIN_SLATE_FPS = 5;
export const MAX_SLATE_FPS = 60;
/** Seconds per slate GOP (an IDR this often). */
export const SLATE_GOP_SECONDS = 1;

/** Frames per slate GOP at `fps`: one second's worth, at most what the encode holds. */
export function slateGopFrames(fps: number, encoded: number): number {
  return Math.max(1, Math.min(encoded, Math.round(fps * SLATE_GOP_SECONDS)));
}

export function clampFps(fps: number | undefined, fallback: number): number {
  const f = fps !== undefined && Number.isFinite(fps) && fps > 0 ? fps : fallback;
  return Math.min(MAX_SLATE_FPS, Math.max(MIN_SLATE_FPS, f));
}

export class SlateClock {
  readonly media: SlateMedia;
  readonly fps: number;
  readonly startMs: number;
  readonly #frameMs: number;
  readonly #gop: number;
  readonly #audioMs: number;
  #video = 0;
  #audio = 0;

  constructor(media: SlateMedia, fps: number, startMs: number) {
    this.media = media;
    this.fps = clampFps(fps, 30);
    this.startMs = startMs;
    this.#frameMs = 1000 / this.fps;
    this.#gop = slateGopFrames(this.fps, media.frames.length);
    this.#audioMs = media.audio ? (media.audio.frameSamples * 1000) / media.audio.sampleRate : 0;
  }

  /** Where the slate's media ends so far: past its last video frame and its last audio frame. */
  get endMs(): number {
    return Math.max(
      this.startMs + this.#video * this.#frameMs,
      this.media.silence ? this.startMs + this.#audio * this.#audioMs : 0,
    );
  }

  /** Video frames emitted so far. */
  get frames(): number {
    return this.#video;
  }

  /** Every access unit with a DTS at or before `mediaMs` not emitted yet, in DTS order (video first on a tie). */
  until(mediaMs: number): AccessUnit[] {
    const out: AccessUnit[] = [];
    const silence = this.media.silence;
    for (;;) {
      const v = this.startMs + this.#video * this.#frameMs;
      const a = silence ? this.startMs + this.#audio * this.#audioMs : Number.POSITIVE_INFINITY;
      if (v <= a && v <= mediaMs) {
        const i = this.#video % this.#gop;
        out.push({
          track: 'video',
          dts: v,
          pts: v,
          keyframe: i === 0,
          data: this.media.frames[i]!,
          slate: true,
        });
        this.#video++;
      } else if (silence && a <= mediaMs) {
        out.push({ track: 'audio', dts: a, pts: a, keyframe: true, data: silence, slate: true });
        this.#audio++;
      } else {
        return out;
      }
    }
  }
}
