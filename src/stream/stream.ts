/**
 * One live stream (a stream key) from its first publish to its end, across publisher reconnects and FFmpeg
 * restarts: publish → timestamp repair → FFmpeg (supervised) → packager. States and transitions:
 *
 *   publishing ──publisher gone──▶ reconnecting ──same key publishes──▶ publishing
 *        │                              │ window over (RECONNECT_WINDOW_SECONDS)
 *        └──── close() ──────────────▶ ended (ENDLIST; memory freed after END_GRACE) ◀┘
 *
 * `auto` starts in copy when the input is H.264 (+ AAC) and switches to transcode, at the current GOP with a
 * discontinuity, as soon as a GOP runs longer than the copy limit; the packager's TARGETDURATION is fixed
 * for the stream's life so the switch never changes it.
 */

import { DEFAULT_PART_SECONDS, Packager, type PackagerOptions } from '../hls/packager.ts';
import type { FlvStart } from '../media/flv-sink.ts';
import {
  FlvTagType,
  type MediaTag,
  parseAudioTag,
  parseVideoTag,
  SoundFormat,
  VideoCodecId,
} from '../media/flv-tag.ts';
import { TimestampRepair } from '../media/timestamp-repair.ts';
import type { ChildReaper } from '../pipeline/child-reaper.ts';
import { type PipelineProfile, partFragmentMs } from '../pipeline/ffmpeg-args.ts';
import type { FfmpegExit } from '../pipeline/ffmpeg-process.ts';
import { LADDER_FPS, ladderFor } from '../pipeline/ladder.ts';
import { FfmpegSupervisor, type SupervisorOptions } from '../pipeline/supervisor.ts';
import type { EndReason, Publish, PublishStart } from '../rtmp/publish.ts';
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
  /** A publish began (repaired configuration), for consumers of the clean input (re-streaming). */
  input: [FlvStart];
  /** A repaired media tag, in order, for the same consumers. */
  media: [MediaTag];
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
  readonly #packagerOptions: PackagerOptions;
  readonly #options: StreamOptions;
  readonly #log: Logger;
  #state: StreamStateName = StreamState.Idle;
  #publish: Publish | null = null;
  #detach: (() => void) | null = null;
  #windowTimer: NodeJS.Timeout | null = null;
  #graceTimer: NodeJS.Timeout | null = null;
  #pipelineProfile: PipelineProfile | null = null;
  #lastKeyframeMs: number | null = null;
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
      if (this.supervisor.profile === 'transcode' && fragment.keyframe && exact) {
        packager.hintKeyframe(fragment.startSeconds + TRANSCODE_GOP_SECONDS);
      }
    });
    this.supervisor.on('exit', (exit) => this.#onFfmpegExit(exit));
  }

  get state(): StreamStateName {
    return this.#state;
  }

  get pipelineProfile(): PipelineProfile | null {
    return this.#pipelineProfile;
  }

  /** A publish of this key went live (the first, or the publisher back within the window). */
  attach(publish: Publish): void {
    if (this.#state === StreamState.Ended) throw new Error('stream ended');
    this.#detach?.();
    if (this.#windowTimer) clearTimeout(this.#windowTimer);
    this.#windowTimer = null;
    if (this.#publishes++ > 0) this.repair.continueAfterReconnect();
    this.#publish = publish;
    this.#setState(StreamState.Publishing);
    const onStart = (start: PublishStart): void => this.#onStart(start);
    const onTag = (tag: MediaTag): void => this.#onTag(tag);
    const onEnd = (reason: EndReason): void => this.#onPublishEnd(publish, reason);
    publish.on('start', onStart);
    publish.on('tag', onTag);
    publish.once('end', onEnd);
    this.#detach = () => {
      publish.off('start', onStart);
      publish.off('tag', onTag);
      publish.off('end', onEnd);
    };
    if (publish.started) onStart(publish.started);
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
    this.safeEmit('@freed');
  }

  #setState(state: StreamStateName): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#log.info({ state }, `stream ${state}`);
    this.safeEmit('state', state);
  }

  #onStart(start: PublishStart): void {
    this.ingest.start(start);
    const flv: FlvStart = {
      hasAudio: start.hasAudio,
      hasVideo: start.hasVideo,
      metadataTag: start.metadataTag,
      videoConfig: start.videoConfig ? this.#repaired(start.videoConfig) : null,
      audioConfig: start.audioConfig ? this.#repaired(start.audioConfig) : null,
    };
    this.safeEmit('input', flv);
    if (this.#pipelineProfile === null) {
      this.#pipelineProfile = this.#initialProfile(start);
      if (this.profile === 'abr') this.#startAbr(flv);
      else this.supervisor.begin(flv, this.#pipelineProfile);
      return;
    }
    // The publisher is back: a new FFmpeg (new init, hence a discontinuity) with its configuration.
    this.supervisor.begin(flv, this.#pipelineProfile);
  }

  /**
   * ABR: the ladder comes from the input's size (onMetaData, else the H.264 SPS), fixed for the stream's
   * life (a publisher back with another size is scaled to the same rungs). Without a known size, or without
   * video, the stream falls back to the seed's transcode and says so.
   */
  #startAbr(flv: FlvStart): void {
    const size = this.#inputSize();
    if (!flv.hasVideo || !size) {
      this.decision = `transcode: abr needs ${flv.hasVideo ? 'the input size, which is unknown' : 'video'}`;
      this.#log.warn({ hasVideo: flv.hasVideo }, `abr: ${this.decision}`);
      this.supervisor.begin(flv, 'transcode');
      return;
    }
    const rungs = ladderFor(size.width, size.height);
    // Input known to be at most 30 fps keeps its frames (no duplicates to encode); else 30 fps.
    const fps = this.ingest.metadataFps;
    const capFps = !(fps !== undefined && fps <= LADDER_FPS + 0.5);
    this.abr = new AbrRenditions(rungs, this.packager, this.#packagerOptions, capFps ? LADDER_FPS : fps!);
    this.decision = `abr: ${rungs.map((r) => `${r.name} ${r.width}x${r.height}@${r.videoKbps}k`).join(', ')}`;
    this.#log.info({ width: size.width, height: size.height, rungs: rungs.map((r) => r.name) }, 'abr ladder');
    this.supervisor.begin(flv, 'transcode', { ladder: rungs, capFps });
  }

  #inputSize(): { width: number; height: number } | null {
    const snap = this.ingest.snapshot();
    if (snap.width && snap.height) return { width: snap.width, height: snap.height };
    return this.ingest.spsSize ?? null;
  }

  #repaired(tag: MediaTag): MediaTag {
    return this.repair.repair(tag) ?? tag;
  }

  #initialProfile(start: PublishStart): PipelineProfile {
    if (this.profile === 'abr') return 'transcode'; // the ladder is a transcode; #startAbr decides
    if (this.profile !== 'auto') {
      this.decision = `${this.profile} requested`;
      return this.profile;
    }
    const video = start.videoConfig ? parseVideoTag(start.videoConfig.data) : null;
    const audio = start.audioConfig ? parseAudioTag(start.audioConfig.data) : null;
    const videoOk = !start.hasVideo || video?.codec === VideoCodecId.Avc;
    const audioOk = !start.hasAudio || audio?.codec === SoundFormat.Aac;
    if (videoOk && audioOk) {
      this.decision = 'copy: H.264/AAC input, GOPs watched';
      return 'copy';
    }
    this.decision = 'transcode: input is not H.264/AAC';
    return 'transcode';
  }

  #onTag(tag: MediaTag): void {
    const repaired = this.repair.repair(tag);
    if (!repaired) return;
    this.ingest.tag(repaired);
    this.safeEmit('media', repaired);
    if (repaired.type === FlvTagType.Video && !repaired.isConfig) this.#watchGop(repaired);
    this.supervisor.write(repaired);
    // In copy, an input keyframe is an output keyframe at a known time: let the segment before it close.
    if (
      this.supervisor.profile === 'copy' &&
      repaired.type === FlvTagType.Video &&
      repaired.keyframe &&
      !repaired.isConfig
    ) {
      const at = this.supervisor.outputSecondsFor(repaired.timestamp);
      if (at !== null) this.packager.hintKeyframe(at);
    }
  }

  /** auto: a GOP longer than the copy limit moves the stream to transcode, from that GOP on. */
  #watchGop(tag: MediaTag): void {
    if (tag.keyframe) {
      this.#lastKeyframeMs = tag.timestamp;
      return;
    }
    if (this.profile !== 'auto' || this.#pipelineProfile !== 'copy' || this.#lastKeyframeMs === null) return;
    const gopMs = tag.timestamp - this.#lastKeyframeMs;
    const limitMs = this.#options.segmentSeconds * AUTO_COPY_GOP_FACTOR * 1000;
    if (gopMs <= limitMs) return;
    this.#pipelineProfile = 'transcode';
    this.decision = `transcode: a GOP ran past ${limitMs} ms`;
    this.#log.info({ gopMs, limitMs }, 'auto: switching from copy to transcode');
    void this.supervisor.switchProfile('transcode', () => this.#discardCurrentGop());
  }

  /** Drops what the packager holds of the GOP that the next FFmpeg gets again. */
  #discardCurrentGop(): void {
    const gopStart = this.supervisor.gopStartMs;
    const from = gopStart === null ? null : this.supervisor.outputSecondsFor(gopStart);
    for (const packager of this.abr?.packagers ?? [this.packager]) {
      if (from !== null) packager.discardFrom(from);
      packager.closeOpen();
    }
  }

  #onFfmpegExit(exit: FfmpegExit): void {
    // A crash restarts from the current GOP: drop what would be shown twice. A requested stop keeps
    // everything; with the publisher gone, what FFmpeg flushed becomes the last segment.
    if (exit.error && this.#state === StreamState.Publishing) this.#discardCurrentGop();
    else if (this.#state !== StreamState.Publishing) {
      for (const packager of this.abr?.packagers ?? [this.packager]) packager.closeOpen();
    }
  }

  #onPublishEnd(publish: Publish, reason: EndReason): void {
    if (this.#publish !== publish) return;
    this.#detach?.();
    this.#detach = null;
    this.#publish = null;
    if (this.#state === StreamState.Ended) return;
    this.#log.info({ reason: reason.kind }, 'publisher gone, waiting for it to come back');
    this.#setState(StreamState.Reconnecting);
    // FFmpeg flushes what it has; the next publish starts a new one (a discontinuity).
    void this.supervisor.stop({ flush: true });
    this.#windowTimer = setTimeout(() => {
      this.#windowTimer = null;
      void this.#end('reconnect window closed');
    }, this.#options.reconnectWindowMs);
  }

  async #end(why: string): Promise<void> {
    if (this.#state === StreamState.Ended) return;
    this.#setState(StreamState.Ended);
    if (this.#windowTimer) clearTimeout(this.#windowTimer);
    this.#windowTimer = null;
    this.#detach?.();
    this.#detach = null;
    await this.supervisor.stop({ flush: true });
    for (const packager of this.abr?.packagers ?? [this.packager]) packager.end();
    this.#log.info(
      { why, ...this.packager.stats, ...this.supervisor.stats, repairs: this.repair.counts },
      'stream ended',
    );
    this.safeEmit('ended');
    this.#graceTimer = setTimeout(() => this.free(), this.#options.endGraceMs);
  }
}
