/**
 * A WhepSourceStream (src/webrtc/whep-source.ts) that replays a fixture's access units in real time, looped
 * on one continuous timeline: what a live stream's repaired output looks like to WHEP, without RTMP or
 * FFmpeg. Keeps the current GOP as a stream would, counts keyframe requests, and ends on `end()`.
 */
import type { AccessUnit, SourceStart, TrackConfig } from '../../src/media/access-unit.ts';
import { TypedEmitter } from '../../src/shared/typed-emitter.ts';
import type { WhepSourceEvents, WhepSourceStream } from '../../src/webrtc/whep-source.ts';
import type { FlvMedia } from './flv-access-units.ts';

export interface FakeSourceOptions {
  /** Play speed (1 = real time). */
  speed?: number;
  /** Change every unit before it is emitted (e.g. to fake B-frames). */
  map?: (au: AccessUnit) => AccessUnit;
}

export class FakeWhepSource extends TypedEmitter<WhepSourceEvents> implements WhepSourceStream {
  readonly media: FlvMedia;
  keyframeRequests = 0;
  emitted = 0;
  #gop: AccessUnit[] = [];
  #timer: NodeJS.Timeout | null = null;
  #ended = false;
  #index = 0;
  #loopOffset = 0;
  #startWall = 0;
  readonly #span: number;
  readonly #speed: number;
  readonly #map: (au: AccessUnit) => AccessUnit;

  constructor(media: FlvMedia, options: FakeSourceOptions = {}) {
    super();
    this.media = media;
    this.#speed = options.speed ?? 1;
    this.#map = options.map ?? ((au) => au);
    const first = media.units[0]?.dts ?? 0;
    const last = media.units.at(-1)?.dts ?? 0;
    this.#span = last - first + 40;
  }

  get ended(): boolean {
    return this.#ended;
  }

  tracks(): { video: TrackConfig | null; audio: TrackConfig | null } {
    return { video: this.media.video, audio: this.media.audio };
  }

  recentGop(): readonly AccessUnit[] {
    return this.#gop;
  }

  requestKeyframe(): void {
    this.keyframeRequests++;
  }

  /** Starts the replay: emits `input`, then the units in real time (times continue across loops). */
  start(): void {
    const start: SourceStart = {
      video: this.media.video,
      audio: this.media.audio,
      hasVideo: this.media.video !== null,
      hasAudio: this.media.audio !== null,
      metadata: null,
    };
    this.safeEmit('input', start);
    this.#startWall = performance.now();
    this.#tick();
  }

  #mediaTime(i: number): number {
    return this.media.units[i]!.dts - this.media.units[0]!.dts;
  }

  #tick(): void {
    this.#timer = null;
    if (this.#ended) return;
    const now = (performance.now() - this.#startWall) * this.#speed;
    const units = this.media.units;
    while (this.#loopOffset + this.#mediaTime(this.#index) <= now) {
      const raw = units[this.#index]!;
      const au = this.#map({ ...raw, dts: raw.dts + this.#loopOffset, pts: raw.pts + this.#loopOffset });
      if (au.track === 'video' && au.keyframe) this.#gop = [];
      if (au.track === 'video' || this.#gop.length > 0) this.#gop.push(au);
      this.emitted++;
      this.safeEmit('au', au);
      this.#index++;
      if (this.#index >= units.length) {
        this.#index = 0;
        this.#loopOffset += this.#span;
      }
    }
    const next = (this.#loopOffset + this.#mediaTime(this.#index) - now) / this.#speed;
    this.#timer = setTimeout(() => this.#tick(), Math.max(1, next));
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  end(): void {
    if (this.#ended) return;
    this.stop();
    this.#ended = true;
    this.safeEmit('ended');
  }
}
