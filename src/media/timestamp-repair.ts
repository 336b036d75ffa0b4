/**
 * Timestamp repair for one publish's FLV tags on their way to FFmpeg. Glasses on bad Wi-Fi send timestamps
 * that start negative, repeat, step back when an encoder restarts, jump forward after a stall, wrap (at 2^32,
 * or at 2^31 where a sender keeps them in a signed field) and drift apart between audio and video. FFmpeg
 * 5.1 squashes or drops everything after a backward reset and players stall on non-monotonic DTS, so every
 * media tag leaves here on one timeline that starts at 0, rises by at least 1 ms per track, has no jump the
 * publisher did not mean, and keeps each track within `maxAvSkewMs` of the other.
 *
 * A media tag's output is `in + offset[track]`, `in` being its timestamp unwrapped. For a media tag of X
 * (Y the other track), in order:
 * - unwrap: the step from X's previous timestamp is read the nearer way round 2^32 (0 → 0xFFFFFF00 is
 *   -256), or across 0x7FFFFFFF → 0 when both ends lie within `maxGapMs` of it; a forward step across the
 *   wrap from a non-negative position counts `wrap`. A tag whose unwrapped position is below 0 counts
 *   `negative`;
 * - the session's first media tag lands at 0 (after a reconnect: one frame interval after the last output);
 *   Y's first tag reads its clock against X's, lining up with X's latest output instead when it lands more
 *   than `maxAvSkewMs` before or `maxGapMs` after it (`avSkew`), and never below 0;
 * - a step of 1..`maxGapMs` ms is kept and measured (the median of recent ones is X's frame interval);
 * - a repeat (`duplicate`), or a step back within reordering range (`backward`), goes 1 ms after X's last
 *   output with the offset kept;
 * - a bigger step back (`backward`) or one forward past `maxGapMs` (`jumpForward`) is closed: X lands one
 *   frame interval after its last output. Y adopts the same offset change, uncounted, only if it then makes
 *   the same jump; a forward step landing where Y already is (X alone had a gap) is kept as it is;
 * - a tag more than `maxAvSkewMs` behind Y's latest output moves X's offset later to that bound (`avSkew`).
 * Config and script tags take their track's (or the session's) current time and change nothing. Pure and
 * total: the caller feeds tags in arrival order and writes what comes out; no timers, no I/O, no throws.
 */
import type { AccessUnit, TrackKind } from './access-unit.ts';
import { FlvTagType, type MediaTag } from './flv-tag.ts';

export interface TimestampRepairOptions {
  /** A forward step larger than this on one track is a jump (default 1000). */
  maxGapMs?: number;
  /** How far a track may trail the other track's latest output (default 100). */
  maxAvSkewMs?: number;
}

/** How many tags each repair touched; a tag counts once per kind that applied to it. */
export interface RepairCounts {
  /** Tags before 0 on the publisher's clock read as int32 (a negative start, or a reset to one). */
  negative: number;
  /** Tags that repeated their track's timestamp (or landed on its last output): moved 1 ms on. */
  duplicate: number;
  /** Steps back: small ones moved 1 ms past the last output, big ones (a reset) closed up. */
  backward: number;
  /** Forward jumps larger than `maxGapMs` closed up. */
  jumpForward: number;
  /** Steps across a 2^32 or 2^31 wrap, continued smoothly. */
  wrap: number;
  /** Tags moved later so they trail the other track by no more than `maxAvSkewMs`. */
  avSkew: number;
}

export const DEFAULT_MAX_GAP_MS = 1000;
export const DEFAULT_MAX_AV_SKEW_MS = 100;
/**
 * A session whose first timestamp, read as int32, lies this close below 0 started negative (priming or
 * composition delay, a few hundred ms in practice); further back it is a uint32 clock about to wrap.
 */
export const NEGATIVE_START_WINDOW_MS = 10_000;

const TWO_31 = 2 ** 31;
const TWO_32 = 2 ** 32;
/** Recent normal steps kept per track; their median is the track's frame interval. */
const INTERVAL_SAMPLES = 15;
/** Backward steps up to this many frame intervals are reordering (PTS sent as DTS), not a reset. */
const REORDER_FRAMES = 3;

class Track {
  /** Output of the last media tag on the continuous timeline (across reconnects); -1 before any. */
  lastOut = -1;
  /** Whether this track has had a media tag in the current publish session. */
  started = false;
  /** The last media tag's timestamp as sent (uint32), and unwrapped. */
  lastRaw = 0;
  lastIn = 0;
  offset = 0;
  /** An offset change the other track made closing a jump, which this track adopts if it makes the same jump. */
  pending = 0;
  /** `lastOut` when `pending` was set: it expires once this track has moved on by `maxGapMs`. */
  pendingAt = 0;
  readonly #steps: number[] = [];
  readonly #defaultInterval: number;

  constructor(defaultInterval: number) {
    this.#defaultInterval = defaultInterval;
  }

  sample(step: number): void {
    this.#steps.push(step);
    if (this.#steps.length > INTERVAL_SAMPLES) this.#steps.shift();
  }

  /** The typical step: the median of recent normal steps, so one late or early frame does not move it. */
  interval(maxGapMs: number): number {
    let typical = this.#defaultInterval;
    if (this.#steps.length > 0) {
      const sorted = [...this.#steps].sort((a, b) => a - b);
      typical = sorted[sorted.length >> 1]!;
    }
    return Math.min(Math.max(typical, 1), maxGapMs);
  }
}

interface Step {
  step: number;
  /** 0, or the wrap the step crossed forward (32: past 0xFFFFFFFF, 31: past 0x7FFFFFFF). */
  wrap: 0 | 31 | 32;
}

/**
 * The step from `prev` to `raw` (both uint32): the nearer way round 2^32, so 0xFFFFFFF0 → 0x10 is +32 and
 * 0 → 0xFFFFFF00 is -256; or +N across 0x7FFFFFFF → 0 when both ends sit within `maxGapMs` of that wrap.
 */
function stepFrom(prev: number, raw: number, maxGapMs: number): Step {
  if (prev < TWO_31 && raw < prev) {
    const across31 = raw + TWO_31 - prev;
    if (across31 <= maxGapMs) return { step: across31, wrap: 31 };
  }
  const step = (raw - prev) | 0;
  return { step, wrap: raw < prev && step > 0 && step <= maxGapMs ? 32 : 0 };
}

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
  readonly #video = new Track(33);
  readonly #audio = new Track(23);

  constructor(options: TimestampRepairOptions = {}) {
    this.#maxGap = Math.max(1, Math.floor(options.maxGapMs ?? DEFAULT_MAX_GAP_MS));
    this.#maxSkew = Math.max(0, Math.floor(options.maxAvSkewMs ?? DEFAULT_MAX_AV_SKEW_MS));
  }

  /** Returns the tag with a repaired timestamp (a new object; data untouched), or null to drop it. */
  repair(tag: MediaTag): MediaTag | null {
    if (tag.type !== FlvTagType.Video && tag.type !== FlvTagType.Audio) return at(tag, this.#sessionTime());
    const track = tag.type === FlvTagType.Video ? this.#video : this.#audio;
    // Sequence headers become extradata in FFmpeg, not packets: they take the time they arrive at and
    // change nothing, so a new encoder's header cannot move the timeline.
    if (tag.isConfig) return at(tag, track.lastOut >= 0 ? track.lastOut : this.#sessionTime());
    return at(tag, this.#time(track, tag.timestamp >>> 0));
  }

  /**
   * An access unit on the repaired timeline (a new object; payload untouched): its DTS repaired like a tag's
   * timestamp (whole ms; a fraction from a 90 kHz source is kept), its PTS moved with it. Not wrapped: the
   * media core's timeline is a number of ms that only grows.
   */
  repairAu(au: AccessUnit): AccessUnit {
    const whole = Math.floor(au.dts);
    const out = this.#time(au.track === 'video' ? this.#video : this.#audio, whole >>> 0);
    const dts = out + (au.dts - whole);
    return { ...au, dts, pts: dts + (au.pts - au.dts) };
  }

  /** Where the next configuration goes: its track's last output, or the session's time. */
  configTime(track: TrackKind): number {
    const t = track === 'video' ? this.#video : this.#audio;
    return t.lastOut >= 0 ? t.lastOut : this.#sessionTime();
  }

  #time(track: Track, raw: number): number {
    const other = track === this.#video ? this.#audio : this.#video;
    const out = track.started ? this.#next(track, other, raw) : this.#first(track, other, raw);
    track.started = true;
    track.lastRaw = raw;
    track.lastOut = out;
    return out;
  }

  /**
   * Start a new publish session continuing the same output timeline (reconnect): the next tags continue
   * from the last output plus a frame interval, whatever timestamps the new session starts at.
   */
  continueAfterReconnect(): void {
    for (const track of [this.#video, this.#audio]) {
      track.started = false;
      track.pending = 0;
    }
  }

  /** The latest output of either track: where script tags and a track's first config go. */
  #sessionTime(): number {
    return Math.max(0, this.#video.lastOut, this.#audio.lastOut);
  }

  /** The first media tag of a track in this session. */
  #first(track: Track, other: Track, raw: number): number {
    let out: number;
    if (!other.started) {
      // The session's first media tag: rebase to 0, or just after the previous session's output.
      const int32 = raw | 0;
      track.lastIn = int32 < 0 && int32 >= -NEGATIVE_START_WINDOW_MS ? int32 : raw;
      const previous = Math.max(track.lastOut, other.lastOut);
      out = previous < 0 ? 0 : previous + track.interval(this.#maxGap);
    } else {
      // The second track reads its clock against the first's, so both share one rebase.
      const { step } = stepFrom(other.lastRaw, raw, this.#maxGap);
      track.lastIn = other.lastIn + step;
      out = track.lastIn + other.offset;
      // Far from the other track (its own clock base, or a late start on a stale clock): line up with it.
      if (out < other.lastOut - this.#maxSkew || out > other.lastOut + this.#maxGap) {
        out = other.lastOut;
        this.counts.avSkew++;
      }
      // Starting slightly before the other track's first tag (audio priming) must not go below 0.
      out = Math.max(out, 0, track.lastOut + 1);
    }
    if (track.lastIn < 0) this.counts.negative++;
    track.offset = out - track.lastIn;
    return out;
  }

  #next(track: Track, other: Track, raw: number): number {
    const maxGap = this.#maxGap;
    const { step, wrap } = stepFrom(track.lastRaw, raw, maxGap);
    const previousIn = track.lastIn;
    const input = previousIn + step;
    track.lastIn = input;
    // Crossing 0 from a negative start is not a wrap, just the clock passing 0.
    if (wrap === 31 || (wrap === 32 && previousIn >= 0)) this.counts.wrap++;
    if (input < 0) this.counts.negative++;
    if (track.pending !== 0 && track.lastOut - track.pendingAt > maxGap) track.pending = 0;

    const candidate = input + track.offset;
    const delta = candidate - track.lastOut;
    let out: number;
    if (delta === 0 || (delta < 0 && step === 0)) {
      // Repeated timestamps: FFmpeg rejects equal DTS (audio included), so 1 ms on, offset kept.
      out = track.lastOut + 1;
      this.counts.duplicate++;
    } else if (delta < 0 && -delta <= Math.max(this.#maxSkew, REORDER_FRAMES * track.interval(maxGap))) {
      // Reordering (B-frames sent in PTS order): 1 ms on with the offset kept, so the next in-order tag
      // lands where it belongs; moving the offset each time would ratchet the timeline forward.
      out = track.lastOut + 1;
      this.counts.backward++;
    } else if (delta >= 1 && delta <= maxGap) {
      out = candidate;
      track.sample(delta);
    } else {
      out = this.#discontinuity(track, other, candidate, delta);
    }

    // Trailing the other track by more than the bound (it was held back, or its gap was closed while this
    // one played through): move this track later. Never earlier, so monotonicity always holds.
    const floor = other.lastOut - this.#maxSkew;
    if (other.lastOut >= 0 && out < floor) {
      track.offset += Math.max(0, floor - (input + track.offset));
      out = floor;
      this.counts.avSkew++;
    }
    return out;
  }

  /** A step back past reordering, or forward past `maxGapMs`. */
  #discontinuity(track: Track, other: Track, candidate: number, delta: number): number {
    const maxGap = this.#maxGap;
    // The other track already closed this same jump: take its offset change, count nothing (closed once).
    const followed = candidate + track.pending - track.lastOut;
    if (track.pending !== 0 && followed >= 1 && followed <= maxGap) {
      track.offset += track.pending;
      track.pending = 0;
      track.sample(followed);
      return track.lastOut + followed;
    }
    // Landing where the other track already is: this track had a real gap while the other played on.
    // Closing it would put this track behind by the whole gap.
    if (
      delta > maxGap &&
      other.started &&
      candidate >= other.lastOut - this.#maxSkew &&
      candidate <= other.lastOut + other.interval(maxGap) + this.#maxSkew
    ) {
      return candidate;
    }
    // Close it: land one frame interval after this track's last output, and offer the same change to the
    // other track, which adopts it only if it makes the same jump (a reset or stall of the whole stream).
    const out = track.lastOut + track.interval(maxGap);
    const change = out - candidate;
    track.offset += change;
    track.pending = 0;
    if (other.started) {
      if (other.pending === 0) other.pendingAt = other.lastOut;
      other.pending += change;
    }
    if (delta > 0) this.counts.jumpForward++;
    else this.counts.backward++;
    return out;
  }
}

/** A copy of the tag at `out`, as an FLV timestamp (past 2^32, some 49 days in, it wraps as FLV does). */
function at(tag: MediaTag, out: number): MediaTag {
  return { ...tag, timestamp: out % TWO_32 };
}
