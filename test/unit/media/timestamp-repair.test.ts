import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlvTagType, type MediaTag } from '../../../src/media/flv-tag.ts';
import {
  type RepairCounts,
  TimestampRepair,
  type TimestampRepairOptions,
} from '../../../src/media/timestamp-repair.ts';
import { prng } from '../../helpers/rtmp-bytes.ts';

const V = FlvTagType.Video;
const A = FlvTagType.Audio;
const S = FlvTagType.Script;
const TWO_32 = 2 ** 32;
const zero: RepairCounts = { negative: 0, duplicate: 0, backward: 0, jumpForward: 0, wrap: 0, avSkew: 0 };

const tag = (type: MediaTag['type'], timestamp: number, isConfig = false): MediaTag => ({
  type,
  timestamp,
  data: Buffer.from([type]),
  keyframe: true,
  isConfig,
});

/**
 * Tags written as `v33` (video), `a23` (audio), `vc0`/`ac0` (sequence headers), `s0` (script), hex allowed:
 * `v0xFFFFFF00`. Space-separated, in arrival order.
 */
function parse(input: string): MediaTag[] {
  return input
    .trim()
    .split(/\s+/)
    .map((word) => {
      const m = /^(vc|ac|v|a|s)(.+)$/.exec(word);
      assert.ok(m, word);
      const ts = Number(m[2]);
      const kind = m[1]!;
      return tag(
        kind.startsWith('v') ? V : kind.startsWith('a') ? A : S,
        ts,
        kind.length === 2 || kind === 's',
      );
    });
}

function run(input: string | MediaTag[], repair = new TimestampRepair()): number[] {
  return (typeof input === 'string' ? parse(input) : input).map((t) => repair.repair(t)!.timestamp);
}

const cases: {
  name: string;
  input: string;
  out: number[];
  counts?: Partial<RepairCounts>;
  options?: TimestampRepairOptions;
}[] = [
  { name: 'rebases the first media tag to 0', input: 'v5000 a5010 v5071', out: [0, 10, 71] },
  {
    name: 'puts configuration and script tags at their track’s current time without repairs',
    input: 's777 vc777 ac9 v5000 vc5 a5010 ac0 v5071 s0 vc99999',
    out: [0, 0, 0, 0, 0, 10, 10, 71, 71, 71],
  },
  {
    name: 'a track starting just before the other (audio priming) starts at 0, not below',
    input: 'v1000 a995 v1033 a1018',
    out: [0, 0, 33, 23],
  },
  {
    name: 'a track on its own clock base lines up with the other',
    input: 'v1000 v1033 a90000 v1066 a90023',
    out: [0, 33, 33, 66, 56],
    counts: { avSkew: 1 },
  },
  {
    name: 'negative timestamps at the start (int32 view) continue through 0',
    input: 'v0xFFFFFFC0 a0xFFFFFFC0 v0xFFFFFFE1 a0xFFFFFFD7 v0x2 a0xFFFFFFEE v0x23 a0x5',
    out: [0, 0, 33, 23, 66, 46, 99, 69],
    counts: { negative: 5 },
  },
  {
    name: 'a reset to a negative timestamp is closed and counted negative',
    input: 'v0 v33 v66 v0xFFFFFF00 v0xFFFFFF21',
    out: [0, 33, 66, 99, 132],
    counts: { negative: 2, backward: 1 },
  },
  {
    name: 'video duplicates get +1 ms',
    input: 'v0 v33 v33 v66',
    out: [0, 33, 34, 66],
    counts: { duplicate: 1 },
  },
  {
    name: 'audio duplicates get +1 ms each (the mp4 muxer rejects equal audio DTS)',
    input: 'a0 a23 a23 a23 a46',
    out: [0, 23, 24, 25, 46],
    counts: { duplicate: 2 },
  },
  {
    name: 'a small step back goes 1 ms on, the offset kept',
    input: 'v100 v160 v150 v230',
    out: [0, 60, 61, 130],
    counts: { backward: 1 },
  },
  {
    name: 'B-frames sent in PTS order do not ratchet the timeline forward',
    input: 'v0 v100 v33 v66 v200 v133 v166 v300',
    out: [0, 100, 101, 102, 200, 201, 202, 300],
    counts: { backward: 4 },
  },
  {
    name: 'a backward reset is closed one frame interval (median step) after the last output',
    input: 'v10000 v10066 v10133 v0 v66',
    out: [0, 66, 133, 200, 266],
    counts: { backward: 1 },
  },
  {
    name: 'a forward jump is closed (default 33 ms before any step is measured)',
    input: 'v0 v5000 v5033',
    out: [0, 33, 66],
    counts: { jumpForward: 1 },
  },
  {
    name: 'a forward jump is closed one measured frame interval on',
    input: 'v0 v33 v66 v5066 v5099',
    out: [0, 33, 66, 99, 132],
    counts: { jumpForward: 1 },
  },
  {
    name: 'a step within maxGapMs is not a jump',
    input: 'v0 v33 v3033 v3066',
    out: [0, 33, 3033, 3066],
    options: { maxGapMs: 5000 },
  },
  {
    name: 'a forward jump of both tracks is closed once',
    input: 'v0 a10 v66 a33 v5133 a5100 v5200 a5123',
    out: [0, 10, 66, 33, 132, 99, 199, 122],
    counts: { jumpForward: 1 },
  },
  {
    name: 'a backward reset of both tracks is closed once, late audio from before it kept in place',
    input: 'v5000 a5000 v5066 a5023 v0 a5046 a10 v66 a33',
    out: [0, 0, 66, 23, 132, 46, 142, 198, 165],
    counts: { backward: 1 },
  },
  {
    name: 'a jump in video alone is closed for video only',
    input: 'v0 a0 v66 a23 a46 v5133 a69 a92 v5200 a115',
    out: [0, 0, 66, 23, 46, 132, 69, 92, 199, 115],
    counts: { jumpForward: 1 },
  },
  {
    name: 'a track trailing the other past maxAvSkewMs is moved later, never the other earlier',
    input: 'v0 a0 v66 a23 a46 v433 a69 a92',
    out: [0, 0, 66, 23, 46, 433, 333, 356],
    counts: { avSkew: 1 },
  },
  {
    name: "continues across FLV's 31-bit wrap",
    input: 'v0x7fffffc0 v0x7ffffff0 v0x20',
    out: [0, 48, 96],
    counts: { wrap: 1 },
  },
];

/** A clean interleaved stream: `fps` video and 1024-sample AAC at `rate`, from `base`, in arrival order. */
function cleanStream(
  random: () => number,
  { base = 0, fps = 14, rate = 44_100, ms = 60_000 } = {},
): { tags: MediaTag[]; times: number[] } {
  const frames: { tag: MediaTag; at: number }[] = [];
  // Each track arrives in its own order (one TCP connection); between tracks, audio comes a few ms after
  // video of the same time, sometimes up to 40 ms.
  for (let i = 0, at = 0; (i * 1000) / fps < ms; i++) {
    const ts = Math.round((i * 1000) / fps);
    at = Math.max(at, ts + random() * 5);
    frames.push({ tag: tag(V, (base + ts) >>> 0), at });
  }
  for (let i = 0, at = 0; (i * 1024_000) / rate < ms; i++) {
    const ts = Math.round((i * 1024_000) / rate);
    at = Math.max(at, ts + 1 + random() * (random() < 0.1 ? 40 : 8));
    frames.push({ tag: tag(A, (base + ts) >>> 0), at });
  }
  frames.sort((x, y) => x.at - y.at);
  return {
    tags: frames.map((f) => f.tag),
    times: frames.map((f) => (f.tag.timestamp - base + TWO_32) % TWO_32),
  };
}

describe('timestamp repair', () => {
  for (const c of cases) {
    it(c.name, () => {
      const repair = new TimestampRepair(c.options);
      assert.deepEqual(run(c.input, repair), c.out);
      assert.deepEqual(repair.counts, { ...zero, ...c.counts });
    });
  }

  it('returns a new tag with the same data and leaves the input alone', () => {
    const input = tag(V, 1234);
    const out = new TimestampRepair().repair(input)!;
    assert.notEqual(out, input);
    assert.equal(out.data, input.data);
    assert.equal(input.timestamp, 1234);
    assert.deepEqual({ ...out, timestamp: 1234 }, input);
  });

  it('leaves a clean 14 fps + 44.1 kHz AAC stream with interleaving jitter alone', () => {
    for (const base of [0, 987_654, 0x7fff0000]) {
      const { tags, times } = cleanStream(prng(base), { base });
      const repair = new TimestampRepair();
      assert.deepEqual(run(tags, repair), times, `base ${base}`);
      assert.deepEqual(repair.counts, zero, `base ${base}`);
    }
  });

  it('leaves 9 fps video with audio alone (audio runs a frame ahead of video)', () => {
    const { tags, times } = cleanStream(prng(9), { fps: 9 });
    const repair = new TimestampRepair();
    assert.deepEqual(run(tags, repair), times);
    assert.deepEqual(repair.counts, zero);
  });

  it('continues smoothly across the 32-bit wrap, audio and video', () => {
    // Far enough before the wrap not to read as a negative start.
    const base = TWO_32 - 12_000;
    const { tags, times } = cleanStream(prng(32), { base, ms: 20_000 });
    const repair = new TimestampRepair();
    assert.deepEqual(run(tags, repair), times);
    assert.deepEqual(repair.counts, { ...zero, wrap: 2 });
  });

  it('keeps the gap of a video stall while audio flows (not a jump, not skew)', () => {
    let input = 'v0 a0';
    for (let a = 23; a < 3000; a += 23) input += ` a${a}`;
    input += ' v3000 v3066';
    const repair = new TimestampRepair();
    const out = run(input, repair);
    assert.deepEqual(out.slice(-2), [3000, 3066]);
    assert.deepEqual(repair.counts, zero);
  });

  it('re-aligns video after a stall whose audio was held back and then burst', () => {
    // 20 fps video and 40 Hz audio; video stalls from 1000 to 3000 ms; audio of that time arrives only after
    // video resumed. Closing the video gap looks right at 3000 (audio is still at 1000) but puts video
    // ~1.9 s behind once the audio burst lands, so the next video frame moves up to within the bound.
    const parts = ['v0 a0'];
    for (let t = 50; t <= 1000; t += 50) parts.push(`v${t} a${t - 25} a${t}`);
    parts.push('v3000');
    for (let t = 1025; t <= 3000; t += 25) parts.push(`a${t}`);
    parts.push('v3050 a3025 a3050 v3100 a3075');
    const repair = new TimestampRepair();
    const tags = parse(parts.join(' '));
    const out = run(tags, repair);
    const video = out.filter((_, i) => tags[i]!.type === V);
    const audio = out.filter((_, i) => tags[i]!.type === A);
    assert.deepEqual(video.slice(-4), [1000, 1050, 2900, 2950]);
    assert.deepEqual(audio.slice(-4), [3000, 3025, 3050, 3075]);
    assert.deepEqual(repair.counts, { ...zero, jumpForward: 1, avSkew: 1 });
  });

  it('continues after a reconnect one frame interval after the last output', () => {
    const repair = new TimestampRepair();
    run('v0 v66 a50', repair);
    repair.continueAfterReconnect();
    // The new session's sequence headers sit at their track's last output; its first frame lands one
    // measured video interval (66 ms) after the last output, and the audio keeps its place beside it.
    assert.deepEqual(run('vc0 ac0 v0 a10 v66 a33', repair), [66, 50, 132, 142, 198, 165]);
    repair.continueAfterReconnect();
    // Whatever the next publisher's clock reads (here negative), it continues one audio interval on.
    assert.deepEqual(run('a0xFFFFFF00 v0xFFFFFF00 a0xFFFFFF17', repair), [221, 221, 244]);
    assert.deepEqual(repair.counts, { ...zero, negative: 3 });
  });

  it('keeps 100,000 random tags monotonic per track, within the skew bound, in range, and never throws', () => {
    for (const [seed, options] of [
      [1, {}],
      [2, { maxGapMs: 1, maxAvSkewMs: 0 }],
      [3, { maxGapMs: 200, maxAvSkewMs: 40 }],
    ] as const) {
      const random = prng(seed);
      const repair = new TimestampRepair(options);
      const skew = options.maxAvSkewMs ?? 100;
      const last = new Map<number, number>();
      const rawLast = new Map<number, number>();
      let clock = Math.floor(random() * TWO_32);
      const glitch = new Map<number, number>([
        [V, 0],
        [A, 0],
      ]);
      const n = seed === 1 ? 100_000 : 20_000;
      for (let i = 0; i < n; i++) {
        const r = random();
        if (r < 0.0005) repair.continueAfterReconnect();
        const pick = random();
        const type = pick < 0.45 ? V : pick < 0.9 ? A : pick < 0.95 ? (random() < 0.5 ? V : A) : S;
        const isConfig = pick >= 0.9;
        const mode = random();
        let ts: number;
        clock += Math.floor(random() * 40);
        if (mode < 0.8) ts = clock + glitch.get(type)! + Math.floor(random() * 60) - 30;
        else if (mode < 0.84) ts = rawLast.get(type) ?? 0;
        else if (mode < 0.87) {
          clock += Math.floor((random() - 0.5) * 40_000);
          ts = clock;
        } else if (mode < 0.89) {
          glitch.set(type, Math.floor((random() - 0.5) * 20_000));
          ts = clock + glitch.get(type)!;
        } else if (mode < 0.91) ts = Math.floor(random() * TWO_32);
        else if (mode < 0.93) {
          clock = (random() < 0.5 ? TWO_32 : 2 ** 31) - Math.floor(random() * 3000);
          ts = clock;
        } else if (mode < 0.95) ts = -Math.floor(random() * 5000);
        else if (mode < 0.96) ts = [Number.NaN, -1, 1.5, 2 ** 40, Number.POSITIVE_INFINITY][i % 5]!;
        else ts = clock;
        const input = tag(type, ts, isConfig);
        rawLast.set(type, ts >>> 0);
        const out = repair.repair(input);
        assert.ok(out, `tag ${i} was dropped`);
        const t = out.timestamp;
        assert.ok(Number.isInteger(t) && t >= 0 && t < TWO_32, `tag ${i}: ${t} out of range`);
        assert.equal(out.data, input.data);
        if (type === S || isConfig) continue;
        const prev = last.get(type);
        assert.ok(prev === undefined || t > prev, `seed ${seed} tag ${i}: track ${type} went ${prev} → ${t}`);
        const other = last.get(type === V ? A : V);
        assert.ok(other === undefined || t >= other - skew, `seed ${seed} tag ${i}: ${t} trails ${other}`);
        last.set(type, t);
      }
      // The mix reaches every rule.
      for (const [kind, count] of Object.entries(repair.counts))
        assert.ok(count > 0, `seed ${seed}: no ${kind}`);
    }
  });
});
