/**
 * Timestamp repair on the FLV tags of a publish, before FFmpeg sees them (FFmpeg 5.1 squashes or drops
 * everything after a backward reset, and players stall on non-monotonic DTS). Pure: tags in, tags out.
 *
 * Each track keeps its own offset (output = unwrapped input + offset), so a jump in one track alone does not
 * move the other. Rules, in order, for a media tag of track X:
 * - unwrap: the step from X's previous input is read as a signed 32-bit delta (a 2^32 wrap continues
 *   smoothly), and FLV's 31-bit wrap near 0x7FFFFFFF is recognised too (`wrap`);
 * - the first tag of the first session lands at 0 (input below zero as int32 counts as `negative`); a new
 *   session after a reconnect continues one frame after the last output;
 * - a step forward larger than `maxGapMs` past both X's last output and the other track's (`jumpForward`),
 *   or a reset backward larger than `maxGapMs` (`backward`), is closed up: X continues one typical frame
 *   interval after its last output, and not before the other track;
 * - otherwise DTS stays strictly increasing per track: an equal timestamp gets +1 ms (`duplicate`), a
 *   small step back is clamped to +1 ms (`backward`);
 * - while both tracks flow, a track that runs more than `maxAvSkewMs` ahead of the other is pulled back to
 *   it, never below its own last output (`avSkew`). A video stall with audio flowing is not skew.
 * Normal interleaving jitter (audio a few ms behind video) triggers nothing.
 */
import { FlvTagType, type MediaTag } from './flv-tag.ts';

export interface TimestampRepairOptions {
  /** A step larger than this (ms) is a jump, not a stall (default 1000). */
  maxGapMs?: number;
  /** Most audio/video distance (ms) tolerated while both flow (default 100). */
  maxAvSkewMs?: number;
}

export interface RepairCounts {
  negative: number;
  duplicate: number;
  backward: number;
  jumpForward: number;
  wrap: number;
  avSkew: number;
}

interface Track {
  /** Last raw input (uint32) of this session, or null before this session's first tag. */
  lastIn: number | null;
  /** Unwrapped input of the last tag. */
  unwrapped: number;
  offset: number;
  lastOut: number | null;
  deltas: number[];
  /** Tag counter value at this track's last tag (for "is it flowing"). */
  seenAt: number;
}

const DEFAULT_DELTA = { [FlvTagType.Audio]: 23, [FlvTagType.Video]: 33 } as const;
/** The other track counts as flowing when it had a tag within this many tags. */
const FLOWING_WITHIN_TAGS = 4;
const U32 = 0x1_0000_0000;

export class TimestampRepair {
  readonly counts: RepairCounts = {
    negative: 0,
    duplicate: 0,
    backward: 0,
    jumpForward: 0,
    wrap: 0,
    avSkew: 0,
  };
  readonly #maxGap: number;
  readonly #maxSkew: number;
  readonly #tracks = new Map<number, Track>();
  #sessionOffset: number | null = null;
  /** The last jump closed: on which track, by how much, and when (tag count). */
  #lastJump: { type: number; shift: number; at: number } | null = null;
  #sessions = 0;
  #tagCount = 0;

  constructor(options: TimestampRepairOptions = {}) {
    this.#maxGap = options.maxGapMs ?? 1000;
    this.#maxSkew = options.maxAvSkewMs ?? 100;
  }

  /** The next tags come from a new publish session that continues the same output timeline. */
  continueAfterReconnect(): void {
    this.#sessionOffset = null;
    for (const t of this.#tracks.values()) t.lastIn = null;
  }

  repair(tag: MediaTag): MediaTag | null {
    if (tag.type !== FlvTagType.Audio && tag.type !== FlvTagType.Video) {
      return { ...tag, timestamp: this.#globalLastOut() ?? 0 };
    }
    const track = this.#track(tag.type);
    if (tag.isConfig) return { ...tag, timestamp: track.lastOut ?? this.#globalLastOut() ?? 0 };
    this.#tagCount++;
    const raw = tag.timestamp >>> 0;
    const other = this.#tracks.get(tag.type === FlvTagType.Audio ? FlvTagType.Video : FlvTagType.Audio);
    const otherOut = other?.lastOut ?? null;

    if (track.lastIn === null) {
      // First tag of this track in this session.
      if (this.#sessionOffset === null) {
        if (this.#sessions === 0 && raw >= 0x8000_0000) this.counts.negative++;
        const start = this.#sessions === 0 ? 0 : (this.#globalLastOut() ?? 0) + DEFAULT_DELTA[tag.type];
        this.#sessionOffset = start - raw;
        this.#sessions++;
      }
      track.unwrapped = raw;
      track.offset = this.#sessionOffset;
    } else {
      track.unwrapped += this.#delta(track.lastIn, raw);
    }
    track.lastIn = raw;

    let out = track.unwrapped + track.offset;
    const last = track.lastOut;
    if (last !== null) {
      const typical = this.#typical(track, tag.type);
      const floor = Math.max(last + typical, otherOut ?? 0);
      if (out - last > this.#maxGap && (otherOut === null || out - otherOut > this.#maxGap)) {
        out = this.#closeJump(track, tag.type, out, last, floor, otherOut, 'jumpForward');
      } else if (last - out > this.#maxGap) {
        out = this.#closeJump(track, tag.type, out, last, floor, otherOut, 'backward');
      } else if (out === last) {
        this.counts.duplicate++;
        out = last + 1;
      } else if (out < last) {
        this.counts.backward++;
        out = last + 1;
      }
      if (
        otherOut !== null &&
        other !== undefined &&
        this.#tagCount - other.seenAt <= FLOWING_WITHIN_TAGS &&
        out - otherOut > this.#maxSkew
      ) {
        this.counts.avSkew++;
        out = this.#rebase(track, Math.max(last + 1, otherOut));
      }
      const delta = out - last;
      if (delta > 0 && delta <= this.#maxGap) {
        track.deltas.push(delta);
        if (track.deltas.length > 8) track.deltas.shift();
      }
    }
    out = Math.max(0, out);
    track.lastOut = out;
    track.seenAt = this.#tagCount;
    return { ...tag, timestamp: out % U32 };
  }

  #track(type: number): Track {
    let t = this.#tracks.get(type);
    if (!t) {
      t = { lastIn: null, unwrapped: 0, offset: 0, lastOut: null, deltas: [], seenAt: 0 };
      this.#tracks.set(type, t);
    }
    return t;
  }

  /** Signed step between two raw uint32 timestamps, with the 32- and 31-bit wraps read as continuations. */
  #delta(lastIn: number, raw: number): number {
    if (lastIn >= 0x7f00_0000 && lastIn < 0x8000_0000 && raw < 0x0100_0000) {
      this.counts.wrap++; // FLV's extended byte makes timestamps effectively 31-bit
      return raw + 0x8000_0000 - lastIn;
    }
    const d = (raw - lastIn) | 0;
    if (raw < lastIn && d > 0) this.counts.wrap++;
    return d;
  }

  #typical(track: Track, type: number): number {
    if (track.deltas.length === 0) return DEFAULT_DELTA[type as 8 | 9];
    const sorted = [...track.deltas].sort((a, b) => a - b);
    return Math.max(1, sorted[Math.floor(sorted.length / 2)]!);
  }

  /**
   * Closes a jump on one track. When the other track just closed the same jump, the same shift keeps the
   * two exactly as far apart as the publisher had them; otherwise the track continues at `floor`.
   */
  #closeJump(
    track: Track,
    type: number,
    out: number,
    last: number,
    floor: number,
    otherOut: number | null,
    kind: 'jumpForward' | 'backward',
  ): number {
    const j = this.#lastJump;
    let target = floor;
    if (j && j.type !== type && this.#tagCount - j.at <= 50) {
      const same = out + j.shift;
      if (same > last && (otherOut === null || Math.abs(same - otherOut) <= this.#maxGap)) target = same;
    }
    if (target === floor) this.counts[kind]++; // the other track's jump, closed the same way, counts once
    this.#lastJump = { type, shift: target - out, at: this.#tagCount };
    return this.#rebase(track, target);
  }

  /** Moves the track's offset so its current tag lands at `out`. */
  #rebase(track: Track, out: number): number {
    track.offset = out - track.unwrapped;
    return out;
  }

  #globalLastOut(): number | null {
    let max: number | null = null;
    for (const t of this.#tracks.values()) if (t.lastOut !== null) max = Math.max(max ?? 0, t.lastOut);
    return max;
  }
}
