/**
 * What every ingest yields, whatever its wire format (RTMP/FLV, SRT/MPEG-TS, WHIP/RTP): the codec
 * configuration of each track, then access units (one frame of one track) on the publisher's clock. The
 * stream repairs their timestamps onto one timeline; every output (the CMAF writer, FFmpeg, re-stream
 * pushers, WHEP) reads access units or the CMAF made from them, and nothing downstream knows the protocol.
 *
 * Times are milliseconds as numbers (RTMP's clock is integer ms; 90 kHz sources give fractions), DTS and PTS
 * of the same frame on the same clock. Video payloads are AVCC/HVCC: NAL units each prefixed by a 4-byte
 * big-endian length, as FLV and MP4 carry them; audio payloads are one raw frame (AAC without ADTS, Opus).
 */

export type TrackKind = 'video' | 'audio';

export type VideoCodec = 'h264' | 'hevc';
export type AudioCodec = 'aac' | 'opus';

export interface VideoConfig {
  kind: 'video';
  codec: VideoCodec;
  /** The decoder configuration record: avcC (ISO/IEC 14496-15 §5.3.3) or hvcC (§8.3.3) bytes. */
  record: Buffer;
  /** From the SPS; 0 when it cannot be read. */
  width: number;
  height: number;
}

export interface AudioConfig {
  kind: 'audio';
  codec: AudioCodec;
  /** AAC: the AudioSpecificConfig. Opus: the OpusHead (RFC 7845 §5.1) or an empty buffer. */
  config: Buffer;
  sampleRate: number;
  channels: number;
  /** Samples per frame (1024 for AAC-LC, 960 for 20 ms Opus at 48 kHz). */
  frameSamples: number;
}

/**
 * A track whose codec the relay cannot write itself (an FLV codec other than H.264/AAC, e.g. MPEG-4 Part 2
 * sent with `-strict -1`): only FFmpeg can do something with it. Its access units carry the source's own
 * framing (for FLV: the whole tag body), so it goes back to FFmpeg byte for byte.
 */
export interface OpaqueConfig {
  kind: TrackKind;
  codec: 'opaque';
  /** What the source calls it, for logs and decisions ('flv:2' = FLV codec id 2). */
  name: string;
  /** The source's configuration message, if it sent one (an FLV sequence header body). */
  record: Buffer | null;
}

export type TrackConfig = VideoConfig | AudioConfig | OpaqueConfig;

export interface AccessUnit {
  track: TrackKind;
  /** Decode time, ms. */
  dts: number;
  /** Presentation time, ms (≥ dts for B-frames; equal otherwise). */
  pts: number;
  /** A sync sample: an IDR (NAL type 5, or an IRAP for HEVC); every audio frame is one. */
  keyframe: boolean;
  data: Buffer;
  /**
   * A frame of the "reconnecting" slate the relay made while the publisher was gone (stream/slate.ts), not
   * the publisher's: HLS, DASH and re-streams show it, recordings and WHEP skip it.
   */
  slate?: true;
}

/** What a source knows when its first frame arrives. */
export interface SourceStart {
  video: TrackConfig | null;
  audio: TrackConfig | null;
  /** The source says it has a track even if its configuration did not come (yet). */
  hasVideo: boolean;
  hasAudio: boolean;
  /** Stream metadata (RTMP onMetaData), when the source carries any. */
  metadata: Record<string, unknown> | null;
  /** The same metadata as the source encoded it (an FLV onMetaData body), forwarded as is to FLV outputs. */
  metadataAmf0?: Buffer | null;
}

export function isVideoConfig(c: TrackConfig | null | undefined): c is VideoConfig {
  return c?.kind === 'video' && c.codec !== 'opaque';
}

export function isAudioConfig(c: TrackConfig | null | undefined): c is AudioConfig {
  return c?.kind === 'audio' && c.codec !== 'opaque';
}

/** Whether two configurations describe the same decoder setup (a change needs a new init segment). */
export function sameConfig(a: TrackConfig | null, b: TrackConfig | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.kind !== b.kind || a.codec !== b.codec) return false;
  const bytes = (c: TrackConfig): Buffer | null =>
    c.codec === 'opaque' ? c.record : c.kind === 'video' ? c.record : c.config;
  const x = bytes(a);
  const y = bytes(b);
  return x === null || y === null ? x === y : x.equals(y);
}
