/**
 * The MPD builder (src/dash/mpd.ts), pure: timelines compressed with `r` and `t` only where the timeline
 * does not follow on, durations and dates in their XML types, escaping, and whole dynamic and static MPDs
 * through the strict structural check (test/helpers/mpd-check.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  isoDuration,
  type MpdModel,
  type MpdRepresentation,
  renderMpd,
  renderTimeline,
  UTC_HTTP_ISO,
} from '../../../src/dash/mpd.ts';
import { checkMpd, parseXml } from '../../helpers/mpd-check.ts';

describe('dash mpd: pieces', () => {
  const timelines: { name: string; entries: { t: number; d: number }[]; want: string[] }[] = [
    { name: 'one', entries: [{ t: 5, d: 10 }], want: ['<S t="5" d="10"/>'] },
    {
      name: 'equal back to back',
      entries: [
        { t: 0, d: 10 },
        { t: 10, d: 10 },
        { t: 20, d: 10 },
      ],
      want: ['<S t="0" d="10" r="2"/>'],
    },
    {
      name: 'varying (a dirty GOP)',
      entries: [
        { t: 0, d: 10 },
        { t: 10, d: 13 },
        { t: 23, d: 13 },
        { t: 36, d: 9 },
      ],
      want: ['<S t="0" d="10"/>', '<S d="13" r="1"/>', '<S d="9"/>'],
    },
    {
      name: 'a gap gets its t',
      entries: [
        { t: 0, d: 10 },
        { t: 12, d: 10 },
        { t: 22, d: 10 },
      ],
      want: ['<S t="0" d="10"/>', '<S t="12" d="10" r="1"/>'],
    },
    { name: 'empty', entries: [], want: [] },
  ];
  for (const c of timelines) {
    it(`timeline: ${c.name}`, () => assert.deepEqual(renderTimeline(c.entries), c.want));
  }

  it('xs:duration with at most three decimals', () => {
    assert.equal(isoDuration(0), 'PT0S');
    assert.equal(isoDuration(2), 'PT2S');
    assert.equal(isoDuration(6.267), 'PT6.267S');
    assert.equal(isoDuration(1.5), 'PT1.5S');
    assert.equal(isoDuration(-1), 'PT0S');
  });
});

const rep = (over: Partial<MpdRepresentation> = {}): MpdRepresentation => ({
  id: 'v0',
  bandwidth: 1_000_000.4,
  codecs: ['avc1.64001f', 'mp4a.40.2'],
  width: 540,
  height: 960,
  audioSamplingRate: 44100,
  audioChannels: 2,
  timescale: 90000,
  presentationTimeOffset: 900,
  startNumber: 3,
  initialization: '../../../hls/u/s/abcd0123-init0.mp4',
  media: '../../../hls/u/s/abcd0123-seg$Number$.m4s',
  timeline: [
    { t: 900, d: 180000 },
    { t: 180900, d: 180000 },
  ],
  ...over,
});

const dynamic: MpdModel = {
  type: 'dynamic',
  availabilityStartTime: Date.UTC(2026, 0, 1, 12, 0, 0),
  publishTime: Date.UTC(2026, 0, 1, 12, 0, 10, 500),
  minimumUpdatePeriod: 1,
  timeShiftBufferDepth: 20,
  suggestedPresentationDelay: 6,
  minBufferTime: 2,
  latency: { target: 6, min: 2, max: 12 },
  utcTiming: [{ scheme: UTC_HTTP_ISO, value: 'http://relay:8888/dash/time' }],
  periods: [
    { id: 'p0', start: 0, contentType: 'video', representations: [rep()] },
    {
      id: 'p1',
      start: 12.5,
      contentType: 'video',
      representations: [rep({ startNumber: 7, presentationTimeOffset: 0, timeline: [{ t: 0, d: 90000 }] })],
    },
  ],
};

describe('dash mpd: documents', () => {
  it('a dynamic MPD has every attribute a live MPD needs, in the schema order', () => {
    const text = renderMpd(dynamic);
    const m = checkMpd(text);
    assert.equal(m.type, 'dynamic');
    assert.equal(m.availabilityStartTime, dynamic.availabilityStartTime);
    assert.equal(m.publishTime, dynamic.publishTime);
    assert.equal(m.minimumUpdatePeriod, 1);
    assert.equal(m.timeShiftBufferDepth, 20);
    assert.equal(m.suggestedPresentationDelay, 6);
    assert.equal(m.latencyTarget, 6);
    assert.deepEqual(m.utcTiming, [{ scheme: UTC_HTTP_ISO, value: 'http://relay:8888/dash/time' }]);
    assert.deepEqual(
      m.periods.map((p) => [p.id, p.start, p.representations[0]!.segments.map((s) => s.number)]),
      [
        ['p0', 0, [3, 4]],
        ['p1', 12.5, [7]],
      ],
    );
    const r = m.periods[0]!.representations[0]!;
    assert.equal(r.bandwidth, 1_000_000);
    assert.deepEqual(r.codecs, ['avc1.64001f', 'mp4a.40.2']);
    assert.match(text, /<AudioChannelConfiguration [^>]*value="2"\/>/);
    assert.doesNotMatch(text, /frameRate=/, 'no frameRate was given');
  });

  it('a static MPD has mediaPresentationDuration and nothing of a live one', () => {
    const text = renderMpd({
      type: 'static',
      publishTime: Date.UTC(2026, 0, 1),
      minBufferTime: 2,
      mediaPresentationDuration: 14.25,
      latency: { target: 6, min: 2, max: 12 },
      utcTiming: dynamic.utcTiming!,
      periods: dynamic.periods,
    });
    const m = checkMpd(text);
    assert.equal(m.type, 'static');
    assert.equal(m.mediaPresentationDuration, 14.25);
    for (const gone of ['availabilityStartTime', 'minimumUpdatePeriod', 'UTCTiming', 'ServiceDescription']) {
      assert.ok(!text.includes(gone), gone);
    }
  });

  it('refuses a dynamic MPD without availabilityStartTime', () => {
    const { availabilityStartTime: _, ...rest } = dynamic;
    assert.throws(() => renderMpd(rest), RangeError);
  });

  it('escapes attribute values (a token in the templates)', () => {
    const text = renderMpd({
      ...dynamic,
      periods: [
        {
          id: 'p0',
          start: 0,
          contentType: 'video',
          representations: [rep({ media: 'x-seg$Number$.m4s?token=a"b&c<d' })],
        },
      ],
    });
    const media = parseXml(text)
      .children.find((c) => c.name === 'Period')!
      .children[0]!.children[0]!.children.find((c) => c.name === 'SegmentTemplate')!.attrs.media;
    assert.equal(media, 'x-seg$Number$.m4s?token=a"b&c<d');
  });

  it('an audio-only stream is an audio AdaptationSet', () => {
    const text = renderMpd({
      ...dynamic,
      periods: [
        {
          id: 'p0',
          start: 0,
          contentType: 'audio',
          representations: [
            rep({
              codecs: ['mp4a.40.2'],
              timescale: 44100,
              width: undefined,
              height: undefined,
            }) as MpdRepresentation,
          ],
        },
      ],
    });
    const m = checkMpd(text);
    assert.equal(m.periods[0]!.contentType, 'audio');
    assert.match(text, /mimeType="audio\/mp4"/);
  });

  const broken: { name: string; edit: (t: string) => string; error: RegExp }[] = [
    { name: 'no publishTime', edit: (t) => t.replace(/ publishTime="[^"]*"/, ''), error: /publishTime/ },
    {
      name: 'a timeline going back',
      edit: (t) => t.replace('d="180000" r="1"/>', 'd="180000"/><S t="5" d="180000"/>'),
      error: /goes back/,
    },
    {
      name: 'a bad duration',
      edit: (t) => t.replace('minBufferTime="PT2S"', 'minBufferTime="2s"'),
      error: /duration/,
    },
    { name: 'no bandwidth', edit: (t) => t.replace(/ bandwidth="\d+"/g, ''), error: /bandwidth/ },
    { name: 'unclosed', edit: (t) => t.replace('</MPD>', ''), error: /not closed/ },
    {
      name: 'UTCTiming before a Period',
      edit: (t) =>
        t
          .replace(/(<UTCTiming[^>]*\/>)\n/, '')
          .replace('<Period', '<UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="x"/><Period'),
      error: /order/,
    },
  ];
  for (const b of broken) {
    it(`the check itself catches ${b.name}`, () => {
      const text = renderMpd(dynamic);
      assert.throws(() => checkMpd(b.edit(text)), b.error);
    });
  }
});
