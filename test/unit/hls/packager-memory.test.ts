/**
 * Media bytes are held once: after many segments of synthetic fragments, the ArrayBuffers reachable from a
 * packager's segments and parts (listed, retired, open) add up to exactly the media bytes it holds (no
 * second copy, no slack, no slice of a shared pool), before and after segments are joined; and the process's
 * ArrayBuffer memory (after a GC, with the test's own references gone) grows by about that much, which
 * would also show copies kept out of sight (the open segment's fragments beside its parts). Not timing-based.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Packager, type Part, type Segment } from '../../../src/hls/packager.ts';
import type { Fmp4Fragment, Fmp4Init } from '../../../src/media/fmp4.ts';

const VIDEO = 1;
const AUDIO = 2;
const INIT: Fmp4Init = {
  data: Buffer.from('init'),
  tracks: [
    { id: VIDEO, kind: 'video', timescale: 90_000, codec: 'avc1.42c01f', width: 480, height: 854 },
    { id: AUDIO, kind: 'audio', timescale: 48_000, codec: 'mp4a.40.2', sampleRate: 48_000, channels: 1 },
  ],
};
const FPS = 13;
const GOP_FRAMES = 26;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
/**
 * ArrayBuffer memory after a full collection. V8 frees backing stores behind the collection (concurrently);
 * the next collection waits for that, so three leave only what is reachable.
 */
function arrayBufferBytes(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().arrayBuffers;
}

/** Producer-like bytes: allocUnsafe, so the small ones are slices of Node's shared pool, as FFmpeg's are. */
function bytes(size: number, fill: number): Buffer {
  return Buffer.allocUnsafe(size).fill(fill);
}

function videoFragment(n: number, size: number): Fmp4Fragment {
  const keyframe = n % GOP_FRAMES === 0;
  return {
    data: bytes(size, n & 0xff),
    sequence: n,
    runs: [
      {
        trackId: VIDEO,
        baseDecodeTime: n * 6923,
        sampleCount: 1,
        duration: 6923,
        firstSampleIsSync: keyframe,
      },
    ],
    keyframe,
    startSeconds: n / FPS,
    durationSeconds: 1 / FPS,
  };
}

function audioFragment(n: number, size: number): Fmp4Fragment {
  return {
    data: bytes(size, 0xaa),
    sequence: n,
    runs: [
      { trackId: AUDIO, baseDecodeTime: n * 3692, sampleCount: 3, duration: 3072, firstSampleIsSync: true },
    ],
    keyframe: false,
    startSeconds: (n + 0.5) / FPS,
    durationSeconds: 3072 / 48_000,
  };
}

/**
 * Feeds frames [from, to) at 13 fps (a keyframe every 2 s) with an audio-only fragment after each but the
 * last (so the last part closes on a frame); returns the bytes fed.
 */
function feed(p: Packager, from: number, to: number, frameBytes: number): number {
  let fed = 0;
  for (let n = from; n < to; n++) {
    const v = videoFragment(n, n % GOP_FRAMES === 0 ? frameBytes * 6 : frameBytes);
    fed += v.data.length;
    p.pushFragment(v);
    if (n === to - 1) break;
    const a = audioFragment(n, 300);
    fed += a.data.length;
    p.pushFragment(a);
  }
  return fed;
}

/** Every part the packager holds (listed, retired, open), once. */
function heldParts(p: Packager): Part[] {
  const segments: readonly Segment[] = [...p.retiredSegments, ...p.segments];
  return [...segments.flatMap((s) => s.parts), ...p.openParts];
}

/** Sum of the byte lengths of the distinct ArrayBuffers behind the parts (and joined segments). */
function retainedBytes(buffers: readonly Buffer[]): number {
  const distinct = new Set(buffers.map((b) => b.buffer));
  return [...distinct].reduce((sum, ab) => sum + ab.byteLength, 0);
}

const mediaBytes = (parts: readonly Part[]): number => parts.reduce((sum, part) => sum + part.data.length, 0);

describe('packager memory', () => {
  it('holds each media byte once: parts own their bytes, joined segments are shared by their parts', () => {
    let now = 1_000_000;
    const p = new Packager({
      segmentSeconds: 2,
      targetDuration: 2,
      listSize: 5,
      lowLatency: true,
      partSeconds: 0.5,
      prefix: 'aaaaaaaa',
      now: () => now,
    });
    p.setInit(INIT);
    // 30 segments and 12 frames of the next (two listed parts); the clock stands, so none expires yet.
    const fed = feed(p, 0, 30 * GOP_FRAMES + 12, 5000);
    assert.equal(p.stats.droppedFragments, 0);
    assert.equal(p.segments.length + p.retiredSegments.length, 30);
    assert.equal(p.openParts.length, 2);

    const parts = heldParts(p);
    assert.equal(mediaBytes(parts), fed, 'every byte fed is in a part');
    assert.equal(retainedBytes(parts.map((x) => x.data)), fed, 'and held once, nothing more');

    // Segments joined (as when players ask for them): their parts become views, still one copy.
    const segments = [...p.retiredSegments, ...p.segments];
    for (const s of segments) {
      assert.deepEqual(s.data, Buffer.concat(s.parts.map((x) => x.data)));
      assert.equal(p.resource(s.uri)?.data, s.data, 'served as it is');
    }
    const joined = heldParts(p).map((x) => x.data);
    for (const s of segments) joined.push(s.data);
    assert.equal(retainedBytes(joined), fed, 'joined segments and their parts share the bytes');
    for (const s of segments) for (const x of s.parts) assert.equal(x.data.buffer, s.data.buffer);

    // Retired segments expire: what is held is what is listed.
    now += 60_000;
    assert.equal(p.resource(segments[0]!.uri), undefined);
    assert.equal(p.retiredSegments.length, 0);
    const listed = heldParts(p);
    assert.equal(
      retainedBytes([...listed.map((x) => x.data), ...p.segments.map((s) => s.data)]),
      mediaBytes(listed),
    );
  });

  it('grows the process by the bytes it holds, not twice that for the open segment', () => {
    const before = arrayBufferBytes();
    // Large frames, and a segment target the open segment fills for long: a second copy of it would show.
    const p = new Packager({
      segmentSeconds: 6,
      targetDuration: 6,
      listSize: 5,
      lowLatency: true,
      partSeconds: 0.5,
      prefix: 'bbbbbbbb',
    });
    p.setInit(INIT);
    const frames = 3 * GOP_FRAMES; // three 2 s GOPs: one 6 s segment, all of it open
    const fed = feed(p, 0, frames, 60_000);
    assert.equal(p.segments.length, 0);
    assert.ok(p.openParts.length >= 10);
    const held = mediaBytes(heldParts(p));
    assert.equal(held, fed);
    const grown = arrayBufferBytes() - before;
    assert.ok(
      Math.abs(grown - held) < held * 0.05,
      `ArrayBuffer memory grew by ${grown} bytes for ${held} bytes of media`,
    );
    p.closeOpen();
    const closed = arrayBufferBytes() - before;
    assert.ok(Math.abs(closed - held) < held * 0.05, `after the close: ${closed} bytes for ${held}`);
    assert.equal(p.segments[0]!.fragments.length, 2 * frames - 1, 'its fragments, as facts');
  });
});
