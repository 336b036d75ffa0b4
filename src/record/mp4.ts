/**
 * The download of a recording as one MP4, assembled from the stored fragments without re-encoding: the
 * first init segment (ftyp + moov) followed by every fragment (moof + mdat) in order, a fragmented MP4 that
 * players and ffprobe read as one file. Parts written by another relay (a stream that moved) start their own
 * timeline: their fragments' decode times (tfdt) are shifted so the file's timeline runs on without going
 * back. Fragments whose init differs from the first (a publisher that came back with another picture size)
 * cannot share one moov: they are left out of the MP4 (the replay playlist keeps them) and counted.
 * Hand-written: a byte patch of tfdt is all the remux this needs, and no library streams it.
 */
import type { ManifestSegment, PartManifest } from './manifest.ts';
import { orderParts } from './manifest.ts';

export interface Mp4Piece {
  partId: string;
  segment: ManifestSegment;
  /** Ticks to add to each track's tfdt (by track id); empty: unchanged. */
  shift: Map<number, number>;
}

export interface Mp4Plan {
  /** The part and init number of the init segment the file starts with; null when there is no media. */
  init: { partId: string; n: number } | null;
  pieces: Mp4Piece[];
  /** Segments left out because their init differs from the first. */
  skipped: number;
}

/**
 * Which fragments go into the file, and the tfdt shift of each part. `sameInit(partId, n)` says whether
 * that init's bytes equal the first one's (the caller fetched both).
 */
export function planMp4(
  parts: readonly PartManifest[],
  sameInit: (partId: string, n: number) => boolean,
): Mp4Plan {
  const ordered = orderParts(parts).filter((p) => p.segments.length > 0);
  const first = ordered[0];
  if (!first) return { init: null, pieces: [], skipped: 0 };
  const init = { partId: first.partId, n: first.segments[0]!.init };
  const pieces: Mp4Piece[] = [];
  let skipped = 0;
  /** End of the file's timeline so far, seconds. */
  let end = 0;
  for (const [index, part] of ordered.entries()) {
    const kept = part.segments.filter((s) => sameInit(part.partId, s.init));
    skipped += part.segments.length - kept.length;
    if (kept.length === 0) continue;
    let shiftSeconds = 0;
    if (index > 0 && pieces.length > 0) {
      const start = Math.min(...kept[0]!.tracks.map(([, ts, base]) => base / ts));
      shiftSeconds = end - start;
    }
    const shift = new Map<number, number>();
    if (shiftSeconds !== 0)
      for (const [id, ts] of kept[0]!.tracks) shift.set(id, Math.round(shiftSeconds * ts));
    for (const segment of kept) {
      pieces.push({ partId: part.partId, segment, shift });
      for (const [id, ts, , e] of segment.tracks) end = Math.max(end, (e + (shift.get(id) ?? 0)) / ts);
    }
  }
  return { init, pieces, skipped };
}

/** A copy of fragments (moof + mdat, any prefix boxes) with every traf's tfdt moved by its track's shift. */
export function shiftTfdt(data: Buffer, shift: ReadonlyMap<number, number>): Buffer {
  if (shift.size === 0) return data;
  const out = Buffer.from(data);
  forEachBox(out, 0, out.length, (type, start, end, header) => {
    if (type !== 'moof') return;
    forEachBox(out, start + header, end, (t, s, e, h) => {
      if (t !== 'traf') return;
      let trackId = -1;
      forEachBox(out, s + h, e, (tt, ss, ee, hh) => {
        if (tt === 'tfhd' && ee - ss >= hh + 8) trackId = out.readUInt32BE(ss + hh + 4);
        if (tt !== 'tfdt') return;
        const delta = shift.get(trackId);
        if (delta === undefined) return;
        const version = out[ss + hh]!;
        if (version === 1) {
          const at = ss + hh + 4;
          out.writeBigUInt64BE(BigInt(Math.max(0, Number(out.readBigUInt64BE(at)) + delta)), at);
        } else {
          const at = ss + hh + 4;
          const v = out.readUInt32BE(at) + delta;
          if (v < 0 || v > 0xffffffff) throw new Error('tfdt out of range for a version 0 box');
          out.writeUInt32BE(v, at);
        }
      });
    });
  });
  return out;
}

/** Calls `fn(type, start, end, headerSize)` for each box in [from, to); stops at a malformed size. */
function forEachBox(
  buf: Buffer,
  from: number,
  to: number,
  fn: (type: string, start: number, end: number, header: number) => void,
): void {
  let pos = from;
  while (pos + 8 <= to) {
    let size = buf.readUInt32BE(pos);
    let header = 8;
    if (size === 1) {
      if (pos + 16 > to) return;
      size = Number(buf.readBigUInt64BE(pos + 8));
      header = 16;
    } else if (size === 0) size = to - pos;
    if (size < header || pos + size > to) return;
    fn(buf.toString('latin1', pos + 4, pos + 8), pos, pos + size, header);
    pos += size;
  }
}
