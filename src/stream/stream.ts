/**
 * One live stream (a stream key) from its first publish to its end, across publisher reconnects, whatever
 * the ingest (RTMP, SRT, WHIP: a MediaSource of access units). States and transitions:
 *
 *   publishing ──publisher gone──▶ reconnecting ──same key publishes──▶ publishing
 *        │                              │ window over (RECONNECT_WINDOW_SECONDS)
 *        └──── close() ──────────────▶ ended (ENDLIST; memory freed after END_GRACE) ◀┘
 *
 * Every access unit goes through timestamp repair onto the stream's one timeline (ms, only growing, across
 * reconnects), then to the outputs: `copy` writes CMAF in-process (no FFmpeg), `transcode` and `abr` feed
 * FFmpeg (pipeline/), and the repaired access units are emitted for the others (re-streams, thumbnails,
 * WHEP). The packager sees one timeline: the copy writer stamps it directly, and the supervisor rebases
 * FFmpeg's output onto it, so dropping a GOP or hinting a keyframe needs no mapping between clocks.
 *
 * `auto` copies H.264 (+ AAC) and switches to transcode, at the current GOP with a discontinuity, as soon as
 * a GOP runs longer than the copy limit: the GOP so far is dropped from the packager (what a playlist showed
 * stays) and replayed into FFmpeg. TARGETDURATION is fixed for the stream's life so the switch never
 * changes it.
 */

import type { EndReason } from '../contracts/publish.ts';
import { DEFAULT_PART_SECONDS, Packager, type PackagerOptions } from '../hls/packager.ts';
import {
  type AccessUnit,
  isAudioConfig,
  isVideoConfig,
  type SourceStart,
  sameConfig,
  type TrackConfig,
} from '../media/access-unit.ts';
import { CmafWriter } from '../media/cmaf-writer.ts';
import { flvConfigTagOf, flvStartOf, flvTagOf } from '../media/flv-demux.ts';
import type { MediaTag } from '../media/flv-tag.ts';
import type { Fmp4Fragment } from '../media/fmp4.ts';
import type { MediaSource } from '../media/source.ts';
import { TimestampRepair } from '../media/timestamp-repair.ts';
import type { ChildReaper } from '../pipeline/child-reaper.ts';
import { type PipelineProfile, partFragmentMs } from '../pipeline/ffmpeg-args.ts';
import type { FfmpegExit } from '../pipeline/ffmpeg-process.ts';
import { LADDER_FPS, ladderFor } from '../pipeline/ladder.ts';
import { FfmpegSupervisor, type SupervisorOptions } from '../pipeline/supervisor.ts';
import { RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { AbrRenditions } from './abr.ts';
import { IngestStats } from './ingest-stats.ts';

export type CleanProfile = 'auto' | 'copy' | 'transcode' | 'abr';
export const CLEAN_PROFILES: readonly CleanProfile[] = ['auto', 'copy', 'transcode', 'abr'];

export const StreamState = {
  Idle: 'idle',
  Publishing: 'publishing',
  Reconnecting: 'reconnecting',
  Ended: 'ended',
} as const;
export type StreamStateName = (typeof StreamState)[keyof typeof StreamState];

export interface StreamOptions {
  key: string;
  userId: string;
  streamId: string;
  profile: CleanProfile;
  segmentSeconds: number;
  listSize: number;
  /** LL-HLS (HLS_LOW_LATENCY); default on. */
  lowLatency?: boolean;
  /** LL-HLS PART-TARGET in seconds (HLS_PART_SECONDS); default 0.5. */
  partSeconds?: number;
  copyMaxSegmentSeconds: number;
  reconnectWindowMs: number;
  /** After a clean unpublish the window is this much shorter one (UNPUBLISH_GRACE_SECONDS); default: the window. */
  unpublishGraceMs?: number;
  endGraceMs: number;
  watchdogMs: number;
  backoffMs?: number[];
  log: Logger;
  reaper: ChildReaper;
  ffmpegPath?: string;
  /** The H.264 encoder and GPU sessions for transcodes (see pipeline/encoders.ts). */
  encoder?: SupervisorOptions['encoder'];
}

export type StreamEvents = {
  state: [StreamStateName];
  /** The first segment is complete: HLS is playable. */
  ready: [];
  /** ENDLIST written. */
  ended: [];
  /** Private to the registry: memory may be released. */
  '@freed': [];
  /** A publish began: its configuration, for consumers of the clean input (re-streams, thumbnails, WHEP). */
  input: [SourceStart];
  /** A track's configuration changed mid-publish. */
  config: [TrackConfig];
  /** A repaired access unit, in order, for the same consumers. */
  au: [AccessUnit];
};

/** The seed's encode: -r 30 -g 60. */
const TRANSCODE_GOP_SECONDS = 2;
/** How much longer than the segment target a GOP may be before `auto` stops copying. */
const AUTO_COPY_GOP_FACTOR = 1.1;

/** TARGETDURATION a profile announces, fixed for the stream's life. */
export function targetDurationFor(
  profile: CleanProfile,
  segmentSeconds: number,
  copyMaxSegmentSeconds: number,
): number {
  if (profile === 'copy') return copyMaxSegmentSeconds;
  if (profile === 'transcode' || profile === 'abr') return Math.ceil(segmentSeconds);
  // auto: a segment closes at the first keyframe past 0.75 × target, and a copied GOP is at most 1.1 × target.
  return Math.ceil(segmentSeconds * 0.75 + segmentSeconds * AUTO_COPY_GOP_FACTOR);
}

/** Most bytes of the current GOP kept (for auto's switch and for outputs that start at a keyframe). */
const MAX_GOP_BYTES = 16 * 1024 * 1024;

export class Stream extends TypedEmitter<StreamEvents> {
  readonly key: string;
  readonly userId: string;
  readonly streamId: string;
  readonly profile: CleanProfile;
  readonly packager: Packager;
  readonly repair = new TimestampRepair();
  /** What the publisher sends: codecs, size, fps, keyframe interval, bitrate. */
  readonly ingest = new IngestStats();
  /** ms since the epoch: when this stream incarnation was created (its first publish). */
  readonly createdAt = Date.now();
  readonly supervisor: FfmpegSupervisor;
  /** The ABR profile's renditions (the first is `packager`); null for other profiles or before the start. */
  abr: AbrRenditions | null = null;
  /** Access units dropped by the copy writer while it waited for a keyframe (a start or a new configuration). */
  copyDropped = 0;
  readonly #packagerOptions: PackagerOptions;
  readonly #options: StreamOptions;
  readonly #log: Logger;
  #state: StreamStateName = StreamState.Idle;
  #source: MediaSource | null = null;
  #detach: (() => void) | null = null;
  #windowTimer: NodeJS.Timeout | null = null;
  #graceTimer: NodeJS.Timeout | null = null;
  #pipelineProfile: PipelineProfile | null = null;
  /** The current publish's configuration (repaired start, updated by config changes). */
  #start: SourceStart | null = null;
  /** The in-process CMAF writer while copying; null otherwise. */
  #writer: CmafWriter | null = null;
  /** The copy writer waits for a video keyframe before it writes anything (after a start or a new init). */
  #awaitKeyframe = true;
  /** The current GOP's access units, from its keyframe (repaired). */
  #gop: AccessUnit[] = [];
  #gopBytes = 0;
  #publishes = 0;
  /** Why `auto` chose what it runs now. */
  decision = '';

  constructor(options: StreamOptions) {
    super();
    this.#options = options;
    this.key = options.key;
    this.userId = options.userId;
    this.streamId = options.streamId;
    this.profile = options.profile;
    this.#log = options.log.child({ key: options.key });
    this.#packagerOptions = {
      segmentSeconds: options.segmentSeconds,
      targetDuration: targetDurationFor(
        options.profile,
        options.segmentSeconds,
        options.copyMaxSegmentSeconds,
      ),
      listSize: options.listSize,
      lowLatency: options.lowLatency ?? true,
      partSeconds: options.partSeconds ?? DEFAULT_PART_SECONDS,
    };
    this.packager = new Packager(this.#packagerOptions);
    this.packager.once('ready', () => {
      const ready = (): void => {
        this.#log.info({ profile: this.#pipelineProfile, abr: this.abr !== null }, 'HLS ready');
        this.safeEmit('ready');
      };
      // ABR: index.m3u8 (the multivariant playlist) is served once every rendition is playable.
      if (this.abr) this.abr.whenReady(ready);
      else ready();
    });
    this.supervisor = new FfmpegSupervisor({
      log: this.#log,
      reaper: options.reaper,
      watchdogMs: options.watchdogMs,
      // LL-HLS parts are whole fragments grouped by the packager: small fragments (see partFragmentMs).
      ...(this.packager.lowLatency ? { fragmentMs: partFragmentMs(this.packager.partTarget) } : {}),
      ...(options.backoffMs ? { backoffMs: options.backoffMs } : {}),
      ...(options.ffmpegPath ? { ffmpegPath: options.ffmpegPath } : {}),
      ...(options.encoder ? { encoder: options.encoder } : {}),
    });
    this.supervisor.on('init', (init, output) => {
      if (this.abr) this.abr.setInit(output, init);
      else if (output === 0) this.packager.setInit(init);
    });
    this.supervisor.on('fragment', (fragment, output) => {
      const packager = this.abr ? this.abr.renditions[output]?.packager : output === 0 ? this.packager : null;
      if (!packager) return;
      packager.pushFragment(fragment);
      // The seed's encode (and the ABR ladder's) puts a keyframe every 2 s exactly: the next one is known.
      // Not for an ABR ladder that keeps the input's frames: a keyframe falls on the first frame past 2 s.
      const exact = this.abr === null || this.abr.frameRate === LADDER_FPS;
      if (fragment.keyframe && exact) packager.hintKeyframe(fragment.startSeconds + TRANSCODE_GOP_SECONDS);
    });
    this.supervisor.on('exit', (exit) => this.#onFfmpegExit(exit));
  }

  get state(): StreamStateName {
    return this.#state;
  }

  get pipelineProfile(): PipelineProfile | null {
    return this.#pipelineProfile;
  }

  /** The publish feeding the stream now; null while reconnecting or after the end. */
  get source(): MediaSource | null {
    return this.#source;
  }

  /** The current publish's configuration (after repair), or null before the first start. */
  get configuration(): SourceStart | null {
    return this.#start;
  }

  /** The current GOP from its keyframe (repaired): what an output joining now starts from. */
  get currentGop(): readonly AccessUnit[] {
    return this.#gop;
  }

  /** A publish of this key went live (the first, or the publisher back within the window). */
  attach(source: MediaSource): void {
    if (this.#state === StreamState.Ended) throw new Error('stream ended');
    this.#detach?.();
    if (this.#windowTimer) clearTimeout(this.#windowTimer);
    this.#windowTimer = null;
    if (this.#publishes++ > 0) this.repair.continueAfterReconnect();
    this.#source = source;
    this.#setState(StreamState.Publishing);
    const onStart = (start: SourceStart): void => this.#onStart(start);
    const onAu = (au: AccessUnit): void => this.#onAu(au);
    const onConfig = (config: TrackConfig): void => this.#onConfig(config);
    const onEnd = (reason: EndReason): void => this.#onPublishEnd(source, reason);
    source.on('start', onStart);
    source.on('au', onAu);
    source.on('config', onConfig);
    source.once('end', onEnd);
    this.#detach = () => {
      source.off('start', onStart);
      source.off('au', onAu);
      source.off('config', onConfig);
      source.off('end', onEnd);
    };
    if (source.started) onStart(source.started);
  }

  /** Ends the stream now (server shutdown or an operator): ENDLIST, no FFmpeg left. */
  async close(): Promise<void> {
    if (this.#state === StreamState.Ended) return;
    await this.#end('closed');
  }

  /** Releases everything at once (registry shutdown after close, or the end grace). */
  free(): void {
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    if (this.#windowTimer) clearTimeout(this.#windowTimer);
    this.#graceTimer = null;
    this.#windowTimer = null;
    this.#detach?.();
    this.#gop = [];
    this.safeEmit('@freed');
  }

  #setState(state: StreamStateName): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#log.info({ state }, `stream ${state}`);
    this.safeEmit('state', state);
  }

  #onStart(start: SourceStart): void {
    this.#start = { ...start };
    this.ingest.start(start);
    this.#resetGop();
    this.safeEmit('input', this.#start);
    const first = this.#pipelineProfile === null;
    if (first) this.#pipelineProfile = this.#initialProfile(start);
    if (this.#pipelineProfile === 'copy') {
      this.#startCopy();
      return;
    }
    if (first && this.profile === 'abr') {
      this.#startAbr();
      return;
    }
    // A transcode (or the publisher back in one): a new FFmpeg, hence a new init and a discontinuity.
    this.supervisor.begin(this.#flvStart(), 'transcode');
  }

  #flvStart(): ReturnType<typeof flvStartOf> {
    return flvStartOf(this.#start!, this.repair.configTime('video'));
  }

  /** A new CMAF writer for the current configuration: a new init segment, so the packager marks a discontinuity. */
  #startCopy(): void {
    this.#flushCopy();
    const start = this.#start!;
    const video = isVideoConfig(start.video) ? start.video : null;
    const audio = isAudioConfig(start.audio) ? start.audio : null;
    try {
      this.#writer = new CmafWriter({ video, audio });
    } catch (err) {
      // A configuration the writer cannot describe (the demuxers check what they can): FFmpeg may still read it.
      const code = err instanceof RelayError ? err.code : 'INTERNAL';
      this.decision = `transcode: the copy writer refused the configuration (${code})`;
      this.#log.warn({ code }, `copy: ${this.decision}`);
      this.#pipelineProfile = 'transcode';
      this.supervisor.begin(this.#flvStart(), 'transcode');
      return;
    }
    this.#awaitKeyframe = video !== null;
    this.packager.setInit(this.#writer.init);
  }

  /** Everything the copy writer holds goes to the packager (publisher gone, a new configuration, a switch). */
  #flushCopy(): void {
    const writer = this.#writer;
    if (!writer) return;
    this.#writer = null;
    this.#pushFragments(writer.flush());
  }

  #pushFragments(fragments: readonly Fmp4Fragment[]): void {
    for (const f of fragments) this.packager.pushFragment(f);
  }

  /**
   * ABR: the ladder comes from the input's size (onMetaData, else the H.264 SPS), fixed for the stream's
   * life (a publisher back with another size is scaled to the same rungs). Without a known size, or without
   * video, the stream falls back to the seed's transcode and says so.
   */
  #startAbr(): void {
    const start = this.#start!;
    const size = this.#inputSize();
    if (!start.hasVideo || !size) {
      this.decision = `transcode: abr needs ${start.hasVideo ? 'the input size, which is unknown' : 'video'}`;
      this.#log.warn({ hasVideo: start.hasVideo }, `abr: ${this.decision}`);
      this.supervisor.begin(this.#flvStart(), 'transcode');
      return;
    }
    const rungs = ladderFor(size.width, size.height);
    // Input known to be at most 30 fps keeps its frames (no duplicates to encode); else 30 fps.
    const fps = this.ingest.metadataFps;
    const capFps = !(fps !== undefined && fps <= LADDER_FPS + 0.5);
    this.abr = new AbrRenditions(rungs, this.packager, this.#packagerOptions, capFps ? LADDER_FPS : fps!);
    this.decision = `abr: ${rungs.map((r) => `${r.name} ${r.width}x${r.height}@${r.videoKbps}k`).join(', ')}`;
    this.#log.info({ width: size.width, height: size.height, rungs: rungs.map((r) => r.name) }, 'abr ladder');
    this.supervisor.begin(this.#flvStart(), 'transcode', { ladder: rungs, capFps });
  }

  #inputSize(): { width: number; height: number } | null {
    const snap = this.ingest.snapshot();
    if (snap.width && snap.height) return { width: snap.width, height: snap.height };
    return this.ingest.spsSize ?? null;
  }

  #initialProfile(start: SourceStart): PipelineProfile {
    if (this.profile === 'abr') return 'transcode'; // the ladder is a transcode; #startAbr decides
    if (this.profile === 'transcode') {
      this.decision = 'transcode requested';
      return 'transcode';
    }
    const videoOk = !start.hasVideo || start.video?.codec === 'h264';
    // Opus (WHIP) is copied into fMP4 as it is: hls.js in Chromium plays it (whip-relay test); an AAC encode
    // would put an FFmpeg on every WHIP stream.
    const audioOk = !start.hasAudio || start.audio?.codec === 'aac' || start.audio?.codec === 'opus';
    if (this.profile === 'copy') {
      if (videoOk && audioOk) {
        this.decision = 'copy requested';
        return 'copy';
      }
      // The CMAF writer takes H.264/HEVC and AAC/Opus only: anything else must be re-encoded to play.
      this.decision = 'transcode: copy requested, but the input is not H.264 with AAC or Opus';
      this.#log.warn(this.decision);
      return 'transcode';
    }
    if (videoOk && audioOk) {
      this.decision = `copy: H.264/${start.audio?.codec === 'opus' ? 'Opus' : 'AAC'} input, GOPs watched`;
      return 'copy';
    }
    this.decision = 'transcode: input is not H.264 with AAC or Opus';
    return 'transcode';
  }

  #onConfig(config: TrackConfig): void {
    const start = this.#start;
    if (!start) return;
    const slot = config.kind;
    if (sameConfig(start[slot], config)) return;
    this.#start = { ...start, [slot]: config };
    this.ingest.config(config);
    this.safeEmit('config', config);
    if (this.#pipelineProfile === 'copy') {
      // A new SPS/PPS or AudioSpecificConfig needs a new init segment (and a discontinuity), from a keyframe.
      if (this.#writer) {
        this.#log.info({ track: slot }, 'configuration changed: new init segment');
        this.#startCopy();
      }
      return;
    }
    const tag = flvConfigTagOf(config, this.repair.configTime(config.kind));
    if (tag) this.supervisor.write(tag);
    this.supervisor.updateFlvStart(this.#flvStart());
  }

  #onAu(au: AccessUnit): void {
    if (!this.#start) return;
    const repaired = this.repair.repairAu(au);
    this.ingest.au(repaired);
    this.#remember(repaired);
    this.safeEmit('au', repaired);
    if (this.#pipelineProfile === 'copy') {
      if (repaired.track === 'video' && this.#copyGopTooLong(repaired)) return;
      this.#copy(repaired);
      return;
    }
    const tag = this.#flvTag(repaired);
    if (tag) this.supervisor.write(tag);
  }

  #flvTag(au: AccessUnit): MediaTag | null {
    return flvTagOf(au, au.track === 'video' ? this.#start!.video : this.#start!.audio);
  }

  #copy(au: AccessUnit): void {
    const writer = this.#writer;
    if (!writer) return;
    if (this.#awaitKeyframe) {
      if (!(au.track === 'video' && au.keyframe)) {
        this.copyDropped++;
        return;
      }
      this.#awaitKeyframe = false;
    }
    this.#pushFragments(writer.push(au));
    // The keyframe just closed the fragment before it: the segment before it may end now.
    if (au.track === 'video' && au.keyframe) this.packager.hintKeyframe(au.dts / 1000);
  }

  #remember(au: AccessUnit): void {
    if (au.track === 'video' && au.keyframe) this.#resetGop();
    if (this.#gopBytes + au.data.length > MAX_GOP_BYTES) return;
    this.#gop.push(au);
    this.#gopBytes += au.data.length;
  }

  #resetGop(): void {
    this.#gop = [];
    this.#gopBytes = 0;
  }

  /** auto: a GOP longer than the copy limit moves the stream to transcode, from that GOP on. */
  #copyGopTooLong(au: AccessUnit): boolean {
    if (this.profile !== 'auto' || au.keyframe) return false;
    // FFmpeg is fed FLV, which cannot carry Opus: a WHIP stream stays copied (its source asks the publisher
    // for keyframes at the segment cadence; an overlong GOP is cut anyway and counted as a breach).
    if (this.#start?.audio?.codec === 'opus') return false;
    const gopStart = this.#gop[0];
    if (gopStart?.track !== 'video' || !gopStart.keyframe) return false;
    const gopMs = au.dts - gopStart.dts;
    const limitMs = this.#options.segmentSeconds * AUTO_COPY_GOP_FACTOR * 1000;
    if (gopMs <= limitMs) return false;
    this.#pipelineProfile = 'transcode';
    this.decision = `transcode: a GOP ran past ${limitMs} ms`;
    this.#log.info({ gopMs, limitMs }, 'auto: switching from copy to transcode');
    // What the copy wrote of this GOP goes (a playlist may have shown some: that stays), FFmpeg makes it again.
    this.#flushCopy();
    this.packager.discardFrom(gopStart.dts / 1000);
    this.packager.closeOpen();
    const replay = this.#gop.map((a) => this.#flvTag(a)).filter((t): t is MediaTag => t !== null);
    this.supervisor.begin(this.#flvStart(), 'transcode', { replay });
    return true;
  }

  #onFfmpegExit(exit: FfmpegExit): void {
    // A crash restarts from the current GOP: drop what would be shown twice. A requested stop keeps
    // everything; with the publisher gone, what FFmpeg flushed becomes the last segment.
    const packagers = this.abr?.packagers ?? [this.packager];
    if (exit.error && this.#state === StreamState.Publishing) {
      const from = this.supervisor.gopStartMs;
      for (const packager of packagers) {
        if (from !== null) packager.discardFrom(from / 1000);
        packager.closeOpen();
      }
    } else if (this.#state !== StreamState.Publishing) {
      for (const packager of packagers) packager.closeOpen();
    }
  }

  #onPublishEnd(source: MediaSource, reason: EndReason): void {
    if (this.#source !== source) return;
    this.#detach?.();
    this.#detach = null;
    this.#source = null;
    if (this.#state === StreamState.Ended) return;
    // A publisher that said goodbye (unpublish) is probably done: a short grace lets a quick republish
    // continue the stream, then players get ENDLIST instead of waiting out the whole reconnect window.
    const clean = reason.kind === 'unpublish';
    const windowMs = clean
      ? Math.min(
          this.#options.unpublishGraceMs ?? this.#options.reconnectWindowMs,
          this.#options.reconnectWindowMs,
        )
      : this.#options.reconnectWindowMs;
    this.#log.info(
      { reason: reason.kind, windowSeconds: windowMs / 1000 },
      clean
        ? 'publisher unpublished, ending unless it republishes'
        : 'publisher gone, waiting for it to come back',
    );
    this.#setState(StreamState.Reconnecting);
    this.#stopOutputs();
    this.#windowTimer = setTimeout(() => {
      this.#windowTimer = null;
      void this.#end(clean ? 'unpublished' : 'reconnect window closed');
    }, windowMs);
  }

  /** The publisher is gone: what the copy writer holds becomes the last segment; FFmpeg flushes what it has. */
  #stopOutputs(): Promise<void> {
    if (this.#writer) {
      this.#flushCopy();
      this.packager.closeOpen();
    }
    return this.supervisor.stop({ flush: true });
  }

  async #end(why: string): Promise<void> {
    if (this.#state === StreamState.Ended) return;
    this.#setState(StreamState.Ended);
    if (this.#windowTimer) clearTimeout(this.#windowTimer);
    this.#windowTimer = null;
    this.#detach?.();
    this.#detach = null;
    this.#source = null;
    await this.#stopOutputs();
    for (const packager of this.abr?.packagers ?? [this.packager]) packager.end();
    this.#log.info(
      {
        why,
        ...this.packager.stats,
        ...this.supervisor.stats,
        repairs: this.repair.counts,
        copyDropped: this.copyDropped,
      },
      'stream ended',
    );
    this.safeEmit('ended');
    this.#graceTimer = setTimeout(() => this.free(), this.#options.endGraceMs);
  }
}
