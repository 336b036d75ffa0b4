/**
 * TARGETDURATION decided by the first segment from the GOP it saw (segmenter.ts), through the packager: 2 s
 * keyframes give 2, 1 s keyframes 1, 8 s keyframes the cap (cut there, a breach); fixed from then on, so a
 * GOP that grows later is cut at it and counted. And what a profile allows (targetDurationFor).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packager, type TargetDurationRange } from '../../../src/hls/packager.ts';
import type { Fmp4Fragment, Fmp4Init } from '../../../src/media/fmp4.ts';
import { targetDurationFor } from '../../../src/stream/stream.ts';

const VIDEO = 1;
const FPS = 30;
const INIT: Fmp4Init = {
  data: Buffer.from('init'),
  tracks: [{ id: VIDEO, kind: 'video', timescale: 90_000, codec: 'avc1.64001f' }],
} as unknown as Fmp4Init;

function frame(n: number, keyframe: boolean): Fmp4Fragment {
  return {
    data: Buffer.from(`f${n};`),
    sequence: n,
    runs: [{ trackId: VIDEO, baseDecodeTime: n, sampleCount: 1, duration: 1, firstSampleIsSync: keyframe }],
    keyframe,
    startSeconds: n / FPS,
    durationSeconds: 1 / FPS,
  };
}

/** Feeds `seconds` of 30 fps video with a keyframe at each time of `keyframes` (seconds). */
function feed(p: Packager, seconds: number, keyframes: (s: number) => boolean): void {
  for (let n = 0; n < seconds * FPS; n++) p.pushFragment(frame(n, keyframes(n / FPS)));
}

const every = (gop: number) => (s: number) => Math.abs(s / gop - Math.round(s / gop)) < 1e-6;

function packager(range: TargetDurationRange, lowLatency = true): Packager {
  const p = new Packager({
    segmentSeconds: 2,
    targetDuration: range,
    listSize: 5,
    lowLatency,
    prefix: 'aaaaaaaa',
  });
  p.setInit(INIT);
  return p;
}

const tdOf = (p: Packager): number => Number(/#EXT-X-TARGETDURATION:(\d+)\n/.exec(p.playlist())?.[1]);

describe('TARGETDURATION from the first GOP', () => {
  const copy = targetDurationFor('copy', 2, 6);

  for (const [gop, td, breaches] of [
    [2, 2, 0],
    [1, 1, 0],
    [8, 6, 3], // cut at 6 s each time the 8 s GOP runs past it: 6 | 2 + 4 | 4 + 2 | 6 ...
  ] as const) {
    it(`${gop} s keyframes give TARGETDURATION ${td} (copy: 1..6)`, () => {
      const p = packager(copy);
      assert.equal(p.targetDurationDecided, false);
      assert.equal(p.targetDuration, 6, 'until decided, the most it may become bounds the open segment');
      feed(p, 24, every(gop));
      assert.equal(p.targetDurationDecided, true);
      assert.equal(tdOf(p), td);
      for (const s of p.segments) assert.ok(Math.round(s.duration) <= td, `${s.duration} s > ${td}`);
      assert.ok(p.stats.breaches >= breaches, `${p.stats.breaches} breaches`);
      if (breaches === 0) assert.equal(p.stats.breaches, 0);
      assert.match(p.playlist(), new RegExp(`HOLD-BACK=${(3 * td).toFixed(3)}`));
    });
  }

  it('stays fixed when a GOP grows later: the longer GOP is cut at it and counted', () => {
    const p = packager(copy);
    // 2 s keyframes for 6 s, then one every 5 s.
    feed(p, 21, (s) => (s < 6 ? every(2)(s) : every(5)(s - 6)));
    assert.equal(tdOf(p), 2);
    for (const s of p.segments) assert.ok(Math.round(s.duration) <= 2, `${s.duration} s`);
    assert.ok(p.stats.breaches > 0);
  });

  it('a classic stream decides the same way; the playlist is not served before (404 until ready)', () => {
    const p = packager(copy, false);
    feed(p, 1.9, every(2));
    assert.equal(p.ready, false);
    feed(p, 8, every(2));
    assert.equal(tdOf(p), 2);
  });

  it('auto never announces less than the transcode GOP (a switch must still fit)', () => {
    const auto = targetDurationFor('auto', 2, 6);
    assert.deepEqual(auto, { min: 2, max: 4 });
    const p = packager(auto);
    feed(p, 12, every(1));
    assert.equal(tdOf(p), 2);
    assert.equal(p.stats.breaches, 0);
    assert.deepEqual(targetDurationFor('transcode', 2, 6), { min: 2, max: 2 });
    assert.deepEqual(targetDurationFor('abr', 4, 6), { min: 2, max: 4 });
  });

  it('a first segment cut short (the publisher gone) announces no less than the segment target', () => {
    const p = packager(copy);
    feed(p, 0.6, every(2));
    p.closeOpen();
    assert.equal(tdOf(p), 2);
  });
});
