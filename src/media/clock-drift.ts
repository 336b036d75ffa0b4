/**
 * Timing that follows the arrival clock when the media clock lies (issue 15). Glasses drop frames and
 * renumber the rest, or run their clock fast or slow: the media time they send then grows at 0.8× or 1.2×
 * real time, and a player, which plays at 1×, drifts away from the live edge and stalls. The stream's
 * timeline (after timestamp repair) is measured against when its access units arrive, over a window; when
 * the media clock runs off real time past a bound, the stream is re-stamped at the measured rate.
 *
 * - Measure: video access units (all of them without video) give (arrival, media) points; the rate over
 *   the last `windowMs` (6 s) of arrival, and over each half of it, is media time per arrival time.
 * - Decide: a lying clock is steady, a network burst is not: the re-stamp rate changes only when both halves
 *   of a full window (of half a window, for a lie past 2.5 bounds: 10 %, which moves a player fast) say the
 *   output clock runs more than `bound` off real time, and agree with each other
 *   within `bound` (a backlog delivered at once fills one half), and the media clock is within MAX_CLOCK_LIE
 *   of real time (further off, it is a push, e.g. a file at 2×). A correct clock never moves the rate.
 * - Re-stamp: output = base + (media − mediaBase) × scale, one mapping for audio and video (they stay in
 *   step), re-anchored at the current media time when the scale changes: continuous, so no backward step and
 *   no jump; a video frame's spacing changes by the scale, nothing else (no jitter). Counted (`restamps`).
 * - Follow: once re-stamped, a rate measured a few percent off (the first window holds the publish's start,
 *   or the clock wanders by less than `bound`) would still move a player 1 s away from the edge within a
 *   minute. So, every second, the scale is set from how fast the output's lead over arrival would grow at
 *   the current scale (between the halves of the window) and nudged, by at most MAX_CORRECTION, toward the
 *   lead where following began. Leads are the least delayed frames' (the max of each half): a network delay
 *   or a backlog makes frames late, never early; a window with a stall in it is not measured. Changes under
 *   FOLLOW_DEADBAND are left alone (counted: `corrections`).
 * - Audio: an audio frame keeps its own duration: a re-stamp slower than the media clock drops the frames that no
 *   longer fit, a faster one fills the time they no longer cover with silent frames (both counted).
 * Pure and total: the caller passes arrival times; no timers, no I/O.
 */
import type { AccessUnit } from './access-unit.ts';

export interface ClockDriftOptions {
  /** How far off real time the output clock may run before it is re-stamped (default 0.04: 4 %). */
  bound?: number;
  /** The measuring window, ms of arrival time (default 6000: a player that joined is corrected within seconds). */
  windowMs?: number;
}

export interface ClockDriftStats {
  /** Times the re-stamp rate changed. */
  restamps: number;
  /** The current re-stamp rate (output ms per media ms); 1 while the clock is trusted. */
  scale: number;
  /** The media clock's rate over the last window (media ms per arrival ms); null before a full window. */
  measuredRate: number | null;
  /**
   * Audio frames dropped: a re-stamped clock that runs slower than the media clock leaves less time than
   * the frames last (an AAC frame cannot be shortened), so frames that would overlap go (audio in step).
   */
  audioDropped: number;
  /** Silent audio frames added: a re-stamp faster than the media clock needs more audio than was sent. */
  silentFrames: number;
  /** Times the scale was adjusted while following the arrival clock (after a re-stamp; see above). */
  corrections: number;
  /**
   * While following: how far (ms) the output's lead over arrival is from where following began (positive:
   * the output runs ahead of real time, a player drifts behind); null otherwise.
   */
  leadError: number | null;
}

export const DEFAULT_DRIFT_BOUND = 0.04;
export const DEFAULT_DRIFT_WINDOW_MS = 6000;
/**
 * The most a media clock is taken to lie by (±35 %: the glasses' simulator ran at 0.82×); a publisher
 * faster or slower than that is pushing a file or a backlog, and is left as it is.
 */
export const MAX_CLOCK_LIE = 0.35;

/** Most silent frames before one frame (a second of 48 kHz AAC): a longer gap is the publisher's own. */
const MAX_SILENT_FRAMES = 47;

/** Most points kept: one per video frame at 120 fps over the window, with room. */
const MAX_POINTS = 4096;

/** A clock this many bounds off (10 %) is re-stamped from half a window, before a player drifts far. */
const BIG_LIE_BOUNDS = 2.5;
/** While following, how often the scale is looked at (ms of arrival). */
const FOLLOW_EVERY_MS = 1000;
/** The lead error is taken back over this long (ms): slow enough to be smooth, fast enough to stay close. */
const CORRECT_OVER_MS = 10_000;
/** The most the lead correction moves the scale (2 %: a frame's spacing, not a visible speed change). */
const MAX_CORRECTION = 0.02;
/** Scale changes smaller than this (0.2 %) are not made: no re-anchoring on every bit of jitter. */
const FOLLOW_DEADBAND = 0.002;
/** A window with nothing arriving for this long (ms) holds a stall and its backlog: not measured. */
const MAX_GAP_MS = 1000;

interface Point {
  arrival: number;
  media: number;
  /** Output time the mapping in force gave it. */
  out: number;
}

export class ClockDrift {
  readonly stats: ClockDriftStats = {
    restamps: 0,
    scale: 1,
    measuredRate: null,
    audioDropped: 0,
    silentFrames: 0,
    corrections: 0,
    leadError: null,
  };
  readonly #bound: number;
  readonly #windowMs: number;
  #points: Point[] = [];
  /** The mapping: output = outBase + (media − mediaBase) × scale. */
  #mediaBase = 0;
  #outBase = 0;
  /** Whether the mapping has seen its first access unit (its base). */
  #anchored = false;
  #hasVideo = true;
  /** An audio frame's own duration (ms), when the publish's audio configuration says it. */
  #audioFrameMs: number | null = null;
  /** A silent frame of the publish's audio, to fill time its own frames no longer cover. */
  #silentFrame: Buffer | null = null;
  /** Output DTS of the last audio frame passed on. */
  #lastAudioOut: number | null = null;
  /** Following the arrival clock (see above): since the first re-stamp. */
  #following = false;
  /** The output's lead over arrival when following began (ms); null until a full window was measured. */
  #leadRef: number | null = null;
  /** Arrival time of the last look at the scale while following. */
  #lastFollow = Number.NEGATIVE_INFINITY;

  constructor(options: ClockDriftOptions = {}) {
    this.#bound = options.bound ?? DEFAULT_DRIFT_BOUND;
    this.#windowMs = options.windowMs ?? DEFAULT_DRIFT_WINDOW_MS;
  }

  /**
   * A new publish: its media clock is measured afresh; the mapping goes on from where it is (continuous).
   * `audioFrameMs` is an audio frame's own duration (AAC: 1024 samples), when known.
   */
  newPublish(hasVideo: boolean, audio: { frameMs: number; silentFrame: Buffer | null } | null = null): void {
    this.#points = [];
    // Still following (the same glasses, likely), but arrival and output relate anew after the gap.
    this.#leadRef = null;
    this.stats.leadError = null;
    this.#hasVideo = hasVideo;
    this.#audioFrameMs = audio?.frameMs ?? null;
    this.#silentFrame = audio?.silentFrame ?? null;
    this.stats.measuredRate = null;
  }

  /**
   * The access unit on the output clock: none for an audio frame dropped, or silent audio frames before it
   * (see `#audio`); `arrivalMs` is when it arrived (any monotonic ms clock).
   */
  restamp(au: AccessUnit, arrivalMs: number): AccessUnit[] {
    if (!this.#anchored) {
      this.#anchored = true;
      this.#mediaBase = au.dts;
      this.#outBase = au.dts;
    }
    if (au.track === 'video' || !this.#hasVideo) this.#measure(arrivalMs, au.dts);
    if (this.stats.scale === 1 && this.#mediaBase === this.#outBase) {
      if (au.track === 'audio') this.#lastAudioOut = au.dts;
      return [au];
    }
    const dts = this.#map(au.dts);
    if (au.track === 'audio' && this.#hasVideo) return this.#audio(au, dts);
    return [{ ...au, dts, pts: this.#map(au.pts) }];
  }

  /**
   * An audio frame lasts what it lasts whatever its timestamp. On a clock re-stamped slower than the media
   * clock, a frame that would start more than half a frame before the previous one ends is dropped; one
   * that fits goes right after it. On a faster one, the time the publisher's audio no longer covers is
   * filled with silent frames (a player's buffer with holes in its audio stalls at the first): the audio
   * stays in step with the video, and its own frames keep their place.
   */
  #audio(au: AccessUnit, dts: number): AccessUnit[] {
    const frame = this.#audioFrameMs;
    const last = this.#lastAudioOut;
    if (frame === null || last === null) {
      this.#lastAudioOut = dts;
      return [{ ...au, dts, pts: dts }];
    }
    if (dts < last + frame / 2) {
      this.stats.audioDropped++;
      return [];
    }
    const out: AccessUnit[] = [];
    let at = last + frame;
    const silence = this.#silentFrame;
    // Whole frames of silence while the gap before this frame holds one (a smaller gap: it moves up).
    while (silence && dts - at >= frame && out.length < MAX_SILENT_FRAMES) {
      out.push({ track: 'audio', dts: at, pts: at, keyframe: true, data: silence });
      this.stats.silentFrames++;
      at += frame;
    }
    at = Math.max(at, silence ? at : dts);
    this.#lastAudioOut = at;
    out.push({ ...au, dts: at, pts: at });
    return out;
  }

  #map(media: number): number {
    return this.#outBase + (media - this.#mediaBase) * this.stats.scale;
  }

  #measure(arrival: number, media: number): void {
    const points = this.#points;
    const last = points[points.length - 1];
    if (last && (arrival < last.arrival || media < last.media)) {
      this.#points = []; // a clock that stepped back (a new run): measure afresh
    }
    points.push({ arrival, media, out: this.#map(media) });
    while (
      points.length > MAX_POINTS ||
      (points.length > 2 && arrival - points[1]!.arrival >= this.#windowMs)
    ) {
      points.shift();
    }
    const first = points[0]!;
    const full = arrival - first.arrival >= this.#windowMs * 0.9;
    if (this.#following) {
      if (full) this.#follow(arrival, media);
      return;
    }
    // A big lie is acted on from half a window: each second at 1.2x carries a player 0.2 s further.
    if (arrival - first.arrival < this.#windowMs * 0.5) return;
    const rate = rateOf(first, points[points.length - 1]!);
    if (full) this.stats.measuredRate = rate;
    const midArrival = first.arrival + (arrival - first.arrival) / 2;
    const mid = points.find((p) => p.arrival >= midArrival) ?? first;
    const early = rateOf(first, mid);
    const late = rateOf(mid, points[points.length - 1]!);
    if (rate === null || early === null || late === null) return;
    const scale = this.stats.scale;
    // How fast the output clock runs against real time, over the window and each half of it.
    const off = (r: number): number => r * scale - 1;
    const steady = Math.abs(early - late) * scale <= this.#bound;
    const drifting =
      Math.abs(off(rate)) > (full ? 1 : BIG_LIE_BOUNDS) * this.#bound &&
      Math.sign(off(early)) === Math.sign(off(late));
    // Past MAX_CLOCK_LIE the publisher is pushing (a file sent as fast as it goes, a test at 2×), not lying:
    // its media time is the truth and no player follows it live anyway.
    if (!steady || !drifting || Math.abs(rate - 1) > MAX_CLOCK_LIE) return;
    // Re-anchor at the current media time, then run at the measured rate: output grows as arrival does.
    this.#outBase = this.#map(media);
    this.#mediaBase = media;
    this.stats.scale = 1 / rate;
    this.stats.restamps++;
    // Following from here; its first look needs a full window measured at the new scale's start.
    this.#following = true;
    this.#leadRef = null;
    this.#lastFollow = arrival;
    this.#points = [{ arrival, media, out: this.#map(media) }];
  }

  /**
   * Following (see above), every second of a full window: how fast the output's lead over arrival would
   * grow at the current scale (the window's media time mapped at it, between its two halves) and how far
   * the lead is from where following began set the next scale. Leads are those of the least delayed frames
   * of each half: a frame held up by the network or delivered in a backlog is late, never early, so it is
   * never the max.
   */
  #follow(arrival: number, media: number): void {
    if (arrival - this.#lastFollow < FOLLOW_EVERY_MS) return;
    this.#lastFollow = arrival;
    const points = this.#points;
    const first = points[0]!;
    const scale = this.stats.scale;
    const midArrival = first.arrival + (arrival - first.arrival) / 2;
    let early = Number.NEGATIVE_INFINITY;
    let late = Number.NEGATIVE_INFINITY;
    let lead = Number.NEGATIVE_INFINITY;
    let previous = first.arrival;
    for (const p of points) {
      // A stall in the window: what came after it is a backlog, late all of it; wait until it has passed.
      if (p.arrival - previous > MAX_GAP_MS) return;
      previous = p.arrival;
      const ahead = (p.media - first.media) * scale - (p.arrival - first.arrival);
      if (p.arrival < midArrival) early = Math.max(early, ahead);
      else {
        late = Math.max(late, ahead);
        lead = Math.max(lead, p.out - p.arrival);
      }
    }
    // Output ms per arrival ms at the current scale, less one: how fast the lead would grow.
    const drift = (late - early) / ((arrival - first.arrival) / 2);
    if (!Number.isFinite(drift) || Math.abs(drift) > MAX_CLOCK_LIE) return;
    if (this.#leadRef === null) this.#leadRef = lead;
    const error = lead - this.#leadRef;
    this.stats.leadError = error;
    this.stats.measuredRate = rateOf(first, points[points.length - 1]!);
    const correction = Math.min(MAX_CORRECTION, Math.max(-MAX_CORRECTION, error / CORRECT_OVER_MS));
    const factor = (1 - correction) / (1 + drift);
    if (Math.abs(factor - 1) < FOLLOW_DEADBAND) return;
    this.#outBase = this.#map(media);
    this.#mediaBase = media;
    this.stats.scale = scale * factor;
    this.stats.corrections++;
  }
}

/** Media ms per arrival ms between two points; null when they are too close to say. */
function rateOf(a: Point, b: Point): number | null {
  const arrival = b.arrival - a.arrival;
  if (arrival < 1000) return null;
  const rate = (b.media - a.media) / arrival;
  return rate > 0 ? rate : null;
}
