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
import { PART_TOLERANCE, type PackagerStats, Segmenter } from './segmenter.ts';

export type { Part, Segment, SegmentFragment } from './segment-store.ts';
export type { PackagerStats } from './segmenter.ts';

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
/** Parts are listed for segments that end within this many TARGETDURATIONs of the end (§6.2.2). */
const PART_LIST_TARGET_DURATIONS = 3;

export class Packager extends TypedEmitter<PackagerEvents> {
  readonly targetDuration: number;
  readonly prefix: string;
  readonly lowLatency: boolean;
  /** PART-TARGET, seconds. */
  readonly partTarget: number;
  readonly stats: PackagerStats;
  readonly #serverControl: ServerControl | undefined;
  readonly #now: () => number;
  readonly #store: SegmentStore;
  readonly #clock: PdtClock;
  readonly #segmenter: Segmenter;

  constructor(options: PackagerOptions) {
    super();
    this.targetDuration = options.targetDuration;
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
    this.#store = new SegmentStore({
      prefix: this.prefix,
      listSize: options.listSize,
      minListSeconds: this.lowLatency ? 7 * td : 0,
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
      onPart: (part) => {
        this.safeEmit('part', part);
        this.safeEmit('update');
      },
      onSegment: (closed) => {
        const segment = new StoredSegment(closed);
        this.#store.add(segment);
        this.safeEmit('segment', segment);
        if (this.stats.segments === 1) this.safeEmit('ready');
        this.safeEmit('update');
      },
    });
    this.stats = this.#segmenter.stats;
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
    if (!sc || this.ended || !this.#segmenter.isOpen) return this.ready;
    const after = this.segments.slice(1).reduce((sum, s) => sum + s.duration, 0);
    return this.ready && after >= sc.partHoldBack - PART_TOLERANCE;
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
  }

  /**
   * A keyframe is known to start at `seconds` (output time): the segment before it may close as soon as
   * its fragments reach that time, instead of when the keyframe's own fragment arrives.
   */
  hintKeyframe(seconds: number): void {
    this.#segmenter.hintKeyframe(seconds);
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
    this.#segmenter.closeOpen();
  }

  /** The stream is over: the last segment is closed and the playlist gets EXT-X-ENDLIST. */
  end(): void {
    if (this.ended) return;
    this.#segmenter.end();
    this.safeEmit('update');
  }

  /**
   * The playlist; `skip` asks for a delta update (ignored for classic or ended streams); `renditionReports`
   * (an ABR rendition's view of the others) are listed at the end.
   */
  playlist(options: { skip?: boolean; renditionReports?: readonly RenditionReport[] } = {}): string {
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
    const openListed: OpenPlaylistSegment | null = this.#segmenter.listing;
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
            preloadHint: this.nextPartUri,
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
