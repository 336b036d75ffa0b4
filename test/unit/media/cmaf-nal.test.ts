/**
 * NAL units (src/media/nal.ts): AVCC walking with truncation caught by code, keyframes from NAL types for
 * H.264 and HEVC, the avcC record read and built from one table, Annex B to AVCC.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  annexBNalUnits,
  annexBToAvcc,
  avcCodecString,
  buildAvcConfig,
  isKeyframeAu,
  nalUnits,
  parseAvcConfig,
} from '../../../src/media/nal.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';
import { prng } from '../../helpers/rtmp-bytes.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Length-prefixes NAL units (4-byte lengths) into one AVCC access unit. */
function avcc(...units: Buffer[]): Buffer {
  return Buffer.concat(
    units.flatMap((u) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(u.length);
      return [len, u];
    }),
  );
}

const SPS_540 = hex('6764001facd940881e7bf0110000030001000003003c0f183196');
const SPS_BASELINE = hex('6742c01fd900881e7bf0110000030001000003003c0f183248');
const PPS = hex('68ebe3cb22c0');
const code = (c: string) => (err: unknown) => err instanceof RelayError && err.code === c;

describe('nal: AVCC access units', () => {
  const cases: { name: string; data: Buffer; units?: string[]; error?: boolean }[] = [
    { name: 'empty', data: Buffer.alloc(0), units: [] },
    { name: 'one unit', data: avcc(hex('6588aa')), units: ['6588aa'] },
    {
      name: 'three units',
      data: avcc(hex('09f0'), SPS_540, hex('65')),
      units: ['09f0', SPS_540.toString('hex'), '65'],
    },
    { name: 'zero-length unit skipped', data: hex('00000000 00000001 41'), units: ['41'] },
    { name: 'length past the end', data: hex('00000005 658800'), error: true },
    { name: 'huge length', data: hex('ffffffff 65'), error: true },
    { name: 'stray bytes after a unit', data: hex('00000001 41 0000'), error: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      if (c.error) {
        assert.throws(() => nalUnits(c.data), code(ErrorCodes.NAL_MALFORMED));
        assert.throws(() => isKeyframeAu('h264', c.data), code(ErrorCodes.NAL_MALFORMED));
        return;
      }
      const units = nalUnits(c.data);
      assert.deepEqual(
        units.map((u) => u.toString('hex')),
        c.units,
      );
      // Views, not copies.
      for (const u of units) assert.equal(u.buffer, c.data.buffer);
    });
  }

  it('reads 2-byte lengths too', () => {
    assert.deepEqual(
      nalUnits(hex('0002 6588 0001 41'), 2).map((u) => u.toString('hex')),
      ['6588', '41'],
    );
  });

  it('never over-reads on random bytes: parses or throws NAL_MALFORMED', () => {
    const random = prng(14);
    for (let i = 0; i < 2000; i++) {
      const data = Buffer.alloc(Math.floor(random() * 40));
      for (let j = 0; j < data.length; j++) data[j] = random() < 0.6 ? 0 : Math.floor(random() * 256);
      try {
        for (const u of nalUnits(data)) assert.ok(u.byteOffset + u.length <= data.byteOffset + data.length);
      } catch (err) {
        assert.ok(code(ErrorCodes.NAL_MALFORMED)(err), String(err));
      }
    }
  });
});

describe('nal: keyframes from NAL types', () => {
  const cases: { name: string; codec: 'h264' | 'hevc'; data: Buffer; keyframe: boolean }[] = [
    {
      name: 'h264 AUD+SPS+PPS+IDR',
      codec: 'h264',
      data: avcc(hex('09f0'), SPS_540, PPS, hex('6588')),
      keyframe: true,
    },
    { name: 'h264 SEI+IDR', codec: 'h264', data: avcc(hex('0605'), hex('2588')), keyframe: true },
    { name: 'h264 non-IDR', codec: 'h264', data: avcc(hex('09f0'), hex('419a')), keyframe: false },
    { name: 'h264 SPS+PPS alone', codec: 'h264', data: avcc(SPS_540, PPS), keyframe: false },
    { name: 'hevc IDR_W_RADL', codec: 'hevc', data: avcc(hex('4001'), hex('2601af')), keyframe: true },
    { name: 'hevc CRA', codec: 'hevc', data: avcc(hex('2a01af')), keyframe: true },
    { name: 'hevc BLA_W_LP', codec: 'hevc', data: avcc(hex('2001af')), keyframe: true },
    { name: 'hevc TRAIL_R', codec: 'hevc', data: avcc(hex('0201af')), keyframe: false },
    { name: 'hevc reserved IRAP 22', codec: 'hevc', data: avcc(hex('2c01af')), keyframe: false },
    {
      name: 'hevc VPS/SPS/PPS alone',
      codec: 'hevc',
      data: avcc(hex('4001'), hex('4201'), hex('4401')),
      keyframe: false,
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(isKeyframeAu(c.codec, c.data), c.keyframe));
  }
});

describe('nal: avcC records (one table for parse and build)', () => {
  const cases = [
    {
      name: 'high 540x960, one SPS one PPS',
      sps: [SPS_540],
      pps: [PPS],
      record: '0164001fffe1001a6764001facd940881e7bf0110000030001000003003c0f183196' + '01000668ebe3cb22c0',
      codec: 'avc1.64001f',
      width: 540,
      height: 960,
    },
    {
      name: 'baseline 540x960, two PPS',
      sps: [SPS_BASELINE],
      pps: [PPS, hex('68ce3c80')],
      record:
        '0142c01fffe100196742c01fd900881e7bf0110000030001000003003c0f183248' +
        '02000668ebe3cb22c0000468ce3c80',
      codec: 'avc1.42c01f',
      width: 540,
      height: 960,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const built = buildAvcConfig(c.sps, c.pps);
      assert.equal(built.toString('hex'), c.record);
      const parsed = parseAvcConfig(built);
      assert.equal(parsed.lengthSize, 4);
      assert.deepEqual(parsed.sps, c.sps);
      assert.deepEqual(parsed.pps, c.pps);
      assert.equal(avcCodecString(parsed), c.codec);
      assert.equal(parsed.width, c.width);
      assert.equal(parsed.height, c.height);
    });
  }

  it('keeps the high-profile extension out of the lists', () => {
    const parsed = parseAvcConfig(Buffer.concat([hex(cases[0]!.record), hex('fdf8f800')]));
    assert.equal(parsed.pps.length, 1);
  });

  const bad: [string, Buffer][] = [
    ['too short', hex('0164001f')],
    ['version 0', hex('0064001fffe1000167 00')],
    ['length size 3', hex('0164001ffee1000167 00')],
    ['no SPS', hex('0164001fffe0 00')],
    ['SPS past the end', hex('0164001fffe1001a6764')],
    ['PPS count missing', hex('0164001fffe1000467640000')],
    ['PPS past the end', hex('0164001fffe10004676400000100ff68')],
  ];
  for (const [name, record] of bad) {
    it(`refuses: ${name}`, () => {
      assert.throws(() => parseAvcConfig(record), code(ErrorCodes.AVC_CONFIG_MALFORMED));
    });
  }

  it('refuses to build without an SPS', () => {
    assert.throws(() => buildAvcConfig([], [PPS]), code(ErrorCodes.AVC_CONFIG_MALFORMED));
    assert.throws(() => buildAvcConfig([PPS], [PPS]), code(ErrorCodes.AVC_CONFIG_MALFORMED));
  });
});

describe('nal: Annex B to AVCC', () => {
  const cases: { name: string; annexB: string; units: string[] }[] = [
    { name: 'empty', annexB: '', units: [] },
    { name: 'no start code', annexB: '6588aa', units: [] },
    { name: '4-byte start codes', annexB: '00000001 09f0 00000001 6588aa', units: ['09f0', '6588aa'] },
    { name: '3-byte start codes', annexB: '000001 09f0 000001 6588aa', units: ['09f0', '6588aa'] },
    {
      name: 'mixed, leading garbage',
      annexB: 'ff 000001 09f0 00000001 68ee 000001 65',
      units: ['09f0', '68ee', '65'],
    },
    { name: 'trailing zeros dropped', annexB: '00000001 6588 0000 000001 41 00', units: ['6588', '41'] },
    { name: 'empty unit between start codes', annexB: '000001 000001 41', units: ['41'] },
    { name: 'emulation prevention kept', annexB: '000001 65 000003 01', units: ['6500000301'] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const data = hex(c.annexB);
      assert.deepEqual(
        annexBNalUnits(data).map((u) => u.toString('hex')),
        c.units,
      );
      const converted = annexBToAvcc(data);
      assert.deepEqual(converted, avcc(...c.units.map(hex)));
    });
  }
});
