// The capacity benchmark's glasses: N real-time RTMP publishers in one process, replaying a pre-encoded
// fixture in a loop (no encoder anywhere in the load generator), each stream starting at a random offset
// into the first second so keyframes do not all line up. Prints its own CPU seconds as JSON at the end.
// Usage: node --import tsx bench/load-publisher.ts FILE PORT COUNT SECONDS PREFIX
import { readFileSync } from 'node:fs';
import { readFlv } from '../src/media/flv-reader.ts';
import { FlvTagType, type MediaTag } from '../src/media/flv-tag.ts';
import { publishFlv } from '../test/helpers/flv-publisher.ts';

const [file, port, count, seconds, prefix] = process.argv.slice(2);
if (!file || !port || !count || !seconds || !prefix) {
  console.error('usage: load-publisher.ts FILE PORT COUNT SECONDS PREFIX');
  process.exit(2);
}

/** The fixture repeated until `ms` of media: configuration once, every loop shifted by the fixture's length. */
function looped(tags: readonly MediaTag[], ms: number): MediaTag[] {
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

const tags = looped(readFlv(readFileSync(file)).tags, Number(seconds) * 1000);
const publishers = Array.from({ length: Number(count) }, (_, i) =>
  new Promise<void>((resolve) => setTimeout(resolve, Math.random() * 1000)).then(
    () =>
      publishFlv(tags, {
        port: Number(port),
        user: `${prefix}@load.test`,
        stream: `s${i}`,
        startTimeoutMs: 60_000,
      }).done,
  ),
);
const results = await Promise.allSettled(publishers);
const failed = results.filter((r) => r.status === 'rejected').length;
const usage = process.cpuUsage();
console.log(JSON.stringify({ cpuSeconds: (usage.user + usage.system) / 1e6, failed }));
