/** A pre-encoded fixture replayed in real time and for longer than it lasts, for the load generators (no encoder in them). */
import { FlvTagType, type MediaTag } from '../src/media/flv-tag.ts';

/** The fixture repeated until `ms` of media: configuration once, every loop shifted by the fixture's length. */
export function looped(tags: readonly MediaTag[], ms: number): MediaTag[] {
  const head = tags.filter((t) => t.isConfig || t.type === FlvTagType.Script);
  const media = tags.filter((t) => !t.isConfig && t.type !== FlvTagType.Script);
  const first = media[0]!.timestamp;
  const span = media.at(-1)!.timestamp - first + 70; // one frame past the last
  const out = [...head];
  for (let offset = 0; offset < ms; offset += span) {
    for (const t of media) {
      const timestamp = t.timestamp - first + offset;
      if (timestamp >= ms) break;
      out.push({ ...t, timestamp });
    }
  }
  return out;
}

/**
 * The real-time schedule of a tag stream: given each media tag's timestamp in order, the ms after the start
 * at which it is due. A step counts as 0 to 1 s, as a publisher's would: a jump costs at most a second.
 */
export function mediaSchedule(): (timestamp: number) => number {
  let media = 0;
  let last: number | null = null;
  return (timestamp) => {
    if (last !== null) media += Math.min(1000, Math.max(0, timestamp - last));
    last = timestamp;
    return media;
  };
}
