/**
 * The recorder of a relay: for each stream that is to be recorded (RECORDING=on, or its managed stream asked
 * for it), the stream's clean CMAF as the HLS packager closes it (no second encode: the init segments and
 * the segments of the top rendition), grouped into objects of at most 10 s, spooled on disk and uploaded in
 * the background (uploader.ts) to the store. What one relay incarnation writes of a stream is one part; the
 * recording (one per stream life) is named by the stream's start, which the decision gives (the cloud's for
 * a managed stream, so a stream that moved relays continues its recording), and lives in the store's
 * manifests, not here. A publisher reconnect is a discontinuity within the part; the stream's end closes it.
 * At start, parts a previous run left in the spool (killed mid-stream) are closed and uploaded.
 *
 * Slate: segments of an init the `initIsSlate` hook names (the slate a stream shows while its publisher is
 * gone), and segments `skipSegment` names, are not recorded; the next recorded segment carries a
 * discontinuity. The hook is for the relay to wire once the slate lands (`(stream) => stream.slating`).
 */
import { randomBytes } from 'node:crypto';
import { hlsUserPath } from '../contracts/names.ts';
import type { Segment } from '../hls/packager.ts';
import type { Fmp4Init } from '../media/fmp4.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import type { StreamRegistry } from '../stream/registry.ts';
import type { Stream } from '../stream/stream.ts';
import { initFile, recordingIdOf, segmentFile, THUMBNAIL_FILE } from './layout.ts';
import type { ManifestSegment, PartManifest, TrackSpan } from './manifest.ts';
import type { Spool, SpoolState } from './spool.ts';
import { type Uploader, UploadPart } from './uploader.ts';

/** Whether to record a stream, and the start that names its recording (ms since the epoch). */
export interface RecordingDecision {
  record: boolean;
  startedAt: number;
}

export interface RecorderOptions {
  spool: Spool;
  uploader: Uploader;
  relayId: string;
  log: Logger;
  /** RECORDING=on: every stream, unless `decide` says otherwise. */
  recordAll: boolean;
  /** Longest object, seconds (default 10). */
  maxObjectSeconds?: number;
  /** The latest thumbnail of a stream, kept with the recording when it ends. */
  thumbnail?: (stream: Stream) => Promise<Buffer | undefined>;
  /** Segments not to record (the slate). */
  skipSegment?: (stream: Stream, segment: Segment) => boolean;
  /**
   * Whether an init segment the packager takes now starts the slate (the slate branch: `stream.slating`):
   * every segment of that init is left out, and the publisher's return is a discontinuity.
   */
  initIsSlate?: (stream: Stream) => boolean;
  /** Most bytes held in memory per stream while its decision is pending (default 32 MiB). */
  maxPendingBytes?: number;
  now?: () => number;
}

/** How long a stream's end waits for its thumbnail before the part closes without one. */
const THUMBNAIL_WAIT_MS = 1000;
/** How long a decision may take before the stream is recorded (or not) by the local rule. */
const DECISION_TIMEOUT_MS = 10_000;

export type RecorderEvents = {
  /** A part is closed and in the store (its stream ended here, or a previous run's spool was uploaded). */
  uploaded: [PartManifest];
};

export class Recorder extends TypedEmitter<RecorderEvents> {
  readonly #o: RecorderOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #recordings = new Set<StreamRecording>();
  readonly #detach: (() => void)[] = [];
  #decide: ((stream: Stream) => Promise<RecordingDecision>) | null = null;
  #closed = false;
  #lastDropLog = 0;

  constructor(options: RecorderOptions) {
    super();
    this.#o = options;
    this.#log = options.log.child({ component: 'recorder' });
    this.#now = options.now ?? Date.now;
  }

  get spool(): Spool {
    return this.#o.spool;
  }

  get uploader(): Uploader {
    return this.#o.uploader;
  }

  /** Streams being recorded now. */
  get active(): number {
    return this.#recordings.size;
  }

  /**
   * Who decides per stream (the relay's agent asks the cloud: a managed stream's recording option and its
   * start). Unset, or not answering in time: RECORDING and the stream's own start.
   */
  setDecider(decide: ((stream: Stream) => Promise<RecordingDecision>) | null): void {
    this.#decide = decide;
  }

  /** Uploads what a previous run left in the spool, each part closed as it stands. */
  recoverSpool(): number {
    const { states, broken } = this.#o.spool.recover();
    if (broken.length > 0) this.#log.warn({ parts: broken.length }, 'spool parts without state removed');
    for (const state of states) {
      if (!state.manifest.closed) {
        state.manifest.closed = true;
        state.manifest.endedAt = state.manifest.updatedAt;
        state.manifestUploaded = false;
      }
      this.add(new UploadPart(state));
    }
    if (states.length > 0)
      this.#log.info(
        { parts: states.length, segments: this.#o.uploader.pending.segments },
        'recording spool of a previous run: uploading',
      );
    return states.length;
  }

  /** Hands a part to the uploader; `uploaded` is emitted when it is done. */
  add(part: UploadPart): void {
    part.onDone = () => this.safeEmit('uploaded', part.state.manifest);
    this.#o.uploader.add(part);
  }

  /** Follows the registry's streams; returns the undo. */
  attach(streams: StreamRegistry): () => void {
    const onCreated = (stream: Stream): void => {
      if (this.#closed) return;
      const recording = new StreamRecording(this, stream, this.#o, this.#now);
      this.#recordings.add(recording);
      recording.onGone = () => this.#recordings.delete(recording);
      void this.#decideFor(stream).then((d) => recording.decided(d));
    };
    streams.on('created', onCreated);
    const undo = (): void => {
      streams.off('created', onCreated);
    };
    this.#detach.push(undo);
    return undo;
  }

  async #decideFor(stream: Stream): Promise<RecordingDecision> {
    const local: RecordingDecision = { record: this.#o.recordAll, startedAt: stream.createdAt };
    const decide = this.#decide;
    if (!decide) return local;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        decide(stream),
        new Promise<RecordingDecision>((resolve) => {
          timer = setTimeout(() => resolve(local), DECISION_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      this.#log.warn(
        { key: stream.key, err: (err as Error).message },
        'recording decision failed: RECORDING decides',
      );
      return local;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A segment did not fit the spool: counted, logged at most every 10 s, the stream goes on. */
  dropped(stream: Stream, bytes: number): void {
    this.#o.spool.dropped++;
    if (this.#now() - this.#lastDropLog > 10_000) {
      this.#lastDropLog = this.#now();
      this.#log.error(
        {
          key: stream.key,
          bytes,
          spoolUsed: this.#o.spool.used,
          spoolMax: this.#o.spool.maxBytes,
          dropped: this.#o.spool.dropped,
        },
        'recording spool full (the store is unreachable or slow): segment dropped from the recording',
      );
    }
  }

  /** The spool could not be written (disk full, permissions): that media is lost, said loudly. */
  spoolFailed(stream: Stream, err: Error): void {
    this.#o.spool.dropped++;
    this.#log.error({ key: stream.key, err: err.message }, 'recording spool write failed: media dropped');
  }

  /** Ends every recording's part as it stands (relay shutdown); uploads go on until `uploader.close()`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const undo of this.#detach.splice(0)) undo();
    await Promise.all([...this.#recordings].map((r) => r.finish()));
  }
}

interface Group {
  init: number;
  data: Buffer[];
  bytes: number;
  duration: number;
  discontinuity: boolean;
  tracks: Map<number, TrackSpan>;
}

/** One stream's part: packager events → groups → spool, then the uploader. */
class StreamRecording {
  readonly #recorder: Recorder;
  readonly #stream: Stream;
  readonly #o: RecorderOptions;
  readonly #now: () => number;
  readonly #partId = randomBytes(8).toString('hex');
  /** Packager init URI → this part's init number, with its track timescales. */
  readonly #inits = new Map<string, { n: number; timescales: Map<number, number> }>();
  /** Packager init URIs of the slate: their segments are not recorded. */
  readonly #slateInits = new Set<string>();
  #nextInit = 0;
  #nextSegment = 0;
  #group: Group | null = null;
  #discontinuity = false;
  /** Decided: the part (null: not recorded); undefined: waiting, events kept in `#pending`. */
  #part: UploadPart | null | undefined = undefined;
  #pending: (() => void)[] = [];
  #pendingBytes = 0;
  #ended = false;
  #finished = false;
  readonly #detach: () => void;
  onGone: (() => void) | null = null;

  constructor(recorder: Recorder, stream: Stream, options: RecorderOptions, now: () => number) {
    this.#recorder = recorder;
    this.#stream = stream;
    this.#o = options;
    this.#now = now;
    const packager = stream.packager;
    const onInit = (init: Fmp4Init, uri: string): void => {
      if (options.initIsSlate?.(stream)) {
        this.#slateInits.add(uri);
        return;
      }
      this.#later(() => this.#onInit(init, uri), init.data.length);
    };
    const onSegment = (segment: Segment): void => this.#onSegment(segment);
    const onEnded = (): void => void this.finish();
    packager.on('init', onInit);
    packager.on('segment', onSegment);
    stream.once('ended', onEnded);
    this.#detach = () => {
      packager.off('init', onInit);
      packager.off('segment', onSegment);
      stream.off('ended', onEnded);
    };
  }

  /** Runs now once decided (nothing if not recorded), else keeps it for then (bounded). */
  #later(fn: () => void, bytes: number): void {
    if (this.#part === null) return;
    if (this.#part) return fn();
    if (this.#pendingBytes + bytes > (this.#o.maxPendingBytes ?? 32 * 1024 * 1024)) {
      this.#recorder.dropped(this.#stream, bytes);
      this.#discontinuity = true;
      return;
    }
    this.#pendingBytes += bytes;
    this.#pending.push(fn);
  }

  decided(decision: RecordingDecision): void {
    if (this.#part !== undefined) return;
    const pending = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (!decision.record) {
      this.#part = null;
      this.#stop();
      return;
    }
    const stream = this.#stream;
    const state: SpoolState = {
      manifest: {
        v: 1,
        partId: this.#partId,
        relayId: this.#o.relayId,
        userId: stream.userId,
        userPath: hlsUserPath(stream.userId),
        streamId: stream.streamId,
        recordingId: recordingIdOf(decision.startedAt),
        startedAt: this.#now(),
        updatedAt: this.#now(),
        endedAt: null,
        closed: false,
        segments: [],
        thumbnail: false,
        dropped: 0,
      },
      uploadedSegments: 0,
      uploadedInits: [],
      thumbnailUploaded: false,
      inits: [],
      manifestUploaded: true,
    };
    const part = new UploadPart(state);
    this.#part = part;
    this.#recorder.add(part);
    void part.run(() => this.#o.spool.writeState(state));
    for (const fn of pending) fn();
    if (this.#ended) void this.finish();
  }

  #onInit(init: Fmp4Init, uri: string): void {
    const part = this.#part;
    if (!part) return;
    const n = this.#nextInit++;
    this.#inits.set(uri, { n, timescales: new Map(init.tracks.map((t) => [t.id, t.timescale])) });
    const data = init.data;
    void part
      .run(async () => {
        await this.#o.spool.writeMedia(this.#partId, initFile(n), data);
        part.state.inits.push(n);
      })
      .catch((err: Error) => this.#spoolFailed(err));
  }

  #onSegment(segment: Segment): void {
    if (this.#slateInits.has(segment.initUri) || this.#o.skipSegment?.(this.#stream, segment)) {
      this.#flush();
      this.#discontinuity = true;
      return;
    }
    const data = segment.data;
    this.#later(() => this.#add(segment, data), data.length);
  }

  #add(segment: Segment, data: Buffer): void {
    const init = this.#inits.get(segment.initUri);
    if (!init) {
      this.#discontinuity = true; // its init came before the recording could keep it: not replayable
      return;
    }
    const max = this.#o.maxObjectSeconds ?? 10;
    const g = this.#group;
    if (g && (g.init !== init.n || segment.discontinuity || g.duration + segment.duration > max + 1e-6))
      this.#flush();
    let group = this.#group;
    if (!group) {
      group = {
        init: init.n,
        data: [],
        bytes: 0,
        duration: 0,
        discontinuity: segment.discontinuity || this.#discontinuity,
        tracks: new Map(),
      };
      this.#discontinuity = false;
      this.#group = group;
    }
    group.data.push(data);
    group.bytes += data.length;
    group.duration += segment.duration;
    for (const f of segment.fragments) {
      for (const r of f.runs) {
        const ts = init.timescales.get(r.trackId) ?? 90_000;
        const span = group.tracks.get(r.trackId);
        const end = r.baseDecodeTime + r.duration;
        if (!span) group.tracks.set(r.trackId, [r.trackId, ts, r.baseDecodeTime, end]);
        else {
          span[2] = Math.min(span[2], r.baseDecodeTime);
          span[3] = Math.max(span[3], end);
        }
      }
    }
    if (group.duration >= max - 0.5) this.#flush();
  }

  /** The group so far becomes one object in the spool (or is dropped when the spool is full). */
  #flush(): void {
    const g = this.#group;
    this.#group = null;
    const part = this.#part;
    if (!g || !part || g.data.length === 0) return;
    if (!this.#o.spool.reserve(g.bytes)) {
      part.state.manifest.dropped++;
      this.#recorder.dropped(this.#stream, g.bytes);
      this.#discontinuity = true;
      return;
    }
    const n = this.#nextSegment++;
    const meta: ManifestSegment = {
      n,
      init: g.init,
      duration: Math.round(g.duration * 1e6) / 1e6,
      discontinuity: g.discontinuity,
      bytes: g.bytes,
      tracks: [...g.tracks.values()],
    };
    const data = Buffer.concat(g.data, g.bytes);
    void part
      .run(async () => {
        await this.#o.spool.writeMedia(this.#partId, segmentFile(n), data);
        part.state.manifest.segments.push(meta);
        part.state.manifestUploaded = false;
        await this.#o.spool.writeState(part.state);
        this.#o.uploader.kick();
      })
      .catch((err: Error) => {
        this.#o.spool.release(g.bytes);
        this.#spoolFailed(err);
      });
  }

  #spoolFailed(err: Error): void {
    this.#discontinuity = true;
    this.#recorder.spoolFailed(this.#stream, err);
  }

  /** The stream ended (or the relay stops): the last group, a thumbnail, and the part closes. */
  async finish(): Promise<void> {
    this.#ended = true;
    if (this.#part === undefined || this.#finished) return; // undecided: closes once decided
    this.#finished = true;
    this.#flush();
    this.#stop();
    const part = this.#part;
    if (!part) return;
    // The latest thumbnail there is: a fresh decode is not worth holding the recording's close for.
    let timer: NodeJS.Timeout | undefined;
    const jpeg = await Promise.race([
      this.#o.thumbnail?.(this.#stream).catch(() => undefined),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), THUMBNAIL_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    await part
      .run(async () => {
        const m = part.state.manifest;
        if (jpeg) {
          await this.#o.spool.writeMedia(this.#partId, THUMBNAIL_FILE, jpeg);
          m.thumbnail = true;
        }
        m.closed = true;
        m.endedAt = this.#now();
        part.state.manifestUploaded = false;
        await this.#o.spool.writeState(part.state);
      })
      .catch((err: Error) => this.#spoolFailed(err));
    this.#o.uploader.kick();
  }

  #stop(): void {
    this.#detach();
    this.onGone?.();
  }
}
