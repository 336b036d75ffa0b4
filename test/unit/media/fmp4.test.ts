import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { before, describe, it } from 'node:test';
import {
  type Fmp4Fragment,
  type Fmp4Init,
  Fmp4Reader,
  type Fmp4Track,
  type Fmp4TrackRun,
  isSyncSample,
} from '../../../src/media/fmp4.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';
import { prng } from '../../helpers/rtmp-bytes.ts';

// ---- Real fixtures: FFmpeg writing fragmented MP4 to a pipe, as the relay runs it ----

/** Runs ffmpeg (argv array, no shell) and returns its stdout; `input` is written to its stdin. */
function ffmpeg(args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', ['-v', 'error', ...(input ? [] : ['-nostdin']), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`ffmpeg exited with ${code}: ${stderr}`));
    });
    child.stdin.on('error', () => {}); // an early exit is reported by 'close'
    child.stdin.end(input);
  });
}

const FRAGMENTED = [
  '-f',
  'mp4',
  '-movflags',
  '+frag_keyframe+empty_moov+default_base_moof',
  '-frag_duration',
  '500000',
  'pipe:1',
];
const lavfi = (graph: string): string[] => ['-f', 'lavfi', '-i', graph];

interface Variant {
  name: string;
  make(): Promise<Buffer>;
  /** Exactly what the init must report. Video timescales are FFmpeg's choice (a frame-rate multiple). */
  tracks: Fmp4Track[];
  video?: { fps: number; frames: number; gop: number };
  audioSeconds: number;
}

const variants: Variant[] = [
  {
    name: 'H.264 + AAC, 540x960 at 14 fps, GOP 14',
    make: () =>
      ffmpeg([
        ...lavfi('testsrc2=size=540x960:rate=14'),
        ...lavfi('sine=sample_rate=44100'),
        ...['-t', '4', '-c:v', 'libx264', '-profile:v', 'baseline', '-level', '3.1'],
        ...['-g', '14', '-sc_threshold', '0', '-c:a', 'aac', '-ac', '1'],
        ...FRAGMENTED,
      ]),
    tracks: [
      { id: 1, kind: 'video', timescale: 14336, codec: 'avc1.42c01f', width: 540, height: 960 },
      { id: 2, kind: 'audio', timescale: 44100, codec: 'mp4a.40.2', sampleRate: 44100, channels: 1 },
    ],
    video: { fps: 14, frames: 56, gop: 14 },
    audioSeconds: 4,
  },
  {
    name: 'AAC only, 48 kHz stereo',
    make: () =>
      ffmpeg([...lavfi('sine=sample_rate=48000'), '-t', '4', '-c:a', 'aac', '-ac', '2', ...FRAGMENTED]),
    tracks: [{ id: 1, kind: 'audio', timescale: 48000, codec: 'mp4a.40.2', sampleRate: 48000, channels: 2 }],
    audioSeconds: 4,
  },
  {
    name: 'FLV remuxed with -c copy (H.264 main with B-frames + AAC)',
    make: async () => {
      const flv = await ffmpeg([
        ...lavfi('testsrc2=size=320x240:rate=25'),
        ...lavfi('sine=sample_rate=48000'),
        ...['-t', '4', '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'main', '-level', '3.0'],
        ...['-bf', '2', '-g', '50', '-sc_threshold', '0', '-c:a', 'aac', '-ac', '2', '-f', 'flv', 'pipe:1'],
      ]);
      return ffmpeg(['-f', 'flv', '-i', 'pipe:0', '-c', 'copy', ...FRAGMENTED], flv);
    },
    tracks: [
      { id: 1, kind: 'video', timescale: 16000, codec: 'avc1.4d401e', width: 320, height: 240 },
      { id: 2, kind: 'audio', timescale: 48000, codec: 'mp4a.40.2', sampleRate: 48000, channels: 2 },
    ],
    video: { fps: 25, frames: 100, gop: 50 },
    audioSeconds: 4,
  },
  {
    name: 'HEVC + Opus, 25 fps, GOP 25',
    make: () =>
      ffmpeg([
        ...lavfi('testsrc2=size=320x240:rate=25'),
        ...lavfi('sine=sample_rate=48000'),
        ...['-t', '2', '-c:v', 'libx265', '-preset', 'ultrafast'],
        ...['-x265-params', 'log-level=error:keyint=25:min-keyint=25:scenecut=0:open-gop=0'],
        ...['-c:a', 'libopus'],
        ...FRAGMENTED,
      ]),
    tracks: [
      { id: 1, kind: 'video', timescale: 12800, codec: 'hev1.1.6.L60.90', width: 320, height: 240 },
      { id: 2, kind: 'audio', timescale: 48000, codec: 'opus', sampleRate: 48000, channels: 1 },
    ],
    video: { fps: 25, frames: 50, gop: 25 },
    audioSeconds: 2,
  },
];

const fixtures = new Map<string, Buffer>();
const fixture = (v: Variant): Buffer => fixtures.get(v.name)!;

// ---- Helpers ----

/** Top-level boxes, read independently of the code under test (FFmpeg writes 32-bit sizes here). */
function topLevel(bytes: Buffer): { type: string; start: number; size: number }[] {
  const out: { type: string; start: number; size: number }[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = bytes.readUInt32BE(at);
    assert.ok(size >= 8 && at + size <= bytes.length, `fixture box at ${at}`);
    out.push({ type: bytes.toString('latin1', at + 4, at + 8), start: at, size });
    at += size;
  }
  return out;
}

/** Pieces of 1 byte to 64 KiB, sizes spread evenly on a log scale so that small pieces are common. */
function randomPieces(bytes: Buffer, seed: number): Buffer[] {
  const random = prng(seed);
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = Math.floor(2 ** (random() * 16)); // 1 .. 65535
    pieces.push(bytes.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

/** Made lazily: an array of a million 1-byte views costs more than reading them. */
function* onePieces(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at++) yield bytes.subarray(at, at + 1);
}

interface Read {
  reader: Fmp4Reader;
  inits: Fmp4Init[];
  fragments: Fmp4Fragment[];
  events: string[];
}

function readAll(pieces: Iterable<Buffer>, reader = new Fmp4Reader()): Read {
  const read: Read = { reader, inits: [], fragments: [], events: [] };
  const on = {
    init: (init: Fmp4Init) => {
      read.inits.push(init);
      read.events.push('init');
    },
    fragment: (fragment: Fmp4Fragment) => {
      read.fragments.push(fragment);
      read.events.push('fragment');
    },
  };
  for (const piece of pieces) reader.push(piece, on);
  return read;
}

const ignore = { init() {}, fragment() {} };

function isMalformed(err: unknown): boolean {
  return err instanceof RelayError && err.code === ErrorCodes.FMP4_MALFORMED;
}

/** Pushes each piece; returns the error thrown (which must be FMP4_MALFORMED) or null. */
function pushAll(reader: Fmp4Reader, pieces: Iterable<Buffer>): RelayError | null {
  try {
    for (const piece of pieces) reader.push(piece, ignore);
    return null;
  } catch (err) {
    if (!isMalformed(err)) throw err;
    return err as RelayError;
  }
}

// Box builders for hand-made streams.
const u8 = (n: number): Buffer => Buffer.of(n);
const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const i32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const u64 = (n: number): Buffer => Buffer.concat([u32(Math.floor(n / 2 ** 32)), u32(n % 2 ** 32)]);
const zeros = (n: number): Buffer => Buffer.alloc(n);
const text = (s: string): Buffer => Buffer.from(s, 'latin1');
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function box(type: string, ...body: Buffer[]): Buffer {
  const payload = Buffer.concat(body);
  return Buffer.concat([u32(8 + payload.length), text(type), payload]);
}
const full = (type: string, version: number, flags: number, ...body: Buffer[]): Buffer =>
  box(type, u8(version), u32(flags).subarray(1), ...body);
/** A header alone: what a push carries when a box must be refused before its body arrives. */
const header = (size: number, type: string): Buffer => Buffer.concat([u32(size), text(type)]);
const largeHeader = (size: number, type: string): Buffer => Buffer.concat([u32(1), text(type), u64(size)]);

const FTYP = box('ftyp', text('isom'), u32(512), text('isomiso6mp41'));

function trak(
  id: number,
  handler: string,
  timescale: number,
  entry: Buffer,
  opts: { mdhdVersion?: number } = {},
): Buffer {
  const mdhd =
    opts.mdhdVersion === 1
      ? full('mdhd', 1, 0, u64(0), u64(0), u32(timescale), u64(0), zeros(4))
      : full('mdhd', 0, 0, u32(0), u32(0), u32(timescale), u32(0), zeros(4));
  return box(
    'trak',
    full('tkhd', 0, 3, u32(0), u32(0), u32(id), zeros(68)),
    box(
      'mdia',
      mdhd,
      full('hdlr', 0, 0, u32(0), text(handler), zeros(12), text('x\0')),
      box('minf', box('dinf'), box('stbl', full('stsd', 0, 0, u32(1), entry))),
    ),
  );
}
const trex = (id: number, duration = 0, size = 0, flags = 0): Buffer =>
  full('trex', 0, 0, u32(id), u32(1), u32(duration), u32(size), u32(flags));
const initOf = (traks: Buffer[], trexes: Buffer[]): Buffer =>
  Buffer.concat([FTYP, box('moov', full('mvhd', 0, 0, zeros(96)), ...traks, box('mvex', ...trexes))]);

const visual = (type: string, w: number, h: number, ...children: Buffer[]): Buffer =>
  box(type, zeros(6), u16(1), zeros(16), u16(w), u16(h), zeros(50), ...children);
const audio = (type: string, channels: number, rate: number, ...children: Buffer[]): Buffer =>
  box(type, zeros(6), u16(1), zeros(8), u16(channels), u16(16), zeros(4), u32(rate * 65536), ...children);
/** QuickTime sound description v2: the rate as a float64 and the channels as u32 after the v0 fields. */
function audioV2(type: string, channels: number, rate: number): Buffer {
  const rateBytes = Buffer.alloc(8);
  rateBytes.writeDoubleBE(rate);
  return box(
    type,
    zeros(6),
    u16(1),
    u16(2),
    zeros(6),
    u16(3),
    u16(16),
    zeros(4),
    u32(65536),
    u32(72),
    rateBytes,
    u32(channels),
    zeros(20),
  );
}
/** esds with FFmpeg's 4-byte descriptor sizes. */
function esds(oti: number, asc?: Buffer): Buffer {
  const size = (n: number): Buffer => Buffer.of(0x80, 0x80, 0x80, n);
  const dsi = asc ? Buffer.concat([u8(5), size(asc.length), asc]) : Buffer.alloc(0);
  const dcd = Buffer.concat([u8(4), size(13 + dsi.length), u8(oti), u8(0x15), zeros(3), u32(0), u32(0), dsi]);
  const sl = Buffer.of(6, 0x80, 0x80, 0x80, 1, 2);
  return full('esds', 0, 0, u8(3), size(3 + dcd.length + sl.length), u16(1), u8(0), dcd, sl);
}

// Fragments of a hand-made stream: video track 1 (90 kHz, trex: 3000 ticks, 10 bytes, non-sync),
// audio track 2 (48 kHz, trex: 1024 ticks, 4 bytes, sync).
const SYNTH_INIT = initOf(
  [
    trak(1, 'vide', 90000, visual('avc1', 64, 48, box('avcC', hex('01 42c01f ff e1')))),
    trak(2, 'soun', 48000, audio('mp4a', 2, 48000, esds(0x40, hex('1190'))), { mdhdVersion: 1 }),
  ],
  [trex(1, 3000, 10, 0x01010000), trex(2, 1024, 4, 0x02000000)],
);

const SYNC = 0x02000000;
const NON_SYNC = 0x01010000;
const tfhd = (track: number, flags: number, ...fields: Buffer[]): Buffer =>
  full('tfhd', 0, flags, u32(track), ...fields);
const tfdt = (time: number): Buffer => full('tfdt', 1, 0, u64(time));
const tfdt0 = (time: number): Buffer => full('tfdt', 0, 0, u32(time));
const trun = (flags: number, count: number, ...fields: Buffer[]): Buffer =>
  full('trun', 1, flags, u32(count), ...fields);
const traf = (...children: Buffer[]): Buffer => box('traf', ...children);

interface FragmentSpec {
  /** The trafs; data offsets depend on where the moof starts and how long it is. */
  trafs(at: { moofStart: number; moofSize: number }): Buffer[];
  mdat: number;
}

/** A moof+mdat pair at stream position `moofStart`; the moof is built twice to learn its size. */
function fragmentBytes(spec: FragmentSpec, moofStart: number, sequence: number): Buffer {
  const moof = (moofSize: number): Buffer =>
    box('moof', full('mfhd', 0, 0, u32(sequence)), ...spec.trafs({ moofStart, moofSize }));
  const size = moof(0).length;
  return Buffer.concat([moof(size), box('mdat', zeros(spec.mdat))]);
}

function synthStream(specs: FragmentSpec[], init = SYNTH_INIT): Buffer {
  const parts = [init];
  let at = init.length;
  specs.forEach((spec, i) => {
    const bytes = fragmentBytes(spec, at, i + 1);
    parts.push(bytes);
    at += bytes.length;
  });
  return Buffer.concat(parts);
}

/** default-base-is-moof data offset to the first mdat payload byte. */
const toMdat = (at: { moofSize: number }): Buffer => i32(at.moofSize + 8);

// ---- Tests ----

describe('Fmp4Reader', () => {
  before(async () => {
    const made = await Promise.all(variants.map((v) => v.make()));
    for (const [i, v] of variants.entries()) fixtures.set(v.name, made[i]!);
  });

  const piecings: { name: string; split(bytes: Buffer): Iterable<Buffer> }[] = [
    { name: 'one push', split: (b) => [b] },
    { name: '1-byte pushes', split: onePieces },
    { name: 'random pushes (seed 1)', split: (b) => randomPieces(b, 1) },
    { name: 'random pushes (seed 2)', split: (b) => randomPieces(b, 2) },
    { name: 'random pushes (seed 3)', split: (b) => randomPieces(b, 3) },
  ];

  for (const variant of variants) {
    describe(`FFmpeg: ${variant.name}`, () => {
      for (const piecing of piecings) {
        it(`reads it in ${piecing.name}`, () => {
          const bytes = fixture(variant);
          const boxes = topLevel(bytes);
          const types = boxes.map((b) => b.type).join(' ');
          assert.match(types, /^ftyp moov (moof mdat )+mfra$/);
          const initSize = boxes[0]!.size + boxes[1]!.size;
          const mfra = boxes.at(-1)!;

          const { reader, inits, fragments, events } = readAll(piecing.split(bytes));

          // One init, first, with the right tracks; the bytes are ftyp+moov exactly.
          assert.deepEqual(events.slice(0, 1), ['init']);
          assert.equal(inits.length, 1);
          const init = inits[0]!;
          assert.equal(reader.init, init);
          assert.equal(init.data.length, initSize);
          assert.deepEqual(init.tracks, variant.tracks);

          // Init + fragments give back every byte but the trailing mfra, which is skipped, not kept.
          assert.ok(
            Buffer.concat([init.data, ...fragments.map((f) => f.data)]).equals(bytes.subarray(0, mfra.start)),
          );
          assert.deepEqual(
            fragments.map((f) => f.data.length),
            boxes.slice(2, -1).flatMap((b, i, all) => (i % 2 === 0 ? [b.size + all[i + 1]!.size] : [])),
          );
          assert.deepEqual(
            fragments.map((f) => f.sequence),
            fragments.map((_, i) => i + 1),
          );
          assert.equal(reader.bufferedBytes, 0);

          const timescale = new Map(variant.tracks.map((t) => [t.id, t.timescale]));
          const audioTrack = variant.tracks.find((t) => t.kind === 'audio')!;
          const videoTrack = variant.tracks.find((t) => t.kind === 'video');
          const next = new Map<number, number>();
          let audioTicks = 0;
          let frames = 0;
          let videoTicks = 0;
          const starts: number[] = [];
          for (const f of fragments) {
            assert.ok(f.runs.length >= 1 && f.runs.length <= variant.tracks.length);
            for (const run of f.runs) {
              // tfdt continues exactly where the previous fragment of the track ended.
              assert.equal(run.baseDecodeTime, next.get(run.trackId) ?? 0, `track ${run.trackId} continuity`);
              next.set(run.trackId, run.baseDecodeTime + run.duration);
              assert.ok(run.sampleCount > 0);
            }
            const audioRun = f.runs.find((r) => r.trackId === audioTrack.id);
            if (audioRun) {
              assert.ok(audioRun.firstSampleIsSync, 'audio samples are all sync');
              audioTicks += audioRun.duration;
            }
            const videoRun = videoTrack && f.runs.find((r) => r.trackId === videoTrack.id);
            const main = videoRun ?? f.runs[0]!;
            assert.equal(f.startSeconds, main.baseDecodeTime / timescale.get(main.trackId)!);
            if (videoRun) {
              assert.equal(f.durationSeconds, videoRun.duration / videoTrack.timescale);
              // The frame that starts this fragment opens a GOP exactly when it is a keyframe.
              assert.equal(f.keyframe, videoRun.firstSampleIsSync);
              assert.equal(
                f.keyframe,
                frames % variant.video!.gop === 0,
                `fragment starting at frame ${frames}`,
              );
              starts.push(frames);
              frames += videoRun.sampleCount;
              videoTicks += videoRun.duration;
            } else if (videoTrack) {
              // FFmpeg flushes the audio left after the last frame alone: no segment may start there.
              assert.equal(f, fragments.at(-1));
              assert.equal(f.keyframe, false);
              assert.equal(f.durationSeconds, audioRun!.duration / audioTrack.timescale);
            } else {
              assert.equal(f.keyframe, true);
              assert.equal(f.durationSeconds, audioRun!.duration / audioTrack.timescale);
            }
          }
          assert.ok(
            Math.abs(audioTicks / audioTrack.timescale - variant.audioSeconds) < 0.1,
            `audio ${audioTicks}`,
          );
          if (variant.video && videoTrack) {
            const { fps, frames: expected, gop } = variant.video;
            assert.ok(Math.abs(frames - expected) <= 1, `${frames} video frames`);
            assert.ok(
              Math.abs(videoTicks / videoTrack.timescale - expected / fps) <= 1 / fps,
              `${videoTicks} ticks`,
            );
            // frag_keyframe: every GOP starts a fragment.
            for (let k = 0; k < frames; k += gop)
              assert.ok(starts.includes(k), `no fragment starts at frame ${k}`);
          }
        });
      }
    });
  }

  describe('hostile or broken input', () => {
    const av = (): Buffer => fixture(variants[0]!);
    const avBoxes = (): { type: string; start: number; size: number }[] => topLevel(av());
    const slice = (b: { start: number; size: number }): Buffer => av().subarray(b.start, b.start + b.size);

    it('waits on every truncation of the init, and reads it split at every byte', () => {
      const bytes = av();
      const [ftyp, moov] = avBoxes();
      const initSize = ftyp!.size + moov!.size;
      for (let n = 0; n < initSize; n++) {
        const reader = new Fmp4Reader();
        const read = readAll([bytes.subarray(0, n)], reader);
        assert.equal(read.inits.length, 0, `truncated at ${n}`);
        const rest = readAll([bytes.subarray(n, initSize)], reader);
        assert.equal(rest.inits.length, 1, `split at ${n}`);
        assert.ok(rest.inits[0]!.data.equals(bytes.subarray(0, initSize)));
      }
    });

    it('refuses, or reads, every truncation of the moov declared complete: never anything else', () => {
      const [ftyp, moov] = avBoxes().map(slice);
      let refused = 0;
      for (let n = 8; n < moov!.length; n++) {
        const cut = Buffer.from(moov!.subarray(0, n));
        cut.writeUInt32BE(n, 0);
        if (pushAll(new Fmp4Reader(), [ftyp!, cut])) refused++;
      }
      assert.ok(refused > moov!.length / 2, `only ${refused} refused`);
    });

    const absurd: { name: string; header(type: string): Buffer }[] = [
      { name: 'size 0xFFFFFFFF', header: (t) => header(0xffffffff, t) },
      { name: 'largesize 2^40', header: (t) => largeHeader(2 ** 40, t) },
      { name: 'largesize 2^53', header: (t) => largeHeader(2 ** 53, t) },
      {
        name: 'largesize 0xFFFFFFFFFFFFFFFF',
        header: (t) => Buffer.concat([u32(1), text(t), hex('ff'.repeat(8))]),
      },
      { name: 'size 0 (to end of stream)', header: (t) => header(0, t) },
      { name: 'size 7, less than the header', header: (t) => header(7, t) },
      { name: 'largesize 15, less than the header', header: (t) => largeHeader(15, t) },
      { name: 'a type that is not text', header: () => Buffer.concat([u32(16), hex('00ff0a0d')]) },
    ];
    for (const c of absurd) {
      for (const where of ['at the start', 'after the init'] as const) {
        it(`refuses ${c.name} ${where} on the header alone`, () => {
          const reader = new Fmp4Reader();
          const before: Buffer[] = where === 'at the start' ? [] : [av().subarray(0, avBoxes()[2]!.start)];
          assert.equal(pushAll(reader, before), null);
          const head = c.header(where === 'at the start' ? 'ftyp' : 'moof');
          assert.throws(() => reader.push(head, ignore), isMalformed);
          assert.equal(reader.bufferedBytes, 0);
          // The stream is out of step for good: later input is refused too.
          assert.throws(() => reader.push(av(), ignore), isMalformed);
        });
      }
    }

    it('refuses a box over maxBoxSize on its header, the moov and an mdat alike', () => {
      const [ftyp, moov, moof, mdat] = avBoxes();
      const small = new Fmp4Reader({ maxBoxSize: moov!.size - 1 });
      small.push(slice(ftyp!), ignore);
      assert.throws(() => small.push(slice(moov!).subarray(0, 8), ignore), isMalformed);

      const reader = new Fmp4Reader({ maxBoxSize: mdat!.size - 1 });
      assert.equal(pushAll(reader, [av().subarray(0, mdat!.start + 8 - 1)]), null);
      assert.ok(reader.bufferedBytes >= moof!.size);
      assert.throws(() => reader.push(av().subarray(mdat!.start + 7, mdat!.start + 8), ignore), isMalformed);
      assert.throws(() => new Fmp4Reader({ maxBoxSize: 8 }), RangeError);
    });

    it('skips boxes it does not use without keeping them', () => {
      const boxes = avBoxes();
      const reader = new Fmp4Reader();
      const head = readAll([av().subarray(0, boxes[2]!.start)], reader);
      assert.equal(head.inits.length, 1);
      const size = 32 * 1024 * 1024;
      reader.push(header(size, 'free'), ignore);
      const piece = Buffer.alloc(64 * 1024);
      for (let sent = 8; sent < size; sent += piece.length) {
        reader.push(piece.subarray(0, Math.min(piece.length, size - sent)), ignore);
        assert.equal(reader.bufferedBytes, 0);
      }
      const fragment = slice(boxes[2]!).length + slice(boxes[3]!).length;
      const rest = readAll([av().subarray(boxes[2]!.start, boxes[2]!.start + fragment)], reader);
      assert.equal(rest.fragments.length, 1);
    });

    it('keeps styp/sidx/prft before a moof with its fragment', () => {
      const boxes = avBoxes();
      const styp = box('styp', text('msdh'), u32(0), text('msdhmsix'));
      const prft = full('prft', 1, 0, u32(1), u64(0), u64(0));
      const frag = av().subarray(boxes[2]!.start, boxes[4]!.start);
      const read = readAll([av().subarray(0, boxes[2]!.start), styp, box('free'), prft, frag]);
      assert.equal(read.fragments.length, 1);
      assert.ok(read.fragments[0]!.data.equals(Buffer.concat([styp, prft, frag])));
    });

    const order: { name: string; boxes(b: Buffer[]): Buffer[] }[] = [
      { name: 'a stream that does not start with ftyp', boxes: (b) => [b[1]!] },
      { name: 'a moof before the moov', boxes: (b) => [b[0]!, b[2]!] },
      { name: 'an mdat without a moof', boxes: (b) => [b[0]!, b[1]!, b[3]!] },
      { name: 'a moof followed by a moof', boxes: (b) => [b[0]!, b[1]!, b[2]!, b[4]!] },
      { name: 'a moof followed by a free box', boxes: (b) => [b[0]!, b[1]!, b[2]!, box('free')] },
      { name: 'a second moov', boxes: (b) => [b[0]!, b[1]!, b[2]!, b[3]!, b[1]!] },
      { name: 'a second ftyp', boxes: (b) => [b[0]!, b[1]!, b[0]!] },
    ];
    for (const c of order) {
      it(`refuses ${c.name}`, () => {
        const pieces = c.boxes(avBoxes().map(slice));
        const reader = new Fmp4Reader();
        assert.equal(pushAll(reader, pieces.slice(0, -1)), null);
        // The offending box is refused on its header.
        assert.throws(() => reader.push(pieces.at(-1)!.subarray(0, 8), ignore), isMalformed);
      });
    }

    it('never throws anything but FMP4_MALFORMED on random mutations of a real stream', () => {
      const boxes = avBoxes();
      const bytes = av().subarray(0, boxes[6]!.start); // the init and two fragments
      // Mutations land mostly where the structure is: the init, the moofs and the mdat headers.
      const structure = [boxes[0]!, boxes[1]!, boxes[2]!, boxes[4]!].map((b) => [b.start, b.size]);
      structure.push([boxes[3]!.start, 16], [boxes[5]!.start, 16]);
      const values = [0, 1, 7, 8, 16, 0x7f, 0x80, 0xff, 0x7fffffff, 0x80000000, 0xffffffff];
      const random = prng(20240501);
      const pick = (n: number): number => Math.floor(random() * n);
      let refused = 0;
      let read = 0;
      for (let i = 0; i < 3000; i++) {
        const copy = Buffer.from(bytes);
        for (let m = 1 + pick(4); m > 0; m--) {
          let at: number;
          if (random() < 0.85) {
            const [start, size] = structure[pick(structure.length)]!;
            at = start! + pick(size!);
          } else {
            at = pick(copy.length);
          }
          const kind = pick(3);
          if (kind === 0) copy[at] = pick(256);
          else if (kind === 1) copy[at] = copy[at]! ^ (1 << pick(8));
          else if (at + 4 <= copy.length) copy.writeUInt32BE(values[pick(values.length)]!, at & ~3);
        }
        const pieces = random() < 0.5 ? [copy] : randomPieces(copy, i);
        if (pushAll(new Fmp4Reader(), pieces)) refused++;
        else read++;
      }
      assert.ok(refused > 1000 && read > 100, `${refused} refused, ${read} read`);
    });

    it('never throws anything but FMP4_MALFORMED on random bytes after the init', () => {
      const random = prng(7);
      const initEnd = avBoxes()[2]!.start;
      for (let i = 0; i < 500; i++) {
        const noise = Buffer.alloc(1 + Math.floor(random() * 200));
        for (let j = 0; j < noise.length; j++) noise[j] = Math.floor(random() * 256);
        if (noise.length >= 8 && random() < 0.5) noise.write('moof', 4, 'latin1');
        pushAll(new Fmp4Reader(), [av().subarray(0, initEnd), noise]);
      }
    });

    it('refuses further input once a callback has thrown', () => {
      const reader = new Fmp4Reader();
      const boom = new Error('listener failed');
      assert.throws(
        () =>
          reader.push(av(), {
            init: () => {
              throw boom;
            },
            fragment() {},
          }),
        (e: unknown) => e === boom,
      );
      assert.throws(() => reader.push(Buffer.alloc(1), ignore), isMalformed);
    });
  });

  describe('sample entries and codec strings', () => {
    const cases: { name: string; trak: Buffer; track: Omit<Fmp4Track, 'id'> }[] = [
      {
        name: 'H.264 avc1/avcC',
        trak: trak(1, 'vide', 90000, visual('avc1', 1280, 720, box('avcC', hex('01 42c01f ff e1')))),
        track: { kind: 'video', timescale: 90000, codec: 'avc1.42c01f', width: 1280, height: 720 },
      },
      {
        name: 'H.264 avc3, mdhd v1',
        trak: trak(1, 'vide', 15360, visual('avc3', 1920, 1080, box('avcC', hex('01 640028 ff'))), {
          mdhdVersion: 1,
        }),
        track: { kind: 'video', timescale: 15360, codec: 'avc3.640028', width: 1920, height: 1080 },
      },
      {
        name: 'HEVC hvc1, main, level 3.1',
        trak: trak(
          1,
          'vide',
          90000,
          visual('hvc1', 1280, 720, box('hvcC', hex('01 01 60000000 900000000000 5d 00'))),
        ),
        track: { kind: 'video', timescale: 90000, codec: 'hvc1.1.6.L93.90', width: 1280, height: 720 },
      },
      {
        name: 'HEVC hev1, profile space 1, high tier',
        trak: trak(
          1,
          'vide',
          90000,
          visual('hev1', 64, 64, box('hvcC', hex('01 62 20000000 b00000000000 78'))),
        ),
        track: { kind: 'video', timescale: 90000, codec: 'hev1.A2.4.H120.B0', width: 64, height: 64 },
      },
      {
        name: 'AV1 av01/av1C, 10-bit',
        trak: trak(1, 'vide', 90000, visual('av01', 64, 64, box('av1C', hex('81 08 4c 00')))),
        track: { kind: 'video', timescale: 90000, codec: 'av01.0.08M.10', width: 64, height: 64 },
      },
      {
        name: 'VP9 vp09/vpcC',
        trak: trak(
          1,
          'vide',
          90000,
          visual('vp09', 64, 64, full('vpcC', 1, 0, hex('00 1f 82 02 02 02 0000'))),
        ),
        track: { kind: 'video', timescale: 90000, codec: 'vp09.00.31.08', width: 64, height: 64 },
      },
      {
        name: 'H.264 without avcC: the bare type',
        trak: trak(1, 'vide', 90000, visual('avc1', 64, 64)),
        track: { kind: 'video', timescale: 90000, codec: 'avc1', width: 64, height: 64 },
      },
      {
        name: 'AAC-LC: channels and rate from the AudioSpecificConfig, not the template fields',
        trak: trak(1, 'soun', 44100, audio('mp4a', 2, 44100, esds(0x40, hex('1208')))),
        track: { kind: 'audio', timescale: 44100, codec: 'mp4a.40.2', sampleRate: 44100, channels: 1 },
      },
      {
        name: 'HE-AAC with explicit SBR: the extension rate',
        trak: trak(1, 'soun', 48000, audio('mp4a', 2, 24000, esds(0x40, hex('2b 11 88 00')))),
        track: { kind: 'audio', timescale: 48000, codec: 'mp4a.40.5', sampleRate: 48000, channels: 2 },
      },
      {
        name: 'escaped audio object type (USAC, 42)',
        trak: trak(1, 'soun', 48000, audio('mp4a', 2, 48000, esds(0x40, hex('f9 46 40')))),
        track: { kind: 'audio', timescale: 48000, codec: 'mp4a.40.42', sampleRate: 48000, channels: 2 },
      },
      {
        name: 'MP3 in mp4a (object type 0x6b)',
        trak: trak(1, 'soun', 44100, audio('mp4a', 2, 44100, esds(0x6b))),
        track: { kind: 'audio', timescale: 44100, codec: 'mp4a.6b', sampleRate: 44100, channels: 2 },
      },
      {
        name: 'Opus',
        trak: trak(
          1,
          'soun',
          48000,
          audio('Opus', 2, 48000, box('dOps', hex('00 02 0138 0000bb80 0000 00'))),
        ),
        track: { kind: 'audio', timescale: 48000, codec: 'opus', sampleRate: 48000, channels: 2 },
      },
      {
        name: 'QuickTime sound description v2 (float64 rate above 65535 Hz)',
        trak: trak(1, 'soun', 96000, audioV2('lpcm', 6, 96000)),
        track: { kind: 'audio', timescale: 96000, codec: 'lpcm', sampleRate: 96000, channels: 6 },
      },
      {
        name: 'a timed-text track',
        trak: trak(1, 'text', 1000, box('tx3g', zeros(8))),
        track: { kind: 'other', timescale: 1000, codec: 'tx3g' },
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const read = readAll([initOf([c.trak], [trex(1)])]);
        assert.deepEqual(read.inits[0]?.tracks, [{ id: 1, ...c.track }]);
      });
    }

    const avc = (): Buffer =>
      trak(1, 'vide', 90000, visual('avc1', 64, 64, box('avcC', hex('01 42c01f ff'))));
    const broken: { name: string; init: () => Buffer }[] = [
      { name: 'a moov without mvex', init: () => Buffer.concat([FTYP, box('moov', avc())]) },
      { name: 'a moov without trak', init: () => initOf([], [trex(1)]) },
      { name: 'a track without trex', init: () => initOf([avc()], [trex(2)]) },
      { name: 'two tracks with one id', init: () => initOf([avc(), avc()], [trex(1)]) },
      { name: 'a zero timescale', init: () => initOf([trak(1, 'vide', 0, visual('avc1', 1, 1))], [trex(1)]) },
      {
        name: 'a trak without hdlr',
        init: () =>
          initOf(
            [box('trak', full('tkhd', 0, 3, u32(0), u32(0), u32(1), zeros(68)), box('mdia'))],
            [trex(1)],
          ),
      },
      {
        name: 'an stsd with no entry',
        init: () =>
          initOf(
            [
              box(
                'trak',
                full('tkhd', 0, 3, u32(0), u32(0), u32(1), zeros(68)),
                box(
                  'mdia',
                  full('mdhd', 0, 0, zeros(8), u32(1000), zeros(8)),
                  full('hdlr', 0, 0, u32(0), text('vide'), zeros(12)),
                  box('minf', box('stbl', full('stsd', 0, 0, u32(0)))),
                ),
              ),
            ],
            [trex(1)],
          ),
      },
      {
        name: 'a truncated avcC',
        init: () =>
          initOf([trak(1, 'vide', 90000, visual('avc1', 1, 1, box('avcC', hex('0142'))))], [trex(1)]),
      },
      {
        name: 'a visual sample entry too short for its fields',
        init: () => initOf([trak(1, 'vide', 90000, box('avc1', zeros(40)))], [trex(1)]),
      },
      {
        name: 'an esds descriptor larger than the box',
        init: () =>
          initOf(
            [trak(1, 'soun', 48000, audio('mp4a', 2, 48000, full('esds', 0, 0, hex('03 80808040 0001 00'))))],
            [trex(1)],
          ),
      },
      {
        name: 'an AudioSpecificConfig cut short',
        init: () =>
          initOf([trak(1, 'soun', 48000, audio('mp4a', 2, 48000, esds(0x40, hex('f9'))))], [trex(1)]),
      },
      {
        name: 'a NaN sample rate in a v2 sound description',
        init: () => initOf([trak(1, 'soun', 48000, audioV2('lpcm', 2, Number.NaN))], [trex(1)]),
      },
      {
        name: 'a nested box of size 0',
        init: () => Buffer.concat([FTYP, box('moov', header(0, 'trak'), zeros(8))]),
      },
      {
        name: 'a nested box running past its parent',
        init: () => Buffer.concat([FTYP, box('moov', header(64, 'trak'), zeros(8))]),
      },
      {
        name: 'stray bytes at the end of a container',
        init: () => Buffer.concat([FTYP, box('moov', avc(), box('mvex', trex(1)), zeros(3))]),
      },
    ];
    for (const c of broken) {
      it(`refuses ${c.name}`, () => {
        assert.throws(() => new Fmp4Reader().push(c.init(), ignore), isMalformed);
      });
    }
  });

  describe('track fragments: tfhd, tfdt and trun fields', () => {
    it('applies the ISO 14496-12 sample flags', () => {
      const flags: [number, boolean][] = [
        [0x02000000, true], // depends on no other sample
        [0x00000000, true], // dependency unknown, not marked non-sync
        [0x03000000, true],
        [0x01000000, false], // depends on others
        [0x00010000, false], // sample_is_non_sync_sample
        [0x02010000, false],
        [0x01010000, false],
        [0x0c000000, true], // is_leading alone does not matter
      ];
      for (const [f, sync] of flags) assert.equal(isSyncSample(f), sync, f.toString(16));
    });

    type Expect = Pick<Fmp4Fragment, 'runs' | 'keyframe' | 'startSeconds' | 'durationSeconds'>;
    const run = (
      trackId: number,
      baseDecodeTime: number,
      sampleCount: number,
      duration: number,
      firstSampleIsSync: boolean,
    ): Fmp4TrackRun => ({ trackId, baseDecodeTime, sampleCount, duration, firstSampleIsSync });
    const cases: { name: string; fragments: FragmentSpec[]; expect: Expect[] }[] = [
      {
        name: 'trex defaults when tfhd and trun carry none',
        fragments: [
          { trafs: (at) => [traf(tfhd(1, 0x020000), tfdt(0), trun(0x001, 5, toMdat(at)))], mdat: 50 },
        ],
        expect: [
          { runs: [run(1, 0, 5, 15000, false)], keyframe: false, startSeconds: 0, durationSeconds: 1 / 6 },
        ],
      },
      {
        name: 'tfhd default duration, size and flags over trex',
        fragments: [
          {
            trafs: (at) => [
              traf(tfhd(1, 0x020038, u32(1500), u32(7), u32(SYNC)), tfdt(90000), trun(0x001, 4, toMdat(at))),
            ],
            mdat: 28,
          },
        ],
        expect: [
          { runs: [run(1, 90000, 4, 6000, true)], keyframe: true, startSeconds: 1, durationSeconds: 1 / 15 },
        ],
      },
      {
        name: 'first-sample-flags make the first sample sync',
        fragments: [
          {
            trafs: (at) => [traf(tfhd(1, 0x020000), tfdt0(45000), trun(0x005, 3, toMdat(at), u32(SYNC)))],
            mdat: 30,
          },
        ],
        expect: [
          { runs: [run(1, 45000, 3, 9000, true)], keyframe: true, startSeconds: 0.5, durationSeconds: 0.1 },
        ],
      },
      {
        name: 'per-sample duration, size, flags and signed composition offsets',
        fragments: [
          {
            trafs: (at) => [
              traf(
                tfhd(1, 0x020000),
                tfdt(0),
                trun(
                  0xf01,
                  3,
                  toMdat(at),
                  ...[u32(3000), u32(5), u32(SYNC), i32(-3000)],
                  ...[u32(3600), u32(6), u32(NON_SYNC), i32(0)],
                  ...[u32(2400), u32(7), u32(NON_SYNC), i32(3000)],
                ),
              ),
            ],
            mdat: 18,
          },
        ],
        expect: [{ runs: [run(1, 0, 3, 9000, true)], keyframe: true, startSeconds: 0, durationSeconds: 0.1 }],
      },
      {
        name: 'first-sample-flags over the first per-sample flags',
        fragments: [
          {
            trafs: (at) => [
              traf(
                tfhd(1, 0x020000),
                tfdt(0),
                trun(0x405, 2, toMdat(at), u32(SYNC), u32(NON_SYNC), u32(NON_SYNC)),
              ),
            ],
            mdat: 20,
          },
        ],
        expect: [
          { runs: [run(1, 0, 2, 6000, true)], keyframe: true, startSeconds: 0, durationSeconds: 1 / 15 },
        ],
      },
      {
        name: 'a 64-bit tfdt past 2^32, and no video run while the init has video: not a keyframe',
        fragments: [
          {
            trafs: (at) => [traf(tfhd(2, 0x020000), tfdt(2 ** 40 + 5), trun(0x001, 2, toMdat(at)))],
            mdat: 8,
          },
        ],
        expect: [
          {
            runs: [run(2, 2 ** 40 + 5, 2, 2048, true)],
            keyframe: false,
            startSeconds: (2 ** 40 + 5) / 48000,
            durationSeconds: 2048 / 48000,
          },
        ],
      },
      {
        name: 'a traf without tfdt continues from the previous fragment of its track',
        fragments: [
          { trafs: (at) => [traf(tfhd(1, 0x020000), tfdt(1000), trun(0x001, 2, toMdat(at)))], mdat: 20 },
          { trafs: (at) => [traf(tfhd(1, 0x020000), trun(0x005, 1, toMdat(at), u32(SYNC)))], mdat: 10 },
        ],
        expect: [
          {
            runs: [run(1, 1000, 2, 6000, false)],
            keyframe: false,
            startSeconds: 1000 / 90000,
            durationSeconds: 1 / 15,
          },
          {
            runs: [run(1, 7000, 1, 3000, true)],
            keyframe: true,
            startSeconds: 7000 / 90000,
            durationSeconds: 1 / 30,
          },
        ],
      },
      {
        name: 'base-data-offset from the stream start, sample-description-index, runs without data offsets',
        fragments: [
          {
            trafs: (at) => [
              traf(
                tfhd(1, 0x000003, u64(at.moofStart + at.moofSize + 8), u32(1)),
                tfdt(0),
                trun(0x000, 2),
                trun(0x000, 1),
              ),
            ],
            mdat: 30,
          },
        ],
        expect: [
          { runs: [run(1, 0, 3, 9000, false)], keyframe: false, startSeconds: 0, durationSeconds: 0.1 },
        ],
      },
      {
        name: 'no base flags: the first traf starts at the moof, the next where its data ended',
        fragments: [
          {
            trafs: (at) => [
              traf(tfhd(1, 0), tfdt(0), trun(0x005, 2, toMdat(at), u32(SYNC))),
              traf(tfhd(2, 0), tfdt(0), trun(0x000, 4)),
            ],
            mdat: 36,
          },
        ],
        expect: [
          {
            runs: [run(1, 0, 2, 6000, true), run(2, 0, 4, 4096, true)],
            keyframe: true,
            startSeconds: 0,
            durationSeconds: 1 / 15,
          },
        ],
      },
      {
        name: 'audio only in a moof: the longest run gives the duration',
        fragments: [
          {
            trafs: (at) => [
              traf(tfhd(2, 0x020000), tfdt(4800), trun(0x001, 1, toMdat(at))),
              traf(tfhd(2, 0x020000), tfdt(5824), trun(0x001, 3, i32(at.moofSize + 8 + 4))),
            ],
            mdat: 16,
          },
        ],
        expect: [
          {
            runs: [run(2, 4800, 1, 1024, true), run(2, 5824, 3, 3072, true)],
            keyframe: false,
            startSeconds: 0.1,
            durationSeconds: 3072 / 48000,
          },
        ],
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const bytes = synthStream(c.fragments);
        for (const pieces of [[bytes], onePieces(bytes)]) {
          const read = readAll(pieces);
          assert.equal(read.fragments.length, c.expect.length);
          read.fragments.forEach((f, i) => {
            const { runs, keyframe, startSeconds, durationSeconds } = f;
            assert.deepEqual({ runs, keyframe, startSeconds, durationSeconds }, c.expect[i]);
          });
        }
      });
    }

    const broken: { name: string; fragment: FragmentSpec }[] = [
      {
        name: 'sample data past the end of the mdat',
        fragment: { trafs: (at) => [traf(tfhd(1, 0x020000), tfdt(0), trun(0x001, 5, toMdat(at)))], mdat: 49 },
      },
      {
        name: 'sample data before the mdat',
        fragment: { trafs: () => [traf(tfhd(1, 0x020000), tfdt(0), trun(0x001, 1, i32(0)))], mdat: 10 },
      },
      {
        name: 'a traf for a track the moov lacks',
        fragment: { trafs: (at) => [traf(tfhd(9, 0x020000), tfdt(0), trun(0x001, 1, toMdat(at)))], mdat: 10 },
      },
      {
        name: 'a trun claiming 2^32-1 samples in a few bytes',
        fragment: {
          trafs: (at) => [traf(tfhd(1, 0x020000), tfdt(0), trun(0x101, 0xffffffff, toMdat(at), u32(1)))],
          mdat: 10,
        },
      },
      {
        name: 'default durations summing past 2^53',
        fragment: {
          trafs: (at) => [
            traf(tfhd(1, 0x020018, u32(0xffffffff), u32(0)), tfdt(0), trun(0x001, 0xffffffff, toMdat(at))),
          ],
          mdat: 0,
        },
      },
      {
        name: 'a tfdt at 2^53',
        fragment: {
          trafs: (at) => [traf(tfhd(1, 0x020000), tfdt(2 ** 53), trun(0x001, 1, toMdat(at)))],
          mdat: 10,
        },
      },
      {
        name: 'a traf without tfhd',
        fragment: { trafs: (at) => [traf(tfdt(0), trun(0x001, 1, toMdat(at)))], mdat: 10 },
      },
      { name: 'a moof without traf', fragment: { trafs: () => [], mdat: 0 } },
      {
        name: 'a truncated tfhd',
        fragment: { trafs: () => [traf(full('tfhd', 0, 0x000008, u32(1)))], mdat: 0 },
      },
    ];
    for (const c of broken) {
      it(`refuses ${c.name}`, () => {
        const err = pushAll(new Fmp4Reader(), [synthStream([c.fragment])]);
        assert.ok(err, 'accepted');
      });
    }

    it('refuses a moof without mfhd', () => {
      const moof = box('moof', traf(tfhd(1, 0x020000), tfdt(0), trun(0x000, 0)));
      assert.ok(pushAll(new Fmp4Reader(), [SYNTH_INIT, moof]));
    });
  });
});
