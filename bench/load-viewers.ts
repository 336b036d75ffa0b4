// The capacity benchmark's viewers: VIEWERS HTTP clients per stream, each behaving like a classic HLS player
// (reload the playlist about every target duration / 2, fetch the init once and each new segment), in one
// process. Runs for SECONDS, then prints its own CPU and what it fetched as JSON.
// Usage: node --import tsx bench/load-viewers.ts HLS_BASE PREFIX COUNT VIEWERS SECONDS
const [base, prefix, count, viewers, seconds] = process.argv.slice(2);
if (!base || !prefix || !count || !viewers || !seconds) {
  console.error('usage: load-viewers.ts HLS_BASE PREFIX COUNT VIEWERS SECONDS');
  process.exit(2);
}
const deadline = Date.now() + Number(seconds) * 1000;
let segments = 0;
let errors = 0;
let bytes = 0;

async function viewer(url: string): Promise<void> {
  const dir = url.slice(0, url.lastIndexOf('/') + 1);
  const seen = new Set<string>();
  let init = false;
  while (Date.now() < deadline) {
    let wait = 1000;
    try {
      const res = await fetch(url);
      if (res.status === 200) {
        const text = await res.text();
        const td = Number(/#EXT-X-TARGETDURATION:(\d+)/.exec(text)?.[1] ?? 2);
        wait = (td * 1000) / 2;
        const map = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)?.[1];
        if (map && !init) {
          bytes += (await (await fetch(dir + map)).arrayBuffer()).byteLength;
          init = true;
        }
        const names = text.split('\n').filter((l) => l && !l.startsWith('#'));
        for (const name of names.slice(-2)) {
          if (seen.has(name)) continue;
          seen.add(name);
          const seg = await fetch(dir + name);
          if (seg.status === 200) {
            bytes += (await seg.arrayBuffer()).byteLength;
            segments++;
          } else {
            errors++;
            await seg.arrayBuffer();
          }
        }
      } else {
        await res.arrayBuffer();
      }
    } catch {
      errors++;
    }
    await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, deadline - Date.now()))));
  }
}

const runs: Promise<void>[] = [];
for (let i = 0; i < Number(count); i++) {
  const url = `${base}/${prefix}-load.test/s${i}/index.m3u8`;
  for (let v = 0; v < Number(viewers); v++) runs.push(viewer(url));
}
await Promise.all(runs);
const usage = process.cpuUsage();
console.log(JSON.stringify({ cpuSeconds: (usage.user + usage.system) / 1e6, segments, errors, bytes }));
