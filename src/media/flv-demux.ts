/**
 * FLV tag bodies (what RTMP carries) to the media core's track configurations and access units, and back
 * (for the consumers that still speak FLV: FFmpeg's stdin for transcodes, re-stream pushers). Pure.
 *
 * H.264 (codec id 7) and AAC (sound format 10) become real configurations: the avcC record (checked: a
 * record that does not parse is skipped and counted) and the AudioSpecificConfig, and access units whose
 * payload is the NAL units with 4-byte lengths (a record with shorter lengths is rewritten to 4; a length
 * that runs past the end drops the frame) or the raw AAC frame. A video frame is a keyframe when it holds an IDR
 * NAL unit (type 5), not when the FLV frame type says so (reference/ingest-and-outputs.md: encoders mark
 * recovery points as keyframes). Any other codec is opaque: its access units keep the whole tag body, so
 * it reaches FFmpeg byte for byte and only a transcode can serve it.
 */

import { RelayError } from '../shared/errors.ts';
import type {
  AccessUnit,
  AudioConfig,
  OpaqueConfig,
  SourceStart,
  TrackConfig,
  VideoConfig,
} from './access-unit.ts';
import { FlvTagType, type MediaTag, SoundFormat, VideoCodecId } from './flv-tag.ts';
import { isKeyframeAu, parseAvcConfig } from './nal.ts';

/** MPEG-4 sampling frequency index (ISO/IEC 14496-3 §1.6.3.4). */
const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/** Sample rate and channels from an AudioSpecificConfig; null when it is too short or reserved. */
export function parseAudioSpecificConfig(
  asc: Buffer,
): { objectType: number; sampleRate: number; channels: number; frameSamples: number } | null {
  if (asc.length < 2) return null;
  let bit = 0;
  const read = (n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++, bit++) {
      const byte = asc[bit >> 3];
      if (byte === undefined) throw new RangeError('short AudioSpecificConfig');
      v = (v << 1) | ((byte >> (7 - (bit & 7))) & 1);
    }
    return v >>> 0;
  };
  try {
    let objectType = read(5);
    if (objectType === 31) objectType = 32 + read(6);
    const index = read(4);
    const sampleRate = index === 15 ? read(24) : AAC_RATES[index];
    const channels = read(4);
    if (!sampleRate) return null;
    // GASpecificConfig's frameLengthFlag: 960-sample frames (rare; DAB+).
    const frameSamples =
      objectType === 2 || objectType === 5 || objectType === 29 ? (read(1) ? 960 : 1024) : 1024;
    return { objectType, sampleRate, channels, frameSamples };
  } catch {
    // A truncated config: the bit reader ran out (RangeError), so it cannot describe a decoder.
    return null;
  }
}

/** Rewrites NAL units prefixed by `size`-byte lengths to 4-byte lengths; null when a length runs past the end. */
function toFourByteLengths(data: Buffer, size: number): Buffer | null {
  if (size === 4) return data;
  const nals: Buffer[] = [];
  let total = 0;
  for (let pos = 0; pos < data.length; ) {
    if (pos + size > data.length) return null;
    const length = data.readUIntBE(pos, size);
    pos += size;
    if (pos + length > data.length) return null;
    nals.push(data.subarray(pos, pos + length));
    total += 4 + length;
    pos += length;
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const nal of nals) {
    out.writeUInt32BE(nal.length, at);
    nal.copy(out, at + 4);
    at += 4 + nal.length;
  }
  return out;
}

export interface FlvDemuxResult {
  /** A track's configuration, new or changed. */
  config?: TrackConfig;
  au?: AccessUnit;
}

export class FlvDemuxer {
  video: TrackConfig | null = null;
  audio: TrackConfig | null = null;
  /** Tags that could not be read (truncated, end-of-sequence, a frame before its configuration). */
  skipped = 0;
  #lengthSize = 4;

  /** One audio or video tag (script tags are not media: null). */
  push(tag: MediaTag): FlvDemuxResult | null {
    if (tag.type === FlvTagType.Video) return this.#video(tag);
    if (tag.type === FlvTagType.Audio) return this.#audio(tag);
    return null;
  }

  #video(tag: MediaTag): FlvDemuxResult | null {
    const body = tag.data;
    if (body.length < 1) return this.#skip();
    const codecId = body[0]! & 0x0f;
    if (codecId !== VideoCodecId.Avc) {
      let config: OpaqueConfig | undefined;
      const name = `flv:${codecId}`;
      if (this.video?.codec !== 'opaque' || this.video.name !== name) {
        config = { kind: 'video', codec: 'opaque', name, record: null };
        this.video = config;
      }
      const keyframe = body[0]! >> 4 === 1;
      const au: AccessUnit = { track: 'video', dts: tag.timestamp, pts: tag.timestamp, keyframe, data: body };
      return config ? { config, au } : { au };
    }
    if (body.length < 5) return this.#skip();
    const packetType = body[1]!;
    if (packetType === 0) {
      const record = body.subarray(5);
      let parsed: ReturnType<typeof parseAvcConfig>;
      try {
        parsed = parseAvcConfig(record);
      } catch (err) {
        // A record the CMAF writer could not describe (hostile or broken): not a configuration.
        if (err instanceof RelayError) return this.#skip();
        throw err;
      }
      this.#lengthSize = parsed.lengthSize;
      const config: VideoConfig = {
        kind: 'video',
        codec: 'h264',
        // Payloads are rewritten to 4-byte lengths, so the record must say so.
        record: this.#lengthSize === 4 ? Buffer.from(record) : withFourByteLengths(record),
        width: parsed.width ?? 0,
        height: parsed.height ?? 0,
      };
      this.video = config;
      return { config };
    }
    if (packetType !== 1 || this.video?.codec !== 'h264') return this.#skip();
    const cts = body.readIntBE(2, 3);
    const data = toFourByteLengths(body.subarray(5), this.#lengthSize);
    if (data === null || data.length === 0) return this.#skip();
    let keyframe: boolean;
    try {
      keyframe = isKeyframeAu('h264', data);
    } catch (err) {
      // A NAL length that runs past the end: a broken frame, dropped and counted.
      if (err instanceof RelayError) return this.#skip();
      throw err;
    }
    return { au: { track: 'video', dts: tag.timestamp, pts: tag.timestamp + cts, keyframe, data } };
  }

  #audio(tag: MediaTag): FlvDemuxResult | null {
    const body = tag.data;
    if (body.length < 1) return this.#skip();
    const format = body[0]! >> 4;
    if (format !== SoundFormat.Aac) {
      let config: OpaqueConfig | undefined;
      const name = `flv:${format}`;
      if (this.audio?.codec !== 'opaque' || this.audio.name !== name) {
        config = { kind: 'audio', codec: 'opaque', name, record: null };
        this.audio = config;
      }
      const au: AccessUnit = {
        track: 'audio',
        dts: tag.timestamp,
        pts: tag.timestamp,
        keyframe: true,
        data: body,
      };
      return config ? { config, au } : { au };
    }
    if (body.length < 3) return this.#skip();
    if (body[1] === 0) {
      const asc = Buffer.from(body.subarray(2));
      const info = parseAudioSpecificConfig(asc);
      if (!info) return this.#skip();
      const config: AudioConfig = {
        kind: 'audio',
        codec: 'aac',
        config: asc,
        sampleRate: info.sampleRate,
        channels: info.channels,
        frameSamples: info.frameSamples,
      };
      this.audio = config;
      return { config };
    }
    if (this.audio?.codec !== 'aac') return this.#skip();
    return {
      au: { track: 'audio', dts: tag.timestamp, pts: tag.timestamp, keyframe: true, data: body.subarray(2) },
    };
  }

  #skip(): null {
    this.skipped++;
    return null;
  }
}

/** The same avcC with lengthSizeMinusOne set to 3. */
function withFourByteLengths(record: Buffer): Buffer {
  const copy = Buffer.from(record);
  copy[4] = (copy[4]! & 0xfc) | 0x03;
  return copy;
}

// ---- access units back to FLV ---------------------------------------------------------------------------

/** What an FLV consumer needs first (header flags, metadata, sequence headers), as FlvSink takes it. */
export interface FlvStartTags {
  hasAudio: boolean;
  hasVideo: boolean;
  metadataTag: Buffer | null;
  videoConfig: MediaTag | null;
  audioConfig: MediaTag | null;
}

/** The FLV sequence header tag body of a configuration; null for Opus/HEVC (FLV cannot carry them here). */
export function flvConfigBody(config: TrackConfig): Buffer | null {
  if (config.codec === 'opaque') return config.record;
  if (config.kind === 'video') {
    if (config.codec !== 'h264') return null;
    return Buffer.concat([Buffer.from([0x17, 0x00, 0, 0, 0]), config.record]);
  }
  if (config.codec !== 'aac') return null;
  return Buffer.concat([Buffer.from([0xaf, 0x00]), config.config]);
}

/** The FLV tag body of an access unit under `config`; null when FLV cannot carry it. */
export function flvMediaBody(au: AccessUnit, config: TrackConfig | null): Buffer | null {
  if (!config) return null;
  if (config.codec === 'opaque') return au.data;
  if (config.kind === 'video') {
    if (config.codec !== 'h264') return null;
    const head = Buffer.allocUnsafe(5);
    head[0] = (au.keyframe ? 0x10 : 0x20) | VideoCodecId.Avc;
    head[1] = 1;
    head.writeIntBE(Math.max(-0x800000, Math.min(0x7fffff, Math.round(au.pts - au.dts))), 2, 3);
    return Buffer.concat([head, au.data]);
  }
  if (config.codec !== 'aac') return null;
  return Buffer.concat([Buffer.from([0xaf, 0x01]), au.data]);
}

/** An access unit as an FLV media tag (timestamp = DTS in whole ms); null when FLV cannot carry it. */
export function flvTagOf(au: AccessUnit, config: TrackConfig | null): MediaTag | null {
  const data = flvMediaBody(au, config);
  if (!data) return null;
  return {
    type: au.track === 'video' ? FlvTagType.Video : FlvTagType.Audio,
    timestamp: Math.round(au.dts),
    data,
    keyframe: au.track === 'audio' || au.keyframe,
    isConfig: false,
  };
}

/** A configuration as an FLV sequence header tag at `timestamp`; null when FLV cannot carry it. */
export function flvConfigTagOf(config: TrackConfig, timestamp: number): MediaTag | null {
  const data = flvConfigBody(config);
  if (!data) return null;
  return {
    type: config.kind === 'video' ? FlvTagType.Video : FlvTagType.Audio,
    timestamp: Math.round(timestamp),
    data,
    keyframe: true,
    isConfig: true,
  };
}

/** The start of an FLV stream for a source's start (configurations at `timestamp`). */
export function flvStartOf(start: SourceStart, timestamp = 0): FlvStartTags {
  return {
    hasAudio: start.hasAudio,
    hasVideo: start.hasVideo,
    metadataTag: start.metadataAmf0 ?? null,
    videoConfig: start.video ? flvConfigTagOf(start.video, timestamp) : null,
    audioConfig: start.audio ? flvConfigTagOf(start.audio, timestamp) : null,
  };
}
