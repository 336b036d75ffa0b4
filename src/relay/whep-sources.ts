/**
 * A relay's stream as what WHEP reads (webrtc/whep-source.ts), in two ways:
 * - `StreamWhepSource`: the stream's repaired input access units (copy: what the publisher sent). A source
 *   with B-frames cannot play that way (browsers' WebRTC decoders take none): WHEP refuses it with 409.
 * - `TranscodedWhepSource`: what the stream's FFmpeg made (transcode, ABR's first rendition, auto once it
 *   switched): its CMAF read back into access units (media/cmaf-samples.ts). The relay's encodes have no
 *   B-frames, so a B-frame publish plays over WHEP once it is transcoded (`?profile=transcode`). It keeps
 *   the latest init's configurations and the current GOP's fragments (references to what the packager holds
 *   anyway), and reads fragments into access units only while a viewer listens.
 *
 * Times: the fragments keep FFmpeg's clock; the supervisor gives each its start on the stream's timeline
 * (`startSeconds`), so every sample is moved by the same shift as its fragment's first video sample.
 */
import type { AccessUnit, SourceStart } from '../media/access-unit.ts';
import { type CmafConfigs, readCmafInit, readCmafSamples } from '../media/cmaf-samples.ts';
import type { Fmp4Fragment, Fmp4Init } from '../media/fmp4.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { type Stream, StreamState } from '../stream/stream.ts';
import type { WhepSourceEvents, WhepSourceStream } from '../webrtc/whep-source.ts';

/** The stream's own (repaired input) access units, configurations and GOP. */
export class StreamWhepSource implements WhepSourceStream {
  readonly #stream: Stream;

  constructor(stream: Stream) {
    this.#stream = stream;
  }

  on<K extends keyof WhepSourceEvents>(event: K, listener: (...args: WhepSourceEvents[K]) => void): this {
    this.#stream.on(event, listener);
    return this;
  }

  off<K extends keyof WhepSourceEvents>(event: K, listener: (...args: WhepSourceEvents[K]) => void): this {
    this.#stream.off(event, listener);
    return this;
  }

  tracks(): ReturnType<WhepSourceStream['tracks']> {
    const start = this.#stream.configuration;
    return { video: start?.video ?? null, audio: start?.audio ?? null };
  }

  recentGop(): ReturnType<WhepSourceStream['recentGop']> {
    return this.#stream.currentGop;
  }

  requestKeyframe(): void {
    this.#stream.source?.requestKeyframe?.();
  }

  get ended(): boolean {
    return this.#stream.state === StreamState.Ended;
  }
}

/** Most fragments of the current GOP kept (a GOP of the relay's encodes is 2 s: a few dozen fragments). */
const MAX_GOP_FRAGMENTS = 400;

/** The stream's FFmpeg output (rendition 0) read back into access units. */
export class TranscodedWhepSource extends TypedEmitter<WhepSourceEvents> implements WhepSourceStream {
  readonly #stream: Stream;
  readonly #log: Logger;
  #configs: CmafConfigs | null = null;
  #gop: { fragment: Fmp4Fragment; shift: number }[] = [];
  /** Seconds added to FFmpeg's clock to reach the stream's timeline (from the last fragment with video). */
  #shift = 0;
  #unreadable = 0;
  readonly #onInit = (init: Fmp4Init, output: number): void => {
    if (output !== 0) return;
    try {
      this.#configs = readCmafInit(init.data);
    } catch (err) {
      this.#configs = null;
      this.#log.warn({ err }, 'WHEP: the transcode init cannot be read; WHEP refuses the stream');
    }
    this.#gop = [];
    const { video, audio } = this.tracks();
    const start: SourceStart = {
      video,
      audio,
      hasVideo: video !== null,
      hasAudio: audio !== null,
      metadata: null,
    };
    this.safeEmit('input', start);
  };
  readonly #onFragment = (fragment: Fmp4Fragment, output: number): void => {
    const configs = this.#configs;
    if (output !== 0 || !configs) return;
    // startSeconds is the video run's tfdt moved onto the stream's timeline: that move is the shift.
    const video = configs.video && fragment.runs.find((r) => r.trackId === configs.video!.trackId);
    if (video) this.#shift = fragment.startSeconds - video.baseDecodeTime / configs.video!.timescale;
    if (fragment.keyframe) this.#gop = [];
    if (this.#gop.length < MAX_GOP_FRAGMENTS) this.#gop.push({ fragment, shift: this.#shift });
    if (this.listenerCount('au') === 0) return;
    const samples = this.#read(fragment.data);
    if (samples) for (const au of this.#toUnits(samples, this.#shift)) this.safeEmit('au', au);
  };
  readonly #onEnded = (): void => {
    this.safeEmit('ended');
    this.detach();
  };

  constructor(stream: Stream, log: Logger) {
    super();
    this.#stream = stream;
    this.#log = log;
    stream.supervisor.on('init', this.#onInit);
    stream.supervisor.on('fragment', this.#onFragment);
    stream.once('ended', this.#onEnded);
  }

  /** Stops following the stream (it ended, or WebRTC closes). */
  detach(): void {
    this.#stream.supervisor.off('init', this.#onInit);
    this.#stream.supervisor.off('fragment', this.#onFragment);
    this.#stream.off('ended', this.#onEnded);
    this.#gop = [];
  }

  /** Whether FFmpeg makes the stream's output now (else WHEP reads the input). */
  get active(): boolean {
    return this.#stream.pipelineProfile !== null && this.#stream.pipelineProfile !== 'copy';
  }

  tracks(): ReturnType<WhepSourceStream['tracks']> {
    return { video: this.#configs?.video?.config ?? null, audio: this.#configs?.audio?.config ?? null };
  }

  recentGop(): readonly AccessUnit[] {
    return this.#gop.flatMap(({ fragment, shift }) => this.#toUnits(this.#read(fragment.data) ?? [], shift));
  }

  get ended(): boolean {
    return this.#stream.state === StreamState.Ended;
  }

  #read(data: Buffer): ReturnType<typeof readCmafSamples> | null {
    try {
      return readCmafSamples(this.#configs!, data);
    } catch (err) {
      // FFmpeg's own output, checked by Fmp4Reader already: counted, logged now and then, the fragment skipped.
      this.#unreadable++;
      if (this.#unreadable === 1 || this.#unreadable % 100 === 0)
        this.#log.warn({ err, count: this.#unreadable }, 'WHEP: a transcoded fragment could not be read');
      return null;
    }
  }

  /** Samples on the stream's timeline (ms), both tracks in decode order. */
  #toUnits(samples: ReturnType<typeof readCmafSamples>, shift: number): AccessUnit[] {
    return samples
      .map((s) => ({
        track: s.track,
        dts: (s.dts + shift) * 1000,
        pts: (s.pts + shift) * 1000,
        keyframe: s.keyframe,
        data: s.data,
      }))
      .sort((a, b) => a.dts - b.dts);
  }
}
