/**
 * HLS media playlist rendering (RFC 8216), pure: a packager state in, the exact text out. Table-tested.
 * fMP4 segments need EXT-X-MAP (version 6+); we say 7. EXT-X-MAP is repeated whenever the init segment
 * changes, which happens only after a discontinuity (FFmpeg restart, publisher back, profile switch).
 */

export interface PlaylistSegment {
  uri: string;
  /** Seconds, as measured from the fragments. */
  duration: number;
  /** An EXT-X-DISCONTINUITY precedes this segment. */
  discontinuity: boolean;
  initUri: string;
  /** Wall-clock time of the segment's first sample, ms since the epoch. */
  programDateTime: number;
}

export interface MediaPlaylist {
  targetDuration: number;
  mediaSequence: number;
  discontinuitySequence: number;
  segments: PlaylistSegment[];
  ended: boolean;
}

export const HLS_VERSION = 7;

export function renderMediaPlaylist(p: MediaPlaylist): string {
  const lines = [
    '#EXTM3U',
    `#EXT-X-VERSION:${HLS_VERSION}`,
    `#EXT-X-TARGETDURATION:${p.targetDuration}`,
    `#EXT-X-MEDIA-SEQUENCE:${p.mediaSequence}`,
    `#EXT-X-DISCONTINUITY-SEQUENCE:${p.discontinuitySequence}`,
  ];
  let init: string | null = null;
  for (const s of p.segments) {
    if (s.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    if (s.initUri !== init) {
      lines.push(`#EXT-X-MAP:URI="${s.initUri}"`);
      init = s.initUri;
    }
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.programDateTime).toISOString()}`);
    lines.push(`#EXTINF:${s.duration.toFixed(3)},`);
    lines.push(s.uri);
  }
  if (p.ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}
