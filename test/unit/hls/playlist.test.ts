import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MediaPlaylist, renderMediaPlaylist } from '../../../src/hls/playlist.ts';

const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);
const seg = (n: number, duration: number, extra: Partial<MediaPlaylist['segments'][number]> = {}) => ({
  uri: `abcd0123-seg${n}.m4s`,
  duration,
  discontinuity: false,
  initUri: 'abcd0123-init0.mp4',
  programDateTime: T0 + n * 2000,
  ...extra,
});

/** Packager states → the exact playlist text. */
const cases: { name: string; playlist: MediaPlaylist; text: string }[] = [
  {
    name: 'a live playlist',
    playlist: {
      targetDuration: 2,
      mediaSequence: 3,
      discontinuitySequence: 0,
      ended: false,
      segments: [seg(3, 2), seg(4, 1.968)],
    },
    text: `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI="abcd0123-init0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:06.000Z
#EXTINF:2.000,
abcd0123-seg3.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:08.000Z
#EXTINF:1.968,
abcd0123-seg4.m4s
`,
  },
  {
    name: 'a discontinuity with a new init, and the end',
    playlist: {
      targetDuration: 4,
      mediaSequence: 7,
      discontinuitySequence: 2,
      ended: true,
      segments: [seg(7, 2), seg(8, 1.5, { discontinuity: true, initUri: 'abcd0123-init3.mp4' })],
    },
    text: `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DISCONTINUITY-SEQUENCE:2
#EXT-X-MAP:URI="abcd0123-init0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:14.000Z
#EXTINF:2.000,
abcd0123-seg7.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="abcd0123-init3.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:16.000Z
#EXTINF:1.500,
abcd0123-seg8.m4s
#EXT-X-ENDLIST
`,
  },
  {
    name: 'an empty, ended playlist',
    playlist: { targetDuration: 6, mediaSequence: 0, discontinuitySequence: 0, ended: true, segments: [] },
    text: '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-ENDLIST\n',
  },
];

describe('media playlist rendering', () => {
  for (const c of cases) {
    it(`renders ${c.name}`, () => {
      assert.equal(renderMediaPlaylist(c.playlist), c.text);
    });
  }
});
