/**
 * The pure parts of recordings: store keys from names (traversal refused), the listing and the replay
 * playlist from part manifests, the MP4 plan across parts and the tfdt shift, the s3:// URL, and the
 * directory store (keys stay under its root; deletes leave no empty directories).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { box, fullBox, u32 } from '../../../src/media/mp4-boxes.ts';
import { DirStore } from '../../../src/record/dir-store.ts';
import { mediaKey, partManifestKey, recordingIdOf, streamPrefix } from '../../../src/record/layout.ts';
import { type PartManifest, renderReplayPlaylist, summarize } from '../../../src/record/manifest.ts';
import { planMp4, shiftTfdt } from '../../../src/record/mp4.ts';
import { parseS3Url } from '../../../src/record/store.ts';

const ref = { userPath: 'me-x.com', streamId: 's1', recordingId: recordingIdOf(1_733_000_000_000) };

function part(over: Partial<PartManifest> & { partId: string }): PartManifest {
  return {
    v: 1,
    relayId: 'r1',
    userId: 'me@x.com',
    userPath: 'me-x.com',
    streamId: 's1',
    recordingId: ref.recordingId,
    startedAt: 1_733_000_000_000,
    updatedAt: 1_733_000_100_000,
    endedAt: 1_733_000_100_000,
    closed: true,
    segments: [],
    thumbnail: false,
    dropped: 0,
    ...over,
  };
}

const seg = (n: number, init: number, duration: number, start: number, discontinuity = false) => ({
  n,
  init,
  duration,
  discontinuity,
  bytes: 100,
  tracks: [[1, 90_000, start * 90_000, (start + duration) * 90_000] as [number, number, number, number]],
});

describe('recording layout', () => {
  it('builds keys from valid names only', () => {
    assert.equal(streamPrefix('me-x.com', 's1'), 'me-x.com/s1/');
    assert.equal(
      mediaKey(ref, '0123456789abcdef', 'seg3.m4s'),
      `me-x.com/s1/${ref.recordingId}/0123456789abcdef/seg3.m4s`,
    );
    assert.equal(
      partManifestKey(ref, '0123456789abcdef'),
      `me-x.com/s1/${ref.recordingId}/parts/0123456789abcdef.json`,
    );
    for (const bad of [
      () => streamPrefix('..', 's1'),
      () => streamPrefix('a/b', 's1'),
      () => streamPrefix('a', '../s'),
      () => mediaKey({ ...ref, recordingId: '../x' }, '0123456789abcdef', 'seg1.m4s'),
      () => mediaKey(ref, '../../etc', 'seg1.m4s'),
      () => mediaKey(ref, '0123456789abcdef', '../parts/x.json'),
      () => mediaKey(ref, '0123456789abcdef', 'seg1.m4s/../../x'),
    ])
      assert.throws(bad);
  });

  it('parses s3:// URLs and refuses odd prefixes', () => {
    assert.deepEqual(parseS3Url('s3://bucket-1/rec/live/'), { bucket: 'bucket-1', prefix: 'rec/live/' });
    assert.deepEqual(parseS3Url('s3://bucket'), { bucket: 'bucket', prefix: '' });
    assert.equal(parseS3Url('./recordings'), null);
    assert.throws(() => parseS3Url('s3://bucket/../x'));
    assert.throws(() => parseS3Url('s3://B'));
  });
});

describe('listing and replay playlist', () => {
  const a = part({
    partId: 'aaaaaaaaaaaaaaaa',
    segments: [seg(0, 0, 10, 0), seg(1, 0, 4, 10), seg(2, 1, 6, 14, true)],
  });
  const b = part({ partId: 'bbbbbbbbbbbbbbbb', startedAt: 1_733_000_200_000, segments: [seg(0, 0, 8, 0)] });

  it('one recording from two parts, ready when both are closed', () => {
    const [r] = summarize([b, a], 'http://h/recordings/me-x.com/s1', 1_733_000_300_000, 'token=t');
    assert.equal(r?.id, ref.recordingId);
    assert.equal(r?.state, 'ready');
    assert.equal(r?.durationSeconds, 28);
    assert.equal(r?.hlsUrl, `http://h/recordings/me-x.com/s1/${ref.recordingId}/index.m3u8?token=t`);
    assert.equal(r?.mp4Url, `http://h/recordings/me-x.com/s1/${ref.recordingId}/recording.mp4?token=t`);
    assert.equal(r?.startedAt, new Date(1_733_000_000_000).toISOString());
    const open = summarize(
      [a, { ...b, closed: false, updatedAt: 1_733_000_290_000 }],
      'x',
      1_733_000_300_000,
    );
    assert.equal(open[0]?.state, 'uploading');
    // A part whose relay went silent long ago is closed for the listing.
    const stale = summarize([a, { ...b, closed: false }], 'x', 1_733_000_100_000 + 3_600_000);
    assert.equal(stale[0]?.state, 'ready');
    assert.equal(
      summarize([a, b], 'x', 1_733_000_300_000, '', new Set([ref.recordingId]))[0]?.state,
      'uploading',
    );
  });

  it('VOD playlist: discontinuities at a new init and between parts, a map per init', () => {
    const text = renderReplayPlaylist([b, a], true);
    assert.equal(
      text,
      [
        '#EXTM3U',
        '#EXT-X-VERSION:7',
        '#EXT-X-TARGETDURATION:10',
        '#EXT-X-PLAYLIST-TYPE:VOD',
        '#EXT-X-MEDIA-SEQUENCE:0',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        '#EXT-X-MAP:URI="aaaaaaaaaaaaaaaa/init0.mp4"',
        '#EXTINF:10.000,',
        'aaaaaaaaaaaaaaaa/seg0.m4s',
        '#EXTINF:4.000,',
        'aaaaaaaaaaaaaaaa/seg1.m4s',
        '#EXT-X-DISCONTINUITY',
        '#EXT-X-MAP:URI="aaaaaaaaaaaaaaaa/init1.mp4"',
        '#EXTINF:6.000,',
        'aaaaaaaaaaaaaaaa/seg2.m4s',
        '#EXT-X-DISCONTINUITY',
        '#EXT-X-MAP:URI="bbbbbbbbbbbbbbbb/init0.mp4"',
        '#EXTINF:8.000,',
        'bbbbbbbbbbbbbbbb/seg0.m4s',
        '#EXT-X-ENDLIST',
        '',
      ].join('\n'),
    );
    const growing = renderReplayPlaylist([a], false, 'token=t');
    assert.match(growing, /#EXT-X-PLAYLIST-TYPE:EVENT/);
    assert.doesNotMatch(growing, /ENDLIST/);
    assert.match(growing, /aaaaaaaaaaaaaaaa\/seg0\.m4s\?token=t/);
  });
});

describe('MP4 assembly', () => {
  it('keeps fragments of the first init, shifts a later part onto the end of the timeline', () => {
    const a = part({
      partId: 'aaaaaaaaaaaaaaaa',
      segments: [seg(0, 0, 10, 100), seg(1, 0, 5, 110), seg(2, 1, 5, 115, true)],
    });
    const b = part({ partId: 'bbbbbbbbbbbbbbbb', startedAt: 1_733_000_200_000, segments: [seg(0, 0, 8, 2)] });
    const plan = planMp4([a, b], (partId, n) => !(partId === 'aaaaaaaaaaaaaaaa' && n === 1));
    assert.deepEqual(plan.init, { partId: 'aaaaaaaaaaaaaaaa', n: 0 });
    assert.equal(plan.skipped, 1);
    assert.deepEqual(
      plan.pieces.map((p) => [p.partId, p.segment.n, p.shift.get(1) ?? 0]),
      [
        ['aaaaaaaaaaaaaaaa', 0, 0],
        ['aaaaaaaaaaaaaaaa', 1, 0],
        // Part b started its own timeline at 2 s: moved to 115 s, where the file's timeline ended.
        ['bbbbbbbbbbbbbbbb', 0, 113 * 90_000],
      ],
    );
  });

  it('shifts tfdt (versions 0 and 1) of the tracks named, nothing else', () => {
    const traf = (track: number, t: number) =>
      box('traf', fullBox('tfhd', 0, 0x020000, u32(track)), fullBox('tfdt', 0, 0, u32(t)));
    const moof = box('moof', fullBox('mfhd', 0, 0, u32(1)), traf(1, 1000), traf(2, 500));
    const data = Buffer.concat([moof, box('mdat', Buffer.alloc(4))]);
    const out = shiftTfdt(data, new Map([[1, 90]]));
    assert.equal(out.length, data.length);
    const tfdts: number[] = [];
    for (let i = out.indexOf('tfdt'); i >= 0; i = out.indexOf('tfdt', i + 4))
      tfdts.push(out.readUInt32BE(i + 8));
    assert.deepEqual(tfdts, [1090, 500]);
    assert.equal(
      data.indexOf('tfdt') >= 0 && data.readUInt32BE(data.indexOf('tfdt') + 8),
      1000,
      'input untouched',
    );
    const v1 = box(
      'moof',
      box('traf', fullBox('tfhd', 0, 0, u32(1)), fullBox('tfdt', 1, 0, Buffer.alloc(8))),
    );
    const shifted = shiftTfdt(v1, new Map([[1, 5_000_000_000]]));
    assert.equal(shifted.readBigUInt64BE(shifted.indexOf('tfdt') + 8), 5_000_000_000n);
  });
});

describe('directory store', () => {
  it('puts, lists, gets and deletes under its root; refuses keys that leave it', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'rtmp-relay-dirstore-'));
    try {
      const store = new DirStore(root);
      await store.put('a-b/s1/r1/parts/x.json', Buffer.from('{}'));
      await store.put('a-b/s1/r1/p/seg0.m4s', Buffer.from('seg'));
      await store.put('streams/s1.json', Buffer.from('{}'));
      assert.deepEqual(
        (await store.list('a-b/s1/')).map((o) => o.key),
        ['a-b/s1/r1/p/seg0.m4s', 'a-b/s1/r1/parts/x.json'],
      );
      assert.equal((await store.get('a-b/s1/r1/p/seg0.m4s'))?.toString(), 'seg');
      assert.equal(await store.get('a-b/s1/r1/p/none.m4s'), null);
      for (const key of ['../x', 'a/../../x', '/etc/passwd', 'a//b/../../..', 'a/./b'])
        await assert.rejects(store.put(key, Buffer.from('x')), key);
      await store.delete(['a-b/s1/r1/parts/x.json', 'a-b/s1/r1/p/seg0.m4s']);
      assert.equal(existsSync(path.join(root, 'a-b')), false, 'no empty directories left');
      assert.deepEqual(readdirSync(root), ['streams']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
