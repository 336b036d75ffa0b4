import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OggOpusReader } from '../../../src/media/ogg-opus.ts';
import { frameForRtp, hasReorderedFrames, nalTypes, parseAvcC } from '../../../src/webrtc/h264-frames.ts';

const SPS = Buffer.from([0x67, 0x64, 0x00, 0x1f, 0xac]);
const PPS = Buffer.from([0x68, 0xee, 0x3c]);
const AVCC = Buffer.concat([
  Buffer.from([1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0, SPS.length]),
  SPS,
  Buffer.from([1, 0, PPS.length]),
  PPS,
]);
const prefixed = (...nals: Buffer[]): Buffer =>
  Buffer.concat(nals.flatMap((n) => [Buffer.from([0, 0, 0, n.length]), n]));
const IDR = Buffer.from([0x65, 1, 2, 3]);
const SLICE = Buffer.from([0x41, 4, 5]);

describe('H.264 frames for RTP', () => {
  it('reads SPS, PPS and the profile out of an avcC', () => {
    const p = parseAvcC(AVCC);
    assert.deepEqual(p.sps, [SPS]);
    assert.deepEqual(p.pps, [PPS]);
    assert.equal(p.profileIdc, 100);
    assert.throws(() => parseAvcC(AVCC.subarray(0, 10)));
  });

  const cases: { name: string; data: Buffer; keyframe: boolean; types: number[] }[] = [
    {
      name: 'a keyframe without parameter sets gets them',
      data: prefixed(IDR),
      keyframe: true,
      types: [7, 8, 5],
    },
    {
      name: 'a keyframe with them stays as it is',
      data: prefixed(SPS, PPS, IDR),
      keyframe: true,
      types: [7, 8, 5],
    },
    { name: 'other frames stay as they are', data: prefixed(SLICE), keyframe: false, types: [1] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(nalTypes(frameForRtp(c.data, c.keyframe, parseAvcC(AVCC))), c.types);
    });
  }

  it('tells B-frames (reordered presentation) from a constant composition offset', () => {
    assert.equal(hasReorderedFrames([{ pts: 80 }, { pts: 120 }, { pts: 160 }]), false);
    assert.equal(hasReorderedFrames([{ pts: 80 }, { pts: 200 }, { pts: 120 }, { pts: 160 }]), true);
  });
});

describe('Ogg Opus reader', () => {
  const page = (packets: Buffer[]): Buffer => {
    const lacing: number[] = [];
    for (const p of packets) {
      let n = p.length;
      while (n >= 255) {
        lacing.push(255);
        n -= 255;
      }
      lacing.push(n);
    }
    const header = Buffer.alloc(27);
    header.write('OggS', 0, 'latin1');
    header[26] = lacing.length;
    return Buffer.concat([header, Buffer.from(lacing), ...packets]);
  };

  it('skips the two header packets and splits pages into packets, across chunk boundaries', () => {
    const big = Buffer.alloc(600, 7);
    const bytes = Buffer.concat([
      page([Buffer.from('OpusHead')]),
      page([Buffer.from('OpusTags')]),
      page([Buffer.from([1, 2, 3]), big]),
    ]);
    const reader = new OggOpusReader();
    const out: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 13) out.push(...reader.push(bytes.subarray(i, i + 13)));
    assert.deepEqual(out, [Buffer.from([1, 2, 3]), big]);
  });

  it('throws on lost sync', () => {
    assert.throws(() => new OggOpusReader().push(Buffer.alloc(40, 1)));
  });
});
