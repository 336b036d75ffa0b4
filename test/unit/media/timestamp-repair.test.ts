import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlvTagType, type MediaTag } from '../../../src/media/flv-tag.ts';
import { type RepairCounts, TimestampRepair } from '../../../src/media/timestamp-repair.ts';
import { prng } from '../../helpers/rtmp-bytes.ts';

const V = FlvTagType.Video;
const A = FlvTagType.Audio;
const tag = (type: 8 | 9, timestamp: number, isConfig = false): MediaTag => ({
  type,
  timestamp,
  data: Buffer.alloc(1),
  keyframe: true,
  isConfig,
});

function run(
  input: [8 | 9, number][],
  repair = new TimestampRepair(),
): { out: number[]; counts: RepairCounts } {
  const out = input.map(([type, ts]) => repair.repair(tag(type, ts))!.timestamp);
  return { out, counts: repair.counts };
}

const zero: RepairCounts = { negative: 0, duplicate: 0, backward: 0, jumpForward: 0, wrap: 0, avSkew: 0 };

/** Input (type, ts) → expected output ts and counts. */
const cases: { name: string; input: [8 | 9, number][]; out: number[]; counts: Partial<RepairCounts> }[] = [
  {
    name: 'rebases the first tag to 0',
    input: [
      [V, 5000],
      [A, 5010],
      [V, 5071],
    ],
    out: [0, 10, 71],
    counts: {},
  },
  {
    name: 'closes a forward jump in both tracks once',
    input: [
      [V, 0],
      [A, 10],
      [V, 66],
      [A, 33],
      [V, 5133],
      [A, 5100],
      [V, 5200],
    ],
    out: [0, 10, 66, 33, 132, 99, 199],
    counts: { jumpForward: 1 },
  },
  {
    name: 'closes a backward reset',
    input: [
      [V, 10000],
      [V, 10066],
      [V, 10133],
      [V, 0],
      [V, 66],
    ],
    out: [0, 66, 133, 200, 266],
    counts: { backward: 1 },
  },
  {
    name: 'makes duplicates strictly increasing',
    input: [
      [V, 0],
      [V, 0],
      [V, 40],
    ],
    out: [0, 1, 40],
    counts: { duplicate: 1 },
  },
  {
    name: 'clamps a small step back',
    input: [
      [V, 100],
      [V, 160],
      [V, 150],
      [V, 230],
    ],
    out: [0, 60, 61, 130],
    counts: { backward: 1 },
  },
  {
    name: 'continues across the 32-bit wrap',
    input: [
      [V, 0xffffffc0],
      [V, 0xfffffff0],
      [V, 0x20],
    ],
    out: [0, 48, 96],
    counts: { negative: 1, wrap: 1 },
  },
  {
    name: "continues across FLV's 31-bit wrap",
    input: [
      [V, 0x7fffffc0],
      [V, 0x7ffffff0],
      [V, 0x20],
    ],
    out: [0, 48, 96],
    counts: { wrap: 1 },
  },
  {
    name: 'pulls a track that runs ahead while both flow',
    input: [
      [V, 0],
      [A, 0],
      [V, 66],
      [A, 23],
      [A, 46],
      [V, 433],
      [A, 69],
    ],
    out: [0, 0, 66, 23, 46, 67, 69],
    counts: { avSkew: 1 },
  },
];

describe('timestamp repair', () => {
  for (const c of cases) {
    it(c.name, () => {
      const { out, counts } = run(c.input);
      assert.deepEqual(out, c.out);
      assert.deepEqual(counts, { ...zero, ...c.counts });
    });
  }

  it('leaves a clean interleaved 14 fps + AAC stream alone', () => {
    const input: [8 | 9, number][] = [];
    for (let v = 0, a = 0; v < 10_000 || a < 10_000; ) {
      if (a <= v) {
        input.push([A, Math.round(a)]);
        a += 1024_000 / 44_100;
      } else {
        input.push([V, Math.round(v)]);
        v += 1000 / 14;
      }
    }
    const { out, counts } = run(input);
    assert.deepEqual(counts, zero);
    assert.deepEqual(
      out,
      input.map(([, ts]) => ts),
    );
  });

  it('does not call a video stall with audio flowing skew', () => {
    const input: [8 | 9, number][] = [
      [V, 0],
      [A, 0],
    ];
    for (let a = 23; a < 3000; a += 23) input.push([A, a]);
    input.push([V, 3000]);
    const { counts } = run(input);
    assert.deepEqual(counts, zero);
  });

  it('continues after a reconnect one frame after the last output', () => {
    const r = new TimestampRepair();
    run(
      [
        [V, 0],
        [V, 66],
        [A, 50],
      ],
      r,
    );
    r.continueAfterReconnect();
    const { out } = run(
      [
        [V, 0],
        [A, 10],
        [V, 66],
      ],
      r,
    );
    assert.deepEqual(out, [99, 109, 165]);
  });

  it('gives configuration tags the current time and never repairs them', () => {
    const r = new TimestampRepair();
    assert.equal(r.repair(tag(V, 777, true))!.timestamp, 0);
    r.repair(tag(V, 1000));
    r.repair(tag(V, 1040));
    assert.equal(r.repair(tag(V, 0, true))!.timestamp, 40);
    assert.deepEqual(r.counts, zero);
  });

  it('keeps 100,000 random timestamps monotonic per track, non-negative and below 2^32', () => {
    const random = prng(99);
    const r = new TimestampRepair();
    const last = new Map<number, number>();
    for (let i = 0; i < 100_000; i++) {
      const type = random() < 0.6 ? A : V;
      const ts = Math.floor(random() * 0x1_0000_0000);
      const out = r.repair(
        tag(type, random() < 0.9 ? (last.get(type) ?? 0) + Math.floor(random() * 80) : ts),
      )!.timestamp;
      assert.ok(out >= 0 && out < 0x1_0000_0000);
      if (last.has(type))
        assert.ok(out > last.get(type)!, `track ${type} went from ${last.get(type)} to ${out}`);
      last.set(type, out);
    }
  });
});
