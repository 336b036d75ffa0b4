/**
 * The HLS packager of one stream, in memory, living as long as the stream (across publisher reconnects and
 * FFmpeg restarts). Hand-written because no library packages fMP4 fragments into live (LL-)HLS with our rules:
 * - segments are cut on keyframe fragments, aiming at the segment target, and never longer than the
 *   TARGETDURATION announced at creation (a GOP that runs past it is cut anyway and counted as a breach);
 * - MEDIA-SEQUENCE only grows; a new init segment (FFmpeg restart, publisher back, profile switch) puts an
 *   EXT-X-DISCONTINUITY on the next segment, and DISCONTINUITY-SEQUENCE grows when one leaves the list;
 * - segments that leave the playlist stay fetchable for their duration plus the playlist's (RFC 8216 §6.2.2);
 * - names carry a random prefix per stream incarnation, so a CDN can never mix two incarnations up.
 *
 * Low-latency HLS (`lowLatency`): FFmpeg writes small fragments (a frame or two each), and the packager groups
 * whole fragments into parts of the segment being produced. A part closes as soon as it reaches 85 % of the
 * PART-TARGET (rfc8216bis §4.4.4.9 asks that of every part but the last of a segment and the independent
 * ones), and before a fragment that would take it past the PART-TARGET, so every part but a single frame
 * longer than the target (a stream under about 2 fps) fits: PART-TARGET is the configured part length and
 * states the truth; the rare frame that does not fit is counted (`partBreaches`). Parts are named by one
 * counter per stream (`{prefix}-part{n}.m4s`), so the preload hint can name the next part before anyone
 * knows whether it opens a new segment. A new FFmpeg run (publisher back, restart, profile switch) starts a
 * new segment, so its EXT-X-DISCONTINUITY and EXT-X-MAP always stand before the first part of a segment and
 * are listed with that part, never added to parts already listed (hls.js ≥ 1.6.17 accepts that at the live
 * edge; a discontinuity tag added to listed parts is its fatal "discontinuity sequence mismatch"). What a
 * playlist has shown is never taken back: a profile switch or crash keeps the parts already listed (the
 * replayed GOP repeats after the discontinuity).
 * With LL on the playlist keeps at least CAN-SKIP-UNTIL + one TARGETDURATION of segments, so a delta update
 * has something to skip.
 *
 * EXT-X-PROGRAM-DATE-TIME maps media time to the wall clock with one offset per FFmpeg run, so within a
 * run PDTs advance exactly with the EXTINFs (hls.js aligns reloads by PDT and stalls on a disagreement).
 * The offset is fixed when the run's first segment is first listed: the smallest (arrival − media end) of
 * the fragments seen so far, i.e. the ingest time of a sample plus FFmpeg's delay (at a fresh start a little
 * of its start-up shows; after a restart the replayed GOP comes in a burst, so that run's PDTs can be late
 * by up to the replayed part of the GOP). Time comes from an injected clock, so tests need no timers.
 */
import { randomBytes } from 'node:crypto';
import type { Fmp4Fragment, Fmp4Init } from '../media/fmp4.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import {
  type OpenPlaylistSegment,
  type PlaylistPart,
  type PlaylistSegment,
  type RenditionReport,
  renderMediaPlaylist,
  type ServerControl,
  skippableSegments,
} from './playlist.ts';

export interface PackagerOptions {
  /** Segment length aimed at, seconds (HLS_SEGMENT_SECONDS). */
  segmentSeconds: number;
  /** EXT-X-TARGETDURATION, fixed for the packager's life. */
  targetDuration: number;
  /** Segments listed at least (HLS_LIST_SIZE); low latency may keep more (see above). */
  listSize: number;
  /** Low-latency HLS: parts, blocking reload, preload hints, delta updates (HLS_LOW_LATENCY). */
  lowLatency?: boolean;
  /** PART-TARGET in seconds (HLS_PART_SECONDS, default 0.5). */
  partSeconds?: number;
  now?: () => number;
  /** Name prefix; random by default. */
  prefix?: string;
}

export interface Part extends PlaylistPart {
  /** Its number in the stream (its name), counted from 0 across segments. */
  n: number;
  data: Buffer;
}

export interface Segment extends PlaylistSegment {
  msn: number;
  data: Buffer;
  fragments: Fmp4Fragment[];
  /** Starts with a keyframe. */
  independent: boolean;
  parts: Part[];
}

export interface PackagerStats {
  segments: number;
  fragments: number;
  discontinuities: number;
  /** Segments cut without a keyframe because the GOP ran past TARGETDURATION. */
  breaches: number;
  /** Fragments dropped (before any init, or discarded at a profile switch). */
  droppedFragments: number;
  longestSegment: number;
  parts: number;
  /** Parts longer than PART-TARGET: one fragment (a frame) longer than the target. */
  partBreaches: number;
  /** Parts under 85 % of PART-TARGET that are neither independent nor the last of their segment. */
  shortParts: number;
  longestPart: number;
}

export type PackagerEvents = {
  /** A new init segment (a new output run: FFmpeg's, or the copy writer's), under its playlist name. */
  init: [Fmp4Init, string];
  /** The first segment is complete: the stream is playable. */
  ready: [];
  segment: [Segment];
  part: [Part];
  /** Something a waiting request may be waiting for happened: a part, a segment, the end. */
  update: [];
};

/** Where the live edge stands, for blocking playlist reloads (rfc8216bis §6.2.5.2). */
export interface LiveEdge {
  /** MSN of the last complete segment; -1 before the first. */
  lastMsn: number;
  /** MSN the segment being produced has (or the next one will have). */
  openMsn: number;
  /** Parts of that segment the playlist lists. */
  openParts: number;
}

export const DEFAULT_PART_SECONDS = 0.5;
/** A part closes once it holds this share of PART-TARGET (rfc8216bis §4.4.4.9: at least 85 %). */
const PART_FILL = 0.85;
/** Durations are printed with 3 decimals: anything within half a millisecond of the target fits. */
const PART_TOLERANCE = 0.0004;
/** Less than half a frame at 30 fps: only the boundary at the hinted keyframe is that close to it. */
const HINT_SLACK_SECONDS = 0.015;
/** Parts are listed for segments that end within this many TARGETDURATIONs of the end (§6.2.2). */
const PART_LIST_TARGET_DURATIONS = 3;
/** The PROGRAM-DATE-TIME offset is the smallest seen over this window (drift between the clocks). */
const CLOCK_WINDOW_MS = 10_000;

interface OpenPart {
  fragments: Fmp4Fragment[];
  duration: number;
  /** The first fragment with video starts with a keyframe; null until one came. */
  independent: boolean | null;
}

interface OpenSegment {
  msn: number;
  parts: Part[];
  part: OpenPart;
  duration: number;
  /** End (media seconds) of the last fragment that counted, for keyframe hints. */
  end: number | null;
  /** Media time of its first fragment. */
  start: number;
  /** Set when it is first listed (see the top). */
  programDateTime: number | null;
  discontinuity: boolean;
  initUri: string;
  firstPart: number;
}

export class Packager extends TypedEmitter<PackagerEvents> {
  readonly targetDuration: number;
  readonly prefix: string;
  readonly lowLatency: boolean;
  /** PART-TARGET, seconds. */
  readonly partTarget: number;
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
  readonly #segmentSeconds: number;
  readonly #listSize: number;
  /** Seconds of segments kept listed at least (low latency: skip boundary + one TARGETDURATION). */
  readonly #minListSeconds: number;
  readonly #serverControl: ServerControl | undefined;
  readonly #now: () => number;
  readonly #inits = new Map<string, Buffer>();
  #init: string | null = null;
  #initCount = 0;
  /** Track id of the video track of the current init; null when it has none. */
  #videoTrack: number | null = null;
  #pendingDiscontinuity = false;
  #open: OpenSegment | null = null;
  #segments: Segment[] = [];
  /** Segments that left the playlist, fetchable until `expires`. */
  #retired: { segment: Segment; expires: number }[] = [];
  #nextMsn = 0;
  #nextPart = 0;
  #discontinuitySequence = 0;
  /** Output time (s) of a keyframe known to be coming (from the input side), or null. */
  #keyframeHint: number | null = null;
  /** (arrival ms, arrival − media end ms), increasing offsets: the front is the window's minimum. */
  #clock: { at: number; offset: number }[] = [];
  /** Wall clock − media time (ms) of this FFmpeg run, fixed once a segment of the run is listed. */
  #runOffset: number | null = null;
  /** Fragments of each closed part of an open segment, until the segment closes. */
  readonly #partFragments = new WeakMap<OpenSegment, Map<Part, Fmp4Fragment[]>>();
  #ended = false;

  constructor(options: PackagerOptions) {
    super();
    this.targetDuration = options.targetDuration;
    this.#segmentSeconds = options.segmentSeconds;
    this.#listSize = options.listSize;
    this.#now = options.now ?? Date.now;
    this.prefix = options.prefix ?? randomBytes(4).toString('hex');
    this.lowLatency = options.lowLatency ?? false;
    this.partTarget = options.partSeconds ?? DEFAULT_PART_SECONDS;
    const td = this.targetDuration;
    this.#serverControl = this.lowLatency
      ? {
          partTarget: this.partTarget,
          partHoldBack: 3 * this.partTarget,
          holdBack: 3 * td,
          canSkipUntil: 6 * td,
        }
      : undefined;
    this.#minListSeconds = this.lowLatency ? 7 * td : 0;
  }

  get ready(): boolean {
    return this.stats.segments > 0;
  }

  /**
   * Whether a player starting now starts well: with low latency, when complete segments after the first
   * hold PART-HOLD-BACK of media. hls.js (1.7) starts PART-HOLD-BACK from the end, on the independent part
   * before it; starting in the playlist's first segment, or loading the parts of a segment that completes
   * while it starts, it falls back to whole segments and can stall for seconds (seen in ll-hls tests). So
   * the origin holds the first playlist requests of a starting stream until then: they are answered right
   * as a segment completes, a few seconds after the first segment (bounded). A stream producing nothing
   * (publisher gone) is startable as it is.
   */
  get startable(): boolean {
    const sc = this.#serverControl;
    if (!sc || this.#ended || this.#open === null) return this.ready;
    const after = this.#segments.slice(1).reduce((sum, s) => sum + s.duration, 0);
    return this.ready && after >= sc.partHoldBack - PART_TOLERANCE;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get segments(): readonly Segment[] {
    return this.#segments;
  }

  /** EXT-X-SERVER-CONTROL and PART-INF values; undefined for a classic stream. */
  get serverControl(): ServerControl | undefined {
    return this.#serverControl;
  }

  /** Name of the part that comes next (what EXT-X-PRELOAD-HINT names). */
  get nextPartUri(): string {
    return this.#partUri(this.#nextPart);
  }

  get edge(): LiveEdge {
    return { lastMsn: this.#nextMsn - 1, openMsn: this.#nextMsn, openParts: this.#visibleOpenParts().length };
  }

  /** A new FFmpeg output begins. After the first, the next segment carries a discontinuity. */
  setInit(init: Fmp4Init): void {
    this.closeOpen();
    if (this.#init !== null) this.#pendingDiscontinuity = true;
    const uri = `${this.prefix}-init${this.#initCount++}.mp4`;
    this.#inits.set(uri, init.data);
    this.#init = uri;
    this.safeEmit('init', init, uri);
    this.#videoTrack = init.tracks.find((t) => t.kind === 'video')?.id ?? null;
    this.#clock = []; // a new run, a new timeline
    this.#runOffset = null;
    this.#keyframeHint = null;
  }

  pushFragment(fragment: Fmp4Fragment): void {
    if (this.#init === null || this.#ended) {
      this.stats.droppedFragments++;
      return;
    }
    this.stats.fragments++;
    const media = this.#bearsMedia(fragment);
    const duration = media ? fragment.durationSeconds : 0;
    if (media) this.#noteArrival(fragment.startSeconds + duration);
    let carried: Fmp4Fragment[] = [];
    const open = this.#open;
    if (open && media) {
      const cutOnKeyframe = fragment.keyframe && open.duration >= this.#segmentSeconds * 0.75;
      const wouldOverrun = Math.round(open.duration + duration) > this.targetDuration;
      if (cutOnKeyframe || wouldOverrun) {
        if (!fragment.keyframe) this.stats.breaches++;
        // Audio-only fragments at the end of the open part (no video time of their own) go with the next
        // segment, so no part of zero duration is made.
        if (open.part.fragments.length > 0 && !open.part.fragments.some((f) => this.#bearsMedia(f))) {
          carried = open.part.fragments;
          open.part = { fragments: [], duration: 0, independent: null };
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

  #closeAtHint(): void {
    const open = this.#open;
    const hint = this.#keyframeHint;
    if (!open || hint === null || open.end === null) return;
    if (open.end > hint + HINT_SLACK_SECONDS) {
      this.#keyframeHint = null; // passed without a cut: the keyframe fragment decides as usual
    } else if (open.end >= hint - HINT_SLACK_SECONDS && open.duration >= this.#segmentSeconds * 0.75) {
      this.#keyframeHint = null;
      this.closeOpen();
    }
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
    const shown = this.#visibleOpenParts().length;
    const shownFragments = open.parts.slice(0, shown).flatMap((p) => this.#fragmentsOf(open, p));
    const unshown = open.parts.slice(shown);
    const all = [
      ...shownFragments,
      ...unshown.flatMap((p) => this.#fragmentsOf(open, p)),
      ...open.part.fragments,
    ];
    const cut = all.findIndex((f) => f.keyframe && f.startSeconds >= seconds - 0.1);
    if (cut < 0) return;
    const from = Math.max(cut, shownFragments.length);
    this.stats.droppedFragments += all.length - from;
    this.stats.parts -= unshown.length;
    const regroup = all.slice(shownFragments.length, from);
    // The shown parts stay as they are; the rest is regrouped into new parts (new numbers: a name is never
    // given to two different contents).
    open.parts = open.parts.slice(0, shown);
    open.part = { fragments: [], duration: 0, independent: null };
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

  /** Completes the open segment, if any (FFmpeg ended, publisher gone, new init). */
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
    const data = Buffer.concat(open.parts.map((p) => p.data));
    // One copy of the bytes: parts and fragments become views into the segment.
    const fragments: Fmp4Fragment[] = [];
    let offset = 0;
    for (const part of open.parts) {
      const partStart = offset;
      for (const f of this.#fragmentsOf(open, part)) {
        fragments.push({ ...f, data: data.subarray(offset, offset + f.data.length) });
        offset += f.data.length;
      }
      part.data = data.subarray(partStart, offset);
    }
    const segment: Segment = {
      msn: open.msn,
      uri: `${this.prefix}-seg${open.msn}.m4s`,
      duration: open.duration,
      discontinuity: open.discontinuity,
      initUri: open.initUri,
      programDateTime: this.#programDateTime(open),
      data,
      fragments,
      independent: open.parts[0]!.independent,
      parts: open.parts,
    };
    this.#nextMsn = open.msn + 1;
    this.#partFragments.delete(open);
    if (segment.discontinuity) this.stats.discontinuities++;
    this.stats.segments++;
    this.stats.longestSegment = Math.max(this.stats.longestSegment, segment.duration);
    this.#segments.push(segment);
    const now = this.#now();
    let listed = this.#playlistSeconds();
    while (
      this.#segments.length > this.#listSize &&
      listed - this.#segments[0]!.duration >= this.#minListSeconds - 1e-6
    ) {
      const gone = this.#segments.shift()!;
      listed -= gone.duration;
      if (gone.discontinuity) this.#discontinuitySequence++;
      this.#retired.push({ segment: gone, expires: now + (gone.duration + listed) * 1000 });
    }
    this.#purge(now);
    this.safeEmit('segment', segment);
    if (this.stats.segments === 1) this.safeEmit('ready');
    this.safeEmit('update');
  }

  /** The stream is over: the last segment is closed and the playlist gets EXT-X-ENDLIST. */
  end(): void {
    if (this.#ended) return;
    this.closeOpen();
    this.#ended = true;
    this.safeEmit('update');
  }

  /**
   * The playlist; `skip` asks for a delta update (ignored for classic or ended streams); `renditionReports`
   * (an ABR rendition's view of the others) are listed at the end.
   */
  playlist(options: { skip?: boolean; renditionReports?: readonly RenditionReport[] } = {}): string {
    const sc = this.#serverControl;
    const segments: PlaylistSegment[] = this.#segments;
    let listed: PlaylistSegment[] = segments;
    if (sc) {
      // Parts only for the segments that end near the end of the playlist (§6.2.2), and the open one.
      let fromEnd = this.#visibleOpenParts().reduce((sum, p) => sum + p.duration, 0);
      const withParts = new Set<Segment>();
      for (let i = this.#segments.length - 1; i >= 0; i--) {
        if (fromEnd >= PART_LIST_TARGET_DURATIONS * this.targetDuration - 1e-6) break;
        withParts.add(this.#segments[i]!);
        fromEnd += this.#segments[i]!.duration;
      }
      listed = this.#segments.map((s) => (withParts.has(s) ? s : { ...s, parts: undefined }));
    }
    const open = this.#open;
    const visible = this.#visibleOpenParts();
    const openListed: OpenPlaylistSegment | null =
      open && visible.length > 0
        ? {
            discontinuity: open.discontinuity,
            initUri: open.initUri,
            programDateTime: this.#programDateTime(open),
            parts: visible,
          }
        : null;
    // A new run's segment (a discontinuity) is listed once complete, with its parts: no hint before that.
    return renderMediaPlaylist({
      targetDuration: this.targetDuration,
      mediaSequence: this.#segments[0]?.msn ?? this.#nextMsn,
      discontinuitySequence: this.#discontinuitySequence,
      segments: listed,
      ended: this.#ended,
      ...(options.renditionReports?.length ? { renditionReports: options.renditionReports } : {}),
      ...(sc
        ? {
            serverControl: sc,
            open: openListed,
            preloadHint: this.nextPartUri,
            ...(options.skip && !this.#ended
              ? { skipped: skippableSegments(segments, sc.canSkipUntil) }
              : {}),
          }
        : {}),
    });
  }

  /**
   * Whether the playlist already holds what `_HLS_msn` / `_HLS_part` ask for (rfc8216bis §6.2.5.2): segment
   * `msn` complete, or its part `part` listed; a part index past a segment's last part means part 0 of the
   * next segment. Something older than the playlist counts as there.
   */
  has(msn: number, part?: number): boolean {
    const lastMsn = this.#nextMsn - 1;
    if (part === undefined) return msn <= lastMsn;
    let m = msn;
    let p = part;
    for (;;) {
      if (m > lastMsn) return m === this.#nextMsn && this.#visibleOpenParts().length > p;
      const segment = this.#segment(m);
      if (!segment || p < segment.parts.length) return true;
      m++;
      p = 0;
    }
  }

  /**
   * Requests too far ahead get 400 (rfc8216bis §6.2.5.2): `_HLS_msn` beyond the last segment plus two, or a
   * part beyond the last listed part by more than the Advance Part Limit (3 / PART-TARGET parts, at most 3
   * when the target is a second or more).
   */
  tooFarAhead(msn: number, part?: number): boolean {
    const lastMsn = this.#nextMsn - 1;
    if (msn > lastMsn + 2) return true;
    if (part === undefined) return false;
    const limit = this.partTarget < 1 ? Math.floor(3 / this.partTarget) : 3;
    if (msn === this.#nextMsn) return part - (this.#visibleOpenParts().length - 1) > limit;
    if (msn === this.#nextMsn + 1) return part + 1 > limit;
    return false;
  }

  /** Whether `name` is the part the preload hint names, not made yet (a request for it may wait). */
  isNextPart(name: string): boolean {
    return this.lowLatency && !this.#ended && name === this.nextPartUri;
  }

  /** An init, media segment or part by the name this packager gave it; undefined for anything else. */
  resource(name: string): { kind: 'init' | 'segment' | 'part'; data: Buffer } | undefined {
    const init = this.#inits.get(name);
    if (init) return { kind: 'init', data: init };
    const partMatch = /-part(\d{1,15})\.m4s$/.exec(name);
    if (partMatch && name.startsWith(`${this.prefix}-`)) {
      const part = this.#part(Number(partMatch[1]));
      return part ? { kind: 'part', data: part.data } : undefined;
    }
    this.#purge(this.#now());
    const segment =
      this.#segments.find((s) => s.uri === name) ??
      this.#retired.find((r) => r.segment.uri === name)?.segment;
    return segment ? { kind: 'segment', data: segment.data } : undefined;
  }

  #openSegment(first: Fmp4Fragment): OpenSegment {
    const segment: OpenSegment = {
      msn: this.#nextMsn,
      parts: [],
      part: { fragments: [], duration: 0, independent: null },
      duration: 0,
      end: null,
      start: first.startSeconds,
      programDateTime: null,
      discontinuity: this.#pendingDiscontinuity,
      initUri: this.#init!,
      firstPart: this.#nextPart,
    };
    this.#pendingDiscontinuity = false;
    this.#open = segment;
    return segment;
  }

  /** Adds a fragment to the open part; closes the part before it if it would overrun, or after it when full. */
  #addToPart(open: OpenSegment, fragment: Fmp4Fragment): void {
    const target = this.partTarget;
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

  #fragmentsOf(open: OpenSegment, part: Part): Fmp4Fragment[] {
    return this.#partFragments.get(open)?.get(part) ?? [];
  }

  #closePart(open: OpenSegment, last: boolean): void {
    const { fragments, duration } = open.part;
    if (fragments.length === 0) return;
    const independent = open.part.independent ?? false;
    const part: Part = {
      n: this.#nextPart,
      uri: this.#partUri(this.#nextPart),
      duration,
      independent,
      data: Buffer.concat(fragments.map((f) => f.data)),
    };
    this.#nextPart = part.n + 1;
    let byPart = this.#partFragments.get(open);
    if (!byPart) {
      byPart = new Map();
      this.#partFragments.set(open, byPart);
    }
    byPart.set(part, fragments);
    open.parts.push(part);
    open.part = { fragments: [], duration: 0, independent: null };
    if (this.#visibleOpenParts().length > 0) this.#programDateTime(open);
    this.stats.parts++;
    this.stats.longestPart = Math.max(this.stats.longestPart, duration);
    if (duration > this.partTarget + PART_TOLERANCE) this.stats.partBreaches++;
    else if (!last && !independent && duration < PART_FILL * this.partTarget - PART_TOLERANCE) {
      this.stats.shortParts++;
    }
    this.safeEmit('part', part);
    this.safeEmit('update');
  }

  /** Parts of the open segment a playlist lists. */
  #visibleOpenParts(): Part[] {
    const open = this.#open;
    if (!open || !this.lowLatency) return [];
    return open.parts;
  }

  #partUri(n: number): string {
    return `${this.prefix}-part${n}.m4s`;
  }

  #part(n: number): Part | undefined {
    const open = this.#open;
    if (open && n >= open.firstPart) return open.parts.find((p) => p.n === n);
    this.#purge(this.#now());
    const within = (s: Segment): boolean => n >= s.parts[0]!.n && n <= s.parts.at(-1)!.n;
    const segment = this.#segments.find(within) ?? this.#retired.find((r) => within(r.segment))?.segment;
    return segment?.parts.find((p) => p.n === n);
  }

  #segment(msn: number): Segment | undefined {
    const first = this.#segments[0];
    if (first && msn >= first.msn) return this.#segments[msn - first.msn];
    return this.#retired.find((r) => r.segment.msn === msn)?.segment;
  }

  /**
   * Whether a fragment carries the stream's timeline: its video, or anything when there is no video. An
   * audio-only fragment of a stream with video (FFmpeg flushes on audio too) adds no time of its own.
   */
  #bearsMedia(fragment: Fmp4Fragment): boolean {
    return this.#videoTrack === null || fragment.runs.some((r) => r.trackId === this.#videoTrack);
  }

  #noteArrival(mediaEnd: number): void {
    const at = this.#now();
    const offset = at - mediaEnd * 1000;
    while (this.#clock.length > 0 && this.#clock.at(-1)!.offset >= offset) this.#clock.pop();
    this.#clock.push({ at, offset });
    while (this.#clock[0]!.at < at - CLOCK_WINDOW_MS) this.#clock.shift();
  }

  #programDateTime(open: OpenSegment): number {
    if (open.programDateTime === null) {
      this.#runOffset ??= this.#clock[0]?.offset ?? this.#now() - open.start * 1000;
      open.programDateTime = Math.round(open.start * 1000 + this.#runOffset);
    }
    return open.programDateTime;
  }

  #playlistSeconds(): number {
    return this.#segments.reduce((sum, s) => sum + s.duration, 0);
  }

  #purge(now: number): void {
    this.#retired = this.#retired.filter((r) => r.expires > now);
    // Inits no longer referenced by a listed or retired segment (nor the current one) can go.
    const used = new Set<string>([
      ...this.#segments.map((s) => s.initUri),
      ...this.#retired.map((r) => r.segment.initUri),
    ]);
    if (this.#init) used.add(this.#init);
    if (this.#open) used.add(this.#open.initUri);
    for (const uri of this.#inits.keys()) if (!used.has(uri)) this.#inits.delete(uri);
  }
}
