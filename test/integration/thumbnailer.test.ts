/**
 * Thumbnails from real keyframes with real FFmpeg: a valid JPEG of the right size, at most one per
 * interval and after the first only on demand, a corrupt keyframe counted (never a crash), and nothing
 * left running after close().
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { readFlv } from '../../src/media/flv-reader.ts';
import { FlvTagType, type MediaTag } from '../../src/media/flv-tag.ts';
import { ChildReaper } from '../../src/pipeline/child-reaper.ts';
import { isJpeg, Thumbnailer } from '../../src/pipeline/thumbnailer.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { onceEvent } from '../../src/shared/typed-emitter.ts';
import { DIRTY_540X960, GLASSES_854X480 } from '../fixtures/dirty.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { jpegSize } from '../helpers/jpeg.ts';

async function video(name: 'glasses-854x480.flv' | 'dirty-540x960.flv') {
  const tags = readFlv(readFileSync(await fixturePath(name))).tags;
  const config = tags.find((t) => t.type === FlvTagType.Video && t.isConfig)!;
  const keyframes = tags.filter((t) => t.type === FlvTagType.Video && t.keyframe && !t.isConfig);
  return { config, keyframes };
}

/** The next thumbnail; rejects when the decode fails instead. */
function next(t: Thumbnailer): Promise<void> {
  return new Promise((resolve, reject) => {
    t.once('thumbnail', () => resolve());
    t.once('failed', () => reject(new Error('thumbnail failed')));
  });
}

test('a keyframe becomes a JPEG of the asked width, landscape and portrait', async () => {
  const reaper = new ChildReaper();
  try {
    for (const [name, fixture, expected] of [
      ['glasses-854x480.flv', GLASSES_854X480, { width: 320, height: 180 }],
      ['dirty-540x960.flv', DIRTY_540X960, { width: 320, height: 568 }],
    ] as const) {
      const { config, keyframes } = await video(name);
      assert.ok(fixture.width > 0);
      const t = new Thumbnailer({ reaper, log: silentLogger(), intervalMs: 0, width: 320 });
      t.setConfig(config);
      const done = next(t);
      t.keyframe(keyframes[1]!);
      await done;
      const thumb = t.latest!;
      assert.ok(isJpeg(thumb.jpeg));
      assert.deepEqual(jpegSize(thumb.jpeg), expected, name);
      assert.ok(thumb.jpeg.length < 40_000, `small: ${thumb.jpeg.length} bytes`);
      t.close();
    }
    assert.equal(reaper.size, 0);
  } finally {
    reaper.close();
  }
});

test('at most one per interval: later keyframes wait, only the newest is decoded', async () => {
  const reaper = new ChildReaper();
  let clock = 0;
  const { config, keyframes } = await video('glasses-854x480.flv');
  const t = new Thumbnailer({
    reaper,
    log: silentLogger(),
    intervalMs: 60_000,
    width: 160,
    now: () => clock,
  });
  try {
    t.setConfig(config);
    const first = next(t);
    t.keyframe(keyframes[0]!);
    await first;
    for (const k of keyframes.slice(1, 5)) t.keyframe(k); // within the interval: held, not decoded
    clock += 1000;
    assert.equal(t.stats.made, 1);
    assert.equal(reaper.size, 0, 'nothing running while waiting');
  } finally {
    t.close();
    reaper.close();
  }
  assert.equal(t.stats.made, 1);
});

test('a corrupt keyframe or one without configuration is a counted failure, not a crash', async () => {
  const reaper = new ChildReaper();
  const { config } = await video('glasses-854x480.flv');
  const t = new Thumbnailer({ reaper, log: silentLogger(), intervalMs: 0, width: 160 });
  try {
    const junk: MediaTag = {
      type: FlvTagType.Video,
      timestamp: 0,
      data: Buffer.concat([Buffer.from([0x17, 1, 0, 0, 0]), Buffer.alloc(2000, 0x55)]),
      keyframe: true,
      isConfig: false,
    };
    t.keyframe(junk); // no configuration yet: dropped
    assert.equal(reaper.size, 0);
    t.setConfig(config);
    const failed = onceEvent(t, 'failed');
    t.keyframe(junk);
    await failed;
    assert.equal(t.stats.failed, 1);
    assert.equal(t.latest, null);
  } finally {
    t.close();
    reaper.close();
  }
});

test('after the first, thumbnails are made only while somebody asks: fresh() waits for the decode it starts', async () => {
  const reaper = new ChildReaper();
  let clock = 0;
  const { config, keyframes } = await video('glasses-854x480.flv');
  const t = new Thumbnailer({ reaper, log: silentLogger(), intervalMs: 1000, width: 160, now: () => clock });
  try {
    t.setConfig(config);
    const first = next(t);
    t.keyframe(keyframes[0]!);
    await first; // the first comes unasked
    clock += 5000;
    t.keyframe(keyframes[1]!);
    assert.equal(reaper.size, 0, 'nobody asked: the keyframe is held, not decoded');
    assert.equal(t.stats.made, 1);

    clock += 1000;
    const asked = await t.fresh(2000); // the latest is 6 s old: this starts a decode and waits for it
    assert.equal(t.stats.made, 2);
    assert.equal(asked?.at, 6000, 'the fresh one, not the stale one');
    assert.ok(asked && isJpeg(asked.jpeg));

    clock += 1500; // within the demand window (3 × interval): keyframes are decoded again
    const third = next(t);
    t.keyframe(keyframes[2]!);
    await third;
    assert.equal(t.stats.made, 3);
    assert.equal((await t.fresh(2000))?.at, 7500, 'young enough: answered at once');

    clock += 10_000; // the window is over: held again
    t.keyframe(keyframes[3]!);
    assert.equal(reaper.size, 0);
  } finally {
    t.close();
    reaper.close();
  }
  assert.equal(t.stats.made, 3);
});
