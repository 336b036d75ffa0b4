import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SEQ_MAX, seqAdd, seqDiff, seqLess, seqLessOrEqual, seqNext } from '../../../src/srt/seq.ts';

describe('srt sequence numbers', () => {
  const cases: { a: number; b: number; diff: number }[] = [
    { a: 0, b: 0, diff: 0 },
    { a: 5, b: 9, diff: 4 },
    { a: 9, b: 5, diff: -4 },
    { a: SEQ_MAX, b: 0, diff: 1 },
    { a: SEQ_MAX - 2, b: 3, diff: 6 },
    { a: 3, b: SEQ_MAX - 2, diff: -6 },
    { a: 0, b: 0x3fffffff, diff: 0x3fffffff },
  ];
  for (const c of cases) {
    it(`distance ${c.a} → ${c.b} is ${c.diff}`, () => {
      assert.equal(seqDiff(c.a, c.b), c.diff);
      assert.equal(seqAdd(c.a, c.diff), c.b);
      assert.equal(seqLess(c.a, c.b), c.diff > 0);
      assert.equal(seqLessOrEqual(c.a, c.b), c.diff >= 0);
    });
  }

  it('wraps at 2^31', () => {
    assert.equal(seqNext(SEQ_MAX), 0);
    assert.equal(seqAdd(0, -1), SEQ_MAX);
    assert.equal(seqAdd(SEQ_MAX, 10), 9);
  });
});
