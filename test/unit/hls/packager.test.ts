import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packager } from '../../../src/hls/packager.ts';
import type { Fmp4Fragment, Fmp4Init } from '../../../src/media/fmp4.ts';

const init = (n: number): Fmp4Init => ({ data: Buffer.from(`init${n}`), tracks: [] });
let seq = 0;
function frag(start: number, duration: number, keyframe: boolean): Fmp4Fragment {
  seq++;
  return {
    data: Buffer.from(`f${seq}`),
    sequence: seq,
    runs: [],
    keyframe,
    startSeconds: start,
    durationSeconds: duration,
  };
}

/** Feeds fragments of `fragment` seconds with a keyframe every `gop` seconds, from `from` to `to`. */
function feed(p: Packager, from: number, to: number, fragment: number, gop: number): void {
  for (let t = from; t < to - 1e-9; t += fragment) {
    const keyframe = Math.abs(t / gop - Math.round(t / gop)) < 1e-9;
    p.pushFragment(frag(t, fragment, keyframe));
  }
}

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('packager', () => {
  it('cuts 2 s segments on keyframe fragments and announces ready on the first', () => {
    const c = clock();
    const p = new Packager({
      segmentSeconds: 2,
      targetDuration: 2,
      listSize: 5,
      now: c.now,
      prefix: 'aaaaaaaa',
    });
    let ready = 0;
    p.on('ready', () => ready++);
    p.setInit(init(0));
    feed(p, 0, 6.5, 0.5, 2);
    assert.deepEqual(
      p.segments.map((s) => s.duration),
      [2, 2, 2],
    );
    assert.equal(ready, 1);
    assert.ok(p.segments.every((s) => s.independent));
    assert.match(p.playlist(), /#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n/);
  });

  it('keeps 5 segments listed, a monotonic MEDIA-SEQUENCE, and removed segments fetchable for a while', () => {
    const c = clock();
    const p = new Packager({
      segmentSeconds: 2,
      targetDuration: 2,
      listSize: 5,
      now: c.now,
      prefix: 'aaaaaaaa',
    });
    p.setInit(init(0));
    for (let i = 0; i < 8; i++) {
      feed(p, i * 2, i * 2 + 2, 0.5, 2);
      c.advance(2000);
    }
    p.closeOpen();
    assert.equal(p.segments.length, 5);
    assert.equal(p.segments[0]!.msn, 3);
    assert.match(p.playlist(), /#EXT-X-MEDIA-SEQUENCE:3\n/);
    assert.ok(p.resource('aaaaaaaa-seg0.m4s'), 'a just-removed segment is still served');
    c.advance((2 + 10) * 1000 + 1);
    assert.equal(p.resource('aaaaaaaa-seg0.m4s'), undefined, 'and gone after segment + playlist duration');
    assert.ok(p.resource('aaaaaaaa-seg7.m4s'));
    assert.ok(p.resource('aaaaaaaa-init0.mp4'));
    assert.equal(p.resource('aaaaaaaa-seg99.m4s'), undefined);
    assert.equal(p.resource('../../etc/passwd'), undefined);
  });

  it('never exceeds TARGETDURATION: a long GOP is cut anyway and counted as a breach', () => {
    const p = new Packager({ segmentSeconds: 2, targetDuration: 6, listSize: 5, prefix: 'aaaaaaaa' });
    p.setInit(init(0));
    feed(p, 0, 20, 0.5, 10); // 10 s GOPs
    p.closeOpen();
    assert.ok(
      p.segments.every((s) => Math.round(s.duration) <= 6),
      p.segments.map((s) => s.duration).join(),
    );
    assert.ok(p.stats.breaches >= 2);
    assert.ok(p.segments.some((s) => !s.independent));
  });

  it('puts a discontinuity and a new EXT-X-MAP after a new init, and counts it when it leaves the list', () => {
    const p = new Packager({ segmentSeconds: 2, targetDuration: 2, listSize: 2, prefix: 'aaaaaaaa' });
    p.setInit(init(0));
    feed(p, 0, 4, 0.5, 2);
    p.setInit(init(1)); // FFmpeg restarted: timestamps start over
    feed(p, 0, 4, 0.5, 2);
    p.closeOpen();
    const text = p.playlist();
    assert.match(text, /#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="aaaaaaaa-init1.mp4"/);
    assert.match(text, /#EXT-X-DISCONTINUITY-SEQUENCE:0\n/);
    assert.equal(p.stats.discontinuities, 1);
    feed(p, 4, 8, 0.5, 2);
    p.closeOpen();
    assert.match(p.playlist(), /#EXT-X-DISCONTINUITY-SEQUENCE:1\n/);
    assert.doesNotMatch(p.playlist(), /#EXT-X-DISCONTINUITY\n/);
  });

  it('discards the open segment from a time (profile switch) and ends with ENDLIST', () => {
    const p = new Packager({ segmentSeconds: 2, targetDuration: 4, listSize: 5, prefix: 'aaaaaaaa' });
    p.setInit(init(0));
    feed(p, 0, 3.5, 0.5, 1);
    p.discardFrom(3);
    p.end();
    assert.deepEqual(
      p.segments.map((s) => s.duration),
      [2, 1],
    );
    assert.equal(p.stats.droppedFragments, 1);
    assert.match(p.playlist(), /#EXT-X-ENDLIST\n$/);
    p.pushFragment(frag(9, 0.5, true));
    assert.equal(p.segments.length, 2, 'nothing is added after the end');
  });

  it('closes a segment at a hinted keyframe without waiting for its fragment, never mid-GOP', () => {
    const p = new Packager({ segmentSeconds: 2, targetDuration: 4, listSize: 5, prefix: 'aaaaaaaa' });
    p.setInit(init(0));
    p.hintKeyframe(1); // too early for a 2 s target: must not cut later mid-GOP
    feed(p, 0, 2, 0.5, 1);
    assert.equal(p.segments.length, 0);
    p.hintKeyframe(2);
    assert.equal(p.segments.length, 1, 'closed at the hint, before the keyframe fragment arrived');
    assert.equal(p.segments[0]!.duration, 2);
    p.pushFragment(frag(2, 0.5, true));
    p.pushFragment(frag(2.5, 0.5, false));
    p.closeOpen();
    assert.ok(p.segments.every((s) => s.independent));
  });

  it('drops fragments that arrive before any init', () => {
    const p = new Packager({ segmentSeconds: 2, targetDuration: 2, listSize: 5 });
    p.pushFragment(frag(0, 0.5, true));
    assert.equal(p.stats.droppedFragments, 1);
    assert.equal(p.ready, false);
    assert.match(p.prefix, /^[0-9a-f]{8}$/);
  });
});
