// The capacity benchmark's glasses: N real-time RTMP publishers in one process, replaying a pre-encoded
// fixture in a loop (no encoder anywhere in the load generator), each stream starting at a random offset
// into the first second so keyframes do not all line up.
// SIGUSR2 starts the lateness count over (the parent sends it when its measuring window opens); SIGTERM, or
// the end of every publish, prints one JSON line and exits: its own CPU seconds, failed publishes, and the
// worst lateness of a tag against its real-time schedule since SIGUSR2 (how far the generator fell behind).
// Usage: node --import tsx bench/load-publisher.ts FILE PORT COUNT SECONDS PREFIX
import { readFileSync } from 'node:fs';
import { readFlv } from '../src/media/flv-reader.ts';
import { type FlvPublisher, publishFlv } from '../test/helpers/flv-publisher.ts';
import { looped } from './fixture-loop.ts';

const [file, port, count, seconds, prefix] = process.argv.slice(2);
if (!file || !port || !count || !seconds || !prefix) {
  console.error('usage: load-publisher.ts FILE PORT COUNT SECONDS PREFIX');
  process.exit(2);
}

const tags = looped(readFlv(readFileSync(file)).tags, Number(seconds) * 1000);
const publishers: FlvPublisher[] = [];
let failed = 0;
const worstLate = (): number => Math.max(0, ...publishers.map((p) => p.takeMaxLateMs()));
const report = (): void => {
  const usage = process.cpuUsage();
  console.log(
    JSON.stringify({ cpuSeconds: (usage.user + usage.system) / 1e6, failed, maxLateMs: worstLate() }),
  );
};
process.on('SIGUSR2', () => worstLate());
process.on('SIGTERM', () => {
  report();
  process.exit(0);
});
const runs = Array.from({ length: Number(count) }, (_, i) =>
  new Promise<void>((resolve) => setTimeout(resolve, Math.random() * 1000)).then(() => {
    const p = publishFlv(tags, {
      port: Number(port),
      user: `${prefix}@load.test`,
      stream: `s${i}`,
      startTimeoutMs: 60_000,
    });
    publishers.push(p);
    return p.done.catch(() => {
      failed++;
    });
  }),
);
await Promise.all(runs);
report();
