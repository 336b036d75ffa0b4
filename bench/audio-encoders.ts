/**
 * What the audio-only encoders cost per stream, printed as a Markdown table: the Opus → AAC encoder a WHIP
 * stream runs while it has an FLV output (re-stream destinations, a transcode; src/pipeline/aac-encoder.ts)
 * against, in the same run, the AAC → Opus encoder an RTMP stream runs while a WHEP viewer listens
 * (src/webrtc/opus-encoder.ts, the reference: the same FFmpeg work the other way). Each is fed in real time
 * (one frame when its media time comes) for BENCH_AUDIO_SECONDS (30) from a fixture: the Opus tone
 * (test/fixtures/opus.ts, looped) and the glasses fixture's AAC. Measured: the FFmpeg child's CPU (utime +
 * stime from /proc) over the window, as % of a core; output frames' delay behind real time (p50, max).
 *
 * Run: node --import tsx bench/audio-encoders.ts
 */
import type { AccessUnit, AudioConfig } from '../src/media/access-unit.ts';
import { OggOpusReader } from '../src/media/ogg-opus.ts';
import { ffmpegAacEncoder } from '../src/pipeline/aac-encoder.ts';
import { ChildReaper } from '../src/pipeline/child-reaper.ts';
import { silentLogger } from '../src/shared/logger.ts';
import { ffmpegOpusEncoder } from '../src/webrtc/opus-encoder.ts';
import { webrtcOpusConfig } from '../src/webrtc/whip-session.ts';
import { fixturePath, loadFixture } from '../test/fixtures/generate.ts';
import { readFlvAccessUnits } from '../test/helpers/flv-access-units.ts';
import { cpuOfPid } from './cpu.ts';

const SECONDS = Number(process.env.BENCH_AUDIO_SECONDS ?? 30);

/** A reaper that remembers the children it was given (the encoder keeps its FFmpeg private). */
class WatchingReaper extends ChildReaper {
  readonly added: number[] = [];
  override add(pid: number): void {
    this.added.push(pid);
    super.add(pid);
  }
}

interface Result {
  name: string;
  cpuPercent: number;
  frames: number;
  delayP50: number;
  delayMax: number;
}

/** Feeds `frames` (looped, restamped) in real time to an encoder; measures its FFmpeg's CPU and delay. */
async function run(
  name: string,
  frames: AccessUnit[],
  frameMs: number,
  start: (
    reaper: ChildReaper,
    onOut: (timeMs: number) => void,
  ) => { push(au: AccessUnit): void; close(): void },
): Promise<Result> {
  const reaper = new WatchingReaper();
  const t0 = performance.now();
  const delays: number[] = [];
  const encoder = start(reaper, (timeMs) => delays.push(performance.now() - t0 - timeMs));
  // The child appears at once; its CPU is read at the end of the window (it runs until close).
  let pid: number | undefined;
  const count = Math.floor((SECONDS * 1000) / frameMs);
  for (let i = 0; i < count; i++) {
    const due = t0 + i * frameMs;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const au = frames[i % frames.length]!;
    encoder.push({ ...au, dts: i * frameMs, pts: i * frameMs });
    pid ??= reaper.added[0];
  }
  await new Promise((r) => setTimeout(r, 300)); // the last frames out
  const cpu = pid === undefined ? 0 : cpuOfPid(pid);
  const wall = (performance.now() - t0) / 1000;
  encoder.close();
  reaper.close();
  delays.sort((a, b) => a - b);
  return {
    name,
    cpuPercent: (cpu / wall) * 100,
    frames: delays.length,
    delayP50: delays[delays.length >> 1] ?? Number.NaN,
    delayMax: delays.at(-1) ?? Number.NaN,
  };
}

async function main(): Promise<void> {
  const log = silentLogger();
  const opusPackets = new OggOpusReader().push(await loadFixture('tone-opus-mono.ogg'));
  const opusFrames: AccessUnit[] = opusPackets.map((data) => ({
    track: 'audio',
    dts: 0,
    pts: 0,
    keyframe: true,
    data,
  }));
  const opus = webrtcOpusConfig(); // as a WHIP source configures it
  const glasses = readFlvAccessUnits(await fixturePath('glasses-854x480.flv'));
  const aac = glasses.audio as AudioConfig;
  const aacFrames = glasses.units.filter((u) => u.track === 'audio');
  const aacFrameMs = (aac.frameSamples / aac.sampleRate) * 1000;

  const results = [
    await run('Opus → AAC (WHIP stream with an FLV output)', opusFrames, 20, (reaper, onOut) =>
      ffmpegAacEncoder({ ffmpegPath: 'ffmpeg', reaper, log })(opus, (f) => onOut(f.dts)),
    ),
    await run(
      'AAC → Opus (reference: WHEP viewer of an RTMP stream)',
      aacFrames,
      aacFrameMs,
      (reaper, onOut) =>
        ffmpegOpusEncoder({ ffmpegPath: 'ffmpeg', reaper, log })(aac, (_p, timeMs) => onOut(timeMs)),
    ),
  ];
  const [mine, reference] = results as [Result, Result];
  console.log(`Audio-only encoders, ${SECONDS} s each in real time (one FFmpeg per stream)\n`);
  console.log('| encoder | CPU, % of a core | frames out | delay p50 | delay max |');
  console.log('|---|---|---|---|---|');
  for (const r of results) {
    console.log(
      `| ${r.name} | ${r.cpuPercent.toFixed(2)} | ${r.frames} | ${r.delayP50.toFixed(0)} ms | ${r.delayMax.toFixed(0)} ms |`,
    );
  }
  console.log(
    `\nOpus → AAC costs ${(mine.cpuPercent / reference.cpuPercent).toFixed(2)}× the reference in this run.`,
  );
}

await main();
