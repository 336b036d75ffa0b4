// A real-time publisher in its own process, so the benchmark's relay CPU excludes what the glasses do.
// Usage: node --import tsx bench/publish-child.ts FILE PORT USER STREAM
// Prints its own CPU seconds as JSON when done: the parent subtracts them from its children's total.
import { publishFlv } from '../test/helpers/flv-publisher.ts';

const [file, port, user, stream] = process.argv.slice(2);
if (!file || !port || !user || !stream) {
  console.error('usage: publish-child.ts FILE PORT USER STREAM');
  process.exit(2);
}
await publishFlv(file, { port: Number(port), user, stream }).done;
const usage = process.cpuUsage();
console.log(JSON.stringify({ cpuSeconds: (usage.user + usage.system) / 1e6 }));
