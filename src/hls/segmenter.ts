/**
 * The segmenter of one packager: groups fMP4 fragments (the CMAF writer's, one per video frame, or FFmpeg's)
 * into the segment being produced and its LL-HLS parts, and hands each closed part and segment on. Pure: no
 * timers, no I/O; its time comes from the fragments and its wall clock from the injected PDT clock.
 *
 * - TARGETDURATION is decided when the first segment closes, from the GOP it saw (RFC 8216 §4.3.3.1 wants it
 *   fixed for the playlist's life, and no playlist is served before the first segment): the first segment
 *   closes at the first keyframe past 0.75 × the smallest TARGETDURATION allowed, its duration rounded
 *   (as EXTINF is) becomes TARGETDURATION, within [min, max]. A 2 s GOP gives 2, a 1 s GOP 1, a GOP longer
 *   than the max is cut at the max (a breach) and the max it is. Deciding it at creation, before the GOP
 *   was known, announced the worst case (4 or 6 for 2 s keyframes), and a classic player keeps three
 *   TARGETDURATIONs behind the edge. A fixed `targetDuration` skips the decision.
 * - Segments are cut on keyframe fragments (with a decided TARGETDURATION at every keyframe past a quarter
 *   of it: one GOP a segment; else aiming at the segment target), and never
 *   longer than TARGETDURATION (a GOP that runs past it is cut anyway and counted as a breach); a
 *   keyframe known to be coming (`hintKeyframe`) closes the segment as soon as its fragments reach it.
 * - A part closes as soon as it reaches 85 % of the PART-TARGET (rfc8216bis §4.4.4.9 asks that of every part
 *   but the last of a segment and the independent ones), and before a fragment that would take it past the
 *   PART-TARGET, so every part but a single frame longer than the target (a stream under about 2 fps) fits:
 *   PART-TARGET is the configured part length and states the truth; the rare frame that does not fit is
 *   counted (`partBreaches`). Parts are named by one counter per stream, so the preload hint can name the
 *   next part before anyone knows whether it opens a new segment.
 * - A new run (`newRun`: FFmpeg restart, publisher back, profile switch) starts a new segment with a
 *   discontinuity, so its EXT-X-DISCONTINUITY and EXT-X-MAP always stand before the first part of a segment
 *   (hls.js ≥ 1.6.17 accepts that at the live edge; a discontinuity tag added to listed parts is its fatal
 *   "discontinuity sequence mismatch").
 * - What a playlist has shown is never taken back: `discardFrom` keeps the parts already listed.
 *
 * Bytes: a closing part copies its fragments once into a Buffer of its own, and the fragments kept for
 * `discardFrom` become views into it, so the open segment holds each byte once and the producer's buffers
 * (slices of FFmpeg's read chunks or of Node's shared pool) are released within a part. A closed segment
 * keeps no fragment objects (see segment-store.ts). Measured against keeping the producer's fragments and
 * making a part's bytes on its first request (50 interleaved 13 fps streams, 2 min each): the same
 * ArrayBuffer memory, half the heap (51 KB against 98 KB a stream: no fragment objects and no lazy part
 * per open segment), CPU within the noise (copying ~125 KB/s a stream costs far less than the objects
 * around it); and a part stays plain data.
 */
import type { Fmp4Fragment } from '../media/fmp4.ts';
import type { OpenPlaylistSegment } from './playlist.ts';
import { type ClosedSegment, ownedConcat, type Part, partUri, segmentUri } from './segment-store.ts';

export interface PackagerStats {
  segments: number;
  fragments: number;
  discontinuities: number;
  /** Segments cut without a keyframe because the GOP ran past TARGETDURATION. */
  breaches: number;
  /** Fragments dropped (before any init, after the end, or discarded at a profile switch). */
  droppedFragments: number;
  longestSegment: number;
  parts: number;
  /** Parts longer than PART-TARGET: one fragment (a frame) longer than the target. */
  partBreaches: number;
  /** Parts under 85 % of PART-TARGET that are neither independent nor the last of their segment. */
  shortParts: number;
  longestPart: number;
}

/** Bounds of a TARGETDURATION decided by the first segment, whole seconds. */
export interface TargetDurationRange {
  min: number;
  max: number;
}

/** What the segmenter needs of the PDT clock (pdt-clock.ts). */
export interface SegmentClock {
  arrived(mediaEndSeconds: number): void;
  dateOf(mediaSeconds: number): number;
}

export interface SegmenterOptions {
  prefix: string;
  /** Segment length aimed at, seconds. */
  segmentSeconds: number;
  /**
   * EXT-X-TARGETDURATION: no segment is longer (rounded). A number fixes it; a range lets the first segment
   * decide it (see above).
   */
  targetDuration: number | TargetDurationRange;
  /** PART-TARGET, seconds. */
  partTarget: number;
  /** Whether the open segment's parts are listed (what `discardFrom` must keep). */
  lowLatency: boolean;
  clock: SegmentClock;
  /** A part closed (it is listed from now on, when low latency is on). */
  onPart(part: Part): void;
  /** A segment closed. */
  onSegment(segment: ClosedSegment): void;
  /** TARGETDURATION was decided (once, before the first segment is handed on). */
  onTargetDuration?(targetDuration: number): void;
}

/** A part closes once it holds this share of PART-TARGET (rfc8216bis §4.4.4.9: at least 85 %). */
const PART_FILL = 0.85;
/** Durations are printed with 3 decimals: anything within half a millisecond of the target fits. */
export const PART_TOLERANCE = 0.0004;
/** Less than half a frame at 30 fps: only the boundary at the hinted keyframe is that close to it. */
const HINT_SLACK_SECONDS = 0.015;

interface OpenPart {
  /** The producer's fragments, until the part closes. */
  fragments: Fmp4Fragment[];
  duration: number;
  /** The first fragment with video starts with a keyframe; null until one came. */
  independent: boolean | null;
}

interface OpenSegment {
  msn: number;
  parts: Part[];
  /** Fragments of each closed part, views into its bytes (for `discardFrom` and the segment's facts). */
  partFragments: Fmp4Fragment[][];
  part: OpenPart;
  duration: number;
  /** End (media seconds) of the last fragment that counted, for keyframe hints. */
  end: number | null;
  /** Media time of its first fragment. */
  start: number;
  /** Set when it is first listed (the run's PDT offset is fixed then). */
  programDateTime: number | null;
  discontinuity: boolean;
  initUri: string;
  firstPart: number;
}

const emptyPart = (): OpenPart => ({ fragments: [], duration: 0, independent: null });

export class Segmenter {
  readonly stats: PackagerStats = {
    segments: 0,
    fragments: 0,
    discontinuities: 0,
    breaches: 0,
    droppedFragments: 0,
    longestSegment: 0,
    parts: 0,
    partBreaches: 0,
    shortParts: 0,
    longestPart: 0,
  };
  readonly #o: SegmenterOptions;
  #initUri: string | null = null;
  /** Track id of the video track of the current run; null when it has none. */
  #videoTrack: number | null = null;
  #pendingDiscontinuity = false;
  #open: OpenSegment | null = null;
  #nextMsn = 0;
  #nextPart = 0;
  /** Output time (s) of a keyframe known to be coming (from the input side), or null. */
  #keyframeHint: number | null = null;
  #ended = false;
  /** TARGETDURATION once decided (from the start when fixed). */
  #targetDuration: number | null;
  readonly #range: TargetDurationRange;

  constructor(options: SegmenterOptions) {
    this.#o = options;
    const td = options.targetDuration;
    this.#targetDuration = typeof td === 'number' ? td : null;
    this.#range = typeof td === 'number' ? { min: td, max: td } : td;
  }

  /** TARGETDURATION, or null until the first segment closed and decided it. */
  get targetDuration(): number | null {
    return this.#targetDuration;
  }

  /** The longest a segment may be now: TARGETDURATION, or the range's max until it is decided. */
  get #limit(): number {
    return this.#targetDuration ?? this.#range.max;
  }

  /**
   * A keyframe cuts the open segment once it holds this much (seconds). Undecided: the first GOP past the
   * smallest TARGETDURATION allowed decides it. Decided from a GOP, TARGETDURATION leaves no room for two:
   * a GOP that fits after a short one may not (keyframes at 8, 9 and 10.8 s with TARGETDURATION 2 made a
   * 2.8 s segment), so any keyframe past a quarter of it cuts; a fixed one keeps 0.75 × the target.
   */
  get #cutAt(): number {
    const td = this.#targetDuration;
    if (td === null) return 0.75 * this.#range.min;
    const target = 0.75 * Math.min(this.#o.segmentSeconds, td);
    return this.#range.min === this.#range.max ? target : Math.min(target, 0.25 * td);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Whether a segment is being produced. */
  get isOpen(): boolean {
    return this.#open !== null;
  }

  /** MSN the segment being produced has (or the next one will have). */
  get nextMsn(): number {
    return this.#nextMsn;
  }

  /** Number of the part that comes next (what EXT-X-PRELOAD-HINT names). */
  get nextPart(): number {
    return this.#nextPart;
  }

  /** Parts of the open segment a playlist lists (none without low latency). */
  get listedParts(): readonly Part[] {
    const open = this.#open;
    return open && this.#o.lowLatency ? open.parts : [];
  }

  /** The open segment as a playlist lists it; null when it has no listed part. */
  get listing(): OpenPlaylistSegment | null {
    const open = this.#open;
    const parts = this.listedParts;
    if (!open || parts.length === 0) return null;
    return {
      discontinuity: open.discontinuity,
      initUri: open.initUri,
      programDateTime: this.#dateOf(open),
      parts,
    };
  }

  /** A closed part of the open segment by number; undefined for one that is not (or not yet) there. */
  openPart(n: number): Part | undefined {
    const open = this.#open;
    return open && n >= open.firstPart ? open.parts.find((p) => p.n === n) : undefined;
  }

  /** Whether part number `n` is one of the open segment's, or one still to come. */
  holdsPart(n: number): boolean {
    const open = this.#open;
    return open ? n >= open.firstPart : n >= this.#nextPart;
  }

  /**
   * A new run begins (its init segment is `initUri`): the open segment closes, and after the first run the
   * next segment carries a discontinuity.
   */
  newRun(initUri: string, videoTrack: number | null): void {
    this.closeOpen();
    if (this.#initUri !== null) this.#pendingDiscontinuity = true;
    this.#initUri = initUri;
    this.#videoTrack = videoTrack;
    this.#keyframeHint = null;
  }

  push(fragment: Fmp4Fragment): void {
    if (this.#initUri === null || this.#ended) {
      this.stats.droppedFragments++;
      return;
    }
    this.stats.fragments++;
    const media = this.#bearsMedia(fragment);
    const duration = media ? fragment.durationSeconds : 0;
    if (media) this.#o.clock.arrived(fragment.startSeconds + duration);
    let carried: Fmp4Fragment[] = [];
    const open = this.#open;
    if (open && media) {
      const cutOnKeyframe = fragment.keyframe && open.duration >= this.#cutAt;
      const wouldOverrun = Math.round(open.duration + duration) > this.#limit;
      if (cutOnKeyframe || wouldOverrun) {
        if (!fragment.keyframe) this.stats.breaches++;
        this.#decide(open, fragment.keyframe);
        // Audio-only fragments at the end of the open part (no video time of their own) go with the next
        // segment, so no part of zero duration is made.
        if (open.part.fragments.length > 0 && !open.part.fragments.some((f) => this.#bearsMedia(f))) {
          carried = open.part.fragments;
          open.part = emptyPart();
        }
        this.closeOpen();
      }
    }
    const segment = this.#open ?? this.#openSegment(fragment);
    for (const f of carried) this.#addToPart(segment, f);
    this.#addToPart(segment, fragment);
    this.#closeAtHint();
  }

  /**
   * A keyframe is known to start at `seconds` (output time): the segment before it may close as soon as
   * its fragments reach that time, instead of when the keyframe's own fragment arrives.
   */
  hintKeyframe(seconds: number): void {
    this.#keyframeHint = seconds;
    this.#closeAtHint();
  }

  /**
   * Drops the open segment's fragments from the keyframe fragment at `seconds` on (that GOP is fed to the
   * next FFmpeg again). The time is mapped from input timestamps, so it may be off by a frame: the first
   * keyframe fragment from 0.1 s before it is taken as the cut. Parts a playlist has shown are kept: what
   * comes after them is dropped instead (the replay shows that GOP again after a discontinuity).
   */
  discardFrom(seconds: number): void {
    const open = this.#open;
    if (!open) return;
    const shown = this.listedParts.length;
    const shownFragments = open.partFragments.slice(0, shown).flat();
    const all = [...shownFragments, ...open.partFragments.slice(shown).flat(), ...open.part.fragments];
    const cut = all.findIndex((f) => f.keyframe && f.startSeconds >= seconds - 0.1);
    if (cut < 0) return;
    const from = Math.max(cut, shownFragments.length);
    this.stats.droppedFragments += all.length - from;
    this.stats.parts -= open.parts.length - shown;
    const regroup = all.slice(shownFragments.length, from);
    // The shown parts stay as they are; the rest is regrouped into new parts (new numbers: a name is never
    // given to two different contents).
    open.parts = open.parts.slice(0, shown);
    open.partFragments = open.partFragments.slice(0, shown);
    open.part = emptyPart();
    open.duration = open.parts.reduce((sum, p) => sum + p.duration, 0);
    open.end = null;
    for (const f of shownFragments) if (this.#bearsMedia(f)) open.end = f.startSeconds + f.durationSeconds;
    if (open.parts.length === 0 && regroup.length === 0) {
      if (open.discontinuity) this.#pendingDiscontinuity = true;
      this.#open = null;
      return;
    }
    for (const f of regroup) this.#addToPart(open, f);
  }

  /** Completes the open segment, if any (a producer ended, publisher gone, new run). */
  closeOpen(): void {
    const open = this.#open;
    this.#open = null;
    if (!open) return;
    if (open.part.fragments.some((f) => this.#bearsMedia(f))) this.#closePart(open, true);
    else this.stats.droppedFragments += open.part.fragments.length; // trailing audio-only fragments
    if (open.parts.length === 0) {
      if (open.discontinuity) this.#pendingDiscontinuity = true;
      return;
    }
    this.#decide(open, false);
    const segment: ClosedSegment = {
      msn: open.msn,
      uri: segmentUri(this.#o.prefix, open.msn),
      duration: open.duration,
      discontinuity: open.discontinuity,
      initUri: open.initUri,
      programDateTime: this.#dateOf(open),
      independent: open.parts[0]!.independent,
      parts: open.parts,
      fragments: open.partFragments.flat(),
    };
    this.#nextMsn = open.msn + 1;
    if (segment.discontinuity) this.stats.discontinuities++;
    this.stats.segments++;
    this.stats.longestSegment = Math.max(this.stats.longestSegment, segment.duration);
    this.#o.onSegment(segment);
  }

  /** The stream is over: the last segment closes, and later fragments are dropped. */
  end(): void {
    this.closeOpen();
    this.#ended = true;
  }

  /**
   * Fixes TARGETDURATION when the first segment closes: at a keyframe, its duration is the GOP; closed for
   * another reason (publisher gone, a new run, cut at the max) it says less about the GOP, so no less than
   * the segment target is announced.
   */
  #decide(open: OpenSegment, atKeyframe: boolean): void {
    if (this.#targetDuration !== null) return;
    const { min, max } = this.#range;
    const seen = Math.max(1, Math.round(open.duration));
    const td = atKeyframe ? seen : Math.max(seen, Math.ceil(this.#o.segmentSeconds));
    this.#targetDuration = Math.min(max, Math.max(min, td));
    this.#o.onTargetDuration?.(this.#targetDuration);
  }

  #closeAtHint(): void {
    const open = this.#open;
    const hint = this.#keyframeHint;
    if (!open || hint === null || open.end === null) return;
    if (open.end > hint + HINT_SLACK_SECONDS) {
      this.#keyframeHint = null; // passed without a cut: the keyframe fragment decides as usual
    } else if (open.end >= hint - HINT_SLACK_SECONDS && open.duration >= this.#cutAt) {
      this.#keyframeHint = null;
      this.#decide(open, true);
      this.closeOpen();
    }
  }

  #openSegment(first: Fmp4Fragment): OpenSegment {
    const segment: OpenSegment = {
      msn: this.#nextMsn,
      parts: [],
      partFragments: [],
      part: emptyPart(),
      duration: 0,
      end: null,
      start: first.startSeconds,
      programDateTime: null,
      discontinuity: this.#pendingDiscontinuity,
      initUri: this.#initUri!,
      firstPart: this.#nextPart,
    };
    this.#pendingDiscontinuity = false;
    this.#open = segment;
    return segment;
  }

  /** Adds a fragment to the open part; closes the part before it if it would overrun, or after it when full. */
  #addToPart(open: OpenSegment, fragment: Fmp4Fragment): void {
    const target = this.#o.partTarget;
    const media = this.#bearsMedia(fragment);
    const duration = media ? fragment.durationSeconds : 0;
    if (duration > 0 && open.part.duration > 0 && open.part.duration + duration > target + PART_TOLERANCE) {
      this.#closePart(open, false);
    }
    const part = open.part;
    part.fragments.push(fragment);
    part.duration += duration;
    open.duration += duration;
    if (media) {
      part.independent ??= fragment.keyframe;
      open.end = fragment.startSeconds + duration;
    }
    if (part.duration >= PART_FILL * target - PART_TOLERANCE) this.#closePart(open, false);
  }

  #closePart(open: OpenSegment, last: boolean): void {
    const { fragments, duration } = open.part;
    if (fragments.length === 0) return;
    const independent = open.part.independent ?? false;
    const data = ownedConcat(fragments.map((f) => f.data));
    // The fragments stay (for discardFrom) as views into the part: the producer's buffers are let go.
    const views: Fmp4Fragment[] = [];
    let offset = 0;
    for (const f of fragments) {
      views.push({ ...f, data: data.subarray(offset, offset + f.data.length) });
      offset += f.data.length;
    }
    const n = this.#nextPart;
    const part: Part = { n, uri: partUri(this.#o.prefix, n), duration, independent, data };
    this.#nextPart = n + 1;
    open.parts.push(part);
    open.partFragments.push(views);
    open.part = emptyPart();
    // Listed from now on (low latency): the run's PDT offset is fixed by the first listing.
    if (this.listedParts.length > 0) this.#dateOf(open);
    this.stats.parts++;
    this.stats.longestPart = Math.max(this.stats.longestPart, duration);
    if (duration > this.#o.partTarget + PART_TOLERANCE) this.stats.partBreaches++;
    else if (!last && !independent && duration < PART_FILL * this.#o.partTarget - PART_TOLERANCE) {
      this.stats.shortParts++;
    }
    this.#o.onPart(part);
  }

  /**
   * Whether a fragment carries the stream's timeline: its video, or anything when there is no video. An
   * audio-only fragment of a stream with video (FFmpeg flushes on audio too) adds no time of its own.
   */
  #bearsMedia(fragment: Fmp4Fragment): boolean {
    return this.#videoTrack === null || fragment.runs.some((r) => r.trackId === this.#videoTrack);
  }

  #dateOf(open: OpenSegment): number {
    open.programDateTime ??= this.#o.clock.dateOf(open.start);
    return open.programDateTime;
  }
}
