/**
 * The DASH MPD (ISO/IEC 23009-1), pure: a model in, XML text out, no clock and no I/O. What it writes:
 * - `type="dynamic"` for a live stream, with availabilityStartTime, publishTime, minimumUpdatePeriod,
 *   timeShiftBufferDepth, suggestedPresentationDelay, a ServiceDescription latency target and UTCTiming;
 *   `type="static"` with mediaPresentationDuration once the stream ended.
 * - One Period per output run (a new init segment: publisher back, FFmpeg restart, profile switch), since a
 *   run restarts codec parameters and timestamps as HLS's EXT-X-DISCONTINUITY does.
 * - One AdaptationSet per Period with one Representation per ABR rung, each with its own SegmentTemplate
 *   and SegmentTimeline (each rung has its own names and segment numbers).
 * - SegmentTimeline with `$Number$`: our segments end at keyframes, so their durations vary on dirty streams
 *   (no `@duration` template fits), and their names carry the HLS media sequence number, not their time: with
 *   `$Number$` the MPD points at the very names HLS serves (one store, no copy, one CDN cache entry for both)
 *   and dash.js finds segments by number, while `$Time$` would need a second naming scheme.
 * Hand-written: an MPD is a few dozen lines of XML whose every attribute is chosen here; no npm package
 * writes live MPDs from a segment list without also wanting to own the packaging.
 */

/** One `S` element: `t` on every entry that does not follow the previous one exactly. */
export interface TimelineEntry {
  /** Start, in the template's timescale. */
  t: number;
  /** Duration, in the template's timescale. */
  d: number;
}

export interface MpdRepresentation {
  id: string;
  /** Bits per second (peak). */
  bandwidth: number;
  /** RFC 6381 codecs of every track in its segments, video first. */
  codecs: readonly string[];
  width?: number;
  height?: number;
  frameRate?: number;
  audioSamplingRate?: number;
  audioChannels?: number;
  timescale: number;
  /** Media time (timescale units) that is the Period's start. */
  presentationTimeOffset: number;
  /** `$Number$` of the first timeline entry. */
  startNumber: number;
  /** URL of the init segment, relative to the MPD. */
  initialization: string;
  /** URL template of media segments with `$Number$`, relative to the MPD. */
  media: string;
  timeline: readonly TimelineEntry[];
  /**
   * Low-latency DASH: seconds before its end a segment may be requested (the last entry is the segment being
   * made, sent by chunked transfer as its parts come); writes availabilityTimeComplete="false".
   */
  availabilityTimeOffset?: number;
}

export interface MpdPeriod {
  id: string;
  /** Seconds from availabilityStartTime (dynamic) or from the presentation's start (static). */
  start: number;
  contentType: 'video' | 'audio';
  representations: readonly MpdRepresentation[];
}

export interface MpdModel {
  type: 'dynamic' | 'static';
  /** ms since the epoch; required for dynamic. */
  availabilityStartTime?: number;
  /** ms since the epoch. */
  publishTime: number;
  /** Seconds (dynamic). */
  minimumUpdatePeriod?: number;
  /** Seconds (dynamic). */
  timeShiftBufferDepth?: number;
  /** Seconds (dynamic). */
  suggestedPresentationDelay?: number;
  /** Seconds. */
  minBufferTime: number;
  /** Seconds (static). */
  mediaPresentationDuration?: number;
  /** ServiceDescription target latency and bounds, seconds (dynamic). */
  latency?: { target: number; min: number; max: number };
  /** UTCTiming elements, in order of preference. */
  utcTiming?: readonly { scheme: string; value: string }[];
  periods: readonly MpdPeriod[];
}

export const UTC_HTTP_ISO = 'urn:mpeg:dash:utc:http-iso:2014';
export const UTC_DIRECT = 'urn:mpeg:dash:utc:direct:2014';
export const MPD_TYPE = 'application/dash+xml';

/** `PT…S` with up to three decimals (xs:duration). */
export function isoDuration(seconds: number): string {
  const ms = Math.max(0, Math.round(seconds * 1000));
  return `PT${ms % 1000 === 0 ? ms / 1000 : (ms / 1000).toFixed(3).replace(/0+$/, '')}S`;
}

/** xs:dateTime in UTC with milliseconds. */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}

/** Escapes what may not stand in an attribute value. */
export function xmlAttr(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** `S` elements: `r` for runs of equal, back-to-back durations; `t` wherever the timeline does not follow on. */
export function renderTimeline(entries: readonly TimelineEntry[]): string[] {
  const out: string[] = [];
  let i = 0;
  let expected: number | null = null;
  while (i < entries.length) {
    const e = entries[i]!;
    let r = 0;
    while (
      i + r + 1 < entries.length &&
      entries[i + r + 1]!.d === e.d &&
      entries[i + r + 1]!.t === e.t + (r + 1) * e.d
    ) {
      r++;
    }
    const t = expected === e.t ? '' : ` t="${e.t}"`;
    out.push(`<S${t} d="${e.d}"${r > 0 ? ` r="${r}"` : ''}/>`);
    expected = e.t + (r + 1) * e.d;
    i += r + 1;
  }
  return out;
}

const attrs = (pairs: [string, string | number | undefined][]): string =>
  pairs
    .filter((p): p is [string, string | number] => p[1] !== undefined)
    .map(([k, v]) => ` ${k}="${xmlAttr(String(v))}"`)
    .join('');

/** frameRate as xs:string of the FrameRateType: an integer, or a fraction over 1000. */
function frameRate(fps: number | undefined): string | undefined {
  if (fps === undefined || !(fps > 0)) return undefined;
  return Number.isInteger(fps) ? String(fps) : `${Math.round(fps * 1000)}/1000`;
}

function renderRepresentation(r: MpdRepresentation, indent: string): string[] {
  const lines = [
    `${indent}<Representation${attrs([
      ['id', r.id],
      ['bandwidth', Math.max(1, Math.round(r.bandwidth))],
      ['codecs', r.codecs.join(',')],
      ['width', r.width],
      ['height', r.height],
      ['frameRate', frameRate(r.frameRate)],
      ['sar', r.width !== undefined ? '1:1' : undefined],
      ['audioSamplingRate', r.audioSamplingRate],
    ])}>`,
  ];
  if (r.audioChannels !== undefined) {
    lines.push(
      `${indent}  <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="${r.audioChannels}"/>`,
    );
  }
  lines.push(
    `${indent}  <SegmentTemplate${attrs([
      ['timescale', r.timescale],
      ['presentationTimeOffset', r.presentationTimeOffset],
      ['startNumber', r.startNumber],
      ['initialization', r.initialization],
      ['media', r.media],
      ['availabilityTimeOffset', r.availabilityTimeOffset],
      ['availabilityTimeComplete', r.availabilityTimeOffset !== undefined ? 'false' : undefined],
    ])}>`,
    `${indent}    <SegmentTimeline>`,
    ...renderTimeline(r.timeline).map((s) => `${indent}      ${s}`),
    `${indent}    </SegmentTimeline>`,
    `${indent}  </SegmentTemplate>`,
    `${indent}</Representation>`,
  );
  return lines;
}

function renderPeriod(p: MpdPeriod): string[] {
  const video = p.contentType === 'video';
  const reps = p.representations;
  const max = (f: (r: MpdRepresentation) => number | undefined): number | undefined => {
    const values = reps.map(f).filter((v): v is number => v !== undefined);
    return values.length ? Math.max(...values) : undefined;
  };
  return [
    `  <Period id="${xmlAttr(p.id)}" start="${isoDuration(p.start)}">`,
    `    <AdaptationSet${attrs([
      ['id', '0'],
      ['contentType', p.contentType],
      ['mimeType', video ? 'video/mp4' : 'audio/mp4'],
      ['segmentAlignment', 'true'],
      ['startWithSAP', '1'],
      ['maxWidth', video ? max((r) => r.width) : undefined],
      ['maxHeight', video ? max((r) => r.height) : undefined],
    ])}>`,
    ...reps.flatMap((r) => renderRepresentation(r, '      ')),
    '    </AdaptationSet>',
    '  </Period>',
  ];
}

/** The MPD text. */
export function renderMpd(m: MpdModel): string {
  const dynamic = m.type === 'dynamic';
  if (dynamic && m.availabilityStartTime === undefined) {
    throw new RangeError('a dynamic MPD needs availabilityStartTime');
  }
  const root = attrs([
    ['xmlns', 'urn:mpeg:dash:schema:mpd:2011'],
    ['profiles', 'urn:mpeg:dash:profile:isoff-live:2011'],
    ['type', m.type],
    [
      'availabilityStartTime',
      m.availabilityStartTime !== undefined ? isoDate(m.availabilityStartTime) : undefined,
    ],
    ['publishTime', isoDate(m.publishTime)],
    [
      'minimumUpdatePeriod',
      dynamic && m.minimumUpdatePeriod !== undefined ? isoDuration(m.minimumUpdatePeriod) : undefined,
    ],
    [
      'timeShiftBufferDepth',
      dynamic && m.timeShiftBufferDepth !== undefined ? isoDuration(m.timeShiftBufferDepth) : undefined,
    ],
    [
      'suggestedPresentationDelay',
      dynamic && m.suggestedPresentationDelay !== undefined
        ? isoDuration(m.suggestedPresentationDelay)
        : undefined,
    ],
    ['minBufferTime', isoDuration(m.minBufferTime)],
    [
      'mediaPresentationDuration',
      !dynamic && m.mediaPresentationDuration !== undefined
        ? isoDuration(m.mediaPresentationDuration)
        : undefined,
    ],
  ]);
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', `<MPD${root}>`];
  if (dynamic && m.latency) {
    const ms = (s: number): number => Math.round(s * 1000);
    lines.push(
      '  <ServiceDescription id="0">',
      `    <Latency referenceId="0" target="${ms(m.latency.target)}" min="${ms(m.latency.min)}" max="${ms(m.latency.max)}"/>`,
      '    <PlaybackRate min="0.96" max="1.04"/>',
      '  </ServiceDescription>',
    );
  }
  for (const p of m.periods) lines.push(...renderPeriod(p));
  if (dynamic) {
    for (const u of m.utcTiming ?? []) {
      lines.push(`  <UTCTiming schemeIdUri="${xmlAttr(u.scheme)}" value="${xmlAttr(u.value)}"/>`);
    }
  }
  lines.push('</MPD>');
  return `${lines.join('\n')}\n`;
}
