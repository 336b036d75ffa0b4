/**
 * FLV byte stream reader (FLV spec v10.1 annex E), the inverse of ./flv-writer.ts: the header's audio/video
 * flags and every tag with its timestamp (low 24 bits, then the extended high 8). Pure and total: any input
 * either parses or throws one `FLV_MALFORMED` RelayError; every size is checked against the bytes present
 * before it is used. Tag bodies are views into the input buffer, not copies.
 */
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import { FlvTagType, type FlvTagTypeId, type MediaTag, parseAudioTag, parseVideoTag } from './flv-tag.ts';
import { FLV_HEADER_SIZE, FLV_TAG_HEADER_SIZE } from './flv-writer.ts';

export interface FlvHeaderFlags {
  hasAudio: boolean;
  hasVideo: boolean;
}

export interface FlvFile {
  header: FlvHeaderFlags;
  tags: MediaTag[];
}

const PREVIOUS_TAG_SIZE = 4;
/** A header's DataOffset past this is not a header (the spec's is 9; FLV has never grown it). */
const MAX_HEADER_SIZE = 1024;

function malformed(message: string): RelayError {
  return new RelayError(ErrorCodes.FLV_MALFORMED, `FLV: ${message}`);
}

function tagTypeOf(byte: number, at: number): FlvTagTypeId {
  if (byte & 0x20) throw malformed(`encrypted (filtered) tag at byte ${at}`);
  const type = byte & 0x1f;
  if (type === FlvTagType.Audio || type === FlvTagType.Video || type === FlvTagType.Script) return type;
  throw malformed(`unknown tag type ${type} at byte ${at}`);
}

/** A tag as MediaTag: keyframe and configuration read from the body the way a Publish reads them. */
function mediaTag(type: FlvTagTypeId, timestamp: number, data: Buffer): MediaTag {
  if (type === FlvTagType.Video) {
    const info = parseVideoTag(data);
    return { type, timestamp, data, keyframe: info?.keyframe ?? false, isConfig: info?.isConfig ?? false };
  }
  if (type === FlvTagType.Audio) {
    return { type, timestamp, data, keyframe: true, isConfig: parseAudioTag(data)?.isConfig ?? false };
  }
  return { type, timestamp, data, keyframe: false, isConfig: true };
}

/**
 * Parses a whole FLV byte stream: header, PreviousTagSize0, then tags each followed by a PreviousTagSize
 * that must equal 11 + the tag's data size. Throws FLV_MALFORMED on a bad signature or version, an unknown
 * or encrypted tag type, a size that runs past the end, a PreviousTagSize that does not match, or trailing
 * bytes that are not a whole tag.
 */
export function readFlv(buf: Buffer): FlvFile {
  const head = readHeader(buf);
  if (head === null) throw malformed(`truncated header: ${buf.length} bytes`);
  const tags: MediaTag[] = [];
  const at = readTags(buf, head.end, tags);
  if (at < buf.length) {
    const left = buf.length - at;
    if (left < FLV_TAG_HEADER_SIZE + PREVIOUS_TAG_SIZE)
      throw malformed(`truncated tag header at byte ${at} (${left} bytes left)`);
    throw malformed(
      `tag at byte ${at} claims ${buf.readUIntBE(at + 1, 3)} bytes, ${left - FLV_TAG_HEADER_SIZE} are left`,
    );
  }
  return { header: head.header, tags };
}

/** The header and PreviousTagSize0: where the first tag starts, or null while bytes are missing. */
function readHeader(buf: Buffer): { header: FlvHeaderFlags; end: number } | null {
  if (buf.length < FLV_HEADER_SIZE) return null;
  if (buf[0] !== 0x46 || buf[1] !== 0x4c || buf[2] !== 0x56) throw malformed('no "FLV" signature');
  if (buf[3] !== 1) throw malformed(`unsupported version ${buf[3]}`);
  const flags = buf[4]!;
  const header: FlvHeaderFlags = { hasAudio: (flags & 0x04) !== 0, hasVideo: (flags & 0x01) !== 0 };
  const dataOffset = buf.readUInt32BE(5);
  if (dataOffset < FLV_HEADER_SIZE || dataOffset > MAX_HEADER_SIZE)
    throw malformed(`header size ${dataOffset}`);
  if (buf.length < dataOffset + PREVIOUS_TAG_SIZE) return null;
  const first = buf.readUInt32BE(dataOffset);
  if (first !== 0) throw malformed(`PreviousTagSize0 is ${first}, not 0`);
  return { header, end: dataOffset + PREVIOUS_TAG_SIZE };
}

/** Every whole tag from `from` on into `tags`; returns where the first incomplete one starts. */
function readTags(buf: Buffer, from: number, tags: MediaTag[]): number {
  let at = from;
  while (buf.length - at >= FLV_TAG_HEADER_SIZE + PREVIOUS_TAG_SIZE) {
    const type = tagTypeOf(buf[at]!, at);
    const size = buf.readUIntBE(at + 1, 3);
    if (size > buf.length - at - FLV_TAG_HEADER_SIZE - PREVIOUS_TAG_SIZE) break;
    const timestamp = (buf.readUIntBE(at + 4, 3) | (buf[at + 7]! << 24)) >>> 0;
    const bodyStart = at + FLV_TAG_HEADER_SIZE;
    const end = bodyStart + size;
    const previous = buf.readUInt32BE(end);
    if (previous !== FLV_TAG_HEADER_SIZE + size) {
      throw malformed(
        `PreviousTagSize ${previous} after the tag at byte ${at}, expected ${FLV_TAG_HEADER_SIZE + size}`,
      );
    }
    tags.push(mediaTag(type, timestamp, buf.subarray(bodyStart, end)));
    at = end + PREVIOUS_TAG_SIZE;
  }
  return at;
}

/**
 * The same reader over a byte stream that arrives in chunks (FFmpeg writing FLV to a pipe): `push` returns
 * the tags completed so far and keeps the rest (at most one tag, which FLV caps at 16 MB) for the next chunk.
 */
export class FlvTagStream {
  #pending: Buffer = Buffer.alloc(0);
  #headerRead = false;

  push(chunk: Buffer): MediaTag[] {
    let buf = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    if (!this.#headerRead) {
      const head = readHeader(buf);
      if (head === null) {
        this.#pending = buf;
        return [];
      }
      this.#headerRead = true;
      buf = buf.subarray(head.end);
    }
    const tags: MediaTag[] = [];
    const at = readTags(buf, 0, tags);
    // Copied: the rest must not pin the whole chunk it is a view of.
    this.#pending = Buffer.from(buf.subarray(at));
    return tags;
  }
}
