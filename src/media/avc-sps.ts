/**
 * What an H.264 stream declares in its sequence parameter set (ITU-T H.264 §7.3.2.1.1), read from an FLV
 * AVC sequence header or an avcC (AVCDecoderConfigurationRecord, ISO/IEC 14496-15 §5.2.4.1): the picture
 * size (for publishers whose onMetaData lacks width/height), and profile, chroma format and bit depths (the
 * stream copies only what every player decodes, see `playerDecodable`). Pure and total: anything short or malformed yields `null`, and every
 * read is bounds-checked.
 */

/** Reads bits MSB first from an RBSP (emulation prevention bytes already removed). */
class BitReader {
  #pos = 0;
  constructor(private readonly buf: Buffer) {}

  bit(): number {
    const byte = this.#pos >> 3;
    if (byte >= this.buf.length) throw new RangeError('past the end');
    const v = (this.buf[byte]! >> (7 - (this.#pos & 7))) & 1;
    this.#pos++;
    return v;
  }

  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }

  /** ue(v): Exp-Golomb, at most 31 leading zeros. */
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) {
      if (++zeros > 31) throw new RangeError('ue(v) too long');
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }

  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -(k / 2);
  }
}

/** Removes emulation prevention bytes (00 00 03 → 00 00). */
function toRbsp(nal: Buffer): Buffer {
  const out: number[] = [];
  let zeros = 0;
  for (const b of nal) {
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return Buffer.from(out);
}

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/** What decides whether players decode the stream: profile, chroma format and bit depths (§7.4.2.1.1). */
export interface SpsFormat {
  /** profile_idc: 66 Baseline, 77 Main, 100 High, 110 High 10, 122 High 4:2:2, 244 High 4:4:4, … */
  profileIdc: number;
  /** chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4 (1 when the profile cannot say otherwise). */
  chromaFormatIdc: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
}

/** Everything the relay reads from an SPS. */
export interface SpsInfo extends SpsFormat {
  width: number;
  height: number;
}

/** Width and height (cropping applied) from an SPS NAL unit, header byte included. */
export function spsPictureSize(nal: Buffer): { width: number; height: number } | null {
  const info = parseSps(nal);
  return info ? { width: info.width, height: info.height } : null;
}

/** Profile, chroma format and bit depths from an SPS NAL unit, header byte included. */
export function spsFormat(nal: Buffer): SpsFormat | null {
  const info = parseSps(nal);
  if (!info) return null;
  const { profileIdc, chromaFormatIdc, bitDepthLuma, bitDepthChroma } = info;
  return { profileIdc, chromaFormatIdc, bitDepthLuma, bitDepthChroma };
}

/**
 * Whether every player (Safari and iOS, hardware decoders, MSE in every browser) decodes it: 8-bit 4:2:0
 * Baseline, Main or High. High 10, 4:2:2 and 4:4:4 (what GStreamer's x264enc gives for 4:4:4 input without
 * caps, or FFmpeg for a yuv444p10le source) play in few of them.
 */
export function playerDecodable(f: SpsFormat): boolean {
  return (
    (f.profileIdc === 66 || f.profileIdc === 77 || f.profileIdc === 100) &&
    f.chromaFormatIdc === 1 &&
    f.bitDepthLuma === 8 &&
    f.bitDepthChroma === 8
  );
}

/** The first SPS of an AVCDecoderConfigurationRecord (avcC, ISO/IEC 14496-15 §5.3.3.1), or null. */
export function avcRecordFormat(record: Buffer): SpsFormat | null {
  if (record.length < 8 || record[0] !== 1 || (record[5]! & 0x1f) === 0) return null;
  const spsLength = record.readUInt16BE(6);
  if (8 + spsLength > record.length) return null;
  return spsFormat(record.subarray(8, 8 + spsLength));
}

function parseSps(nal: Buffer): SpsInfo | null {
  if (nal.length < 4 || (nal[0]! & 0x1f) !== 7) return null;
  try {
    const r = new BitReader(toRbsp(nal.subarray(1)));
    const profile = r.bits(8);
    r.bits(16); // constraint flags, level
    r.ue(); // seq_parameter_set_id
    let chroma = 1;
    let separateColourPlane = 0;
    let bitDepthLuma = 8;
    let bitDepthChroma = 8;
    if (HIGH_PROFILES.has(profile)) {
      chroma = r.ue();
      if (chroma > 3) return null;
      if (chroma === 3) separateColourPlane = r.bit();
      bitDepthLuma = r.ue() + 8;
      bitDepthChroma = r.ue() + 8;
      if (bitDepthLuma > 14 || bitDepthChroma > 14) return null;
      r.bit(); // qpprime_y_zero_transform_bypass_flag
      if (r.bit()) {
        for (let i = 0; i < (chroma === 3 ? 12 : 8); i++) if (r.bit()) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
    r.ue(); // log2_max_frame_num_minus4
    const pocType = r.ue();
    if (pocType === 0) r.ue();
    else if (pocType === 1) {
      r.bit();
      r.se();
      r.se();
      const cycle = r.ue();
      if (cycle > 255) return null;
      for (let i = 0; i < cycle; i++) r.se();
    }
    r.ue(); // max_num_ref_frames
    r.bit(); // gaps_in_frame_num_value_allowed_flag
    const widthMbs = r.ue() + 1;
    const heightMapUnits = r.ue() + 1;
    const frameMbsOnly = r.bit();
    if (!frameMbsOnly) r.bit(); // mb_adaptive_frame_field_flag
    r.bit(); // direct_8x8_inference_flag
    let crop = [0, 0, 0, 0];
    if (r.bit()) crop = [r.ue(), r.ue(), r.ue(), r.ue()];
    const monochrome = chroma === 0 || separateColourPlane === 1;
    const cropX = monochrome ? 1 : chroma === 3 ? 1 : 2;
    const cropY = (monochrome ? 1 : chroma === 1 ? 2 : 1) * (2 - frameMbsOnly);
    const width = widthMbs * 16 - (crop[0]! + crop[1]!) * cropX;
    const height = (2 - frameMbsOnly) * heightMapUnits * 16 - (crop[2]! + crop[3]!) * cropY;
    if (width <= 0 || height <= 0 || width > 16384 || height > 16384) return null;
    return { profileIdc: profile, chromaFormatIdc: chroma, bitDepthLuma, bitDepthChroma, width, height };
  } catch {
    // A truncated SPS: the reader ran past the end (a RangeError), so the size is unknown.
    return null;
  }
}

/**
 * The picture size from an FLV video tag holding a legacy AVC sequence header (codec 7, packet type 0):
 * the first SPS of its decoder configuration record.
 */
export function avcSequenceHeaderSize(tagData: Buffer): { width: number; height: number } | null {
  if (tagData.length < 5 + 8 || (tagData[0]! & 0x0f) !== 7 || tagData[1] !== 0) return null;
  const record = tagData.subarray(5);
  if (record[0] !== 1 || (record[5]! & 0x1f) === 0) return null;
  const spsLength = record.readUInt16BE(6);
  if (8 + spsLength > record.length) return null;
  return spsPictureSize(record.subarray(8, 8 + spsLength));
}
