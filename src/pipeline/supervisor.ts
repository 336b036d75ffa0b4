/**
 * Keeps one FFmpeg running for a stream while its publisher is live (mediamtx `externalcmd` shape):
 * - an unexpected exit is restarted after a backoff pause, fed again from the next video keyframe;
 * - a watchdog kills and restarts an FFmpeg that takes input but yields no output for `watchdogMs`;
 * - a profile switch (auto: copy → transcode) ends the running FFmpeg gracefully, lets the stream discard
 *   what is being re-encoded, then starts the new one with the current GOP replayed.
 * - an input FFmpeg makes nothing of, on its first try and one retry, is given up on (`failed`): restarting
 *   it every few seconds forever helped nobody (a codec FFmpeg cannot decode);
 * Every exit is reported; stop() is "we stopped it", never confused with "it died".
 */
import type { FlvStart } from '../media/flv-sink.ts';
import { FlvTagType, type MediaTag, parseAudioTag, SoundFormat } from '../media/flv-tag.ts';
import type { Fmp4Fragment, Fmp4Init } from '../media/fmp4.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import type { ChildReaper } from './child-reaper.ts';
import { encoderArgs, type GpuSessions, isGpuEncoder, SEED_TARGET, type VideoEncoder } from './encoders.ts';
import { buildFfmpegArgs, type PipelineProfile } from './ffmpeg-args.ts';
import { type FfmpegExit, FfmpegProcess } from './ffmpeg-process.ts';
import { ladderArgs, type Rung } from './ladder.ts';

export interface SupervisorOptions {
  log: Logger;
  reaper: ChildReaper;
  ffmpegPath?: string;
  /** Restart pauses, in ms, used in turn (the last repeats). */
  backoffMs?: number[];
  /** No output for this long while input flows: restart. */
  watchdogMs: number;
  fragmentMs?: number;
  /**
   * The H.264 encoder chosen at start (./encoders.ts) and the relay's GPU sessions. A GPU encoder is used for
   * `transcode` while a session is free; an FFmpeg that fails while on the GPU makes this stream fall back to
   * libx264 for the rest of its life.
   */
  encoder?: { name: VideoEncoder; gpu: GpuSessions; vaapiDevice?: string };
}

export interface SupervisorStats {
  starts: number;
  restarts: number;
  crashes: number;
  stalls: number;
}

export type SupervisorEvents = {
  /** A new FFmpeg produced its init segment (after the first, the packager marks a discontinuity). */
  init: [Fmp4Init, number];
  /** A fragment; the second argument is the output (the ABR rendition's index; 0 otherwise). */
  fragment: [Fmp4Fragment, number];
  /** An FFmpeg exited; `exit.error` says why when we did not ask it to. */
  exit: [FfmpegExit];
  /**
   * FFmpeg made nothing of this input on its first try and on one retry (a codec it cannot decode): no more
   * restarts. Once per begin().
   */
  failed: [RelayError];
};

/** Runs that end before any output, in a row, before the input counts as one FFmpeg cannot read. */
const MAX_START_FAILURES = 2;

/** Most bytes of the current GOP kept for a profile switch (a longer GOP stops being replayable). */
const MAX_GOP_BYTES = 16 * 1024 * 1024;

export class FfmpegSupervisor extends TypedEmitter<SupervisorEvents> {
  readonly stats: SupervisorStats = { starts: 0, restarts: 0, crashes: 0, stalls: 0 };
  readonly #options: SupervisorOptions;
  readonly #log: Logger;
  #flv: FlvStart | null = null;
  #profile: PipelineProfile = 'copy';
  #process: FfmpegProcess | null = null;
  #waitingForKeyframe = false;
  #gop: MediaTag[] = [];
  #gopBytes = 0;
  #failures = 0;
  /** Runs in a row that ended before any output (reset by output and by begin()). */
  #startFailures = 0;
  #restartTimer: NodeJS.Timeout | null = null;
  #watchdog: NodeJS.Timeout | null = null;
  #lastInputAt = 0;
  #lastOutputAt = 0;
  #stopped = false;
  /** Input timestamp (ms) of the first tag the current FFmpeg got, and its first output time (s). */
  #runInputStartMs: number | null = null;
  /** Gives the current FFmpeg's GPU session back; null when it runs on the CPU. */
  #gpuRelease: (() => void) | null = null;
  /** The GPU encoder failed for this stream: libx264 from now on. */
  #gpuFailed = false;
  #runOutputStart: number | null = null;
  /** ABR: every FFmpeg makes this ladder (one output per rung) instead of the profile's single output. */
  #ladder: readonly Rung[] | null = null;
  #ladderCapFps = true;

  constructor(options: SupervisorOptions) {
    super();
    this.#options = options;
    this.#log = options.log;
  }

  get profile(): PipelineProfile {
    return this.#profile;
  }

  get running(): FfmpegProcess | null {
    return this.#process;
  }

  /** Timestamp (ms) of the video keyframe that starts the current GOP, if known. */
  get gopStartMs(): number | null {
    return this.#gop.find((t) => t.type === FlvTagType.Video)?.timestamp ?? null;
  }

  /** The ABR ladder the FFmpeg runs make, if any. */
  get ladder(): readonly Rung[] | null {
    return this.#ladder;
  }

  /**
   * Starts the first FFmpeg for a publish. With `ladder` (the ABR profile), every run makes that ladder from
   * one decode, one fMP4 output per rung, and the watchdog counts output on any of them.
   */
  begin(
    flv: FlvStart,
    profile: PipelineProfile,
    options: { ladder?: readonly Rung[]; capFps?: boolean; replay?: readonly MediaTag[] } = {},
  ): void {
    if (options.ladder) {
      this.#ladder = options.ladder;
      this.#ladderCapFps = options.capFps ?? true;
    }
    this.#flv = flv;
    this.#profile = profile;
    this.#stopped = false;
    this.#startFailures = 0;
    // Tags fed before (auto's switch from copy: the GOP so far) count as this run's GOP too.
    for (const tag of options.replay ?? []) this.#remember(tag);
    this.#spawn(options.replay ? [...options.replay] : []);
    this.#watchdog ??= setInterval(
      () => this.#checkWatchdog(),
      Math.max(100, Math.floor(this.#options.watchdogMs / 4)),
    );
  }

  /** Codec configuration changed (a publisher came back): later FFmpeg starts use it. */
  updateFlvStart(flv: FlvStart): void {
    this.#flv = flv;
  }

  write(tag: MediaTag): void {
    if (this.#stopped) return;
    this.#remember(tag);
    const proc = this.#process;
    if (!proc) return; // restarting: the next FFmpeg starts from a keyframe out of the GOP buffer
    if (this.#waitingForKeyframe) {
      if (!(tag.type === FlvTagType.Video && tag.keyframe) && this.#flv?.hasVideo) return;
      this.#waitingForKeyframe = false;
    }
    this.#noteRunStart(tag);
    this.#lastInputAt = Date.now();
    proc.write(tag);
  }

  /**
   * FFmpeg's output starts near 0 on every run; the stream's timeline is the repaired input's. A fragment is
   * reported at its input time (the run's first input frame ↔ its first output), so the packager sees one
   * timeline whatever made the fragment. The bytes keep FFmpeg's own times (a run starts after a discontinuity).
   */
  #onStreamTimeline(fragment: Fmp4Fragment): Fmp4Fragment {
    if (this.#runInputStartMs === null || this.#runOutputStart === null) return fragment;
    const shift = this.#runInputStartMs / 1000 - this.#runOutputStart;
    return { ...fragment, startSeconds: fragment.startSeconds + shift };
  }

  /** Stops for good (publisher gone or stream closed): resolves when no FFmpeg is left. */
  async stop(options: { flush?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    if (this.#watchdog) clearInterval(this.#watchdog);
    this.#restartTimer = null;
    this.#watchdog = null;
    const proc = this.#process;
    if (!proc) return;
    if (options.flush) {
      proc.endInput();
      // A flush that hangs must not keep the stream: stop() escalates to SIGKILL after its grace.
      const timer = setTimeout(() => void proc.stop(), 3000);
      await proc.exited;
      clearTimeout(timer);
    } else {
      await proc.stop();
    }
  }

  /** The run's first video timestamp anchors the input → output mapping (its first output is video). */
  #noteRunStart(tag: MediaTag): void {
    if (this.#runInputStartMs !== null || tag.isConfig) return;
    if (tag.type === FlvTagType.Video || !this.#flv?.hasVideo) this.#runInputStartMs = tag.timestamp;
  }

  #remember(tag: MediaTag): void {
    if (tag.isConfig) return;
    if (tag.type === FlvTagType.Video && tag.keyframe) {
      this.#gop = [];
      this.#gopBytes = 0;
    }
    if (this.#gopBytes + tag.data.length > MAX_GOP_BYTES) return;
    this.#gop.push(tag);
    this.#gopBytes += tag.data.length;
  }

  #spawn(replay: MediaTag[]): void {
    const flv = this.#flv;
    if (!flv || this.#stopped) return;
    const ladder = this.#ladder;
    // The ABR ladder encodes with libx264 (ladder.ts): it takes no GPU session.
    const videoEncode = ladder ? undefined : this.#videoEncode(flv);
    const args = ladder
      ? ladderArgs(ladder, {
          hasAudio: flv.hasAudio,
          fragmentMs: this.#options.fragmentMs ?? 500,
          capFps: this.#ladderCapFps,
          // AAC input is carried as is by every rendition (checked per run: a publisher may come back with other audio).
          copyAudio:
            flv.audioConfig !== null && parseAudioTag(flv.audioConfig.data)?.codec === SoundFormat.Aac,
        })
      : buildFfmpegArgs({
          profile: this.#profile,
          hasVideo: flv.hasVideo,
          hasAudio: flv.hasAudio,
          ...(this.#options.fragmentMs ? { fragmentMs: this.#options.fragmentMs } : {}),
          ...(videoEncode ? { videoEncode } : {}),
        });
    const proc = new FfmpegProcess({
      args,
      log: this.#log.child({ ffmpeg: this.stats.starts + 1, profile: this.#profile }),
      reaper: this.#options.reaper,
      ...(this.#options.ffmpegPath ? { ffmpegPath: this.#options.ffmpegPath } : {}),
      ...(ladder ? { outputs: ladder.length } : {}),
    });
    this.#process = proc;
    this.#runInputStartMs = null;
    this.#runOutputStart = null;
    this.#lastOutputAt = Date.now();
    this.#lastInputAt = 0;
    // Only the current FFmpeg speaks: one still flushing after a new publish began is not heard.
    proc.on('init', (init, output) => {
      if (this.#process !== proc) return;
      this.#lastOutputAt = Date.now();
      this.#failures = 0;
      this.safeEmit('init', init, output);
    });
    proc.on('fragment', (fragment, output) => {
      if (this.#process !== proc) return;
      this.#lastOutputAt = Date.now();
      if (output === 0) this.#runOutputStart ??= fragment.startSeconds;
      this.safeEmit('fragment', this.#onStreamTimeline(fragment), output);
    });
    proc.once('exit', (exit) => this.#onExit(proc, exit));
    this.stats.starts++;
    proc.start(flv);
    this.#waitingForKeyframe = replay.length === 0;
    for (const tag of replay) {
      this.#noteRunStart(tag);
      proc.write(tag);
    }
    if (replay.length > 0) this.#lastInputAt = Date.now();
  }

  /** A GPU encode when one is configured, free and has not failed for this stream; else undefined. */
  #videoEncode(flv: FlvStart): ReturnType<typeof encoderArgs> | undefined {
    this.#gpuRelease?.();
    this.#gpuRelease = null;
    const enc = this.#options.encoder;
    if (!enc || this.#profile !== 'transcode' || !flv.hasVideo || !isGpuEncoder(enc.name)) return undefined;
    if (this.#gpuFailed) return undefined;
    const release = enc.gpu.acquire();
    if (!release) {
      this.#log.info(
        { encoder: enc.name, sessions: enc.gpu.max },
        'no GPU session free: transcoding on the CPU',
      );
      return undefined;
    }
    this.#gpuRelease = release;
    return encoderArgs(enc.name, SEED_TARGET, enc.vaapiDevice ? { vaapiDevice: enc.vaapiDevice } : {});
  }

  #onExit(proc: FfmpegProcess, exit: FfmpegExit): void {
    if (this.#process === proc) this.#process = null;
    if (this.#gpuRelease) {
      this.#gpuRelease();
      this.#gpuRelease = null;
      if (exit.error && !exit.requested) {
        this.#gpuFailed = true;
        this.#options.encoder!.gpu.fallbacks++;
        this.#log.warn(
          { encoder: this.#options.encoder!.name, code: exit.error.code },
          'the GPU encoder failed: this stream transcodes on the CPU from now on',
        );
      }
    }
    if (exit.error) {
      this.stats.crashes++;
      this.#log.warn({ code: exit.error.code, exitCode: exit.code, signal: exit.signal }, exit.error.message);
    }
    this.safeEmit('exit', exit);
    if (this.#stopped || exit.requested) return;
    if (exit.started) this.#startFailures = 0;
    else if (++this.#startFailures >= MAX_START_FAILURES) {
      this.#stopped = true;
      const said = exit.lastWords ? `: ${exit.lastWords}` : '';
      this.safeEmit(
        'failed',
        new RelayError(ErrorCodes.FFMPEG_START_FAILED, `ffmpeg made nothing of this input, twice${said}`),
      );
      return;
    }
    const pauses = this.#options.backoffMs ?? [250, 1000, 2000, 5000];
    const pause = pauses[Math.min(this.#failures, pauses.length - 1)]!;
    this.#failures++;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      this.stats.restarts++;
      this.#log.info({ profile: this.#profile }, 'restarting ffmpeg');
      // Start from the current GOP's keyframe when it is at hand, so the picture comes back at once.
      const gop = this.#gop[0]?.type === FlvTagType.Video && this.#gop[0].keyframe ? [...this.#gop] : [];
      this.#spawn(gop);
    }, pause);
  }

  #checkWatchdog(): void {
    const proc = this.#process;
    if (!proc || this.#stopped) return;
    const now = Date.now();
    const silentFor = now - this.#lastOutputAt;
    if (silentFor > this.#options.watchdogMs && this.#lastInputAt > this.#lastOutputAt) {
      this.stats.stalls++;
      const err = new RelayError(
        ErrorCodes.FFMPEG_STALLED,
        `ffmpeg produced nothing for ${silentFor} ms while fed`,
      );
      this.#log.warn({ code: err.code }, err.message);
      this.#lastOutputAt = now; // one kill per stall
      const pid = proc.pid;
      if (pid !== undefined) this.#options.reaper.signal(pid, 'SIGKILL');
    }
  }
}
