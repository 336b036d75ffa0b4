/**
 * What the publisher sends, measured over a sliding window of media time: video fps, mean keyframe interval
 * and bitrate, plus the input's codecs and size. Pure (fed tags, no clock): media time is what the glasses
 * stamped after timestamp repair, so the figures describe the stream itself, not the network's jitter.
 * Bounded: at most `WINDOW_MS` of samples (and a hard cap) are held, whatever the publisher sends.
 */

import type { AccessUnit, SourceStart, TrackConfig } from '../media/access-unit.ts';

/** Window for fps and bitrate, ms of media time. */
export const WINDOW_MS = 5000;
/** Keyframe gaps averaged. */
const KEYFRAME_GAPS = 5;
/** Hard cap on samples held (a 1 kHz frame flood stays bounded). */
const MAX_SAMPLES = 4096;

export interface IngestSnapshot {
  videoCodec?: string;
  audioCodec?: string;
  width?: number;
  height?: number;
  fps?: number;
  keyframeIntervalSeconds?: number;
  bitrateKbps?: number;
  /** Media bytes since the stream began (all publishes). */
  bytes: number;
}

interface Sample {
  ts: number;
  bytes: number;
  video: boolean;
}

/** A codec's name as the control API and metrics show it ('h264', 'aac', 'flv-video-2', …). */
function codecName(config: TrackConfig | null): string | undefined {
  if (!config) return undefined;
  if (config.codec !== 'opaque') return config.codec;
  const flv = /^flv:(\d+)$/.exec(config.name);
  if (!flv) return config.name;
  const id = Number(flv[1]);
  if (config.kind === 'video') return `flv-video-${id}`;
  return FLV_AUDIO_NAMES[id] ?? `flv-audio-${id}`;
}

const FLV_AUDIO_NAMES: Record<number, string> = { 2: 'mp3', 6: 'nellymoser', 11: 'speex' };

function dimension(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 && value <= 16_384
    ? Math.round(value)
    : undefined;
}

export class IngestStats {
  #samples: Sample[] = [];
  #head = 0;
  #keyframes: number[] = [];
  #bytes = 0;
  #videoCodec: string | undefined;
  #audioCodec: string | undefined;
  #width: number | undefined;
  #height: number | undefined;

  /** The picture size the H.264 SPS of the latest configuration declares (for inputs without onMetaData size). */
  spsSize: { width: number; height: number } | null = null;

  /** The frame rate onMetaData declares (`framerate`), if any. */
  metadataFps: number | undefined;

  /** A publish started (the first, or the publisher back): codecs and size from its configuration. */
  start(start: SourceStart): void {
    this.spsSize =
      start.video?.kind === 'video' && start.video.codec === 'h264' && start.video.width > 0
        ? { width: start.video.width, height: start.video.height }
        : null;
    const meta = start.metadata;
    const fps = meta?.framerate ?? meta?.videoframerate;
    this.metadataFps = typeof fps === 'number' && fps > 0 && fps <= 240 ? fps : undefined;
    this.#videoCodec = start.hasVideo ? (codecName(start.video) ?? this.#videoCodec) : undefined;
    this.#audioCodec = start.hasAudio ? (codecName(start.audio) ?? this.#audioCodec) : undefined;
    this.#width = dimension(meta?.width) ?? this.spsSize?.width ?? this.#width;
    this.#height = dimension(meta?.height) ?? this.spsSize?.height ?? this.#height;
    // A reconnect restarts the publisher's clock: old samples would skew the window.
    this.#samples = [];
    this.#head = 0;
    this.#keyframes = [];
  }

  /** A track's configuration changed mid-publish (a new size, or an opaque codec named by its first frame). */
  config(config: TrackConfig): void {
    if (config.kind === 'video') {
      this.#videoCodec = codecName(config) ?? this.#videoCodec;
      if (config.codec === 'h264' && config.width > 0) {
        this.spsSize = { width: config.width, height: config.height };
        this.#width = config.width;
        this.#height = config.height;
      }
    } else this.#audioCodec = codecName(config) ?? this.#audioCodec;
  }

  /** An access unit, after timestamp repair. */
  au(au: AccessUnit): void {
    const video = au.track === 'video';
    const ts = au.dts;
    this.#bytes += au.data.length;
    this.#samples.push({ ts, bytes: au.data.length, video });
    if (video && au.keyframe) {
      this.#keyframes.push(ts);
      if (this.#keyframes.length > KEYFRAME_GAPS + 1) this.#keyframes.shift();
    }
    // Drop what left the window (amortised: compact once half the array is dead).
    while (
      this.#head < this.#samples.length &&
      (ts - this.#samples[this.#head]!.ts > WINDOW_MS || this.#samples.length - this.#head > MAX_SAMPLES)
    ) {
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#samples.length) {
      this.#samples = this.#samples.slice(this.#head);
      this.#head = 0;
    }
  }

  snapshot(): IngestSnapshot {
    const live = this.#samples.slice(this.#head);
    const out: IngestSnapshot = { bytes: this.#bytes };
    if (this.#videoCodec) out.videoCodec = this.#videoCodec;
    if (this.#audioCodec) out.audioCodec = this.#audioCodec;
    if (this.#width) out.width = this.#width;
    if (this.#height) out.height = this.#height;
    if (live.length >= 2) {
      const span = live.at(-1)!.ts - live[0]!.ts;
      if (span > 0) {
        // Bytes after the first sample over the span they took (the first one's bytes belong before it).
        const bytes = live.reduce((sum, s) => sum + s.bytes, 0) - live[0]!.bytes;
        out.bitrateKbps = round1((bytes * 8) / span);
      }
    }
    const frames = live.filter((s) => s.video);
    if (frames.length >= 2) {
      const span = frames.at(-1)!.ts - frames[0]!.ts;
      if (span > 0) out.fps = round1(((frames.length - 1) * 1000) / span);
    }
    if (this.#keyframes.length >= 2) {
      const k = this.#keyframes;
      out.keyframeIntervalSeconds = round2((k.at(-1)! - k[0]!) / (k.length - 1) / 1000);
    }
    return out;
  }
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
