/**
 * The CMAF writer (src/media/cmaf-writer.ts), table-driven: init segments and fragments byte for byte on
 * small cases (hex checked by hand once, box by box, against ISO 14496-12), each also read back by
 * Fmp4Reader, which must report exactly the tracks and fragments the writer returned; the fragmenting
 * policy on short sequences; and the errors, by code.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccessUnit, AudioConfig, VideoConfig } from '../../../src/media/access-unit.ts';
import { CmafWriter, type CmafWriterOptions, cmafInit } from '../../../src/media/cmaf-writer.ts';
import { type Fmp4Fragment, type Fmp4Init, Fmp4Reader, type Fmp4Track } from '../../../src/media/fmp4.ts';
import { buildAvcConfig } from '../../../src/media/nal.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const SPS = hex('6764001facd940881e7bf0110000030001000003003c0f183196');
const PPS = hex('68ebe3cb22c0');
const H264: VideoConfig = {
  kind: 'video',
  codec: 'h264',
  record: buildAvcConfig([SPS], [PPS]),
  width: 540,
  height: 960,
};
/** Main profile, level 3.1, no parameter set arrays: enough for a sample entry and a codec string. */
const HVCC = hex('01 01 60000000 900000000000 5d f000 fc fd f8 f8 0000 0f 00');
const HEVC: VideoConfig = { kind: 'video', codec: 'hevc', record: HVCC, width: 854, height: 480 };
const AAC_44K_STEREO: AudioConfig = {
  kind: 'audio',
  codec: 'aac',
  config: hex('1210'),
  sampleRate: 44100,
  channels: 2,
  frameSamples: 1024,
};
const AAC_48K_MONO: AudioConfig = { ...AAC_44K_STEREO, config: hex('1188'), sampleRate: 48000, channels: 1 };
const OPUS_HEAD = Buffer.concat([Buffer.from('OpusHead'), hex('01 02 3801 80bb0000 0000 00')]);
const OPUS: AudioConfig = {
  kind: 'audio',
  codec: 'opus',
  config: OPUS_HEAD,
  sampleRate: 48000,
  channels: 2,
  frameSamples: 960,
};

/** Reads init + fragments back with Fmp4Reader, fed in pieces of 7 bytes (every box split). */
function readBack(init: Buffer, fragments: Buffer[] = []): { init: Fmp4Init; fragments: Fmp4Fragment[] } {
  const reader = new Fmp4Reader();
  let gotInit: Fmp4Init | null = null;
  const got: Fmp4Fragment[] = [];
  const all = Buffer.concat([init, ...fragments]);
  for (let at = 0; at < all.length; at += 7) {
    reader.push(all.subarray(at, at + 7), {
      init: (i) => {
        gotInit = i;
      },
      fragment: (f) => got.push(f),
    });
  }
  assert.ok(gotInit, 'the reader saw an init');
  return { init: gotInit, fragments: got };
}

// Box by box; the comments name each box and what its fields hold.
const FTYP = '0000001c 66747970 69736f36 00000000 69736f36 636d6663 6d703431'; // iso6, 0, [iso6 cmfc mp41]
const FTYP_MUXED = '00000018 66747970 69736f36 00000000 69736f36 6d703431'; // two tracks: not a CMAF track
const mvhd = (nextTrack: number) =>
  '0000006c 6d766864 00000000 00000000 00000000 000003e8 00000000 00010000 0100 0000 0000000000000000' +
  ' 00010000 00000000 00000000 00000000 00010000 00000000 00000000 00000000 40000000' + // unity matrix
  ` 000000000000000000000000000000000000000000000000 0000000${nextTrack}`;
const DINF = '00000024 64696e66 0000001c 64726566 00000000 00000001 0000000c 75726c20 00000001';
const EMPTY_TABLES =
  '00000010 73747473 00000000 00000000' + // stts
  ' 00000010 73747363 00000000 00000000' + // stsc
  ' 00000014 7374737a 00000000 00000000 00000000' + // stsz
  ' 00000010 7374636f 00000000 00000000'; // stco
const MATRIX = '00010000 00000000 00000000 00000000 00010000 00000000 00000000 00000000 40000000';
const h264Trak = (id: number) =>
  [
    '000001de 7472616b',
    `0000005c 746b6864 00000003 00000000 00000000 0000000${id} 00000000 00000000 0000000000000000`,
    `0000 0000 0000 0000 ${MATRIX} 021c0000 03c00000`, // tkhd: volume 0, 540x960 in 16.16
    '0000017a 6d646961',
    '00000020 6d646864 00000000 00000000 00000000 00015f90 00000000 55c4 0000', // mdhd: 90000, 'und'
    '0000002d 68646c72 00000000 00000000 76696465 000000000000000000000000 566964656f48616e646c657200',
    '00000125 6d696e66',
    '00000014 766d6864 00000001 0000 000000000000', // vmhd
    DINF,
    '000000e5 7374626c',
    '00000099 73747364 00000000 00000001',
    '00000089 61766331 000000000000 0001 00000000000000000000000000000000', // avc1
    '021c 03c0 00480000 00480000 00000000 0001', // 540x960, 72 dpi, one frame per sample
    `${'00'.repeat(32)} 0018 ffff`, // compressorname, depth, pre_defined -1
    '00000033 61766343 01 64 00 1f ff e1 001a', // avcC: profile 100, level 31, 4-byte lengths, 1 SPS
    '6764001facd940881e7bf0110000030001000003003c0f183196 01 0006 68ebe3cb22c0',
    EMPTY_TABLES,
  ].join(' ');
const aacTrak = (id: number, rate: string, channels: string, asc: string) =>
  [
    '0000019c 7472616b',
    `0000005c 746b6864 00000003 00000000 00000000 0000000${id} 00000000 00000000 0000000000000000`,
    `0000 0000 0100 0000 ${MATRIX} 00000000 00000000`, // tkhd: volume 1.0, no size
    '00000138 6d646961',
    `00000020 6d646864 00000000 00000000 00000000 0000${rate} 00000000 55c4 0000`, // mdhd: the sample rate
    '0000002d 68646c72 00000000 00000000 736f756e 000000000000000000000000 536f756e6448616e646c657200',
    '000000e3 6d696e66',
    '00000010 736d6864 00000000 00000000', // smhd
    DINF,
    '000000a7 7374626c',
    '0000005b 73747364 00000000 00000001',
    `0000004b 6d703461 000000000000 0001 0000000000000000 ${channels} 0010 00000000 ${rate}0000`,
    '00000027 65736473 00000000', // esds
    '03 19 0000 00', // ES_Descriptor, 25 bytes: ES_ID 0, no flags
    '04 11 40 15 000000 00000000 00000000', // DecoderConfigDescriptor: MPEG-4 audio, audio stream
    `05 02 ${asc}`, // DecoderSpecificInfo: the AudioSpecificConfig
    '06 01 02', // SLConfigDescriptor: predefined MP4
    EMPTY_TABLES,
  ].join(' ');
const trex = (id: number) => `00000020 74726578 00000000 0000000${id} 00000001 00000000 00000000 00000000`;

const INIT_CASES: { name: string; configs: CmafWriterOptions; hex: string; tracks: Fmp4Track[] }[] = [
  {
    name: 'H.264 + AAC',
    configs: { video: H264, audio: AAC_44K_STEREO },
    hex: [FTYP_MUXED, '00000436 6d6f6f76', mvhd(3), h264Trak(1), aacTrak(2, 'ac44', '0002', '1210')]
      .concat(['00000048 6d766578', trex(1), trex(2)])
      .join(' '),
    tracks: [
      { id: 1, kind: 'video', timescale: 90000, codec: 'avc1.64001f', width: 540, height: 960 },
      { id: 2, kind: 'audio', timescale: 44100, codec: 'mp4a.40.2', sampleRate: 44100, channels: 2 },
    ],
  },
  {
    name: 'AAC only: one track, id 1',
    configs: { video: null, audio: AAC_48K_MONO },
    hex: [
      FTYP,
      '00000238 6d6f6f76',
      mvhd(2),
      aacTrak(1, 'bb80', '0001', '1188'),
      '00000028 6d766578',
      trex(1),
    ].join(' '),
    tracks: [{ id: 1, kind: 'audio', timescale: 48000, codec: 'mp4a.40.2', sampleRate: 48000, channels: 1 }],
  },
  {
    name: 'H.264 only',
    configs: { video: H264, audio: null },
    hex: [FTYP, '0000027a 6d6f6f76', mvhd(2), h264Trak(1), '00000028 6d766578', trex(1)].join(' '),
    tracks: [{ id: 1, kind: 'video', timescale: 90000, codec: 'avc1.64001f', width: 540, height: 960 }],
  },
];

describe('cmaf: init segments byte for byte', () => {
  for (const c of INIT_CASES) {
    it(c.name, () => {
      const init = cmafInit(c.configs);
      assert.equal(init.data.toString('hex'), hex(c.hex).toString('hex'));
      assert.deepEqual(init.tracks, c.tracks);
      const back = readBack(init.data);
      assert.deepEqual(back.init, init);
      assert.deepEqual(new CmafWriter(c.configs).init, init);
    });
  }
});

describe('cmaf: init segments read back as the reader describes them', () => {
  const cases: { name: string; configs: CmafWriterOptions; tracks: Fmp4Track[] }[] = [
    {
      name: 'HEVC + Opus (OpusHead)',
      configs: { video: HEVC, audio: OPUS },
      tracks: [
        { id: 1, kind: 'video', timescale: 90000, codec: 'hvc1.1.6.L93.90', width: 854, height: 480 },
        { id: 2, kind: 'audio', timescale: 48000, codec: 'opus', sampleRate: 48000, channels: 2 },
      ],
    },
    {
      name: 'Opus from WebRTC (no OpusHead), mono',
      configs: { video: null, audio: { ...OPUS, config: Buffer.alloc(0), channels: 1 } },
      tracks: [{ id: 1, kind: 'audio', timescale: 48000, codec: 'opus', sampleRate: 48000, channels: 1 }],
    },
    {
      name: 'AAC at 96 kHz (past the 16.16 sample rate field)',
      configs: { video: null, audio: { ...AAC_44K_STEREO, config: hex('1010'), sampleRate: 96000 } },
      tracks: [
        { id: 1, kind: 'audio', timescale: 96000, codec: 'mp4a.40.2', sampleRate: 96000, channels: 2 },
      ],
    },
    {
      name: 'HE-AAC with explicit SBR (rate from the extension)',
      configs: {
        video: H264,
        audio: { ...AAC_44K_STEREO, config: hex('2b920800'), sampleRate: 44100, frameSamples: 2048 },
      },
      tracks: [
        { id: 1, kind: 'video', timescale: 90000, codec: 'avc1.64001f', width: 540, height: 960 },
        { id: 2, kind: 'audio', timescale: 44100, codec: 'mp4a.40.5', sampleRate: 44100, channels: 2 },
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const init = cmafInit(c.configs);
      assert.deepEqual(init.tracks, c.tracks);
      assert.deepEqual(readBack(init.data).init, init);
    });
  }
});

const v = (dts: number, pts: number, keyframe: boolean, data: string): AccessUnit => ({
  track: 'video',
  dts,
  pts,
  keyframe,
  data: hex(data),
});
const a = (dts: number, data: string): AccessUnit => ({
  track: 'audio',
  dts,
  pts: dts,
  keyframe: true,
  data: hex(data),
});

describe('cmaf: fragments byte for byte', () => {
  it('a keyframe and a P frame with composition offsets (B-frames follow), with their audio', () => {
    const w = new CmafWriter({ video: H264, audio: AAC_44K_STEREO });
    const input = [
      v(0, 80, true, '000000026588'),
      a(10, 'a1'),
      v(40, 160, false, '000000024101'),
      a(33, 'a2a2'),
      a(56, 'a3'),
      v(80, 120, false, '000000020101'), // the B frame: held until flush
    ];
    const fragments = input.flatMap((au) => w.push(au));
    const expected = [
      [
        '000000b0 6d6f6f66',
        '00000010 6d666864 00000000 00000001', // mfhd: sequence 1
        '00000050 74726166',
        '00000010 74666864 00020000 00000001', // tfhd: default-base-is-moof, track 1
        '00000014 74666474 01000000 0000000000000000', // tfdt v1: 0
        '00000024 7472756e 01000f01 00000001 000000b8', // trun v1, 1 sample, data at moof + 184
        '00000e10 00000006 02000000 00001c20', // 40 ms, 6 bytes, sync (depends on none), CTO 80 ms
        '00000048 74726166',
        '00000010 74666864 00020000 00000002', // track 2
        '00000014 74666474 01000000 00000000000001b9', // tfdt: 10 ms at 44.1 kHz = 441
        '0000001c 7472756e 00000301 00000001 000000be 00000400 00000001', // 1024 samples, 1 byte
        '0000000f 6d646174 000000026588 a1',
      ],
      [
        '000000b8 6d6f6f66',
        '00000010 6d666864 00000000 00000002',
        '00000050 74726166',
        '00000010 74666864 00020000 00000001',
        '00000014 74666474 01000000 0000000000000e10', // 3600 = 40 ms
        '00000024 7472756e 01000f01 00000001 000000c0',
        '00000e10 00000006 01010000 00002a30', // non-sync, CTO 120 ms
        '00000050 74726166',
        '00000010 74666864 00020000 00000002',
        '00000014 74666474 01000000 00000000000005b9', // 441 + 1024: the sample count, not 33 ms
        '00000024 7472756e 00000301 00000002 000000c6 00000400 00000002 00000400 00000001',
        '00000011 6d646174 000000024101 a2a2 a3',
      ],
    ];
    assert.deepEqual(
      fragments.map((f) => f.data.toString('hex')),
      expected.map((f) => hex(f.join('')).toString('hex')),
    );
    assert.deepEqual(
      fragments.map(({ data: _, ...rest }) => rest),
      [
        {
          sequence: 1,
          runs: [
            { trackId: 1, baseDecodeTime: 0, sampleCount: 1, duration: 3600, firstSampleIsSync: true },
            { trackId: 2, baseDecodeTime: 441, sampleCount: 1, duration: 1024, firstSampleIsSync: true },
          ],
          keyframe: true,
          startSeconds: 0,
          durationSeconds: 0.04,
        },
        {
          sequence: 2,
          runs: [
            { trackId: 1, baseDecodeTime: 3600, sampleCount: 1, duration: 3600, firstSampleIsSync: false },
            { trackId: 2, baseDecodeTime: 1465, sampleCount: 2, duration: 2048, firstSampleIsSync: true },
          ],
          keyframe: false,
          startSeconds: 0.04,
          durationSeconds: 0.04,
        },
      ],
    );
    const flushed = w.flush();
    assert.equal(flushed.length, 1);
    assert.equal(
      flushed[0]!.data.subarray(0x44, 0x44 + 36).toString('hex'),
      // The B frame: CTO 40 ms; it lasts the previous interval.
      hex('00000024 7472756e 01000f01 00000001 00000070 00000e10 00000006 01010000 00000e10').toString('hex'),
    );
    const back = readBack(
      w.init.data,
      [...fragments, ...flushed].map((f) => f.data),
    );
    assert.deepEqual(back.fragments, [...fragments, ...flushed]);
    assert.deepEqual(w.stats, {
      fragments: 3,
      samples: 6,
      bytes: fragments.reduce((n, f) => n + f.data.length, 0) + flushed[0]!.data.length,
      audioResyncs: 0,
      videoDtsRaised: 0,
      audioHoldOverflows: 0,
      audioPadded: 0,
    });
  });
});

/** What a fragment carries, short: 'V' + 'K' for a keyframe, then the audio sample count per run. */
function shape(f: Fmp4Fragment, init: Fmp4Init): string {
  return f.runs
    .map((r) => {
      const kind = init.tracks.find((t) => t.id === r.trackId)!.kind;
      return kind === 'video' ? (r.firstSampleIsSync ? 'K' : 'V') : `a${r.sampleCount}@${r.baseDecodeTime}`;
    })
    .join(' ');
}

describe('cmaf: fragmenting policy', () => {
  const cases: {
    name: string;
    options: CmafWriterOptions;
    /** Access units, each followed by the shapes of the fragments that push returned. */
    steps: [AccessUnit, string[]][];
    flush: string[];
    stats?: Partial<CmafWriter['stats']>;
  }[] = [
    {
      name: 'audio before the first frame goes with it; each frame closes the one before',
      options: { video: H264, audio: AAC_48K_MONO },
      steps: [
        [a(0, '01'), []],
        [a(21.33, '02'), []],
        [v(30, 30, true, '00000001 65'), []],
        [a(42.67, '03'), []],
        [v(100, 100, false, '00000001 41'), ['K a3@0']],
        [v(170, 170, false, '00000001 41'), ['V']],
        [a(64, '04'), []],
        [v(240, 240, true, '00000001 65'), ['V a1@3072']],
      ],
      flush: ['K'],
    },
    {
      name: 'audio at or after the next frame waits for the fragment after',
      options: { video: H264, audio: AAC_48K_MONO },
      steps: [
        [v(0, 0, true, '00000001 65'), []],
        [a(0, '01'), []],
        [a(21.33, '02'), []],
        [a(42.67, '03'), []],
        [v(40, 40, false, '00000001 41'), ['K a2@0']],
        [v(80, 80, false, '00000001 41'), ['V a1@2048']],
      ],
      flush: ['V'],
    },
    {
      name: 'audio-only: a fragment per audioFragmentMs',
      options: { video: null, audio: AAC_48K_MONO, audioFragmentMs: 60 },
      steps: [
        [a(0, '01'), []],
        [a(21.33, '02'), []],
        [a(42.67, '03'), ['a3@0']],
        [a(64, '04'), []],
        [a(85.33, '05'), []],
        [a(106.67, '06'), ['a3@3072']],
        [a(128, '07'), []],
      ],
      flush: ['a1@6144'],
    },
    {
      name: 'a gap in audio resyncs and starts a second audio traf in the same fragment',
      options: { video: H264, audio: AAC_48K_MONO },
      steps: [
        [v(0, 0, true, '00000001 65'), []],
        [a(0, '01'), []],
        [a(21.33, '02'), []],
        [a(500, '03'), []],
        [a(521.33, '04'), []],
        [v(600, 600, false, '00000001 41'), ['K a2@0 a2@24000']],
      ],
      flush: ['V'],
      stats: { audioResyncs: 1 },
    },
    {
      name: 'an overlap resyncs backwards; jitter within a frame does not',
      options: { video: null, audio: AAC_48K_MONO, audioFragmentMs: 1000 },
      steps: [
        [a(1000, '01'), []],
        [a(1030, '02'), []], // 9 ms late: within a frame, stays on the sample clock
        [a(1000, '03'), []], // 42 ms early: an overlap
        [a(1021.33, '04'), []],
      ],
      flush: ['a2@48000 a2@48000'],
      stats: { audioResyncs: 1 },
    },
    {
      name: 'a repeated or reversed video DTS is raised one tick past the previous',
      options: { video: H264, audio: null },
      steps: [
        [v(100, 100, true, '00000001 65'), []],
        [v(100, 100, false, '00000001 41'), ['K']],
        [v(50, 50, false, '00000001 41'), ['V']],
        [v(200, 200, false, '00000001 41'), ['V']],
      ],
      flush: ['V'],
      stats: { videoDtsRaised: 2 },
    },
    {
      name: 'audio held past maxAudioHoldMs while video stalls goes out alone',
      options: { video: H264, audio: AAC_48K_MONO, maxAudioHoldMs: 50 },
      steps: [
        [v(0, 0, true, '00000001 65'), []],
        [a(0, '01'), []],
        [a(21.33, '02'), []],
        [a(42.67, '03'), []],
        [a(64, '04'), ['a4@0']],
        [v(100, 100, false, '00000001 41'), ['K']],
      ],
      flush: ['V'],
      stats: { audioHoldOverflows: 1 },
    },
    {
      name: 'flush with nothing held emits nothing',
      options: { video: H264, audio: AAC_48K_MONO },
      steps: [],
      flush: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const w = new CmafWriter(c.options);
      const all: Fmp4Fragment[] = [];
      for (const [au, shapes] of c.steps) {
        const out = w.push(au);
        assert.deepEqual(
          out.map((f) => shape(f, w.init)),
          shapes,
          `after ${au.track} ${au.dts}`,
        );
        all.push(...out);
      }
      const flushed = w.flush();
      assert.deepEqual(
        flushed.map((f) => shape(f, w.init)),
        c.flush,
      );
      all.push(...flushed);
      assert.deepEqual(w.flush(), []);
      assert.deepEqual(
        all.map((f) => f.sequence),
        all.map((_, i) => i + 1),
      );
      assert.deepEqual(
        readBack(
          w.init.data,
          all.map((f) => f.data),
        ).fragments,
        all,
      );
      for (const [key, value] of Object.entries(c.stats ?? {})) {
        assert.equal(w.stats[key as keyof CmafWriter['stats']], value, key);
      }
    });
  }

  it('the last frame lasts 1/30 s when no interval is known', () => {
    const w = new CmafWriter({ video: H264, audio: null });
    w.push(v(0, 0, true, '00000001 65'));
    const [f] = w.flush();
    assert.equal(f!.runs[0]!.duration, 3000);
  });
});

describe('cmaf: a flush runs the audio on to the video end in silence', () => {
  const SILENCE = hex('00c8008023 80');
  /** Video at 0, 100, 200 ms (ends at 300 ms: 14,400 samples at 48 kHz); audio for its first `audioMs`. */
  const written = (audioMs: number) => {
    const w = new CmafWriter({ video: H264, audio: AAC_48K_MONO });
    const fragments: Fmp4Fragment[] = [];
    for (let i = 0; (i * 1024 * 1000) / 48000 < audioMs; i++)
      fragments.push(...w.push(a((i * 1024 * 1000) / 48000, '01')));
    for (const t of [0, 100, 200]) fragments.push(...w.push(v(t, t, t === 0, '00000001 65')));
    return { w, fragments };
  };
  const audioEnd = (fragments: Fmp4Fragment[]): number =>
    Math.max(
      ...fragments.flatMap((f) =>
        f.runs.filter((r) => r.trackId === 2).map((r) => r.baseDecodeTime + r.duration),
      ),
    );

  it("whole silent frames up to the last frame's end, never past it", () => {
    const { w, fragments } = written(150); // 8 frames: the audio ends at 8,192 samples (171 ms)
    const flushed = w.flush(SILENCE);
    assert.equal(w.stats.audioPadded, 6);
    assert.equal(audioEnd([...fragments, ...flushed]), 14_336); // 14,400 − 64: less than a frame short
    const last = readBack(
      w.init.data,
      flushed.map((f) => f.data),
    ).fragments.at(-1)!;
    const run = last.runs.find((r) => r.trackId === 2)!;
    assert.deepEqual([run.baseDecodeTime, run.sampleCount], [8192, 6]); // right after the publisher's audio
  });

  it('nothing without a silent frame, or when the audio stopped over MAX_PAD_MS before', () => {
    const plain = written(150);
    plain.w.flush();
    assert.equal(plain.w.stats.audioPadded, 0);
    const w = new CmafWriter({ video: H264, audio: AAC_48K_MONO });
    w.push(a(0, '01'));
    for (const t of [0, 1000, 2000]) w.push(v(t, t, t === 0, '00000001 65'));
    w.flush(SILENCE);
    assert.equal(w.stats.audioPadded, 0);
  });
});

describe('cmaf: errors by code', () => {
  const code = (c: string) => (err: unknown) => err instanceof RelayError && err.code === c;
  const configs: [string, CmafWriterOptions, string][] = [
    ['no track', { video: null, audio: null }, ErrorCodes.CMAF_CONFIG_INVALID],
    ['a bad avcC', { video: { ...H264, record: hex('0164') }, audio: null }, ErrorCodes.AVC_CONFIG_MALFORMED],
    [
      'a short hvcC',
      { video: { ...HEVC, record: hex('0101') }, audio: null },
      ErrorCodes.CMAF_CONFIG_INVALID,
    ],
    [
      'AAC without an ASC',
      { video: null, audio: { ...AAC_48K_MONO, config: Buffer.alloc(0) } },
      ErrorCodes.CMAF_CONFIG_INVALID,
    ],
    [
      'a truncated ASC',
      { video: null, audio: { ...AAC_48K_MONO, config: hex('f8') } },
      ErrorCodes.CMAF_CONFIG_INVALID,
    ],
    [
      'AAC at 0 Hz',
      { video: null, audio: { ...AAC_48K_MONO, sampleRate: 0 } },
      ErrorCodes.CMAF_CONFIG_INVALID,
    ],
    [
      '0 samples per frame',
      { video: null, audio: { ...AAC_48K_MONO, frameSamples: 0 } },
      ErrorCodes.CMAF_CONFIG_INVALID,
    ],
    [
      'a bad OpusHead',
      { video: null, audio: { ...OPUS, config: hex('00') } },
      ErrorCodes.CMAF_CONFIG_INVALID,
    ],
    [
      '6-channel Opus without a head',
      { video: null, audio: { ...OPUS, config: Buffer.alloc(0), channels: 6 } },
      ErrorCodes.CMAF_CONFIG_INVALID,
    ],
  ];
  for (const [name, options, expected] of configs) {
    it(`refuses ${name}`, () => {
      assert.throws(() => new CmafWriter(options), code(expected));
    });
  }

  it('refuses access units of a track it was not given, and timestamps that are not numbers', () => {
    const audioOnly = new CmafWriter({ video: null, audio: AAC_48K_MONO });
    assert.throws(() => audioOnly.push(v(0, 0, true, '00')), code(ErrorCodes.CMAF_INPUT_INVALID));
    const videoOnly = new CmafWriter({ video: H264, audio: null });
    assert.throws(() => videoOnly.push(a(0, '00')), code(ErrorCodes.CMAF_INPUT_INVALID));
    assert.throws(() => videoOnly.push(v(Number.NaN, 0, true, '00')), code(ErrorCodes.CMAF_INPUT_INVALID));
  });
});
