import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildFfmpegArgs, partFragmentMs } from '../../../src/pipeline/ffmpeg-args.ts';

/** PART-TARGET (s) → FFmpeg's fragment duration (ms) for LL-HLS: a tenth, within 20–100 ms. */
const cases: [number, number][] = [
  [0.2, 20],
  [0.33, 33],
  [0.5, 50],
  [1, 100],
  [2, 100],
];

describe('LL-HLS fragment duration', () => {
  for (const [part, ms] of cases) {
    it(`cuts ${ms} ms fragments for ${part} s parts`, () => assert.equal(partFragmentMs(part), ms));
  }

  it('reaches FFmpeg as -frag_duration in microseconds', () => {
    const args = buildFfmpegArgs({
      profile: 'copy',
      hasVideo: true,
      hasAudio: true,
      fragmentMs: partFragmentMs(0.5),
    });
    assert.equal(args[args.indexOf('-frag_duration') + 1], '50000');
  });
});
