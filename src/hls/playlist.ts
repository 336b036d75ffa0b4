/**
 * HLS media playlist rendering (RFC 8216, and the Low-Latency HLS additions of draft-pantos-hls-rfc8216bis),
 * pure: a packager state in, the exact text out. Table-tested.
 *
 * fMP4 segments need EXT-X-MAP (version 6+); a classic playlist says 7. EXT-X-MAP is repeated whenever the
 * init segment changes, which happens only after a discontinuity (FFmpeg restart, publisher back, profile
 * switch). With low latency on, the playlist offers delta updates (EXT-X-SKIP needs version 9, so every
 * playlist of such a stream says 9), EXT-X-SERVER-CONTROL and EXT-X-PART-INF come first, parts are listed
 * under the last segments and the open one, and EXT-X-PRELOAD-HINT names the next part. Players without
 * LL support ignore those tags and play the same playlist as a classic one.
 */

export interface PlaylistPart {
  uri: string;
  /** Seconds; never more than the PART-TARGET. */
  duration: number;
  /** Starts with a keyframe. */
  independent: boolean;
}

export interface PlaylistSegment {
  uri: string;
  /** Seconds, as measured from the fragments. */
  duration: number;
  /** An EXT-X-DISCONTINUITY precedes this segment. */
  discontinuity: boolean;
  initUri: string;
  /** Wall-clock time of the segment's first sample, ms since the epoch. */
  programDateTime: number;
  /** Its parts, listed above its URI (only for segments near the live edge). */
  parts?: readonly PlaylistPart[];
}

/** The segment being produced: its parts so far, listed after the last complete segment. */
export interface OpenPlaylistSegment {
  discontinuity: boolean;
  initUri: string;
  programDateTime: number;
  parts: readonly PlaylistPart[];
}

export interface ServerControl {
  /** PART-TARGET, seconds. */
  partTarget: number;
  /** PART-HOLD-BACK (≥ 3 × PART-TARGET). */
  partHoldBack: number;
  /** HOLD-BACK (≥ 3 × TARGETDURATION). */
  holdBack: number;
  /** CAN-SKIP-UNTIL, the skip boundary (≥ 6 × TARGETDURATION). */
  canSkipUntil: number;
}

export interface RenditionReport {
  uri: string;
  lastMsn: number;
  lastPart?: number;
}

export interface MediaPlaylist {
  targetDuration: number;
  mediaSequence: number;
  discontinuitySequence: number;
  segments: readonly PlaylistSegment[];
  ended: boolean;
  /** Low-latency HLS: EXT-X-SERVER-CONTROL, EXT-X-PART-INF (absent: a classic playlist). */
  serverControl?: ServerControl;
  /** Low latency only: parts of the segment being produced. */
  open?: OpenPlaylistSegment | null;
  /** Low latency only: URI of the next part (EXT-X-PRELOAD-HINT). */
  preloadHint?: string | null;
  /** A delta update: the first `skipped` segments are replaced by EXT-X-SKIP. */
  skipped?: number;
  renditionReports?: readonly RenditionReport[];
}

export const HLS_VERSION = 7;
/** EXT-X-SKIP needs version 9; a stream that offers delta updates says 9 in every playlist. */
export const HLS_VERSION_LOW_LATENCY = 9;

const seconds = (s: number): string => s.toFixed(3);

function partLine(p: PlaylistPart): string {
  const independent = p.independent ? ',INDEPENDENT=YES' : '';
  return `#EXT-X-PART:DURATION=${seconds(p.duration)},URI="${p.uri}"${independent}`;
}

export function renderMediaPlaylist(p: MediaPlaylist): string {
  const ll = p.serverControl;
  const lines = [
    '#EXTM3U',
    `#EXT-X-VERSION:${ll ? HLS_VERSION_LOW_LATENCY : HLS_VERSION}`,
    `#EXT-X-TARGETDURATION:${p.targetDuration}`,
  ];
  if (ll) {
    lines.push(
      `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=${seconds(ll.canSkipUntil)},` +
        `HOLD-BACK=${seconds(ll.holdBack)},PART-HOLD-BACK=${seconds(ll.partHoldBack)}`,
      `#EXT-X-PART-INF:PART-TARGET=${seconds(ll.partTarget)}`,
    );
  }
  lines.push(
    `#EXT-X-MEDIA-SEQUENCE:${p.mediaSequence}`,
    `#EXT-X-DISCONTINUITY-SEQUENCE:${p.discontinuitySequence}`,
  );
  const skipped = ll ? Math.min(p.skipped ?? 0, p.segments.length) : 0;
  // After EXT-X-MEDIA-SEQUENCE and EXT-X-DISCONTINUITY-SEQUENCE: hls.js (#7554) wants those before it.
  if (skipped > 0) lines.push(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}`);
  let init: string | null = null;
  const head = (s: { discontinuity: boolean; initUri: string; programDateTime: number }): void => {
    if (s.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    // A delta update repeats the EXT-X-MAP that applies to its first segment (it may have been skipped).
    if (s.initUri !== init) {
      lines.push(`#EXT-X-MAP:URI="${s.initUri}"`);
      init = s.initUri;
    }
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.programDateTime).toISOString()}`);
  };
  for (const s of p.segments.slice(skipped)) {
    head(s);
    if (ll) for (const part of s.parts ?? []) lines.push(partLine(part));
    lines.push(`#EXTINF:${seconds(s.duration)},`);
    lines.push(s.uri);
  }
  if (ll && !p.ended) {
    if (p.open && p.open.parts.length > 0) {
      head(p.open);
      for (const part of p.open.parts) lines.push(partLine(part));
    }
    if (p.preloadHint) lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${p.preloadHint}"`);
  }
  for (const r of p.renditionReports ?? []) {
    const part = r.lastPart === undefined ? '' : `,LAST-PART=${r.lastPart}`;
    lines.push(`#EXT-X-RENDITION-REPORT:URI="${r.uri}",LAST-MSN=${r.lastMsn}${part}`);
  }
  if (p.ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

/**
 * How many segments a delta update may skip (rfc8216bis §6.2.5.1): those further from the end of the last
 * segment than the skip boundary, i.e. whose end lies at least `skipBoundary` seconds before it.
 */
export function skippableSegments(segments: readonly { duration: number }[], skipBoundary: number): number {
  let after = 0;
  for (let i = segments.length - 1; i >= 0; i--) {
    if (after >= skipBoundary - 1e-6) return i + 1;
    after += segments[i]!.duration;
  }
  return 0;
}

/** A URI line, or a `URI="…"` attribute (EXT-X-MAP, EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-RENDITION-REPORT). */
const URI_IN_PLAYLIST = /^(?!#)(.+)$|URI="([^"]*)"/gm;

/**
 * The playlist (media or multivariant) with `query` (e.g. a viewer's `token=…`) appended to every URI it
 * lists, `?` or `&` as the URI needs. One pass over the rendered text at serve time, so the playlist itself
 * stays one string for every viewer; `query` must need no escaping (the caller's guarantee).
 */
export function withUriQuery(text: string, query: string): string {
  if (query === '') return text;
  const add = (uri: string): string => `${uri}${uri.includes('?') ? '&' : '?'}${query}`;
  return text.replace(URI_IN_PLAYLIST, (_m, line: string | undefined, attr: string | undefined) =>
    line !== undefined ? add(line) : `URI="${add(attr!)}"`,
  );
}
