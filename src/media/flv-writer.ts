/**
 * FLV byte stream (FLV spec v10.1 annex E): the header with its audio/video flags and tags followed by their
 * PreviousTagSize. This is what FFmpeg reads on stdin. Pure: it returns buffers and writes nowhere.
 */
import type { FlvTagTypeId } from './flv-tag.ts';

export const FLV_HEADER_SIZE = 9;
export const FLV_TAG_HEADER_SIZE = 11;

/** `FLV` v1, the flags, the header size, then PreviousTagSize0 = 0: 13 bytes. */
export function flvHeader(flags: { hasAudio: boolean; hasVideo: boolean }): Buffer {
  const out = Buffer.alloc(FLV_HEADER_SIZE + 4);
  out.write('FLV', 0, 'latin1');
  out[3] = 1;
  out[4] = (flags.hasAudio ? 0x04 : 0) | (flags.hasVideo ? 0x01 : 0);
  out.writeUInt32BE(FLV_HEADER_SIZE, 5);
  return out;
}

/** One tag: type, 24-bit size, timestamp (low 24 bits, then the high 8), stream id 0, body, PreviousTagSize. */
export function flvTag(type: FlvTagTypeId, timestamp: number, body: Buffer): Buffer {
  if (body.length > 0xffffff) throw new RangeError(`FLV tag body of ${body.length} bytes`);
  const out = Buffer.allocUnsafe(FLV_TAG_HEADER_SIZE + body.length + 4);
  writeTagInto(out, 0, type, timestamp, body);
  return out;
}

function writeTagInto(out: Buffer, at: number, type: number, timestamp: number, body: Buffer): number {
  const ts = timestamp >>> 0;
  out[at] = type;
  out.writeUIntBE(body.length, at + 1, 3);
  out.writeUIntBE(ts & 0xffffff, at + 4, 3);
  out[at + 7] = (ts >>> 24) & 0xff;
  out.writeUIntBE(0, at + 8, 3);
  body.copy(out, at + FLV_TAG_HEADER_SIZE);
  const end = at + FLV_TAG_HEADER_SIZE + body.length;
  out.writeUInt32BE(FLV_TAG_HEADER_SIZE + body.length, end);
  return end + 4;
}
