/** The DASH URL shapes (src/contracts/urls.ts): the MPD beside a stream's playlist, token and CDN base kept. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dashMpdUrl, dashUrlOf, hlsPlaylistUrl, withPublicBase } from '../../../src/contracts/urls.ts';

describe('dash URLs', () => {
  it('the MPD of a stream sits beside its playlist', () => {
    assert.equal(
      dashMpdUrl('http://relay:8888/', 'me@example.com', 's1'),
      'http://relay:8888/dash/me-example.com/s1/index.mpd',
    );
    const hls = hlsPlaylistUrl('http://relay:8888', 'me@example.com', 's1');
    assert.equal(dashUrlOf(hls), dashMpdUrl('http://relay:8888', 'me@example.com', 's1'));
  });

  const cases: [string, string | null][] = [
    ['http://r:8888/hls/u-x.com/s1/index.m3u8', 'http://r:8888/dash/u-x.com/s1/index.mpd'],
    [
      'http://r:8888/hls/u-x.com/s1/index.m3u8?token=a.b.c',
      'http://r:8888/dash/u-x.com/s1/index.mpd?token=a.b.c',
    ],
    ['https://cdn.example/live/hls/u/s/index.m3u8', 'https://cdn.example/live/dash/u/s/index.mpd'],
    ['http://r:8888/hls/u/s/540p.m3u8', null],
    ['http://r:8888/watch/s/index.m3u8', null],
    ['not a url', null],
  ];
  for (const [hls, dash] of cases) {
    it(`dashUrlOf(${hls})`, () => assert.equal(dashUrlOf(hls), dash));
  }

  it('under a CDN base (HLS_PUBLIC_BASE_URL) the MPD follows the playlist', () => {
    const url = withPublicBase('http://relay:8888/hls/u/s/index.m3u8', 'https://cdn.example');
    assert.equal(dashUrlOf(url), 'https://cdn.example/dash/u/s/index.mpd');
  });
});
