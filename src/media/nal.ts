/**
 * NAL units of H.264 (ITU-T H.264) and HEVC (ITU-T H.265) access units: walking AVCC/HVCC payloads
 * (length-prefixed, as FLV and MP4 carry them) without copying, NAL type helpers, keyframe detection from the
 * NAL types (the FLV frame type lies often enough that the CMAF writer must not trust it), the avcC record
 * (ISO/IEC 14496-15 §5.3.3.1) read and built, and Annex B (start codes, as MPEG-TS and RTP depacketizers
 * give) converted to AVCC. Hand-written: a few dozen lines of bounds-checked Buffer reads, on the hot path
 * of every frame; every length is checked against the bytes present, and a violation throws RelayError
 * NAL_MALFORMED (payloads) or AVC_CONFIG_MALFORMED (the avcC record), never an over-read.
 */
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { VideoCodec } from './access-unit.ts';
import { spsPictureSize } from './avc-sps.ts';

/** H.264 nal_unit_type values the relay acts on (Table 7-1). */
export const H264Nal = {
  NON_IDR: 1,
  IDR: 5,
  SEI: 6,
  SPS: 7,
  PPS: 8,
  AUD: 9,
} as const;

/** HEVC nal_unit_type values the relay acts on (Table 7-1); IRAP pictures are 16..21 (BLA, IDR, CRA). */
export const HevcNal = {
  BLA_W_LP: 16,
  IDR_W_RADL: 19,
  IDR_N_LP: 20,
  CRA: 21,
  VPS: 32,
  SPS: 33,
  PPS: 34,
  AUD: 35,
  PREFIX_SEI: 39,
  SUFFIX_SEI: 40,
} as const;

/** nal_unit_type from an H.264 NAL header byte. */
export function h264NalType(header: number): number {
  return header & 0x1f;
}

/** nal_unit_type from the first byte of an HEVC NAL header (2 bytes: forbidden bit, 6-bit type, ...). */
export function hevcNalType(header: number): number {
  return (header >> 1) & 0x3f;
}

/** BLA, IDR or CRA: a picture a decoder can start at (types 22 and 23 are reserved IRAP, never sent). */
export function isHevcIrap(type: number): boolean {
  return type >= HevcNal.BLA_W_LP && type <= HevcNal.CRA;
}

/** The NAL type of a NAL unit's first byte for either codec. */
export function nalType(codec: VideoCodec, header: number): number {
  return codec === 'h264' ? h264NalType(header) : hevcNalType(header);
}

function nalMalformed(message: string): never {
  throw new RelayError(ErrorCodes.NAL_MALFORMED, message);
}

function configMalformed(message: string): never {
  throw new RelayError(ErrorCodes.AVC_CONFIG_MALFORMED, `avcC: ${message}`);
}

/** Reads one `lengthSize`-byte big-endian NAL length (1, 2 or 4 bytes; 3 is legal in avcC too). */
function readLength(data: Buffer, at: number, lengthSize: number): number {
  switch (lengthSize) {
    case 4:
      return data.readUInt32BE(at);
    case 2:
      return data.readUInt16BE(at);
    case 1:
      return data[at]!;
    default:
      return data.readUIntBE(at, lengthSize);
  }
}

function checkLengthSize(lengthSize: number): void {
  if (lengthSize < 1 || lengthSize > 4 || !Number.isInteger(lengthSize)) {
    throw new RangeError(`NAL length size ${lengthSize}`);
  }
}

/**
 * Calls `visit(data, start, end)` for each length-prefixed NAL unit of an AVCC/HVCC access unit, in order,
 * with no allocation at all; `visit` returning `true` stops the walk. A length that runs past the end, or
 * bytes left over that cannot hold a length, throw NAL_MALFORMED before `visit` sees that unit. Empty NAL
 * units (length 0) are skipped: some muxers pad with them and they carry nothing.
 */
export function walkNalUnits(
  data: Buffer,
  visit: (data: Buffer, start: number, end: number) => boolean | undefined,
  lengthSize = 4,
): void {
  checkLengthSize(lengthSize);
  let at = 0;
  while (at < data.length) {
    if (data.length - at < lengthSize) {
      nalMalformed(`${data.length - at} stray bytes at ${at} cannot hold a ${lengthSize}-byte NAL length`);
    }
    const length = readLength(data, at, lengthSize);
    const start = at + lengthSize;
    if (length > data.length - start) {
      nalMalformed(`NAL unit at ${at} declares ${length} bytes; ${data.length - start} are left`);
    }
    at = start + length;
    if (length > 0 && visit(data, start, at) === true) return;
  }
}

/** The NAL units of an AVCC/HVCC access unit as views into `data` (no bytes copied); see walkNalUnits. */
export function nalUnits(data: Buffer, lengthSize = 4): Buffer[] {
  const out: Buffer[] = [];
  walkNalUnits(
    data,
    (d, start, end) => {
      out.push(d.subarray(start, end));
      return undefined;
    },
    lengthSize,
  );
  return out;
}

/**
 * Whether an access unit holds an IDR picture (H.264 type 5) or an IRAP one (HEVC 16..21): what makes it a
 * sync sample, whatever the container's keyframe flag said. Throws NAL_MALFORMED on a bad length.
 */
export function isKeyframeAu(codec: VideoCodec, data: Buffer, lengthSize = 4): boolean {
  let found = false;
  walkNalUnits(
    data,
    (d, start) => {
      const type = nalType(codec, d[start]!);
      found = codec === 'h264' ? type === H264Nal.IDR : isHevcIrap(type);
      return found;
    },
    lengthSize,
  );
  return found;
}

/** An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1), parameter sets as views into the record. */
export interface AvcConfigRecord {
  /** AVCProfileIndication (profile_idc of the SPS). */
  profile: number;
  /** profile_compatibility (the SPS's constraint_set flags byte). */
  compatibility: number;
  /** AVCLevelIndication. */
  level: number;
  /** NAL length prefix size of the samples (1, 2 or 4; MP4 and FLV use 4). */
  lengthSize: number;
  sps: Buffer[];
  pps: Buffer[];
  /** From the first SPS (cropping applied); null when it cannot be read. */
  width: number | null;
  height: number | null;
}

/** RFC 6381 codec string of an avcC record ('avc1.64001f'): profile, compatibility and level as hex. */
export function avcCodecString(record: AvcConfigRecord, type: 'avc1' | 'avc3' = 'avc1'): string {
  const hex = (n: number): string => n.toString(16).padStart(2, '0');
  return `${type}.${hex(record.profile)}${hex(record.compatibility)}${hex(record.level)}`;
}

/**
 * Parses an avcC record. Throws AVC_CONFIG_MALFORMED for a version other than 1, a length size of 3, no SPS,
 * or any count or length that runs past the end. The high-profile extension after the PPS list is ignored
 * (and kept as it is when the record is written into an MP4).
 */
export function parseAvcConfig(record: Buffer): AvcConfigRecord {
  if (record.length < 7) configMalformed(`${record.length} bytes, 7 at least`);
  if (record[0] !== 1) configMalformed(`configurationVersion ${record[0]}, not 1`);
  const lengthSize = (record[4]! & 0x03) + 1;
  if (lengthSize === 3) configMalformed('NAL length size 3');
  let at = 6;
  const list = (count: number, what: string): Buffer[] => {
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      if (record.length - at < 2) configMalformed(`${what} ${i} length is truncated`);
      const length = record.readUInt16BE(at);
      at += 2;
      if (length === 0 || length > record.length - at) {
        configMalformed(`${what} ${i} declares ${length} bytes; ${record.length - at} are left`);
      }
      out.push(record.subarray(at, at + length));
      at += length;
    }
    return out;
  };
  const sps = list(record[5]! & 0x1f, 'SPS');
  if (sps.length === 0) configMalformed('no SPS');
  if (record.length - at < 1) configMalformed('PPS count is missing');
  const ppsCount = record[at++]!;
  const pps = list(ppsCount, 'PPS');
  const size = spsPictureSize(sps[0]!);
  return {
    profile: record[1]!,
    compatibility: record[2]!,
    level: record[3]!,
    lengthSize,
    sps,
    pps,
    width: size?.width ?? null,
    height: size?.height ?? null,
  };
}

/**
 * Builds an avcC record (4-byte NAL lengths) from SPS and PPS NAL units (header byte included, no start
 * code), for sources that carry parameter sets in-band (MPEG-TS, RTP). Profile, compatibility and level come
 * from the first SPS. The high-profile extension (chroma format, bit depths) is left out: decoders read
 * those from the SPS itself, and FFmpeg 5.1 writes records without it too.
 */
export function buildAvcConfig(sps: Buffer[], pps: Buffer[]): Buffer {
  if (sps.length === 0 || sps.length > 31) configMalformed(`${sps.length} SPS; 1 to 31 fit`);
  if (pps.length > 255) configMalformed(`${pps.length} PPS; at most 255 fit`);
  const first = sps[0]!;
  if (first.length < 4 || h264NalType(first[0]!) !== H264Nal.SPS) configMalformed('first SPS is not an SPS');
  let size = 7;
  for (const nal of [...sps, ...pps]) {
    if (nal.length === 0 || nal.length > 0xffff) configMalformed(`parameter set of ${nal.length} bytes`);
    size += 2 + nal.length;
  }
  const out = Buffer.allocUnsafe(size);
  out[0] = 1;
  out[1] = first[1]!;
  out[2] = first[2]!;
  out[3] = first[3]!;
  out[4] = 0xfc | 3; // reserved bits, lengthSizeMinusOne = 3
  out[5] = 0xe0 | sps.length; // reserved bits, numOfSequenceParameterSets
  let at = 6;
  const put = (nal: Buffer): void => {
    out.writeUInt16BE(nal.length, at);
    nal.copy(out, at + 2);
    at += 2 + nal.length;
  };
  for (const nal of sps) put(nal);
  out[at++] = pps.length;
  for (const nal of pps) put(nal);
  return out;
}

const START_CODE = Buffer.from([0, 0, 1]);

/**
 * The NAL units of an Annex B byte stream (each after a 00 00 01 or 00 00 00 01 start code) as views into
 * `data`. Bytes before the first start code are not a NAL unit and are dropped; trailing zero bytes of a
 * unit belong to the next start code (a NAL unit never ends in 00: rbsp_trailing_bits end in a 1 bit).
 */
export function annexBNalUnits(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = data.indexOf(START_CODE);
  while (start !== -1) {
    const from = start + 3;
    const next = data.indexOf(START_CODE, from);
    let end = next === -1 ? data.length : next;
    while (end > from && data[end - 1] === 0) end--;
    if (end > from) out.push(data.subarray(from, end));
    start = next;
  }
  return out;
}

/** Annex B to AVCC (4-byte big-endian lengths): one allocation, each NAL unit copied once. */
export function annexBToAvcc(data: Buffer): Buffer {
  const units = annexBNalUnits(data);
  let size = 0;
  for (const nal of units) size += 4 + nal.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const nal of units) {
    out.writeUInt32BE(nal.length, at);
    nal.copy(out, at + 4);
    at += 4 + nal.length;
  }
  return out;
}
