import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type MediaPlaylist,
  type PlaylistPart,
  renderMediaPlaylist,
  type ServerControl,
  skippableSegments,
} from '../../../src/hls/playlist.ts';

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

const LL: ServerControl = { partTarget: 0.5, partHoldBack: 1.5, holdBack: 6, canSkipUntil: 12 };
const part = (n: number, duration: number, independent = false): PlaylistPart => ({
  uri: `abcd0123-part${n}.m4s`,
  duration,
  independent,
});
const LL_HEAD = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,HOLD-BACK=6.000,PART-HOLD-BACK=1.500
#EXT-X-PART-INF:PART-TARGET=0.500
`;

/** Low-latency playlists: server control, parts, the open segment, the preload hint, delta updates. */
const llCases: { name: string; playlist: MediaPlaylist; text: string }[] = [
  {
    name: 'parts under the last segment, the open segment and the preload hint',
    playlist: {
      targetDuration: 2,
      mediaSequence: 3,
      discontinuitySequence: 0,
      ended: false,
      serverControl: LL,
      segments: [
        seg(3, 2),
        seg(4, 1.9, { parts: [part(8, 0.467, true), part(9, 0.5), part(10, 0.433), part(11, 0.5)] }),
      ],
      open: {
        discontinuity: false,
        initUri: 'abcd0123-init0.mp4',
        programDateTime: T0 + 10_000,
        parts: [part(12, 0.467, true)],
      },
      preloadHint: 'abcd0123-part13.m4s',
    },
    text: `${LL_HEAD}#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI="abcd0123-init0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:06.000Z
#EXTINF:2.000,
abcd0123-seg3.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:08.000Z
#EXT-X-PART:DURATION=0.467,URI="abcd0123-part8.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI="abcd0123-part9.m4s"
#EXT-X-PART:DURATION=0.433,URI="abcd0123-part10.m4s"
#EXT-X-PART:DURATION=0.500,URI="abcd0123-part11.m4s"
#EXTINF:1.900,
abcd0123-seg4.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:10.000Z
#EXT-X-PART:DURATION=0.467,URI="abcd0123-part12.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="abcd0123-part13.m4s"
`,
  },
  {
    name: 'a delta update: skipped segments replaced by EXT-X-SKIP, the EXT-X-MAP repeated',
    playlist: {
      targetDuration: 2,
      mediaSequence: 3,
      discontinuitySequence: 1,
      ended: false,
      serverControl: LL,
      segments: [seg(3, 2), seg(4, 2), seg(5, 2, { parts: [part(20, 0.5, true)] })],
      skipped: 2,
      open: null,
      preloadHint: 'abcd0123-part21.m4s',
    },
    text: `${LL_HEAD}#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-SKIP:SKIPPED-SEGMENTS=2
#EXT-X-MAP:URI="abcd0123-init0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:10.000Z
#EXT-X-PART:DURATION=0.500,URI="abcd0123-part20.m4s",INDEPENDENT=YES
#EXTINF:2.000,
abcd0123-seg5.m4s
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="abcd0123-part21.m4s"
`,
  },
  {
    name: 'a delta update with nothing to skip (a whole playlist, no EXT-X-SKIP)',
    playlist: {
      targetDuration: 2,
      mediaSequence: 0,
      discontinuitySequence: 0,
      ended: false,
      serverControl: LL,
      segments: [seg(0, 2)],
      skipped: 0,
    },
    text: `${LL_HEAD}#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI="abcd0123-init0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:00.000Z
#EXTINF:2.000,
abcd0123-seg0.m4s
`,
  },
  {
    name: 'an ended LL playlist: no open parts, no hint, ENDLIST',
    playlist: {
      targetDuration: 2,
      mediaSequence: 0,
      discontinuitySequence: 0,
      ended: true,
      serverControl: LL,
      segments: [seg(0, 1.5, { parts: [part(0, 0.5, true), part(1, 0.5), part(2, 0.5)] })],
      open: { discontinuity: false, initUri: 'x', programDateTime: T0, parts: [part(3, 0.5)] },
      preloadHint: 'abcd0123-part4.m4s',
    },
    text: `${LL_HEAD}#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI="abcd0123-init0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:00.000Z
#EXT-X-PART:DURATION=0.500,URI="abcd0123-part0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI="abcd0123-part1.m4s"
#EXT-X-PART:DURATION=0.500,URI="abcd0123-part2.m4s"
#EXTINF:1.500,
abcd0123-seg0.m4s
#EXT-X-ENDLIST
`,
  },
  {
    name: 'an open segment after a discontinuity: its tags before its first part',
    playlist: {
      targetDuration: 2,
      mediaSequence: 0,
      discontinuitySequence: 0,
      ended: false,
      serverControl: LL,
      segments: [seg(0, 2)],
      open: {
        discontinuity: true,
        initUri: 'abcd0123-init1.mp4',
        programDateTime: T0 + 2000,
        parts: [part(5, 0.5, true)],
      },
      preloadHint: 'abcd0123-part6.m4s',
      renditionReports: [{ uri: '../low/index.m3u8', lastMsn: 1, lastPart: 0 }],
    },
    text: `${LL_HEAD}#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI="abcd0123-init0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:00.000Z
#EXTINF:2.000,
abcd0123-seg0.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="abcd0123-init1.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:02.000Z
#EXT-X-PART:DURATION=0.500,URI="abcd0123-part5.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="abcd0123-part6.m4s"
#EXT-X-RENDITION-REPORT:URI="../low/index.m3u8",LAST-MSN=1,LAST-PART=0
`,
  },
  {
    name: 'a classic playlist ignores parts, hints and skips',
    playlist: {
      targetDuration: 2,
      mediaSequence: 0,
      discontinuitySequence: 0,
      ended: false,
      segments: [seg(0, 2, { parts: [part(0, 0.5, true)] })],
      open: { discontinuity: false, initUri: 'x', programDateTime: T0, parts: [part(1, 0.5)] },
      preloadHint: 'abcd0123-part2.m4s',
      skipped: 1,
    },
    text: `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI="abcd0123-init0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T12:00:00.000Z
#EXTINF:2.000,
abcd0123-seg0.m4s
`,
  },
];

describe('media playlist rendering', () => {
  for (const c of [...cases, ...llCases]) {
    it(`renders ${c.name}`, () => {
      assert.equal(renderMediaPlaylist(c.playlist), c.text);
    });
  }
});

/** Segment durations and a skip boundary → how many a delta update skips (their end ≥ boundary from the end). */
const skipCases: { durations: number[]; boundary: number; skipped: number }[] = [
  { durations: [], boundary: 12, skipped: 0 },
  { durations: [2, 2, 2, 2, 2, 2], boundary: 12, skipped: 0 },
  { durations: [2, 2, 2, 2, 2, 2, 2], boundary: 12, skipped: 1 },
  { durations: [2, 2, 2, 2, 2, 2, 2, 2, 2], boundary: 12, skipped: 3 },
  { durations: [6, 1.9, 2, 2, 2, 2, 2], boundary: 12, skipped: 0 },
  { durations: [6, 6, 6, 6, 6, 6, 6, 6], boundary: 36, skipped: 2 },
];

describe('delta update skip count', () => {
  for (const c of skipCases) {
    it(`skips ${c.skipped} of [${c.durations.join(', ')}] with a ${c.boundary} s boundary`, () => {
      assert.equal(
        skippableSegments(
          c.durations.map((duration) => ({ duration })),
          c.boundary,
        ),
        c.skipped,
      );
    });
  }
});
