// The capacity benchmark's viewers: VIEWERS HTTP clients per stream, each behaving like a classic HLS player
// (reload the playlist about every target duration / 2, fetch the init once and each new segment), in one
// process. Runs for SECONDS, then prints its own CPU, what it fetched and how late it got it as JSON.
// Lateness of a segment: when its bytes had arrived here minus when its media ended on the relay's clock
// (EXT-X-PROGRAM-DATE-TIME + EXTINF; the relay stamps PDT from the wall clock at ingest, same machine). A
// player polling every TD / 2 sees up to TD / 2 of it by design; more means the relay fell behind.
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
const lateness: number[] = [];

/** Each listed segment's URI with the wall-clock time (ms) its media ends, when the playlist dates it. */
function listed(text: string): { uri: string; endsAt: number | null }[] {
  const out: { uri: string; endsAt: number | null }[] = [];
  let pdt: number | null = null;
  let duration = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pdt = Date.parse(line.slice(25));
    else if (line.startsWith('#EXTINF:')) duration = Number.parseFloat(line.slice(8));
    else if (line && !line.startsWith('#')) {
      const endsAt: number | null = pdt === null ? null : pdt + duration * 1000;
      out.push({ uri: line, endsAt });
      pdt = endsAt; // the next segment starts where this one ends unless it carries its own PDT
    }
  }
  return out;
}

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
        for (const { uri, endsAt } of listed(text).slice(-2)) {
          if (seen.has(uri)) continue;
          seen.add(uri);
          const seg = await fetch(dir + uri);
          if (seg.status === 200) {
            bytes += (await seg.arrayBuffer()).byteLength;
            segments++;
            if (endsAt !== null) lateness.push(Date.now() - endsAt);
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
lateness.sort((a, b) => a - b);
const pct = (p: number): number =>
  lateness[Math.min(lateness.length - 1, Math.floor(lateness.length * p))] ?? 0;
console.log(
  JSON.stringify({
    cpuSeconds: (usage.user + usage.system) / 1e6,
    segments,
    errors,
    bytes,
    lateP50Ms: pct(0.5),
    lateP99Ms: pct(0.99),
    lateMaxMs: lateness.at(-1) ?? 0,
  }),
);
