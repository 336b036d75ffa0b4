/**
 * Pure: a part manifest (what one relay incarnation recorded of a stream, written by that relay only), the
 * recordings listing built from the manifests a store holds, and the replay playlist of one recording.
 * A manifest lists only objects already uploaded, so whatever it names can be fetched. A recording is
 * `ready` when every part is closed (its relay ended the stream, or restarted and uploaded its spool) or
 * has gone silent for longer than any live part can (its relay died and never came back); else `uploading`.
 */
import { z } from 'zod';
import { initFile, RECORDING_ID_PATTERN, segmentFile, startOfRecordingId } from './layout.ts';

/** One track's decode times in a segment, in its timescale: [trackId, timescale, first tfdt, end]. */
const TrackSpan = z.tuple([z.number().int(), z.number().int().positive(), z.number(), z.number()]);
export type TrackSpan = z.infer<typeof TrackSpan>;

export const ManifestSegment = z.object({
  /** Object number: `seg{n}.m4s`. */
  n: z.number().int().min(0),
  /** The init it needs: `init{init}.mp4` of the same part. */
  init: z.number().int().min(0),
  /** Seconds. */
  duration: z.number().min(0),
  /** A discontinuity before it (a new init, a reconnect, media lost while the spool was full). */
  discontinuity: z.boolean(),
  bytes: z.number().int().min(0),
  tracks: z.array(TrackSpan).max(8),
});
export type ManifestSegment = z.infer<typeof ManifestSegment>;

export const PartManifest = z.object({
  v: z.literal(1),
  partId: z.string(),
  relayId: z.string().max(64),
  userId: z.string().max(128),
  userPath: z.string().max(128),
  streamId: z.string().max(64),
  recordingId: z.string().regex(RECORDING_ID_PATTERN),
  /** ms since the epoch. */
  startedAt: z.number(),
  updatedAt: z.number(),
  endedAt: z.number().nullable(),
  closed: z.boolean(),
  segments: z.array(ManifestSegment),
  thumbnail: z.boolean(),
  /** Segments lost because the spool was full. */
  dropped: z.number().int().min(0),
});
export type PartManifest = z.infer<typeof PartManifest>;

export type RecordingState = 'uploading' | 'ready';

/** One entry of `GET /recordings/{userPath}/{streamId}` (architecture §3, plus `thumbnailUrl`). */
export interface RecordingSummary {
  id: string;
  state: RecordingState;
  /** ISO 8601. */
  startedAt: string;
  endedAt: string | null;
  durationSeconds: number;
  hlsUrl: string;
  mp4Url: string;
  thumbnailUrl: string | null;
}

/** A part whose relay wrote nothing for this long while open is abandoned (its relay is gone for good). */
export const DEFAULT_STALE_MS = 15 * 60_000;

export function partClosed(part: PartManifest, now: number, staleMs = DEFAULT_STALE_MS): boolean {
  return part.closed || now - part.updatedAt > staleMs;
}

export function partDuration(part: PartManifest): number {
  return part.segments.reduce((sum, s) => sum + s.duration, 0);
}

/** The parts of one recording in the order they were recorded. */
export function orderParts(parts: readonly PartManifest[]): PartManifest[] {
  return [...parts].sort((a, b) => a.startedAt - b.startedAt || (a.partId < b.partId ? -1 : 1));
}

/**
 * The listing from every part manifest of a stream, newest recording first. `base` is the recording
 * routes' URL of the stream (`…/recordings/{userPath}/{streamId}`); `query` (a playback token, say) is
 * appended to every URL; recordings in `unsure` (a manifest could not be read) are not called ready.
 */
export function summarize(
  parts: readonly PartManifest[],
  base: string,
  now: number,
  query = '',
  unsure: ReadonlySet<string> = new Set(),
  staleMs = DEFAULT_STALE_MS,
): RecordingSummary[] {
  const byId = new Map<string, PartManifest[]>();
  for (const p of parts) byId.set(p.recordingId, [...(byId.get(p.recordingId) ?? []), p]);
  const out: RecordingSummary[] = [];
  for (const [id, list] of byId) {
    const ordered = orderParts(list);
    const ready = !unsure.has(id) && ordered.every((p) => partClosed(p, now, staleMs));
    const ends = ordered.map((p) => p.endedAt ?? p.updatedAt);
    const q = query ? `?${query}` : '';
    out.push({
      id,
      state: ready ? 'ready' : 'uploading',
      startedAt: new Date(startOfRecordingId(id)).toISOString(),
      endedAt: ready ? new Date(Math.max(...ends)).toISOString() : null,
      durationSeconds: Math.round(ordered.reduce((sum, p) => sum + partDuration(p), 0) * 1000) / 1000,
      hlsUrl: `${base}/${id}/index.m3u8${q}`,
      mp4Url: `${base}/${id}/recording.mp4${q}`,
      thumbnailUrl: ordered.some((p) => p.thumbnail) ? `${base}/${id}/thumbnail.jpg${q}` : null,
    });
  }
  return out.sort((a, b) => (a.id < b.id ? 1 : -1));
}

/**
 * The replay playlist of one recording: every segment of every part in order, a discontinuity wherever the
 * media had one and between parts (another relay's timeline), an EXT-X-MAP at each change of init. A ready
 * recording is VOD with ENDLIST; one still uploading is an EVENT playlist that grows.
 */
export function renderReplayPlaylist(parts: readonly PartManifest[], ready: boolean, query = ''): string {
  const ordered = orderParts(parts);
  const q = query ? `?${query}` : '';
  let longest = 1;
  for (const p of ordered) for (const s of p.segments) longest = Math.max(longest, s.duration);
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${Math.ceil(longest - 1e-3)}`,
    `#EXT-X-PLAYLIST-TYPE:${ready ? 'VOD' : 'EVENT'}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-INDEPENDENT-SEGMENTS',
  ];
  let first = true;
  for (const part of ordered) {
    let map = '';
    let firstOfPart = true;
    for (const s of part.segments) {
      const uri = `${part.partId}/${initFile(s.init)}`;
      if (!first && (s.discontinuity || firstOfPart)) lines.push('#EXT-X-DISCONTINUITY');
      if (uri !== map) {
        lines.push(`#EXT-X-MAP:URI="${uri}${q}"`);
        map = uri;
      }
      lines.push(`#EXTINF:${s.duration.toFixed(3)},`, `${part.partId}/${segmentFile(s.n)}${q}`);
      first = false;
      firstOfPart = false;
    }
  }
  if (ready) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}
