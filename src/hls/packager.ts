/**
 * The HLS packager of one stream, in memory, living as long as the stream (across publisher reconnects and
 * output runs): the facade the stream, the origin and ABR use, over three parts with one concern each:
 * - the segmenter (segmenter.ts) groups fragments into segments cut at keyframes within TARGETDURATION and
 *   into LL-HLS parts of 85–100 % of PART-TARGET, with keyframe hints, discards and discontinuities;
 * - the segment store (segment-store.ts) holds inits, listed and retired segments (RFC 8216 §6.2.2) and
 *   finds them by name, MSN and part number; media bytes are held once;
 * - the PDT clock (pdt-clock.ts) maps media time to the wall clock with one offset per run.
 * Both producers (the in-process CMAF writer of copy streams, FFmpeg for transcodes) feed it on the stream's
 * one timeline. Hand-written because no library packages fMP4 fragments into live (LL-)HLS with our rules:
 * - MEDIA-SEQUENCE only grows; a new init segment (FFmpeg restart, publisher back, profile switch) puts an
 *   EXT-X-DISCONTINUITY on the next segment, and DISCONTINUITY-SEQUENCE grows when one leaves the list;
 * - names carry a random prefix per stream incarnation, so a CDN can never mix two incarnations up;
 * - what a playlist has shown is never taken back: a profile switch or crash keeps the parts already listed
 *   (the replayed GOP repeats after the discontinuity), and a new run's discontinuity is listed with the
 *   first part of a segment, never added to parts already listed.
 * With LL on the playlist keeps at least CAN-SKIP-UNTIL + one TARGETDURATION of segments, so a delta update
 * has something to skip. Time comes from an injected clock, so tests need no timers.
 */
import { randomBytes } from 'node:crypto';
import type { Fmp4Fragment, Fmp4Init } from '../media/fmp4.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { PdtClock } from './pdt-clock.ts';
import {
  type OpenPlaylistSegment,
  type PlaylistSegment,
  type RenditionReport,
  renderMediaPlaylist,
  type ServerControl,
  skippableSegments,
} from './playlist.ts';
import {
  type Part,
  partNumber,
  partUri,
  type Segment,
  SegmentStore,
  StoredSegment,
} from './segment-store.ts';
import { PART_TOLERANCE, type PackagerStats, Segmenter, type TargetDurationRange } from './segmenter.ts';

export type { Part, Segment, SegmentFragment } from './segment-store.ts';
export type { PackagerStats, TargetDurationRange } from './segmenter.ts';

export interface PackagerOptions {
  /** Segment length aimed at, seconds (HLS_SEGMENT_SECONDS). */
  segmentSeconds: number;
  /**
   * EXT-X-TARGETDURATION, fixed for the packager's life: a number, or the range the first segment decides
   * it in from the GOP it saw (see segmenter.ts).
   */
  targetDuration: number | TargetDurationRange;
  /** Segments listed at least (HLS_LIST_SIZE); low latency may keep more (see above). */
  listSize: number;
  /** Low-latency HLS: parts, blocking reload, preload hints, delta updates (HLS_LOW_LATENCY). */
  lowLatency?: boolean;
  /** PART-TARGET in seconds (HLS_PART_SECONDS, default DEFAULT_PART_SECONDS). */
  partSeconds?: number;
  now?: () => number;
  /**
   * Longest a starting stream's plain playlist waits after its first segment for the PART-HOLD-BACK rule
   * of `startable` (ms, default START_GRACE_MS).
   */
  startGraceMs?: number;
  /** Name prefix; random by default. */
  prefix?: string;
}

export type PackagerEvents = {
  /** A new init segment (a new output run: FFmpeg's, or the copy writer's), under its playlist name. */
  init: [Fmp4Init, string];
  /** The first segment is complete: the stream is playable. */
  ready: [];
  /** A plain playlist request is answered at once from now on (see `startable`); once. */
  startable: [];
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

/**
 * PART-TARGET by default: a third of a second, as 0.334 so that whole frames fill it (five at 15 fps, ten at
 * 30, three at 9; 0.33 takes four 15 fps frames, 0.267 s parts). Measured (bench/latency.ts, copy, 15 fps,
 * 2 s GOP, hls.js defaults): LL p50 1.39 s at 6.1 requests per viewer per second against 1.93 s at 5.3 with
 * 0.5 s parts: 28 % less latency for 15 % more requests (a part and a blocking reload each third of a second,
 * both small and answered from memory). 0.5 misses the 1.5 s goal (PART-HOLD-BACK alone is 1.5 s).
 */
export const DEFAULT_PART_SECONDS = 0.334;
/**
 * No plain playlist request waits longer than this after the first segment is complete (issue 15: a player
 * that asks early is answered within a second of the stream being playable, and `hls-ready` is honest).
 */
export const START_GRACE_MS = 1000;
/** Parts are listed for segments that end within this many TARGETDURATIONs of the end (§6.2.2). */
const PART_LIST_TARGET_DURATIONS = 3;

export class Packager extends TypedEmitter<PackagerEvents> {
  readonly prefix: string;
  readonly lowLatency: boolean;
  /** PART-TARGET, seconds. */
  readonly partTarget: number;
  readonly stats: PackagerStats;
  #serverControl: ServerControl | undefined;
  readonly #now: () => number;
  readonly #store: SegmentStore;
  readonly #clock: PdtClock;
  readonly #segmenter: Segmenter;
  readonly #maxTargetDuration: number;
  readonly #startGraceMs: number;
  /** now() when the first segment completed; null before. */
  #firstSegmentAt: number | null = null;
  /** Fires `startable` (and wakes held requests) when the grace after the first segment ends. */
  #graceTimer: NodeJS.Timeout | null = null;
  #startableSent = false;
  /** The grace after the first segment is over (its timer fired, or the injected clock says so). */
  #graceOver = false;

  constructor(options: PackagerOptions) {
    super();
    this.#now = options.now ?? Date.now;
    this.prefix = options.prefix ?? randomBytes(4).toString('hex');
    this.#startGraceMs = options.startGraceMs ?? START_GRACE_MS;
    this.lowLatency = options.lowLatency ?? false;
    this.partTarget = options.partSeconds ?? DEFAULT_PART_SECONDS;
    const td = options.targetDuration;
    this.#maxTargetDuration = typeof td === 'number' ? td : td.max;
    this.#store = new SegmentStore({
      prefix: this.prefix,
      listSize: options.listSize,
      minListSeconds: 0,
      now: this.#now,
    });
    this.#clock = new PdtClock(this.#now);
    this.#segmenter = new Segmenter({
      prefix: this.prefix,
      segmentSeconds: options.segmentSeconds,
      targetDuration: td,
      partTarget: this.partTarget,
      lowLatency: this.lowLatency,
      clock: this.#clock,
      onTargetDuration: (decided) => this.#fixTargetDuration(decided),
      onPart: (part) => {
        this.safeEmit('part', part);
        this.safeEmit('update');
      },
      onSegment: (closed) => {
        const segment = new StoredSegment(closed);
        this.#store.add(segment);
        this.safeEmit('segment', segment);
        if (this.stats.segments === 1) {
          this.#firstSegmentAt = this.#now();
          this.safeEmit('ready');
          this.#armGrace();
        }
        this.safeEmit('update');
      },
    });
    this.stats = this.#segmenter.stats;
    if (typeof td === 'number') this.#fixTargetDuration(td);
  }

  /** What depends on TARGETDURATION, set once it is known (no playlist is served before). */
  #fixTargetDuration(td: number): void {
    this.#serverControl = this.lowLatency
      ? {
          partTarget: this.partTarget,
          partHoldBack: 3 * this.partTarget,
          holdBack: 3 * td,
          canSkipUntil: 6 * td,
        }
      : undefined;
    this.#store.minListSeconds = this.lowLatency ? 7 * td : 0;
  }

  /**
   * EXT-X-TARGETDURATION: fixed for the stream's life once the first segment closed (see segmenter.ts);
   * before that, the most it may become (what bounds the segment being made).
   */
  get targetDuration(): number {
    return this.#segmenter.targetDuration ?? this.#maxTargetDuration;
  }

  /** Whether TARGETDURATION is decided (the first segment closed, or it was fixed). */
  get targetDurationDecided(): boolean {
    return this.#segmenter.targetDuration !== null;
  }

  get ready(): boolean {
    return this.stats.segments > 0;
  }

  /**
   * Whether a plain playlist request is answered now. With low latency, a player starting well wants
   * complete segments after the first to hold PART-HOLD-BACK of media: hls.js (1.7) starts PART-HOLD-BACK
   * from the end, on the independent part before it; starting in the playlist's first segment, or loading
   * the parts of a segment that completes while it starts, it falls back to whole segments and can stall
   * (seen in ll-hls tests). That can take a segment and more after the first (7 s on a stream whose
   * keyframes stop after the start), so it is waited for at most `startGraceMs` after the first segment:
   * a player asking early is answered within a second of the stream being playable, the rule's start
   * only being the better one. Once true it stays true.
   */
  get startable(): boolean {
    if (this.#startableSent) return true; // once said (hls-ready), it stays true
    if (!this.ready) return false;
    const sc = this.#serverControl;
    // Not "no open segment" (the old rule for a publisher gone): the segmenter holds none between a
    // segment and the next, and during a switch to transcode; the grace covers a publisher gone.
    if (!sc || this.ended) return true;
    if (this.#graceOver) return true;
    if (this.#firstSegmentAt !== null && this.#now() - this.#firstSegmentAt >= this.#startGraceMs)
      return true;
    return this.#startsWell;
  }

  /** The PART-HOLD-BACK rule above: complete segments after the first hold PART-HOLD-BACK. */
  get #startsWell(): boolean {
    const sc = this.#serverControl;
    if (!sc) return true;
    const after = this.segments.slice(1).reduce((sum, s) => sum + s.duration, 0);
    return after >= sc.partHoldBack - PART_TOLERANCE;
  }

  /** Emits `startable` the first time it holds. */
  #checkStartable(): void {
    if (this.#startableSent || !this.startable) return;
    this.#startableSent = true;
    this.#clearGrace();
    this.safeEmit('startable');
  }

  #armGrace(): void {
    if (this.#startableSent || this.ended) return;
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = null;
      this.#graceOver = true;
      this.#checkStartable();
      this.safeEmit('update'); // held plain requests look again
    }, this.#startGraceMs);
    // An owned timer (end() clears it) that never keeps the process alive on its own.
    this.#graceTimer.unref();
  }

  #clearGrace(): void {
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    this.#graceTimer = null;
  }

  get ended(): boolean {
    return this.#segmenter.ended;
  }

  /** The segments the playlist lists, oldest first. */
  get segments(): readonly Segment[] {
    return this.#store.segments;
  }

  /** Segments that left the playlist but are still served (for memory checks). */
  get retiredSegments(): readonly Segment[] {
    return this.#store.retired;
  }

  /** Parts of the segment being produced that the playlist lists. */
  get openParts(): readonly Part[] {
    return this.#segmenter.listedParts;
  }

  /**
   * The segment being produced as far as it is listed (low latency only): its MSN, its init and its parts;
   * null when no part of it is listed yet. (For DASH, which streams it while it is made.)
   */
  get openSegment(): { msn: number; initUri: string; parts: readonly Part[] } | null {
    const listing = this.#segmenter.listing;
    return listing
      ? { msn: this.#segmenter.nextMsn, initUri: listing.initUri, parts: this.#segmenter.listedParts }
      : null;
  }

  /** EXT-X-SERVER-CONTROL and PART-INF values; undefined for a classic stream. */
  get serverControl(): ServerControl | undefined {
    return this.#serverControl;
  }

  /** Name of the part that comes next (what EXT-X-PRELOAD-HINT names). */
  get nextPartUri(): string {
    return partUri(this.prefix, this.#segmenter.nextPart);
  }

  get edge(): LiveEdge {
    const openMsn = this.#segmenter.nextMsn;
    return { lastMsn: openMsn - 1, openMsn, openParts: this.#segmenter.listedParts.length };
  }

  /** A new output run begins (FFmpeg's, or the copy writer's). After the first, the next segment carries a discontinuity. */
  setInit(init: Fmp4Init): void {
    this.#segmenter.closeOpen();
    const uri = this.#store.addInit(init.data);
    this.#segmenter.newRun(uri, init.tracks.find((t) => t.kind === 'video')?.id ?? null);
    this.#clock.newRun(); // a new run, a new timeline
    this.safeEmit('init', init, uri);
  }

  pushFragment(fragment: Fmp4Fragment): void {
    this.#segmenter.push(fragment);
    // Looked at after the push, never from the segmenter's hooks: between a segment and the next the
    // segmenter holds no open segment, which reads as a stream producing nothing.
    this.#checkStartable();
  }

  /**
   * A keyframe is known to start at `seconds` (output time): the segment before it may close as soon as
   * its fragments reach that time, instead of when the keyframe's own fragment arrives.
   */
  hintKeyframe(seconds: number): void {
    this.#segmenter.hintKeyframe(seconds);
    this.#checkStartable();
  }

  /**
   * Drops the open segment's fragments from the keyframe fragment at `seconds` on (that GOP is made again
   * after a discontinuity); parts a playlist has shown are kept (see segmenter.ts).
   */
  discardFrom(seconds: number): void {
    this.#segmenter.discardFrom(seconds);
  }

  /** Completes the open segment, if any (FFmpeg ended, publisher gone, new init). */
  closeOpen(): void {
    // No startable check here: a switch to transcode closes the open segment for the moment FFmpeg takes
    // to start, which is no start for a player. The publisher gone for good is said by the grace's timer.
    this.#segmenter.closeOpen();
  }

  /** The stream is over: the last segment is closed and the playlist gets EXT-X-ENDLIST. */
  end(): void {
    if (this.ended) return;
    this.#segmenter.end();
    this.#checkStartable();
    this.#clearGrace();
    this.safeEmit('update');
  }

  /**
   * The playlist; `skip` asks for a delta update (ignored for classic or ended streams); `renditionReports`
   * (an ABR rendition's view of the others) are listed at the end.
   */
  playlist(
    options: {
      skip?: boolean;
      renditionReports?: readonly RenditionReport[];
      /** A plain request (a player starting): see `early` below. */
      plain?: boolean;
    } = {},
  ): string {
    const sc = this.#serverControl;
    const segments: readonly PlaylistSegment[] = this.segments;
    let listed = segments;
    if (sc) {
      // Parts only for the segments that end near the end of the playlist (§6.2.2), and the open one.
      let fromEnd = this.#segmenter.listedParts.reduce((sum, p) => sum + p.duration, 0);
      const withParts = new Set<PlaylistSegment>();
      for (let i = segments.length - 1; i >= 0; i--) {
        if (fromEnd >= PART_LIST_TARGET_DURATIONS * this.targetDuration - 1e-6) break;
        withParts.add(segments[i]!);
        fromEnd += segments[i]!.duration;
      }
      listed = segments.map((s) => (withParts.has(s) ? s : { ...s, parts: undefined }));
    }
    // A plain request answered before the PART-HOLD-BACK rule holds (the start grace passed): the open
    // segment's parts are left out, so hls.js starts in complete segments and takes parts from its next
    // (blocking) reload on; it stalled for seconds when it started on the parts of a segment completing
    // meanwhile. Blocking reloads always list them (what they wait for).
    // Its EXT-X-PRELOAD-HINT names the open segment's first part: the playlist as it stood when the last
    // segment completed. Never a playlist ending on a segment URI: hls.js's parser (1.7, m3u8-parser.ts) then
    // takes that segment for the fragment hint of a playlist with parts, and its merge of the next reload
    // compares the following segment against it: "media sequence mismatch", fatal (test/unit/hls/hlsjs-merge).
    const early = sc !== undefined && options.plain === true && !this.ended && !this.#startsWell;
    const listing = this.#segmenter.listing;
    const openListed: OpenPlaylistSegment | null = early ? null : listing;
    const preloadHint = early ? (listing?.parts[0]?.uri ?? this.nextPartUri) : this.nextPartUri;
    // A new run's segment (a discontinuity) is listed once complete, with its parts: no hint before that.
    return renderMediaPlaylist({
      targetDuration: this.targetDuration,
      mediaSequence: this.segments[0]?.msn ?? this.#segmenter.nextMsn,
      discontinuitySequence: this.#store.discontinuitySequence,
      segments: listed,
      ended: this.ended,
      ...(options.renditionReports?.length ? { renditionReports: options.renditionReports } : {}),
      ...(sc
        ? {
            serverControl: sc,
            open: openListed,
            preloadHint,
            ...(options.skip && !this.ended ? { skipped: skippableSegments(segments, sc.canSkipUntil) } : {}),
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
    const openMsn = this.#segmenter.nextMsn;
    const lastMsn = openMsn - 1;
    if (part === undefined) return msn <= lastMsn;
    let m = msn;
    let p = part;
    for (;;) {
      if (m > lastMsn) return m === openMsn && this.#segmenter.listedParts.length > p;
      const segment = this.#store.segmentAt(m);
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
    const openMsn = this.#segmenter.nextMsn;
    if (msn > openMsn + 1) return true;
    if (part === undefined) return false;
    const limit = this.partTarget < 1 ? Math.floor(3 / this.partTarget) : 3;
    if (msn === openMsn) return part - (this.#segmenter.listedParts.length - 1) > limit;
    if (msn === openMsn + 1) return part + 1 > limit;
    return false;
  }

  /** Whether `name` is the part the preload hint names, not made yet (a request for it may wait). */
  isNextPart(name: string): boolean {
    return this.lowLatency && !this.ended && name === this.nextPartUri;
  }

  /** An init, media segment or part by the name this packager gave it; undefined for anything else. */
  resource(name: string): { kind: 'init' | 'segment' | 'part'; data: Buffer } | undefined {
    const init = this.#store.init(name);
    if (init) return { kind: 'init', data: init };
    const n = partNumber(this.prefix, name);
    if (n !== undefined) {
      // The open segment's parts and those still to come never reach the store: no search there.
      const part = this.#segmenter.holdsPart(n) ? this.#segmenter.openPart(n) : this.#store.part(n);
      return part ? { kind: 'part', data: part.data } : undefined;
    }
    const segment = this.#store.segmentNamed(name);
    return segment ? { kind: 'segment', data: segment.data } : undefined;
  }
}
