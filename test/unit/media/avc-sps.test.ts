/**
 * The picture size from an H.264 SPS (what ABR uses when onMetaData has no width/height): SPSs libx264
 * wrote (high and baseline profiles, a 1080p one with cropping), inside an FLV AVC sequence header, and
 * truncated or foreign input, which yields null; and the format (profile, chroma, bit depths) that decides
 * whether the stream is copied, from SPSs libx264 wrote for each pixel format.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  avcRecordFormat,
  avcSequenceHeaderSize,
  playerDecodable,
  spsFormat,
  spsPictureSize,
} from '../../../src/media/avc-sps.ts';

const CASES = [
  {
    name: 'high 540x960',
    hex: '6764001facd940881e7bf0110000030001000003003c0f183196',
    width: 540,
    height: 960,
  },
  {
    name: 'high 1920x1080 (cropped)',
    hex: '67640028acd940780227e5c044000003000400000300f03c60c658',
    width: 1920,
    height: 1080,
  },
  {
    name: 'high 854x480 (cropped)',
    hex: '6764001facd940d83de6f0110000030001000003003c0f183196',
    width: 854,
    height: 480,
  },
  {
    name: 'baseline 540x960',
    hex: '6742c01fd900881e7bf0110000030001000003003c0f183248',
    width: 540,
    height: 960,
  },
];

/** An FLV AVC sequence header tag body around one SPS (and one dummy PPS). */
function sequenceHeader(sps: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(sps.length);
  return Buffer.concat([
    Buffer.from([0x17, 0x00, 0, 0, 0]),
    Buffer.from([1, sps[1]!, sps[2]!, sps[3]!, 0xff, 0xe1]),
    len,
    sps,
    Buffer.from([1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]),
  ]);
}

describe('H.264 SPS picture size', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const sps = Buffer.from(c.hex, 'hex');
      assert.deepEqual(spsPictureSize(sps), { width: c.width, height: c.height });
      assert.deepEqual(avcSequenceHeaderSize(sequenceHeader(sps)), { width: c.width, height: c.height });
    });
  }

  it('yields null for truncated, foreign or empty input', () => {
    const sps = Buffer.from(CASES[0]!.hex, 'hex');
    for (let n = 0; n < 6; n++) assert.equal(spsPictureSize(sps.subarray(0, n)), null, `${n} bytes`);
    assert.equal(spsPictureSize(Buffer.from('68ebe3cb', 'hex')), null, 'a PPS');
    assert.equal(avcSequenceHeaderSize(Buffer.alloc(0)), null);
    assert.equal(avcSequenceHeaderSize(Buffer.from([0x27, 0x01, 0, 0, 0, 1, 2, 3])), null, 'a frame');
    const header = sequenceHeader(sps);
    for (let n = 0; n < 13 + sps.length; n++) {
      assert.equal(avcSequenceHeaderSize(header.subarray(0, n)), null, `${n} bytes of header`);
    }
  });
});

/** SPSs libx264 wrote (320x240, one frame) for each pixel format, and what players make of them. */
const FORMATS = [
  { name: 'High 8-bit 4:2:0', hex: CASES[0]!.hex, format: [100, 1, 8, 8], decodable: true },
  { name: 'Baseline 8-bit 4:2:0', hex: CASES[3]!.hex, format: [66, 1, 8, 8], decodable: true },
  {
    name: 'High 4:4:4 10-bit (yuv444p10le)',
    hex: '67f4000c90d9b28283f60220000003002000000303c1e28532c0',
    format: [244, 3, 10, 10],
    decodable: false,
  },
  {
    name: 'High 10 (yuv420p10le)',
    hex: '676e000ca6cd94141fb0110000030001000003001e0f142996',
    format: [110, 1, 10, 10],
    decodable: false,
  },
  {
    name: 'High 4:2:2 8-bit (yuv422p)',
    hex: '677a000cbcd94141fb0110000003001000000301e0f1429960',
    format: [122, 2, 8, 8],
    decodable: false,
  },
] as const;

describe('H.264 SPS format: what players decode', () => {
  for (const c of FORMATS) {
    it(`${c.name}: ${c.decodable ? 'copied' : 'transcoded'}`, () => {
      const sps = Buffer.from(c.hex, 'hex');
      const [profileIdc, chromaFormatIdc, bitDepthLuma, bitDepthChroma] = c.format;
      const expected = { profileIdc, chromaFormatIdc, bitDepthLuma, bitDepthChroma };
      assert.deepEqual(spsFormat(sps), expected);
      // The avcC inside the FLV sequence header (after its 5-byte tag prefix).
      assert.deepEqual(avcRecordFormat(sequenceHeader(sps).subarray(5)), expected);
      assert.equal(playerDecodable(expected), c.decodable);
    });
  }

  it('yields null for a truncated record', () => {
    const record = sequenceHeader(Buffer.from(FORMATS[2].hex, 'hex')).subarray(5);
    for (let n = 0; n < 12; n++) assert.equal(avcRecordFormat(record.subarray(0, n)), null, `${n} bytes`);
  });
});
