/**
 * The segmenter on its own, with a fake PDT clock (function fields) and its hooks recorded: what it hands on
 * and when, the bytes a closed part owns, the open segment's parts by number, dates fixed at first listing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClosedSegment, Part } from '../../../src/hls/segment-store.ts';
import { type SegmentClock, Segmenter } from '../../../src/hls/segmenter.ts';
import type { Fmp4Fragment } from '../../../src/media/fmp4.ts';

const VIDEO = 1;

function frame(n: number, fps: number, gop: number): Fmp4Fragment {
  const keyframe = n % (gop * fps) === 0;
  return {
    data: Buffer.from(`frame${n};`),
    sequence: n,
    runs: [{ trackId: VIDEO, baseDecodeTime: n, sampleCount: 1, duration: 1, firstSampleIsSync: keyframe }],
    keyframe,
    startSeconds: n / fps,
    durationSeconds: 1 / fps,
  };
}

function setup(lowLatency: boolean) {
  const events: string[] = [];
  const parts: Part[] = [];
  const segments: ClosedSegment[] = [];
  const dated: number[] = [];
  const clock: SegmentClock = {
    arrived: () => {},
    dateOf: (s) => {
      dated.push(s);
      return 1000 * s;
    },
  };
  const segmenter = new Segmenter({
    prefix: 'aaaaaaaa',
    segmentSeconds: 2,
    targetDuration: 2,
    partTarget: 0.5,
    lowLatency,
    clock,
    onPart: (part) => {
      events.push(`part ${part.n}`);
      parts.push(part);
    },
    onSegment: (segment) => {
      events.push(`segment ${segment.msn}`);
      segments.push(segment);
    },
  });
  return { segmenter, events, parts, segments, dated };
}

describe('segmenter', () => {
  it('hands on each part as it closes, then the segment; a part owns its bytes', () => {
    const { segmenter, events, parts, segments } = setup(true);
    segmenter.newRun('aaaaaaaa-init0.mp4', VIDEO);
    const fed = Array.from({ length: 31 }, (_, n) => frame(n, 15, 2));
    for (const f of fed) segmenter.push(f);
    assert.deepEqual(events, ['part 0', 'part 1', 'part 2', 'part 3', 'part 4', 'segment 0']);
    assert.equal(segments[0]!.uri, 'aaaaaaaa-seg0.m4s');
    assert.equal(segments[0]!.parts.length, 5);
    assert.equal(segments[0]!.fragments.length, 30);
    assert.deepEqual(
      Buffer.concat(segments[0]!.parts.map((p) => p.data)),
      Buffer.concat(fed.slice(0, 30).map((f) => f.data)),
    );
    for (const p of parts) assert.equal(p.data.buffer.byteLength, p.data.length, 'a Buffer of its own');
    // The kept fragments are views into their part, not the producer's buffers.
    const first = segments[0]!.fragments[0]!;
    assert.equal(first.data.buffer, parts[0]!.data.buffer);
    assert.notEqual(first.data, fed[0]!.data);
  });

  it('finds the open segment parts by number, and knows the ones still to come', () => {
    const { segmenter } = setup(true);
    segmenter.newRun('aaaaaaaa-init0.mp4', VIDEO);
    for (let n = 0; n < 30 + 14; n++) segmenter.push(frame(n, 15, 2));
    assert.equal(segmenter.nextMsn, 1);
    assert.deepEqual(
      segmenter.listedParts.map((p) => p.n),
      [5, 6],
    );
    assert.equal(segmenter.openPart(6)?.uri, 'aaaaaaaa-part6.m4s');
    assert.ok(segmenter.holdsPart(6) && segmenter.holdsPart(7) && !segmenter.holdsPart(4));
    assert.equal(segmenter.openPart(7), undefined, 'not made yet');
    assert.equal(segmenter.nextPart, 7);
    segmenter.closeOpen();
    assert.equal(segmenter.isOpen, false);
    assert.ok(segmenter.holdsPart(7) && !segmenter.holdsPart(6), 'the next part is still to come');
  });

  it('dates a segment once: at its first listed part with low latency, at its close without', () => {
    for (const lowLatency of [true, false]) {
      const { segmenter, dated, segments } = setup(lowLatency);
      segmenter.newRun('aaaaaaaa-init0.mp4', VIDEO);
      for (let n = 0; n < 8; n++) segmenter.push(frame(n, 15, 2));
      assert.deepEqual(dated, lowLatency ? [0] : []);
      assert.equal(segmenter.listing?.programDateTime, lowLatency ? 0 : undefined);
      for (let n = 8; n < 31; n++) segmenter.push(frame(n, 15, 2));
      assert.deepEqual(dated, [0]);
      assert.equal(segments[0]!.programDateTime, 0);
    }
  });

  it('drops what comes before a run or after the end', () => {
    const { segmenter, segments } = setup(false);
    segmenter.push(frame(0, 15, 2));
    segmenter.newRun('aaaaaaaa-init0.mp4', VIDEO);
    for (let n = 0; n < 10; n++) segmenter.push(frame(n, 15, 2));
    segmenter.end();
    segmenter.push(frame(10, 15, 2));
    assert.equal(segmenter.stats.droppedFragments, 2);
    assert.equal(segmenter.stats.fragments, 10);
    assert.equal(segments.length, 1);
    assert.ok(segmenter.ended);
  });
});
