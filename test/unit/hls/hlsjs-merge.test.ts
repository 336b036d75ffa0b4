/**
 * The packager's playlists, loaded in order by hls.js's own parser and playlist merge (hlsjs-playlists.ts),
 * classic and low-latency, as a player that joins early and then reloads would see them. Seen in Chromium
 * (copy-players, B-frames, classic): the first plain playlist of a starting stream ended on its only
 * segment's URI (no open parts, no preload hint); hls.js's parser takes a segment ending a playlist with
 * parts for the fragment hint, and merging the next reload compared segment 1 against it: "media sequence
 * mismatch 1", fatal. Delta updates (EXT-X-SKIP) are loaded the same way, from the start of the stream on.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_PART_SECONDS, Packager } from '../../../src/hls/packager.ts';
import type { Fmp4Fragment, Fmp4Init } from '../../../src/media/fmp4.ts';
import { targetDurationFor } from '../../../src/stream/stream.ts';
import { HlsJsPlaylists } from './hlsjs-playlists.ts';

const VIDEO = 1;
const FPS = 15;
const INIT: Fmp4Init = {
  data: Buffer.from('init'),
  tracks: [{ id: VIDEO, kind: 'video', timescale: 90_000, codec: 'avc1.4d401e' }],
} as unknown as Fmp4Init;

/** A copy stream at 15 fps with 2 s keyframes, the default part target, one frame per fragment. */
class Feed {
  readonly packager = new Packager({
    segmentSeconds: 2,
    targetDuration: targetDurationFor('copy', 2, 6),
    listSize: 5,
    lowLatency: true,
    partSeconds: DEFAULT_PART_SECONDS,
    prefix: 'b0b0b0b0',
    startGraceMs: 60_000,
  });
  frame = 0;

  constructor() {
    this.packager.setInit(INIT);
  }

  frames(count: number): void {
    for (let i = 0; i < count; i++, this.frame++) {
      const n = this.frame;
      const keyframe = n % (2 * FPS) === 0;
      const fragment: Fmp4Fragment = {
        data: Buffer.from(`f${n};`),
        sequence: n,
        runs: [
          { trackId: VIDEO, baseDecodeTime: n, sampleCount: 1, duration: 1, firstSampleIsSync: keyframe },
        ],
        keyframe,
        startSeconds: n / FPS,
        durationSeconds: 1 / FPS,
      } as unknown as Fmp4Fragment;
      this.packager.pushFragment(fragment);
    }
  }

  /**
   * Frames until what a reload waits for exists: the next part (hls.js in low-latency mode), or the next
   * segment complete (classic: hls.js asks for the last part of the next segment).
   */
  untilUpdate(part: boolean): void {
    const { openMsn, openParts } = this.packager.edge;
    for (let i = 0; i < 3 * FPS; i++) {
      this.frames(1);
      const edge = this.packager.edge;
      if (edge.openMsn !== openMsn || (part && edge.openParts !== openParts)) return;
    }
  }
}

describe('playlists hls.js merges', () => {
  it('hls.js takes a segment ending a playlist with parts for its fragment hint (why one never ends so)', () => {
    const text = [
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      '#EXT-X-TARGETDURATION:2',
      '#EXT-X-PART-INF:PART-TARGET=0.334',
      '#EXT-X-MEDIA-SEQUENCE:0',
      '#EXT-X-PART:DURATION=0.334,URI="p0.m4s",INDEPENDENT=YES',
      '#EXTINF:2.000,',
      's0.m4s',
      '',
    ].join('\n');
    const player = new HlsJsPlaylists({ lowLatencyMode: false });
    assert.deepEqual(player.load(text), []);
    // If this fails, hls.js changed: the rule in Packager.playlist() may then be relaxed.
    assert.equal(player.details?.fragmentHint?.relurl, 's0.m4s');
  });

  for (const lowLatencyMode of [false, true]) {
    const mode = lowLatencyMode ? 'LL' : 'classic';

    it(`${mode}: a plain request right after the first segment, then a reload once the next one is complete`, () => {
      const feed = new Feed();
      feed.frames(2 * FPS + 3); // the first segment and a part of the next: a player starting now is early
      const first = feed.packager.playlist({ plain: true });
      feed.frames(2 * FPS + 10); // segment 1 complete, parts of segment 2 (hls.js asked _HLS_msn=1&_HLS_part=5)
      const player = new HlsJsPlaylists({ lowLatencyMode });
      assert.deepEqual(player.load(first), []);
      assert.deepEqual(player.load(feed.packager.playlist({ skip: true }), true), []);
      assert.equal(player.details?.endSN, 1);
      // The early playlist as it stood when segment 0 completed: segment 1's first part is its hint.
      assert.match(first, /b0b0b0b0-seg0\.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="b0b0b0b0-part6\.m4s"\n$/);
    });

    it(`${mode}: players joining anywhere in the first 12 s reload for 20 s (delta updates included) without an error`, () => {
      let deltas = 0;
      for (let join = FPS; join < 12 * FPS; join += 4) {
        const feed = new Feed();
        feed.frames(join);
        if (!feed.packager.ready) continue;
        const player = new HlsJsPlaylists({ lowLatencyMode });
        assert.deepEqual(player.load(feed.packager.playlist({ plain: true })), [], `join at frame ${join}`);
        while (feed.frame < join + 20 * FPS) {
          feed.untilUpdate(lowLatencyMode);
          const text = feed.packager.playlist({ skip: true });
          if (text.includes('#EXT-X-SKIP')) deltas++;
          assert.deepEqual(
            player.load(text, true),
            [],
            `join at frame ${join}, reload at frame ${feed.frame}`,
          );
        }
      }
      assert.ok(deltas > 0, 'delta updates were loaded');
    });
  }
});
