/**
 * WHEP output of one stream: fans its access units out to that stream's WHEP sessions. It listens to the
 * stream only while at least one viewer is attached (a stream nobody watches over WebRTC costs nothing
 * here), and runs the stream's AAC → Opus encoder under the same rule.
 *
 * A new viewer starts at the latest keyframe without waiting for the next one (`startMode`). Measured with
 * bench/webrtc.ts (Chromium joining 1.2 s into a 2 s GOP at 15 fps, loopback, one run on a loaded machine):
 * - `gop-fast` (default): the current GOP at once, its frames stamped 1 ms apart ending at the newest
 *   frame's time: first frame 140 ms after the POST, latency (stream → presented) p50 17 ms, p95 18 ms.
 * - `gop-realtime`: the same frames with their own times: first frame 194 ms, p50 13 ms. Chromium shows
 *   neither burst at its original pace (the old frames are decoded, not presented late), so replaying the
 *   GOP adds no latency either way; `gop-fast` reaches the first picture sooner.
 * - `next-keyframe`: nothing until the next keyframe: first frame 366 ms in that run (up to a GOP later
 *   in general), p50 28 ms, p95 44 ms.
 *
 * SPS and PPS go in front of every keyframe that lacks them. A source with B-frames (reordered frames) is
 * refused: its sessions are closed (WEBRTC_B_FRAMES), as browsers' WebRTC decoders would show garbage.
 */
import type { AccessUnit, AudioConfig, TrackConfig } from '../media/access-unit.ts';
import { isAudioConfig, isVideoConfig } from '../media/access-unit.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { type AvcParameterSets, frameForRtp, parseAvcC, ReorderDetector } from './h264-frames.ts';
import type { WhepSession } from './whep-session.ts';
import type { WhepSourceStream } from './whep-source.ts';

export type StartMode = 'gop-fast' | 'gop-realtime' | 'next-keyframe';

/** An AAC → Opus encoder for one stream; `onPacket` gets 20 ms Opus packets on the stream's clock. */
export interface OpusEncoderHandle {
  push(au: AccessUnit): void;
  close(): void;
}
export type OpusEncoderFactory = (
  config: AudioConfig,
  onPacket: (packet: Buffer, timeMs: number) => void,
) => OpusEncoderHandle;

export type WhepOutputEvents = {
  /** The last session left (or the output closed): the owner may drop it. */
  '@empty': [];
};

export interface WhepOutputOptions {
  source: WhepSourceStream;
  log: Logger;
  startMode?: StartMode;
  /** Encodes AAC audio for viewers; null sends video only for AAC sources. */
  opus?: OpusEncoderFactory | null;
  /** Fewest milliseconds between two keyframe requests to the publisher. */
  keyframeRequestIntervalMs?: number;
}

interface Viewer {
  session: WhepSession;
  /** It has been sent a keyframe: every frame from now on decodes. */
  started: boolean;
}

/** Spacing of the fast-start frames: 1 ms, below any frame interval, so they decode back to back. */
const FAST_START_STEP_MS = 1;

export class WhepOutput extends TypedEmitter<WhepOutputEvents> {
  readonly #source: WhepSourceStream;
  readonly #log: Logger;
  readonly #startMode: StartMode;
  readonly #opusFactory: OpusEncoderFactory | null;
  readonly #viewers = new Map<string, Viewer>();
  readonly #reorder = new ReorderDetector();
  #params: AvcParameterSets | null = null;
  #audio: AudioConfig | null = null;
  #opus: OpusEncoderHandle | null = null;
  #attached = false;
  #closed = false;
  #lastKeyframeRequest = 0;
  readonly #keyframeRequestIntervalMs: number;

  readonly #onAu = (au: AccessUnit): void => this.#handleAu(au);
  readonly #onConfig = (config: TrackConfig): void => this.#applyConfig(config);
  readonly #onInput = (): void => {
    this.#reorder.reset();
    this.#readTracks();
  };
  readonly #onEnded = (): void => this.close('stream ended');

  constructor(options: WhepOutputOptions) {
    super();
    this.#source = options.source;
    this.#log = options.log;
    this.#startMode = options.startMode ?? 'gop-fast';
    this.#opusFactory = options.opus ?? null;
    this.#keyframeRequestIntervalMs = options.keyframeRequestIntervalMs ?? 1_000;
  }

  get size(): number {
    return this.#viewers.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether an Opus encoder runs for this stream now. */
  get encoding(): boolean {
    return this.#opus !== null;
  }

  /** Attaches a session; it gets media once its video track is open. */
  add(session: WhepSession): void {
    if (this.#closed) {
      session.close('stream output closed');
      return;
    }
    const viewer: Viewer = { session, started: false };
    this.#viewers.set(session.id, viewer);
    this.#attach();
    session.on('ready', () => this.#start(viewer));
    session.on('keyframeRequest', () => this.#requestKeyframe());
    session.on('@close', () => this.#remove(session.id));
    if (session.ready) this.#start(viewer);
    this.#updateEncoder();
  }

  #attach(): void {
    if (this.#attached) return;
    this.#attached = true;
    this.#readTracks();
    this.#source.on('au', this.#onAu);
    this.#source.on('config', this.#onConfig);
    this.#source.on('input', this.#onInput);
    this.#source.on('ended', this.#onEnded);
  }

  #detach(): void {
    if (!this.#attached) return;
    this.#attached = false;
    this.#source.off('au', this.#onAu);
    this.#source.off('config', this.#onConfig);
    this.#source.off('input', this.#onInput);
    this.#source.off('ended', this.#onEnded);
  }

  #readTracks(): void {
    const { video, audio } = this.#source.tracks();
    if (video) this.#applyConfig(video);
    if (audio) this.#applyConfig(audio);
  }

  #applyConfig(config: TrackConfig): void {
    if (isVideoConfig(config) && config.codec === 'h264') {
      try {
        this.#params = parseAvcC(config.record);
      } catch (err) {
        this.#log.warn({ err }, 'WHEP: unreadable avcC; keyframes go without in-band SPS/PPS');
        this.#params = null;
      }
    } else if (isAudioConfig(config)) {
      const changed = this.#audio !== null && !this.#audio.config.equals(config.config);
      this.#audio = config;
      if (changed && this.#opus) {
        // A new AudioSpecificConfig needs a new decoder: restart the encoder on it.
        this.#opus.close();
        this.#opus = null;
      }
      this.#updateEncoder();
    }
  }

  #start(viewer: Viewer): void {
    if (viewer.started || !viewer.session.ready) return;
    if (this.#startMode === 'next-keyframe') return;
    const gop = this.#source.recentGop().filter((au) => au.track === 'video');
    const first = gop[0];
    if (!first?.keyframe) return;
    const last = gop.at(-1)!;
    viewer.started = true;
    gop.forEach((au, i) => {
      const time =
        this.#startMode === 'gop-fast' ? last.pts - (gop.length - 1 - i) * FAST_START_STEP_MS : au.pts;
      viewer.session.sendVideo(frameForRtp(au.data, au.keyframe, this.#params), time);
    });
  }

  #handleAu(au: AccessUnit): void {
    if (au.track === 'video') {
      if (this.#reorder.push(au.pts)) {
        this.close('the stream has B-frames, which WebRTC players cannot decode');
        return;
      }
      let frame: Buffer | null = null;
      for (const viewer of this.#viewers.values()) {
        if (!viewer.session.ready) continue;
        if (!viewer.started) {
          if (!au.keyframe) continue;
          viewer.started = true;
        }
        frame ??= frameForRtp(au.data, au.keyframe, this.#params);
        viewer.session.sendVideo(frame, au.pts);
      }
      return;
    }
    if (this.#audio?.codec === 'opus') this.#sendAudio(au.data, au.pts);
    else this.#opus?.push(au);
  }

  #sendAudio(packet: Buffer, timeMs: number): void {
    for (const viewer of this.#viewers.values()) {
      if (viewer.started && viewer.session.hasAudio) viewer.session.sendAudio(packet, timeMs);
    }
  }

  /** The encoder runs while an AAC stream has a viewer that takes audio. */
  #updateEncoder(): void {
    const wanted =
      !this.#closed &&
      this.#opusFactory !== null &&
      this.#audio?.codec === 'aac' &&
      [...this.#viewers.values()].some((v) => v.session.hasAudio);
    if (wanted && !this.#opus && this.#audio) {
      this.#opus = this.#opusFactory!(this.#audio, (packet, timeMs) => this.#sendAudio(packet, timeMs));
    } else if (!wanted && this.#opus) {
      this.#opus.close();
      this.#opus = null;
    }
  }

  #requestKeyframe(): void {
    const now = Date.now();
    if (now - this.#lastKeyframeRequest < this.#keyframeRequestIntervalMs) return;
    this.#lastKeyframeRequest = now;
    this.#source.requestKeyframe?.();
  }

  #remove(id: string): void {
    if (!this.#viewers.delete(id) || this.#closed) return;
    this.#updateEncoder();
    if (this.#viewers.size === 0) {
      this.#detach();
      this.safeEmit('@empty');
    }
  }

  /** Closes every session of this stream (the stream ended, or cannot be played); idempotent. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#log.info({ reason, viewers: this.#viewers.size }, 'WHEP output closed');
    this.#detach();
    for (const viewer of [...this.#viewers.values()]) viewer.session.close(reason);
    this.#viewers.clear();
    this.#opus?.close();
    this.#opus = null;
    this.safeEmit('@empty');
  }
}
