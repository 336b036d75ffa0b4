/**
 * One live stream (a stream key) from its first publish to its end, across publisher reconnects, whatever
 * the ingest (RTMP, SRT, WHIP: a MediaSource of access units). States and transitions:
 *
 *   publishing ──publisher gone──▶ reconnecting ──same key publishes──▶ publishing
 *        │                              │ window over (RECONNECT_WINDOW_SECONDS)
 *        └──── close() ──────────────▶ ended (ENDLIST; memory freed after END_GRACE) ◀┘
 *
 * Every access unit goes through timestamp repair onto the stream's one timeline (ms, only growing, across
 * reconnects), re-stamped to the arrival clock when the publisher's media clock runs off real time
 * (media/clock-drift.ts), then to the outputs: `copy` writes CMAF in-process (no FFmpeg), `transcode` and `abr` feed
 * FFmpeg (pipeline/), and the repaired access units are emitted for the others (re-streams, thumbnails,
 * WHEP). The packager sees one timeline: the copy writer stamps it directly, and the supervisor rebases
 * FFmpeg's output onto it, so dropping a GOP or hinting a keyframe needs no mapping between clocks.
 *
 * `auto` copies H.264 (+ AAC) and switches to transcode, at the current GOP with a discontinuity, as soon as
 * a GOP runs longer than the copy limit: the GOP so far is dropped from the packager (what a playlist showed
 * stays) and replayed into FFmpeg. TARGETDURATION is decided by the first segment (from its GOP) and fixed
 * for the stream's life from then on; auto's is never under the transcode's GOP, so the switch never breaks it.
 *
 * Slate (SLATE=on): when the publisher is gone (its connection closed, or no media for SLATE_AFTER_SECONDS
 * while connected; a gap under MIN_SLATE_GAP_MS never starts one), the outputs stop as they do for a reconnect
 * and a slate runs instead (./slate-runner.ts): each packager gets a "reconnecting" still with silent audio
 * after a discontinuity, re-streams get the same (`slate-start`, `slate-au`, `slate-end` events), recordings
 * and WHEP get nothing (the `au` event carries only the publisher's frames). The publisher's return starts at
 * its first video keyframe (frames before it are dropped), shifted on the timeline to after the slate's
 * end, with a new init (a second discontinuity); its frames still stamped inside the slate's time are dropped.
 * Transcode and ABR streams get the slate written in-process too (encoded at their output's size and
 * profile): an FFmpeg decoding and re-encoding a still picture would cost a transcode per reconnecting
 * stream, the in-process slate costs a timer.
 */

import type { EndReason } from '../contracts/publish.ts';
import {
  DEFAULT_PART_SECONDS,
  Packager,
  type PackagerOptions,
  type TargetDurationRange,
} from '../hls/packager.ts';
import {
  type AccessUnit,
  type AudioConfig,
  isAudioConfig,
  isVideoConfig,
  type SourceStart,
  sameConfig,
  type TrackConfig,
} from '../media/access-unit.ts';
import { AAC_LC, aacObjectType } from '../media/adts.ts';
import { avcRecordFormat, playerDecodable } from '../media/avc-sps.ts';
import { ClockDrift } from '../media/clock-drift.ts';
import { CmafWriter } from '../media/cmaf-writer.ts';
import { flvConfigTagOf, flvStartOf, flvTagOf } from '../media/flv-demux.ts';
import type { MediaTag } from '../media/flv-tag.ts';
import type { Fmp4Fragment, Fmp4Init } from '../media/fmp4.ts';
import { silentFrameFor } from '../media/silence.ts';
import type { MediaSource } from '../media/source.ts';
import { TimestampRepair } from '../media/timestamp-repair.ts';
import {
  type AacEncoderFactory,
  type AacEncoderHandle,
  aacConfigFor,
  flvAudioOf,
} from '../pipeline/aac-encoder.ts';
import type { ChildReaper } from '../pipeline/child-reaper.ts';
import { SEED_TARGET } from '../pipeline/encoders.ts';
import { type PipelineProfile, partFragmentMs } from '../pipeline/ffmpeg-args.ts';
import type { FfmpegExit } from '../pipeline/ffmpeg-process.ts';
import { LADDER_FPS, ladderFor } from '../pipeline/ladder.ts';
import { FfmpegSupervisor, type SupervisorOptions } from '../pipeline/supervisor.ts';
import { RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { AbrRenditions } from './abr.ts';
import { IngestStats } from './ingest-stats.ts';
import { clampFps } from './slate.ts';
import type { SlateCache } from './slate-cache.ts';
import { type SlateMedia, type SlateSpec, specOfInit, specOfInput } from './slate-media.ts';
import { type SlatePackagerTarget, SlateRunner } from './slate-runner.ts';

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
  /** LL-HLS PART-TARGET in seconds (HLS_PART_SECONDS); default DEFAULT_PART_SECONDS (0.334). */
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
  /** The slate while the publisher is gone; absent: SLATE=off. */
  slate?: StreamSlateOptions;
  /**
   * Opus → AAC for the transcoding FFmpeg's FLV input (FLV carries no Opus) when a WHIP stream is
   * transcoded (`transcode`, `abr`; `auto` keeps it copied); absent: such a transcode has no audio.
   */
  aacEncoder?: AacEncoderFactory;
}

export interface StreamSlateOptions {
  /** The relay's shared slates. */
  cache: SlateCache;
  /** SLATE_AFTER_SECONDS in ms: no media this long with the publisher connected starts the slate. */
  afterMs: number;
  /** Slate tick (tests, bench). */
  tickMs?: number;
  now?: () => number;
}

/** A gap shorter than this never starts a slate, even when the connection closed (glasses reconnect fast). */
export const MIN_SLATE_GAP_MS = 1000;

export type StreamEvents = {
  state: [StreamStateName];
  /** HLS is playable at once: a plain playlist request is answered without waiting (Packager.startable). */
  ready: [];
  /** ENDLIST written. */
  ended: [];
  /** The publish was refused: the relay cannot use what it sends (see `failure`); `ended` follows. */
  failed: [string];
  /** Private to the registry: memory may be released. */
  '@freed': [];
  /** A publish began: its configuration, for consumers of the clean input (re-streams, thumbnails, WHEP). */
  input: [SourceStart];
  /** A track's configuration changed mid-publish. */
  config: [TrackConfig];
  /** A repaired access unit, in order, for the same consumers. */
  au: [AccessUnit];
  /**
   * The slate began, in the publisher's format (for re-streams: its configuration replaces the publisher's
   * until `slate-end`); not emitted when no slate matches the publisher's configuration.
   */
  'slate-start': [SourceStart];
  /** A slate access unit (`slate: true`), on the stream's timeline. */
  'slate-au': [AccessUnit];
  /** The slate is over (the publisher is back, or the stream ends); `configuration` is the publisher's. */
  'slate-end': [];
};

/** The seed's encode: -r 30 -g 60. */
const TRANSCODE_GOP_SECONDS = 2;
/** How much longer than the segment target a GOP may be before `auto` stops copying. */
const AUTO_COPY_GOP_FACTOR = 1.1;

/**
 * The range a profile's TARGETDURATION is decided in when the first segment closes (from the GOP it saw;
 * fixed for the stream's life from then on, see hls/segmenter.ts).
 * - copy: any GOP from 1 s up to COPY_MAX_SEGMENT_SECONDS (a longer one is cut there: a breach);
 * - transcode, abr: FFmpeg's GOP (2 s), more only for a longer segment target;
 * - auto: as copy, but never under the transcode's GOP, so the switch to transcode (at a GOP past the copy
 *   limit) still fits, and never over what a copied GOP may be (the switch comes first).
 */
export function targetDurationFor(
  profile: CleanProfile,
  segmentSeconds: number,
  copyMaxSegmentSeconds: number,
): TargetDurationRange {
  if (profile === 'copy') return { min: 1, max: Math.max(1, copyMaxSegmentSeconds) };
  const transcode = Math.max(TRANSCODE_GOP_SECONDS, Math.ceil(segmentSeconds));
  if (profile === 'transcode' || profile === 'abr') return { min: TRANSCODE_GOP_SECONDS, max: transcode };
  // auto: a segment closes at the first keyframe past 0.75 × target, and a copied GOP is at most 1.1 × target.
  const copied = Math.ceil(segmentSeconds * 0.75 + segmentSeconds * AUTO_COPY_GOP_FACTOR);
  return { min: TRANSCODE_GOP_SECONDS, max: Math.max(transcode, copied) };
}

function codecName(config: TrackConfig | null): string | null {
  if (config === null) return null;
  return config.codec === 'opaque' ? config.name : config.codec;
}

/**
 * Why a track is not copied to HLS as it is, or null when every player decodes it: H.264 8-bit 4:2:0
 * Baseline/Main/High (read from the SPS), AAC-LC, and Opus (WHIP's; see below). The CMAF writer could carry
 * more (HEVC, High 4:4:4 10-bit), but Safari, iOS and hardware decoders cannot play it.
 */
export function notCopyable(config: TrackConfig | null): string | null {
  if (config === null) return 'a track without its configuration';
  if (config.codec === 'opaque') return `${config.name} is not H.264/AAC`;
  if (config.kind === 'audio') {
    // Opus (WHIP) is copied into fMP4 as it is: hls.js in Chromium plays it (whip-relay test); a transcode
    // makes it AAC (through the stream's Opus → AAC encoder, FFmpeg being fed FLV).
    if (config.codec === 'opus') return null;
    if (config.codec !== 'aac') return `${config.codec} audio is not AAC`;
    const objectType = aacObjectType(config.config);
    return objectType === AAC_LC ? null : `AAC object type ${objectType} is not AAC-LC`;
  }
  if (config.codec !== 'h264') return `${config.codec} video is not H.264`;
  const format = avcRecordFormat(config.record);
  if (!format) return 'an H.264 SPS that does not parse';
  if (playerDecodable(format)) return null;
  const { profileIdc, chromaFormatIdc, bitDepthLuma } = format;
  const chroma = ['4:0:0', '4:2:0', '4:2:2', '4:4:4'][chromaFormatIdc] ?? '?';
  return `H.264 profile ${profileIdc} ${chroma} ${bitDepthLuma}-bit is not what players decode`;
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
  /** After repair: the timeline follows the arrival clock when the publisher's media clock lies. */
  readonly clock = new ClockDrift();
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
  /** A silent frame of the copy writer's audio: its flush runs the audio on to the video's end (see CmafWriter). */
  #writerSilence: Buffer | null = null;
  /** The copy writer waits for a video keyframe before it writes anything (after a start or a new init). */
  #awaitKeyframe = true;
  /** The current GOP's access units, from its keyframe (repaired). */
  #gop: AccessUnit[] = [];
  #gopBytes = 0;
  #publishes = 0;
  /** Opus → AAC for FFmpeg while transcoding an Opus stream; made at its first audio frame, closed when outputs stop. */
  #aac: AacEncoderHandle | null = null;
  /** Why `auto` chose what it runs now. */
  decision = '';
  /** Slates run, and publisher frames dropped around them (before the return's keyframe, or inside its time). */
  readonly slateStats = { slates: 0, dropped: 0 };
  /** `live`: the outputs run on the publisher's media; `gone`: stopped for a gap, the slate (if any) runs. */
  #phase: 'live' | 'gone' = 'live';
  #slate: SlateRunner | null = null;
  /** Identifies the slate being started (its encodes may still run); replaced or cleared to cancel it. */
  #slateToken: object | null = null;
  #gapTimer: NodeJS.Timeout | null = null;
  /** Wall clock of the publisher's last frame, and its (repaired) DTS. */
  #lastMediaWall = 0;
  #lastDts = -1;
  /** Where what the packager got so far ends on the timeline, ms. */
  #outputEndMs = 0;
  /** Added to every repaired time: moves the publisher's return past the slate (only grows). */
  #shiftMs = 0;
  /** Publisher frames stamped before this (inside the last slate's time) are dropped. */
  #slateEndMs = Number.NEGATIVE_INFINITY;
  /** Each packager's latest init from the publisher's media (never the slate's): what its slate must match. */
  readonly #outputInits = new Map<Packager, Fmp4Init>();
  #outputsStopped: Promise<void> = Promise.resolve();
  /** Why the publish was refused (an input FFmpeg cannot decode); null while all is well. */
  failure: string | null = null;

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
    // Ready when a plain playlist request is answered at once (the packager's `startable`: at most a second
    // after the first segment), not at the first segment: the cloud's hls-ready sends players right away.
    this.packager.once('startable', () => {
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
      const packager = this.abr ? this.abr.renditions[output]?.packager : output === 0 ? this.packager : null;
      if (packager) this.#outputInits.set(packager, init);
      if (this.abr) this.abr.setInit(output, init);
      else if (output === 0) this.packager.setInit(init);
    });
    this.supervisor.on('fragment', (fragment, output) => {
      const packager = this.abr ? this.abr.renditions[output]?.packager : output === 0 ? this.packager : null;
      if (!packager) return;
      packager.pushFragment(fragment);
      this.#noteOutput(fragment);
      // The seed's encode (and the ABR ladder's) puts a keyframe every 2 s exactly: the next one is known.
      // Not for an ABR ladder that keeps the input's frames: a keyframe falls on the first frame past 2 s.
      const exact = this.abr === null || this.abr.frameRate === LADDER_FPS;
      if (fragment.keyframe && exact) packager.hintKeyframe(fragment.startSeconds + TRANSCODE_GOP_SECONDS);
    });
    this.supervisor.on('exit', (exit) => this.#onFfmpegExit(exit));
    this.supervisor.on('failed', (err) => this.#refuse(err.message));
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

  /** Whether the slate is on the outputs now. */
  get slating(): boolean {
    return this.#slate !== null;
  }

  /** Where a configuration tag of `track` goes on the stream's timeline (its last frame's time). */
  configTime(track: 'video' | 'audio'): number {
    return this.repair.configTime(track) + this.#shiftMs;
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
    this.#armGapTimer();
  }

  /** Ends the stream now (server shutdown or an operator): ENDLIST, no FFmpeg left. */
  async close(): Promise<void> {
    if (this.#state === StreamState.Ended) return;
    await this.#end('closed');
  }

  /** Releases everything at once (registry shutdown after close, or the end grace). */
  free(): void {
    this.#cancelSlate();
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
    const audio = isAudioConfig(start.audio) ? start.audio : null;
    this.clock.newPublish(
      start.hasVideo,
      audio
        ? {
            frameMs: (audio.frameSamples / audio.sampleRate) * 1000,
            // AAC-LC only (an Opus track gets none: its gaps stay gaps).
            silentFrame: audio.codec === 'aac' ? silentFrameFor(audio) : null,
          }
        : null,
    );
    this.ingest.start(start);
    this.#resetGop();
    this.safeEmit('input', this.#start);
    const first = this.#pipelineProfile === null;
    if (first) this.#pipelineProfile = this.#initialProfile(start);
    // Back during a slate: the outputs start again at the return's keyframe (#endSlate).
    if (this.#phase === 'gone') return;
    this.#startOutputs(first);
  }

  #startOutputs(first: boolean): void {
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
    const start = this.#start!;
    return flvStartOf(this.#options.aacEncoder ? flvAudioOf(start) : start, this.configTime('video'));
  }

  /** The publisher's audio configuration when it is Opus (WHIP), which FLV cannot carry. */
  #opusAudio(): AudioConfig | null {
    const audio = this.#start?.audio;
    return isAudioConfig(audio) && audio.codec === 'opus' ? audio : null;
  }

  /** A new CMAF writer for the current configuration: a new init segment, so the packager marks a discontinuity. */
  #startCopy(): void {
    this.#flushCopy();
    const start = this.#start!;
    const video = isVideoConfig(start.video) ? start.video : null;
    const audio = isAudioConfig(start.audio) ? start.audio : null;
    try {
      this.#writer = new CmafWriter({ video, audio });
      this.#writerSilence = audio ? silentFrameFor(audio) : null;
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
    this.#outputInits.set(this.packager, this.#writer.init);
    this.packager.setInit(this.#writer.init);
  }

  /** Everything the copy writer holds goes to the packager (publisher gone, a new configuration, a switch). */
  #flushCopy(): void {
    const writer = this.#writer;
    if (!writer) return;
    this.#writer = null;
    this.#pushFragments(writer.flush(this.#writerSilence));
  }

  #pushFragments(fragments: readonly Fmp4Fragment[]): void {
    for (const f of fragments) {
      this.packager.pushFragment(f);
      this.#noteOutput(f);
    }
  }

  #noteOutput(f: Fmp4Fragment): void {
    const end = (f.startSeconds + f.durationSeconds) * 1000;
    if (end > this.#outputEndMs) this.#outputEndMs = end;
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
    const videoWhy = start.hasVideo ? notCopyable(start.video) : null;
    const audioWhy = start.hasAudio ? notCopyable(start.audio) : null;
    const why = videoWhy ?? audioWhy;
    if (why === null) {
      const audio = start.hasAudio && start.audio?.codec === 'opus' ? 'Opus' : 'AAC';
      this.decision = this.profile === 'copy' ? 'copy requested' : `copy: H.264/${audio} input, GOPs watched`;
      return 'copy';
    }
    // The CMAF writer takes H.264/HEVC and AAC/Opus, but players decode less (see notCopyable): re-encoded.
    this.decision = `transcode: ${this.profile === 'copy' ? 'copy requested, but ' : ''}${why}`;
    this.#log.info({ why }, this.decision);
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
    if (this.#phase === 'gone') return; // the outputs start again from #start at the return
    if (this.#pipelineProfile === 'copy') {
      const why = notCopyable(config);
      if (why !== null) {
        // A configuration players cannot decode (a publisher back with another encoder): re-encoded from here.
        this.decision = `transcode: ${why}`;
        this.#log.info({ why, track: slot }, 'copy: switching to transcode');
        this.#flushCopy();
        this.packager.closeOpen();
        this.#pipelineProfile = 'transcode';
        this.supervisor.begin(this.#flvStart(), 'transcode');
        return;
      }
      // A new SPS/PPS or AudioSpecificConfig needs a new init segment (and a discontinuity), from a keyframe.
      if (this.#writer) {
        this.#log.info({ track: slot }, 'configuration changed: new init segment');
        this.#startCopy();
      }
      return;
    }
    const tag = flvConfigTagOf(config, this.configTime(config.kind));
    if (tag) this.supervisor.write(tag);
    this.supervisor.updateFlvStart(this.#flvStart());
  }

  #onAu(au: AccessUnit): void {
    if (!this.#start) return;
    // None (an audio frame the re-stamped clock has no room for) or more (silence before it): see ClockDrift.
    for (const restamped of this.clock.restamp(this.repair.repairAu(au), performance.now())) {
      this.#onRepairedAu(restamped);
    }
  }

  #onRepairedAu(restamped: AccessUnit): void {
    let repaired = restamped;
    if (this.#slateOptions) {
      this.#lastMediaWall = this.#now();
      if (this.#shiftMs !== 0) repaired = shifted(repaired, this.#shiftMs);
      if (this.#phase === 'gone') {
        // The return starts at a video keyframe: what comes before it cannot be decoded on its own.
        if (!(repaired.track === 'video' && repaired.keyframe)) {
          this.slateStats.dropped++;
          return;
        }
        repaired = this.#endSlate(repaired);
      } else if (repaired.dts < this.#slateEndMs) {
        this.slateStats.dropped++; // stamped inside the slate's time: the slate showed that time
        return;
      }
      if (repaired.dts > this.#lastDts) this.#lastDts = repaired.dts;
      this.#armGapTimer();
    }
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
    const opus = au.track === 'audio' ? this.#opusAudio() : null;
    if (opus) {
      // Its AAC reaches FFmpeg a few frames later, from the encoder (FFmpeg buffers per track).
      this.#encodeAac(au, opus);
      return null;
    }
    return flvTagOf(au, au.track === 'video' ? this.#start!.video : this.#start!.audio);
  }

  #encodeAac(au: AccessUnit, opus: AudioConfig): void {
    const factory = this.#options.aacEncoder;
    if (!factory) return;
    if (!this.#aac) {
      const aac = aacConfigFor(opus);
      this.#aac = factory(
        opus,
        (frame) => {
          if (this.#pipelineProfile === 'copy' || this.#phase === 'gone') return;
          const tag = flvTagOf(frame, aac);
          if (tag) this.supervisor.write(tag);
        },
        this.#log,
      );
    }
    this.#aac.push(au);
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
    // A WHIP stream (Opus) stays copied: its source asks the publisher for keyframes at the segment cadence,
    // so an overlong GOP is a moment (cut anyway, counted as a breach), and switching for good would cost an
    // encode and change the audio codec mid-stream (Opus → AAC: a new init players stumble on, measured
    // with hls.js in whip-relay's slow retry). An explicit transcode is fed AAC (#encodeAac).
    if (this.#opusAudio()) return false;
    const gopStart = this.#gop[0];
    if (gopStart?.track !== 'video' || !gopStart.keyframe) return false;
    const gopMs = au.dts - gopStart.dts;
    // Past 1.1 × the segment target, and never a GOP TARGETDURATION cannot hold (rounded, as EXTINF is).
    const fits = this.packager.targetDurationDecided
      ? (this.packager.targetDuration + 0.5) * 1000 - 1
      : Infinity;
    const limitMs = Math.min(this.#options.segmentSeconds * AUTO_COPY_GOP_FACTOR * 1000, fits);
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

  /**
   * FFmpeg made nothing of the input, first try and retry: the publisher is told (NetStream.Publish.Failed
   * with the reason, where the protocol can), the stream ends now (no reconnect window: the same input
   * would fail the same way), and one line is logged.
   */
  #refuse(reason: string): void {
    if (this.#state === StreamState.Ended || this.failure !== null) return;
    this.failure = reason;
    this.decision = `refused: ${reason}`;
    const start = this.#start;
    const codecs = { video: codecName(start?.video ?? null), audio: codecName(start?.audio ?? null) };
    this.#log.error({ ...codecs }, `publish refused: ${reason}`);
    const source = this.#source;
    this.safeEmit('failed', reason);
    void this.#end('refused');
    source?.refuse?.(reason);
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
    this.#outputsStopped = this.#stopOutputs();
    // Gone for good: the slate may start once the gap reaches MIN_SLATE_GAP_MS (not at once: a fast
    // reconnect must not flap).
    if (this.#gapTimer) clearTimeout(this.#gapTimer);
    this.#gapTimer = null;
    if (this.#slateOptions) this.#prefetchSlate(this.#slateOptions);
    this.#armGapTimer();
    this.#windowTimer = setTimeout(() => {
      this.#windowTimer = null;
      void this.#end(clean ? 'unpublished' : 'reconnect window closed');
    }, windowMs);
  }

  /** The publisher is gone: what the copy writer holds becomes the last segment; FFmpeg flushes what it has. */
  #stopOutputs(): Promise<void> {
    this.#aac?.close(); // its last frames are lost with the gap: a return starts a new one
    this.#aac = null;
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
    this.#cancelSlate();
    await this.#stopOutputs();
    for (const packager of this.abr?.packagers ?? [this.packager]) packager.end();
    this.#log.info(
      {
        why,
        ...this.packager.stats,
        ...this.supervisor.stats,
        repairs: this.repair.counts,
        clockRestamps: this.clock.stats.restamps,
        clockScale: this.clock.stats.scale,
        clockCorrections: this.clock.stats.corrections,
        copyDropped: this.copyDropped,
        slate: this.slateStats,
      },
      'stream ended',
    );
    this.safeEmit('ended');
    this.#graceTimer = setTimeout(() => this.free(), this.#options.endGraceMs);
  }

  // ----------------------------------------------------------------------------------------------- slate

  get #slateOptions(): StreamSlateOptions | undefined {
    return this.#options.slate;
  }

  #now(): number {
    return (this.#options.slate?.now ?? Date.now)();
  }

  /** How long without media starts the slate now: SLATE_AFTER_SECONDS while connected, less once gone. */
  #gapThreshold(options: StreamSlateOptions): number {
    return this.#source ? options.afterMs : Math.min(options.afterMs, MIN_SLATE_GAP_MS);
  }

  /**
   * One timer per stream, re-armed lazily (a frame only notes the time), so it fires about once a second
   * while media flows. A gap of MIN_SLATE_GAP_MS gets the slate ready (encoded, the first time its size is
   * needed) so that it can start at once when the gap reaches the threshold.
   */
  #armGapTimer(): void {
    const options = this.#slateOptions;
    if (!options || this.#gapTimer || this.#phase === 'gone' || this.#state === StreamState.Ended) return;
    if (this.#lastMediaWall === 0) return; // no media yet: nothing to stand in for
    const threshold = this.#gapThreshold(options);
    const idle = this.#now() - this.#lastMediaWall;
    const target = idle < MIN_SLATE_GAP_MS ? Math.min(MIN_SLATE_GAP_MS, threshold) : threshold;
    this.#gapTimer = setTimeout(
      () => {
        this.#gapTimer = null;
        if (this.#phase === 'gone' || this.#state === StreamState.Ended) return;
        const gap = this.#now() - this.#lastMediaWall;
        if (gap >= this.#gapThreshold(options)) return this.#startSlate(options);
        if (gap >= MIN_SLATE_GAP_MS) this.#prefetchSlate(options);
        this.#armGapTimer();
      },
      Math.max(0, target - idle),
    );
  }

  /** The slates this stream would show now: one per packager (matching its init) and the re-stream feed. */
  #slateSpecs(): {
    wanted: { packager: Packager; spec: SlateSpec; fps: number }[];
    feedSpec: SlateSpec | null;
    inputFps: number;
  } {
    const start = this.#start;
    const inputFps = clampFps(this.ingest.snapshot().fps ?? this.ingest.metadataFps, 30);
    const wanted: { packager: Packager; spec: SlateSpec; fps: number }[] = [];
    for (const packager of this.abr?.packagers ?? [this.packager]) {
      const init = this.#outputInits.get(packager);
      const spec = init ? specOfInit(init) : null;
      if (spec) wanted.push({ packager, spec, fps: this.#outputFps(inputFps) });
    }
    const feedSpec = start
      ? specOfInput(
          isVideoConfig(start.video) ? start.video : null,
          isAudioConfig(start.audio) ? start.audio : null,
        )
      : null;
    return { wanted, feedSpec, inputFps };
  }

  /** Starts the encodes the slate will need (the cache runs each spec once; later calls are hits). */
  #prefetchSlate(options: StreamSlateOptions): Promise<void> {
    const { wanted, feedSpec } = this.#slateSpecs();
    const encodes = [...wanted.map((w) => w.spec), ...(feedSpec ? [feedSpec] : [])].map((spec) =>
      // A failure is logged where the slate starts (#startSlate asks again and gets the same answer).
      options.cache.get(spec).then(
        () => {},
        () => {},
      ),
    );
    return Promise.all(encodes).then(() => {});
  }

  /**
   * Encodes (or finds cached) the slates this stream's outputs would show, now rather than at the first gap.
   * The relay does not call it (a copy stream runs no FFmpeg until a gap); the slate test uses it to measure
   * the steady state, once a format's slate exists on the relay.
   */
  prefetchSlate(): Promise<void> {
    return this.#slateOptions ? this.#prefetchSlate(this.#slateOptions) : Promise.resolve();
  }

  /** The frame rate of what the packagers get: the input's when copying, the encoder's otherwise. */
  #outputFps(inputFps: number): number {
    if (this.#pipelineProfile === 'copy') return inputFps;
    return this.abr ? this.abr.frameRate : SEED_TARGET.fps;
  }

  /**
   * The publisher is gone: the outputs stop (as for a reconnect), then, once every slate is at hand (encoded
   * now, the first time a size is needed), the runner starts. Nothing happens when no slate could match
   * (no output yet, not H.264): the outputs wait for the publisher as they did before slates.
   */
  #startSlate(options: StreamSlateOptions): void {
    const { wanted, feedSpec, inputFps } = this.#slateSpecs();
    if (wanted.length === 0 && feedSpec === null) return;
    this.#phase = 'gone';
    const token = {};
    this.#slateToken = token;
    const connected = this.#source !== null;
    this.#log.info(
      { gapMs: this.#now() - this.#lastMediaWall, connected },
      connected ? 'no media from the publisher: slate' : 'publisher gone: slate',
    );
    if (connected) this.#outputsStopped = this.#stopOutputs();
    const get = (spec: SlateSpec): Promise<SlateMedia | null> =>
      options.cache.get(spec).catch((err: unknown) => {
        const code = err instanceof RelayError ? err.code : 'INTERNAL';
        this.#log.warn({ code, err: String(err) }, 'no slate for this stream');
        return null;
      });
    void Promise.all([
      this.#outputsStopped,
      Promise.all(wanted.map((w) => get(w.spec))),
      feedSpec ? get(feedSpec) : null,
    ]).then(([, medias, feedMedia]) => {
      if (this.#slateToken !== token) return; // back, or ended, meanwhile
      const packagers: SlatePackagerTarget[] = [];
      wanted.forEach((w, i) => {
        const media = medias[i];
        if (media) packagers.push({ packager: w.packager, media, fps: w.fps });
      });
      if (packagers.length === 0 && !feedMedia) return;
      this.#slate = new SlateRunner({
        startMs: Math.max(this.#outputEndMs, this.#lastDts + 1),
        anchorMs: this.#lastDts,
        anchorWallMs: this.#lastMediaWall,
        packagers,
        feed: feedMedia ? { media: feedMedia, fps: inputFps } : null,
        onFeedStart: (s) => this.safeEmit('slate-start', s),
        onFeedAu: (au) => this.safeEmit('slate-au', au),
        onFragment: (f) => this.#noteOutput(f),
        now: () => this.#now(),
        ...(options.tickMs ? { tickMs: options.tickMs } : {}),
      });
      this.slateStats.slates++;
      this.#slate.start();
    });
  }

  /** The publisher's first keyframe back: the slate ends, the outputs start again from it (returned, moved past the slate). */
  #endSlate(keyframe: AccessUnit): AccessUnit {
    let au = keyframe;
    const runner = this.#stopSlate();
    if (runner) {
      const end = runner.stop();
      const shift = Math.max(0, end - au.dts);
      if (shift > 0) {
        this.#shiftMs += shift;
        au = shifted(au, shift);
      }
      this.#slateEndMs = end;
      this.#log.info({ frames: runner.frames, shiftMs: Math.round(shift) }, 'publisher back: slate over');
    }
    this.#startOutputs(false);
    return au;
  }

  /** Cancels a slate being started and stops a running one (flushed into the packagers); returns it. */
  #stopSlate(): SlateRunner | null {
    this.#slateToken = null;
    this.#phase = 'live';
    const runner = this.#slate;
    this.#slate = null;
    if (runner) {
      runner.stop();
      if (runner.feeding) this.safeEmit('slate-end');
    }
    return runner;
  }

  #cancelSlate(): void {
    if (this.#gapTimer) clearTimeout(this.#gapTimer);
    this.#gapTimer = null;
    this.#stopSlate();
  }
}

/** The same access unit later on the timeline. */
function shifted(au: AccessUnit, ms: number): AccessUnit {
  return { ...au, dts: au.dts + ms, pts: au.pts + ms };
}
