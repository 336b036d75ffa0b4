/**
 * The picture size from an H.264 SPS (what ABR uses when onMetaData has no width/height): SPSs libx264
 * wrote (high and baseline profiles, a 1080p one with cropping), inside an FLV AVC sequence header, and
 * truncated or foreign input, which yields null.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { avcSequenceHeaderSize, spsPictureSize } from '../../../src/media/avc-sps.ts';

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
