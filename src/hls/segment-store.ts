/**
 * The segment store of one packager: init segments by name, the complete segments a playlist lists, and the
 * ones that left it, kept fetchable for their duration plus the playlist's (RFC 8216 §6.2.2, the deletion
 * race nginx-rtmp and FFmpeg's delete_segments lose); lookups by name, MSN and part number; purge of what
 * expired and of inits nothing refers to. Names carry the packager's random prefix, so a CDN can never mix
 * two stream incarnations up.
 *
 * Media bytes are held once. A part owns its bytes (one exactly sized Buffer, made when the part closed); a
 * segment's bytes are its parts' bytes joined on first request, after which its parts become views into them.
 * A segment nobody asks for as a whole (LL players take parts at the live edge; a stream nobody watches) is
 * never joined. Per-fragment facts of a closed segment (what tests check A/V sync on) are packed into one
 * Float64Array per segment and unpacked on demand, instead of an object per fragment per segment.
 */
import type { Fmp4Fragment } from '../media/fmp4.ts';
import type { PlaylistPart, PlaylistSegment } from './playlist.ts';

export interface Part extends PlaylistPart {
  /** Its number in the stream (its name), counted from 0 across segments. */
  n: number;
  /** Its own Buffer, or a view into its segment's bytes once those were joined. */
  data: Buffer;
}

/** A fragment of a closed segment, without its bytes: they are `segment.data.subarray(offset, offset + size)`. */
export type SegmentFragment = Omit<Fmp4Fragment, 'data'> & { offset: number; size: number };

export interface Segment extends PlaylistSegment {
  readonly msn: number;
  /** Its bytes (its parts' bytes, joined on first use). */
  readonly data: Buffer;
  /** Its fragments' facts, unpacked on each read (tests and checks; nothing on the serving path). */
  readonly fragments: readonly SegmentFragment[];
  /** Starts with a keyframe. */
  readonly independent: boolean;
  readonly parts: Part[];
  readonly programDateTime: number;
}

export const initUri = (prefix: string, n: number): string => `${prefix}-init${n}.mp4`;
export const segmentUri = (prefix: string, msn: number): string => `${prefix}-seg${msn}.m4s`;
export const partUri = (prefix: string, n: number): string => `${prefix}-part${n}.m4s`;

/** The part number a name stands for, when it is one of this prefix's part names. */
export function partNumber(prefix: string, name: string): number | undefined {
  const match = /-part(\d{1,15})\.m4s$/.exec(name);
  return match && name.startsWith(`${prefix}-`) ? Number(match[1]) : undefined;
}

/** Doubles per fragment before its runs: size, sequence, keyframe, start, duration, run count. */
const FRAGMENT_FIELDS = 6;
/** Doubles per run: track id, base decode time, sample count, duration, first sample is sync. */
const RUN_FIELDS = 5;

/** Packs fragments' facts (not their bytes) into one array: one object per segment, none per fragment. */
export function packFragments(fragments: readonly Fmp4Fragment[]): Float64Array {
  let length = 0;
  for (const f of fragments) length += FRAGMENT_FIELDS + RUN_FIELDS * f.runs.length;
  const packed = new Float64Array(length);
  let i = 0;
  for (const f of fragments) {
    packed[i++] = f.data.length;
    packed[i++] = f.sequence;
    packed[i++] = f.keyframe ? 1 : 0;
    packed[i++] = f.startSeconds;
    packed[i++] = f.durationSeconds;
    packed[i++] = f.runs.length;
    for (const r of f.runs) {
      packed[i++] = r.trackId;
      packed[i++] = r.baseDecodeTime;
      packed[i++] = r.sampleCount;
      packed[i++] = r.duration;
      packed[i++] = r.firstSampleIsSync ? 1 : 0;
    }
  }
  return packed;
}

export function unpackFragments(packed: Float64Array): SegmentFragment[] {
  const fragments: SegmentFragment[] = [];
  let offset = 0;
  for (let i = 0; i < packed.length; ) {
    const size = packed[i]!;
    const runCount = packed[i + 5]!;
    const fragment: SegmentFragment = {
      offset,
      size,
      sequence: packed[i + 1]!,
      keyframe: packed[i + 2] === 1,
      startSeconds: packed[i + 3]!,
      durationSeconds: packed[i + 4]!,
      runs: [],
    };
    i += FRAGMENT_FIELDS;
    for (let r = 0; r < runCount; r++, i += RUN_FIELDS) {
      fragment.runs.push({
        trackId: packed[i]!,
        baseDecodeTime: packed[i + 1]!,
        sampleCount: packed[i + 2]!,
        duration: packed[i + 3]!,
        firstSampleIsSync: packed[i + 4] === 1,
      });
    }
    fragments.push(fragment);
    offset += size;
  }
  return fragments;
}

/**
 * Bytes kept for as long as the packager holds them: a Buffer of its own (never a slice of Node's shared
 * 8 KiB pool, which a small part would pin whole, whatever else lives in it), filled from `pieces`.
 */
export function ownedConcat(pieces: readonly Buffer[]): Buffer {
  let size = 0;
  for (const p of pieces) size += p.length;
  const out = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const p of pieces) at += p.copy(out, at);
  return out;
}

export interface ClosedSegment {
  msn: number;
  uri: string;
  duration: number;
  discontinuity: boolean;
  initUri: string;
  programDateTime: number;
  independent: boolean;
  parts: Part[];
  /** Its fragments, in order, their bytes in its parts' (only their facts are kept). */
  fragments: readonly Fmp4Fragment[];
}

/** A complete segment: its parts own the bytes until someone asks for the segment as a whole. */
export class StoredSegment implements Segment {
  readonly msn: number;
  readonly uri: string;
  readonly duration: number;
  readonly discontinuity: boolean;
  readonly initUri: string;
  readonly programDateTime: number;
  readonly independent: boolean;
  readonly parts: Part[];
  #data: Buffer | null = null;
  readonly #fragments: Float64Array;

  constructor(closed: ClosedSegment) {
    this.msn = closed.msn;
    this.uri = closed.uri;
    this.duration = closed.duration;
    this.discontinuity = closed.discontinuity;
    this.initUri = closed.initUri;
    this.programDateTime = closed.programDateTime;
    this.independent = closed.independent;
    this.parts = closed.parts;
    this.#fragments = packFragments(closed.fragments);
  }

  /** Whether its bytes were joined (for memory checks). */
  get joined(): boolean {
    return this.#data !== null;
  }

  get data(): Buffer {
    if (this.#data === null) {
      const parts = this.parts;
      if (parts.length === 1) {
        this.#data = parts[0]!.data; // the part is the segment: nothing to join
      } else {
        // One copy of the bytes: the parts become views into the segment.
        const data = ownedConcat(parts.map((p) => p.data));
        let offset = 0;
        for (const part of parts) {
          const size = part.data.length;
          part.data = data.subarray(offset, offset + size);
          offset += size;
        }
        this.#data = data;
      }
    }
    return this.#data;
  }

  get fragments(): SegmentFragment[] {
    return unpackFragments(this.#fragments);
  }
}

export interface SegmentStoreOptions {
  /** Name prefix of the packager (random per stream incarnation). */
  prefix: string;
  /** Segments listed at least (HLS_LIST_SIZE). */
  listSize: number;
  /** Seconds of segments kept listed at least (low latency: skip boundary + one TARGETDURATION). */
  minListSeconds: number;
  now: () => number;
}

export class SegmentStore {
  readonly #prefix: string;
  readonly #listSize: number;
  /** Set once TARGETDURATION is known (the first segment), before anything is listed. */
  minListSeconds: number;
  readonly #now: () => number;
  readonly #inits = new Map<string, Buffer>();
  #initCount = 0;
  /** Name of the newest init (what the next segment uses). */
  #current: string | null = null;
  #segments: Segment[] = [];
  /** Segments that left the playlist, fetchable until `expires`. */
  #retired: { segment: Segment; expires: number }[] = [];
  #discontinuitySequence = 0;

  constructor(options: SegmentStoreOptions) {
    this.#prefix = options.prefix;
    this.#listSize = options.listSize;
    this.minListSeconds = options.minListSeconds;
    this.#now = options.now;
  }

  /** The segments a playlist lists, oldest first. */
  get segments(): readonly Segment[] {
    return this.#segments;
  }

  /** Segments that left the playlist and are still served (for memory checks). */
  get retired(): readonly Segment[] {
    return this.#retired.map((r) => r.segment);
  }

  get discontinuitySequence(): number {
    return this.#discontinuitySequence;
  }

  /** Stores a new init segment (a new output run) and returns the name it is served under. */
  addInit(data: Buffer): string {
    const uri = initUri(this.#prefix, this.#initCount++);
    this.#inits.set(uri, data);
    this.#current = uri;
    return uri;
  }

  init(name: string): Buffer | undefined {
    return this.#inits.get(name);
  }

  /** Lists a complete segment; the oldest leave the list while it keeps enough, and stay fetchable a while. */
  add(segment: Segment): void {
    this.#segments.push(segment);
    const now = this.#now();
    let listed = this.#segments.reduce((sum, s) => sum + s.duration, 0);
    while (
      this.#segments.length > this.#listSize &&
      listed - this.#segments[0]!.duration >= this.minListSeconds - 1e-6
    ) {
      const gone = this.#segments.shift()!;
      listed -= gone.duration;
      if (gone.discontinuity) this.#discontinuitySequence++;
      this.#retired.push({ segment: gone, expires: now + (gone.duration + listed) * 1000 });
    }
    this.#purge(now);
  }

  /** A listed or retired segment by name. */
  segmentNamed(name: string): Segment | undefined {
    this.#purge(this.#now());
    return (
      this.#segments.find((s) => s.uri === name) ?? this.#retired.find((r) => r.segment.uri === name)?.segment
    );
  }

  /** A listed or retired segment by MSN (retired ones even past their expiry until the next purge). */
  segmentAt(msn: number): Segment | undefined {
    const first = this.#segments[0];
    if (first && msn >= first.msn) return this.#segments[msn - first.msn];
    return this.#retired.find((r) => r.segment.msn === msn)?.segment;
  }

  /** A part of a listed or retired segment by number. */
  part(n: number): Part | undefined {
    this.#purge(this.#now());
    const within = (s: Segment): boolean => n >= s.parts[0]!.n && n <= s.parts.at(-1)!.n;
    const segment = this.#segments.find(within) ?? this.#retired.find((r) => within(r.segment))?.segment;
    return segment?.parts.find((p) => p.n === n);
  }

  #purge(now: number): void {
    this.#retired = this.#retired.filter((r) => r.expires > now);
    // Inits no longer referenced by a listed or retired segment (nor the current one, which the open
    // segment uses: a new init always closes the open segment first) can go.
    const used = new Set<string>([
      ...this.#segments.map((s) => s.initUri),
      ...this.#retired.map((r) => r.segment.initUri),
    ]);
    if (this.#current) used.add(this.#current);
    for (const uri of this.#inits.keys()) if (!used.has(uri)) this.#inits.delete(uri);
  }
}
