/**
 * The HLS packager of one stream, in memory, living as long as the stream (across publisher reconnects and
 * FFmpeg restarts). Hand-written because no library packages fMP4 fragments into live HLS with our rules:
 * - segments are cut on keyframe fragments, aiming at the segment target, and never longer than the
 *   TARGETDURATION announced at creation (a GOP that runs past it is cut anyway and counted as a breach);
 * - MEDIA-SEQUENCE only grows; a new init segment (FFmpeg restart, publisher back, profile switch) puts an
 *   EXT-X-DISCONTINUITY on the next segment, and DISCONTINUITY-SEQUENCE grows when one leaves the list;
 * - segments that leave the playlist stay fetchable for their duration plus the playlist's (RFC 8216 §6.2.2);
 * - names carry a random prefix per stream incarnation, so a CDN can never mix two incarnations up;
 * - every fragment stays addressable (the LL-HLS issue turns them into parts).
 * Time comes from an injected clock, so tests need no timers.
 */
import { randomBytes } from 'node:crypto';
import type { Fmp4Fragment, Fmp4Init } from '../media/fmp4.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { type PlaylistSegment, renderMediaPlaylist } from './playlist.ts';

export interface PackagerOptions {
  /** Segment length aimed at, seconds (HLS_SEGMENT_SECONDS). */
  segmentSeconds: number;
  /** EXT-X-TARGETDURATION, fixed for the packager's life. */
  targetDuration: number;
  /** Segments listed (HLS_LIST_SIZE). */
  listSize: number;
  now?: () => number;
  /** Name prefix; random by default. */
  prefix?: string;
}

export interface Segment extends PlaylistSegment {
  msn: number;
  data: Buffer;
  fragments: Fmp4Fragment[];
  /** Starts with a keyframe. */
  independent: boolean;
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
}

export type PackagerEvents = {
  /** The first segment is complete: the stream is playable. */
  ready: [];
  segment: [Segment];
};

const HINT_SLACK_SECONDS = 0.05;

interface OpenSegment {
  fragments: Fmp4Fragment[];
  duration: number;
  startedAt: number;
  discontinuity: boolean;
  initUri: string;
}

export class Packager extends TypedEmitter<PackagerEvents> {
  readonly targetDuration: number;
  readonly prefix: string;
  readonly stats: PackagerStats = {
    segments: 0,
    fragments: 0,
    discontinuities: 0,
    breaches: 0,
    droppedFragments: 0,
    longestSegment: 0,
  };
  readonly #segmentSeconds: number;
  readonly #listSize: number;
  readonly #now: () => number;
  readonly #inits = new Map<string, Buffer>();
  #init: string | null = null;
  #initCount = 0;
  #pendingDiscontinuity = false;
  #open: OpenSegment | null = null;
  #segments: Segment[] = [];
  /** Segments that left the playlist, fetchable until `expires`. */
  #retired: { segment: Segment; expires: number }[] = [];
  #nextMsn = 0;
  #discontinuitySequence = 0;
  /** Output time (s) of a keyframe known to be coming (from the input side), or null. */
  #keyframeHint: number | null = null;
  #ended = false;

  constructor(options: PackagerOptions) {
    super();
    this.targetDuration = options.targetDuration;
    this.#segmentSeconds = options.segmentSeconds;
    this.#listSize = options.listSize;
    this.#now = options.now ?? Date.now;
    this.prefix = options.prefix ?? randomBytes(4).toString('hex');
  }

  get ready(): boolean {
    return this.stats.segments > 0;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get segments(): readonly Segment[] {
    return this.#segments;
  }

  /** A new FFmpeg output begins. After the first, the next segment carries a discontinuity. */
  setInit(init: Fmp4Init): void {
    this.closeOpen();
    if (this.#init !== null) this.#pendingDiscontinuity = true;
    const uri = `${this.prefix}-init${this.#initCount++}.mp4`;
    this.#inits.set(uri, init.data);
    this.#init = uri;
  }

  pushFragment(fragment: Fmp4Fragment): void {
    if (this.#init === null || this.#ended) {
      this.stats.droppedFragments++;
      return;
    }
    this.stats.fragments++;
    const open = this.#open;
    if (open) {
      const cutOnKeyframe = fragment.keyframe && open.duration >= this.#segmentSeconds * 0.75;
      const wouldOverrun = Math.round(open.duration + fragment.durationSeconds) > this.targetDuration;
      if (cutOnKeyframe || wouldOverrun) {
        if (!fragment.keyframe) this.stats.breaches++;
        this.closeOpen();
      }
    }
    if (this.#open === null) {
      this.#open = {
        fragments: [],
        duration: 0,
        startedAt: this.#now(),
        discontinuity: this.#pendingDiscontinuity,
        initUri: this.#init,
      };
      this.#pendingDiscontinuity = false;
    }
    this.#open.fragments.push(fragment);
    this.#open.duration += fragment.durationSeconds;
    this.#closeAtHint();
  }

  /**
   * A keyframe is known to start at `seconds` (output time): the segment before it may close as soon as
   * its fragments reach that time, instead of when the keyframe's own fragment arrives (one fragment
   * later). This is what brings the first segment in under 2.5 s.
   */
  hintKeyframe(seconds: number): void {
    this.#keyframeHint = seconds;
    this.#closeAtHint();
  }

  #closeAtHint(): void {
    const open = this.#open;
    const hint = this.#keyframeHint;
    if (!open || hint === null) return;
    const last = open.fragments.at(-1)!;
    const end = last.startSeconds + last.durationSeconds;
    // 50 ms of slack either way (over a frame at 30 fps): the hint is mapped from input timestamps, and
    // FFmpeg cuts a fragment at every keyframe, so no other fragment boundary lies that close to one.
    if (end > hint + HINT_SLACK_SECONDS) {
      this.#keyframeHint = null; // passed without a cut: the keyframe fragment decides as usual
    } else if (end >= hint - HINT_SLACK_SECONDS && open.duration >= this.#segmentSeconds * 0.75) {
      this.#keyframeHint = null;
      this.closeOpen();
    }
  }

  /**
   * Drops the open segment's fragments from the keyframe fragment at `seconds` on (that GOP is fed to the
   * next FFmpeg again). The time is mapped from input timestamps, so it may be off by a frame: the first
   * keyframe fragment from 0.1 s before it is taken as the cut.
   */
  discardFrom(seconds: number): void {
    const open = this.#open;
    if (!open) return;
    const cut = open.fragments.findIndex((f) => f.keyframe && f.startSeconds >= seconds - 0.1);
    if (cut < 0) return;
    const keep = open.fragments.slice(0, cut);
    this.stats.droppedFragments += open.fragments.length - keep.length;
    open.fragments = keep;
    open.duration = keep.reduce((sum, f) => sum + f.durationSeconds, 0);
    if (keep.length === 0) {
      if (open.discontinuity) this.#pendingDiscontinuity = true;
      this.#open = null;
    }
  }

  /** Completes the open segment, if any (FFmpeg ended, publisher gone). */
  closeOpen(): void {
    const open = this.#open;
    this.#open = null;
    if (!open || open.fragments.length === 0) return;
    const segment: Segment = {
      msn: this.#nextMsn++,
      uri: `${this.prefix}-seg${this.#nextMsn - 1}.m4s`,
      duration: open.duration,
      discontinuity: open.discontinuity,
      initUri: open.initUri,
      programDateTime: open.startedAt,
      data: Buffer.concat(open.fragments.map((f) => f.data)),
      fragments: open.fragments,
      independent: open.fragments[0]!.keyframe,
    };
    if (segment.discontinuity) this.stats.discontinuities++;
    this.stats.segments++;
    this.stats.longestSegment = Math.max(this.stats.longestSegment, segment.duration);
    this.#segments.push(segment);
    const now = this.#now();
    while (this.#segments.length > this.#listSize) {
      const gone = this.#segments.shift()!;
      if (gone.discontinuity) this.#discontinuitySequence++;
      this.#retired.push({ segment: gone, expires: now + (gone.duration + this.#playlistSeconds()) * 1000 });
    }
    this.#purge(now);
    this.safeEmit('segment', segment);
    if (this.stats.segments === 1) this.safeEmit('ready');
  }

  /** The stream is over: the last segment is closed and the playlist gets EXT-X-ENDLIST. */
  end(): void {
    if (this.#ended) return;
    this.closeOpen();
    this.#ended = true;
  }

  playlist(): string {
    return renderMediaPlaylist({
      targetDuration: this.targetDuration,
      mediaSequence: this.#segments[0]?.msn ?? this.#nextMsn,
      discontinuitySequence: this.#discontinuitySequence,
      segments: this.#segments,
      ended: this.#ended,
    });
  }

  /** An init segment or a media segment by the name this packager gave it; undefined for anything else. */
  resource(name: string): { kind: 'init' | 'segment'; data: Buffer } | undefined {
    const init = this.#inits.get(name);
    if (init) return { kind: 'init', data: init };
    this.#purge(this.#now());
    const segment =
      this.#segments.find((s) => s.uri === name) ??
      this.#retired.find((r) => r.segment.uri === name)?.segment;
    return segment ? { kind: 'segment', data: segment.data } : undefined;
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
