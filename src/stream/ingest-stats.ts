/**
 * What the publisher sends, measured over a sliding window of media time: video fps, mean keyframe interval
 * and bitrate, plus the input's codecs and size. Pure (fed tags, no clock): media time is what the glasses
 * stamped after timestamp repair, so the figures describe the stream itself, not the network's jitter.
 * Bounded: at most `WINDOW_MS` of samples (and a hard cap) are held, whatever the publisher sends.
 */

import { avcSequenceHeaderSize } from '../media/avc-sps.ts';
import {
  FlvTagType,
  type MediaTag,
  parseAudioTag,
  parseVideoTag,
  SoundFormat,
  VideoCodecId,
} from '../media/flv-tag.ts';
import type { PublishStart } from '../rtmp/publish.ts';

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

const AUDIO_NAMES: Record<number, string> = {
  [SoundFormat.Aac]: 'aac',
  [SoundFormat.Mp3]: 'mp3',
  [SoundFormat.Speex]: 'speex',
  [SoundFormat.Nellymoser]: 'nellymoser',
};

function audioName(codec: number | string): string {
  return typeof codec === 'string' ? codec : (AUDIO_NAMES[codec] ?? `flv-audio-${codec}`);
}

function videoName(codec: number | string | undefined): string | undefined {
  if (codec === undefined) return undefined;
  if (codec === VideoCodecId.Avc || codec === 'avc1') return 'h264';
  if (typeof codec === 'string') return codec;
  return `flv-video-${codec}`;
}

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
  start(start: PublishStart): void {
    this.spsSize = start.videoConfig ? avcSequenceHeaderSize(start.videoConfig.data) : null;
    const fps = start.metadata?.framerate ?? start.metadata?.videoframerate;
    this.metadataFps = typeof fps === 'number' && fps > 0 && fps <= 240 ? fps : undefined;
    const video = start.videoConfig ? parseVideoTag(start.videoConfig.data) : null;
    const audio = start.audioConfig ? parseAudioTag(start.audioConfig.data) : null;
    this.#videoCodec = start.hasVideo ? (videoName(video?.codec) ?? this.#videoCodec) : undefined;
    this.#audioCodec = start.hasAudio ? (audio ? audioName(audio.codec) : this.#audioCodec) : undefined;
    this.#width = dimension(start.metadata?.width) ?? this.#width;
    this.#height = dimension(start.metadata?.height) ?? this.#height;
    // A reconnect restarts the publisher's clock: old samples would skew the window.
    this.#samples = [];
    this.#head = 0;
    this.#keyframes = [];
  }

  /** A media tag, after timestamp repair. */
  tag(tag: MediaTag): void {
    if (tag.isConfig || tag.type === FlvTagType.Script) return;
    const video = tag.type === FlvTagType.Video;
    this.#bytes += tag.data.length;
    this.#samples.push({ ts: tag.timestamp, bytes: tag.data.length, video });
    if (video && tag.keyframe) {
      this.#keyframes.push(tag.timestamp);
      if (this.#keyframes.length > KEYFRAME_GAPS + 1) this.#keyframes.shift();
    }
    // Drop what left the window (amortised: compact once half the array is dead).
    const newest = tag.timestamp;
    while (
      this.#head < this.#samples.length &&
      (newest - this.#samples[this.#head]!.ts > WINDOW_MS || this.#samples.length - this.#head > MAX_SAMPLES)
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
