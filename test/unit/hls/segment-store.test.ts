/**
 * The segment store: names, packed fragment facts, joined segment bytes shared with their parts, the
 * listed window, retirement for a segment's duration plus the playlist's, and purge of unused inits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ownedConcat,
  type Part,
  packFragments,
  partNumber,
  partUri,
  SegmentStore,
  StoredSegment,
  segmentUri,
  unpackFragments,
} from '../../../src/hls/segment-store.ts';
import type { Fmp4Fragment } from '../../../src/media/fmp4.ts';

describe('segment store: names', () => {
  const cases: [string, number | undefined][] = [
    ['aaaaaaaa-part0.m4s', 0],
    ['aaaaaaaa-part123.m4s', 123],
    ['bbbbbbbb-part1.m4s', undefined],
    ['aaaaaaaa-seg1.m4s', undefined],
    ['aaaaaaaa-part1.m4s.m4s', undefined],
    ['../aaaaaaaa-part1.m4s', undefined],
    ['aaaaaaaa-part1234567890123456.m4s', undefined],
  ];
  for (const [name, n] of cases) {
    it(`${name} is part ${n}`, () => assert.equal(partNumber('aaaaaaaa', name), n));
  }
  it('names segments and parts under the prefix', () => {
    assert.equal(segmentUri('aaaaaaaa', 7), 'aaaaaaaa-seg7.m4s');
    assert.equal(partUri('aaaaaaaa', 9), 'aaaaaaaa-part9.m4s');
  });
});

function fragment(size: number, extra: Partial<Fmp4Fragment> = {}): Fmp4Fragment {
  return {
    data: Buffer.alloc(size, size),
    sequence: 1,
    runs: [],
    keyframe: false,
    startSeconds: 0,
    durationSeconds: 0,
    ...extra,
  };
}

describe('segment store: fragment facts', () => {
  const cases: { name: string; fragments: Fmp4Fragment[] }[] = [
    { name: 'none', fragments: [] },
    {
      name: 'no runs',
      fragments: [fragment(3, { keyframe: true, startSeconds: 1.25, durationSeconds: 0.5 })],
    },
    {
      name: 'video and audio runs, a 64-bit decode time',
      fragments: [
        fragment(10, {
          sequence: 4_000_000_000,
          keyframe: true,
          startSeconds: 12_345.678901,
          durationSeconds: 1 / 13,
          runs: [
            {
              trackId: 1,
              baseDecodeTime: 2 ** 40 + 3,
              sampleCount: 1,
              duration: 6923,
              firstSampleIsSync: true,
            },
            { trackId: 2, baseDecodeTime: 7, sampleCount: 3, duration: 3072, firstSampleIsSync: false },
          ],
        }),
        fragment(5, {
          sequence: 4_000_000_001,
          runs: [
            { trackId: 2, baseDecodeTime: 3079, sampleCount: 1, duration: 1024, firstSampleIsSync: true },
          ],
        }),
      ],
    },
  ];
  for (const c of cases) {
    it(`packs and unpacks: ${c.name}`, () => {
      let offset = 0;
      const expected = c.fragments.map(({ data, ...facts }) => {
        const f = { ...facts, offset, size: data.length };
        offset += data.length;
        return f;
      });
      assert.deepEqual(unpackFragments(packFragments(c.fragments)), expected);
    });
  }
});

function part(n: number, bytes: string): Part {
  return {
    n,
    uri: partUri('aaaaaaaa', n),
    duration: 0.5,
    independent: n === 0,
    data: ownedConcat([Buffer.from(bytes)]),
  };
}

function segment(
  msn: number,
  parts: Part[],
  o: { duration?: number; discontinuity?: boolean; initUri?: string } = {},
) {
  return new StoredSegment({
    msn,
    uri: segmentUri('aaaaaaaa', msn),
    duration: o.duration ?? 2,
    discontinuity: o.discontinuity ?? false,
    initUri: o.initUri ?? 'aaaaaaaa-init0.mp4',
    programDateTime: 0,
    independent: true,
    parts,
    fragments: parts.map((p) => fragment(p.data.length)),
  });
}

describe('segment store: segment bytes', () => {
  it('owns small byte runs outright (no slice of the shared pool)', () => {
    const b = ownedConcat([Buffer.from('ab'), Buffer.from('cd')]);
    assert.equal(b.toString(), 'abcd');
    assert.equal(b.buffer.byteLength, 4);
  });

  it('joins parts once on first request, then the parts are views into it', () => {
    const s = segment(0, [part(0, 'abc'), part(1, 'de'), part(2, 'f')]);
    assert.equal(s.joined, false);
    const before = s.parts.map((p) => p.data);
    assert.equal(s.data.toString(), 'abcdef');
    assert.equal(s.joined, true);
    assert.equal(s.data, s.data, 'joined once');
    assert.deepEqual(
      s.parts.map((p) => p.data.toString()),
      ['abc', 'de', 'f'],
    );
    for (const p of s.parts) assert.equal(p.data.buffer, s.data.buffer);
    assert.notEqual(before[0]!.buffer, s.data.buffer);
    assert.deepEqual(
      s.fragments.map((f) => [f.offset, f.size]),
      [
        [0, 3],
        [3, 2],
        [5, 1],
      ],
    );
  });

  it('a segment of one part is that part, with no copy', () => {
    const only = part(0, 'xyz');
    const s = segment(0, [only]);
    assert.equal(s.data, only.data);
  });
});

describe('segment store: window and retention', () => {
  it('lists listSize segments, retires the rest for their duration plus the playlist, purges unused inits', () => {
    let now = 1_000;
    const store = new SegmentStore({ prefix: 'aaaaaaaa', listSize: 2, minListSeconds: 0, now: () => now });
    const init0 = store.addInit(Buffer.from('i0'));
    assert.equal(init0, 'aaaaaaaa-init0.mp4');
    store.add(segment(0, [part(0, 'a')]));
    store.add(segment(1, [part(1, 'b'), part(2, 'c')]));
    const init1 = store.addInit(Buffer.from('i1'));
    store.add(segment(2, [part(3, 'd')], { discontinuity: true, initUri: init1 }));
    assert.deepEqual(
      store.segments.map((s) => s.msn),
      [1, 2],
    );
    assert.deepEqual(
      store.retired.map((s) => s.msn),
      [0],
    );
    assert.equal(store.segmentAt(0)?.msn, 0, 'retired, still found');
    assert.equal(store.segmentAt(2)?.msn, 2);
    assert.equal(store.segmentAt(3), undefined);
    assert.equal(store.part(2)?.data.toString(), 'c');
    assert.equal(store.part(0)?.data.toString(), 'a');
    assert.equal(store.part(4), undefined);
    assert.equal(store.segmentNamed('aaaaaaaa-seg0.m4s')?.msn, 0);
    assert.ok(store.init(init0));
    // Segment 0 (2 s) left a 4 s playlist: fetchable 6 s more.
    now += 5_999;
    assert.ok(store.segmentNamed('aaaaaaaa-seg0.m4s'));
    now += 2;
    assert.equal(store.segmentNamed('aaaaaaaa-seg0.m4s'), undefined);
    assert.ok(store.init(init0), 'still used by segment 1');
    store.add(segment(3, [part(4, 'e')], { initUri: init1 }));
    assert.equal(store.discontinuitySequence, 0);
    now += 10_000;
    store.add(segment(4, [part(5, 'f')], { initUri: init1 }));
    assert.equal(store.discontinuitySequence, 1, 'the discontinuity left the list');
    assert.equal(store.init(init0), undefined, 'nothing uses init0 any more');
    assert.ok(store.init(init1));
  });

  it('keeps at least minListSeconds listed', () => {
    const store = new SegmentStore({ prefix: 'aaaaaaaa', listSize: 2, minListSeconds: 14, now: () => 0 });
    store.addInit(Buffer.from('i'));
    for (let msn = 0; msn < 10; msn++) store.add(segment(msn, [part(msn, 'x')]));
    assert.equal(store.segments.length, 7);
    assert.equal(store.segments[0]!.msn, 3);
  });
});
