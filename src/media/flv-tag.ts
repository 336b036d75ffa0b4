/**
 * FLV tag bodies (FLV spec v10.1 annex E, Enhanced RTMP v1/v2): what a video or audio tag carries, read
 * from its first bytes. Pure and total: an empty or short body yields `null`.
 */

export const FlvTagType = { Audio: 8, Video: 9, Script: 18 } as const;
export type FlvTagTypeId = (typeof FlvTagType)[keyof typeof FlvTagType];

export const VideoCodecId = { SorensonH263: 2, Screen: 3, Vp6: 4, Vp6Alpha: 5, Screen2: 6, Avc: 7 } as const;
export const SoundFormat = { Mp3: 2, Nellymoser: 6, ExHeader: 9, Aac: 10, Speex: 11 } as const;

/** Enhanced RTMP FourCCs and the names used in logs and errors. */
export const ENHANCED_VIDEO_FOURCC: Record<string, string> = {
  hvc1: 'HEVC',
  av01: 'AV1',
  vp09: 'VP9',
  avc1: 'H.264 (enhanced)',
};

/** One audio, video or script tag of a publish, as it goes into FLV. */
export interface MediaTag {
  type: FlvTagTypeId;
  /** Timestamp in ms as the publisher sent it (repair happens downstream). */
  timestamp: number;
  data: Buffer;
  /** A video keyframe; audio and script tags count as sync points too. */
  keyframe: boolean;
  /** A sequence header (decoder configuration) or metadata. */
  isConfig: boolean;
}

export interface VideoTagInfo {
  /** Enhanced RTMP header (IsExHeader bit set). */
  enhanced: boolean;
  /** Legacy codec id (7 = AVC), or the FourCC of an enhanced tag. */
  codec: number | string;
  keyframe: boolean;
  /** AVC sequence header (or enhanced SequenceStart): the decoder configuration. */
  isConfig: boolean;
  /** A video info/command frame (frame type 5), which carries no picture. */
  isCommand: boolean;
}

export interface AudioTagInfo {
  enhanced: boolean;
  /** Legacy SoundFormat (10 = AAC), or the FourCC of an enhanced tag. */
  codec: number | string;
  /** AAC sequence header (AudioSpecificConfig). */
  isConfig: boolean;
}

export function parseVideoTag(data: Buffer): VideoTagInfo | null {
  if (data.length < 1) return null;
  const b0 = data[0]!;
  if (b0 & 0x80) {
    if (data.length < 5) return null;
    const frameType = (b0 >> 4) & 0x07;
    const packetType = b0 & 0x0f;
    return {
      enhanced: true,
      codec: data.toString('latin1', 1, 5),
      keyframe: frameType === 1,
      isConfig: packetType === 0,
      isCommand: frameType === 5,
    };
  }
  const frameType = b0 >> 4;
  const codec = b0 & 0x0f;
  return {
    enhanced: false,
    codec,
    keyframe: frameType === 1,
    isConfig: codec === VideoCodecId.Avc && data.length >= 2 && data[1] === 0,
    isCommand: frameType === 5,
  };
}

export function parseAudioTag(data: Buffer): AudioTagInfo | null {
  if (data.length < 1) return null;
  const format = data[0]! >> 4;
  if (format === SoundFormat.ExHeader) {
    if (data.length < 5) return null;
    return { enhanced: true, codec: data.toString('latin1', 1, 5), isConfig: (data[0]! & 0x0f) === 0 };
  }
  return {
    enhanced: false,
    codec: format,
    isConfig: format === SoundFormat.Aac && data.length >= 2 && data[1] === 0,
  };
}
