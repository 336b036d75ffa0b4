/**
 * AAC in ADTS framing (ISO/IEC 13818-7 §6.2, as MPEG-TS carries it): each frame's header is read for its
 * length and audio parameters, the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) is built from it, and the
 * raw frames come out without their headers, as access units carry AAC. Pure and total: a short or
 * inconsistent header yields null, never a read past the end.
 */

export const AAC_SAMPLE_RATES = [
  96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
] as const;

export interface AdtsHeader {
  /** Header bytes: 7, or 9 with a CRC. */
  headerLength: number;
  /** The whole frame, header included. */
  frameLength: number;
  /** MPEG-4 audio object type (profile + 1): 2 = AAC-LC. */
  objectType: number;
  sampleRateIndex: number;
  sampleRate: number;
  channelConfig: number;
  /** Raw data blocks in the frame (1 in practice), each 1024 samples. */
  blocks: number;
}

export function parseAdtsHeader(buf: Buffer, offset = 0): AdtsHeader | null {
  if (offset + 7 > buf.length) return null;
  if (buf[offset] !== 0xff || (buf[offset + 1]! & 0xf6) !== 0xf0) return null; // syncword, layer 0
  const protectionAbsent = buf[offset + 1]! & 1;
  const b2 = buf[offset + 2]!;
  const b3 = buf[offset + 3]!;
  const objectType = (b2 >> 6) + 1;
  const sampleRateIndex = (b2 >> 2) & 0x0f;
  const sampleRate = AAC_SAMPLE_RATES[sampleRateIndex as 0];
  if (sampleRate === undefined) return null;
  const channelConfig = ((b2 & 1) << 2) | (b3 >> 6);
  const frameLength = ((b3 & 3) << 11) | (buf[offset + 4]! << 3) | (buf[offset + 5]! >> 5);
  const headerLength = protectionAbsent ? 7 : 9;
  if (frameLength <= headerLength) return null;
  const blocks = (buf[offset + 6]! & 3) + 1;
  return { headerLength, frameLength, objectType, sampleRateIndex, sampleRate, channelConfig, blocks };
}

/** AAC audio object types (ISO/IEC 14496-3 §1.5.1.1): 2 is AAC-LC. */
export const AAC_LC = 2;

/** The audio object type an AudioSpecificConfig starts with (its first five bits; 0 when empty). */
export function aacObjectType(asc: Buffer): number {
  return (asc[0] ?? 0) >> 3;
}

/** The 2-byte AudioSpecificConfig for an ADTS stream. */
export function audioSpecificConfig(h: Pick<AdtsHeader, 'objectType' | 'sampleRateIndex' | 'channelConfig'>) {
  const b = Buffer.alloc(2);
  b[0] = (h.objectType << 3) | (h.sampleRateIndex >> 1);
  b[1] = ((h.sampleRateIndex & 1) << 7) | (h.channelConfig << 3);
  return b;
}

export interface AdtsFrame {
  header: AdtsHeader;
  /** The raw AAC frame (no ADTS header). */
  data: Buffer;
}

/**
 * Splits a buffer of back-to-back ADTS frames. `rest` is what followed the last whole frame (a frame cut
 * off at the end, or bytes that are not ADTS).
 */
export function splitAdts(buf: Buffer): { frames: AdtsFrame[]; rest: Buffer } {
  const frames: AdtsFrame[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const header = parseAdtsHeader(buf, pos);
    if (!header || pos + header.frameLength > buf.length) break;
    frames.push({ header, data: buf.subarray(pos + header.headerLength, pos + header.frameLength) });
    pos += header.frameLength;
  }
  return { frames, rest: buf.subarray(pos) };
}
