/**
 * The ABR ladder against separate transcodes, in one run, on the same input (the fixture generator's dirty
 * 540x960 glasses stream), paced in real time:
 *   ladder     one FFmpeg with the ABR profile's argv (src/pipeline/ladder.ts) as the relay runs it for this
 *              input (onMetaData says 15 fps, audio is AAC: the input's frames are kept, AAC is copied): one
 *              decode, three rungs for 540x960 (540p at 2 Mbit/s, 480p at 1, 360p at 0.6), each its own fMP4
 *              on its own pipe; and, for reference, the same ladder resampled to 30 fps with AAC encoded per
 *              rung (what an input of unknown frame rate or non-AAC audio costs)
 *   separate   two FFmpegs, each the seed's encode (SEED_VIDEO_ENCODE) at one size: 540x960 at 2 Mbit/s
 *              and 480x854 at 1 Mbit/s, each decoding the input itself, fMP4 on stdout
 * and, to tell the ladder's own saving from the frame-rate one, the same two with the input's frames kept
 * and AAC copied, like the ladder as run. All are fed the same FLV through a pipe by this process (one pacing loop writes to every FFmpeg of a
 * setup), and every output is read (and checked as fMP4) as the relay would. CPU is the FFmpegs'
 * user+sys seconds per second of media (reaped children); the setups alternate, REPEAT times each, and the
 * table shows each run and the medians. Goal: ladder ≤ 0.7 × separate.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { readFlv } from '../src/media/flv-reader.ts';
import { FlvSink, type FlvStart } from '../src/media/flv-sink.ts';
import { FlvTagType, type MediaTag } from '../src/media/flv-tag.ts';
import { Fmp4Reader } from '../src/media/fmp4.ts';
import { SEED_AUDIO_ENCODE, SEED_VIDEO_ENCODE } from '../src/pipeline/ffmpeg-args.ts';
import { ladderArgs, ladderFor } from '../src/pipeline/ladder.ts';
import { fixturePath } from '../test/fixtures/generate.ts';
import { cpuChildren } from './cpu.ts';
import { mediaSchedule } from './fixture-loop.ts';

const REPEAT = Number(process.env.BENCH_ABR_REPEAT ?? 2);
const FRAGMENT_MS = 500;

const INPUT = ['-hide_banner', '-nostdin', '-loglevel', 'warning'];
const FLV_IN = ['-analyzeduration', '100000', '-probesize', '32768', '-f', 'flv', '-i', 'pipe:0'];
const FMP4_OUT = [
  ...['-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof'],
  ...['-frag_duration', String(FRAGMENT_MS * 1000), 'pipe:1'],
];

/** The seed's encode at another size and bitrate (its -b:v/-maxrate/-bufsize scaled like the seed's). */
function seedStyle(width: number, height: number, mbps: number, keepFrames = false): string[] {
  let encode: string[] = [...SEED_VIDEO_ENCODE];
  const set = (flag: string, value: string): void => {
    encode[encode.indexOf(flag) + 1] = value;
  };
  set('-b:v', `${mbps}M`);
  set('-maxrate', `${mbps * 1.25}M`);
  set('-bufsize', `${mbps * 2}M`);
  if (keepFrames) {
    // Like the ladder as run for this input: no -r 30 (the input's frames, keyframes forced every 2 s), AAC copied.
    encode.splice(encode.indexOf('-r'), 2);
    encode = [...encode, '-fps_mode', 'passthrough', '-force_key_frames', 'expr:gte(t,n_forced*2)'];
  }
  const audio = keepFrames ? ['-c:a', 'copy'] : [...SEED_AUDIO_ENCODE];
  return [...INPUT, ...FLV_IN, '-vf', `scale=${width}:${height}`, ...encode, ...audio, ...FMP4_OUT];
}

interface Spawned {
  input: FlvSink;
  exited: Promise<number | null>;
  fragments: number[];
}

/** Spawns an FFmpeg with `outputs` fMP4 pipes (stdout, then fd 3, 4, …) and counts each one's fragments. */
function start(args: string[], outputs: number, flv: FlvStart): Spawned {
  const stdio = Array.from({ length: 3 + outputs - 1 }, () => 'pipe' as const);
  const child = spawn('ffmpeg', args, { stdio });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => process.stderr.write(`ffmpeg: ${d}`));
  const fragments = Array.from({ length: outputs }, () => 0);
  for (let i = 0; i < outputs; i++) {
    const pipe = child.stdio[i === 0 ? 1 : i + 2] as Readable;
    const reader = new Fmp4Reader();
    pipe.on('data', (chunk: Buffer) =>
      reader.push(chunk, {
        init: () => {},
        fragment: () => {
          fragments[i]!++;
        },
      }),
    );
  }
  const input = new FlvSink(child.stdin!);
  input.start(flv);
  return { input, exited: new Promise((r) => child.once('close', (code) => r(code))), fragments };
}

/** Writes tags in real time by their timestamps (jumps clamped to 1 s, like a publisher). */
async function paceInto(tags: MediaTag[], write: (t: MediaTag) => void): Promise<void> {
  const begin = Date.now();
  const dueAt = mediaSchedule();
  for (const tag of tags) {
    const due = begin + dueAt(tag.timestamp) - Date.now();
    if (due > 0) await new Promise<void>((r) => setTimeout(r, due));
    write(tag);
  }
}

interface Run {
  setup: string;
  cpuPerS: number;
  fragments: number[];
}

async function measure(
  setup: string,
  procs: { args: string[]; outputs: number }[],
  flv: FlvStart,
  tags: MediaTag[],
  mediaS: number,
): Promise<Run> {
  const before = cpuChildren();
  const running = procs.map((p) => start(p.args, p.outputs, flv));
  await paceInto(tags, (t) => {
    for (const r of running) r.input.write(t);
  });
  for (const r of running) r.input.end();
  const codes = await Promise.all(running.map((r) => r.exited));
  if (codes.some((c) => c !== 0)) throw new Error(`${setup}: ffmpeg exited with ${codes.join(', ')}`);
  return {
    setup,
    cpuPerS: (cpuChildren() - before) / mediaS,
    fragments: running.flatMap((r) => r.fragments),
  };
}

const median = (values: number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function main(): Promise<void> {
  const file = await fixturePath('dirty-540x960.flv');
  const flvFile = readFlv(readFileSync(file));
  const config = (type: number) => flvFile.tags.find((t) => t.type === type && t.isConfig) ?? null;
  const flv: FlvStart = {
    hasAudio: flvFile.header.hasAudio,
    hasVideo: flvFile.header.hasVideo,
    metadataTag: flvFile.tags.find((t) => t.type === FlvTagType.Script)?.data ?? null,
    videoConfig: config(FlvTagType.Video),
    audioConfig: config(FlvTagType.Audio),
  };
  const tags = flvFile.tags.filter((t) => !t.isConfig && t.type !== FlvTagType.Script);
  const mediaS = 24;
  const rungs = ladderFor(540, 960);
  // As the relay runs it for this input (15 fps in onMetaData, AAC): the input's frames kept, AAC copied.
  const ladder = [
    {
      args: ladderArgs(rungs, {
        hasAudio: flv.hasAudio,
        fragmentMs: FRAGMENT_MS,
        capFps: false,
        copyAudio: true,
      }),
      outputs: rungs.length,
    },
  ];
  // The same ladder resampled to 30 fps with audio encoded per rung (input of unknown frame rate, not AAC).
  const ladder30 = [
    { args: ladderArgs(rungs, { hasAudio: flv.hasAudio, fragmentMs: FRAGMENT_MS }), outputs: rungs.length },
  ];
  const separate = [
    { args: seedStyle(540, 960, 2), outputs: 1 },
    { args: seedStyle(480, 854, 1), outputs: 1 },
  ];
  const sizes = rungs.map((r) => `${r.width}x${r.height}@${r.videoKbps}k`).join(' + ');
  const ladderName = `ladder (as run for this input: input frames, AAC copied): 1 FFmpeg, ${sizes}`;
  const ladder30Name = 'ladder resampled to 30 fps, AAC encoded per rung: 1 FFmpeg, same rungs';
  const separateName = 'separate: 2 FFmpegs, 540x960@2M + 480x854@1M (seed encode)';
  const separateKept = [
    { args: seedStyle(540, 960, 2, true), outputs: 1 },
    { args: seedStyle(480, 854, 1, true), outputs: 1 },
  ];
  const separateKeptName = 'separate, same frame savings (input frames, AAC copied): 2 FFmpegs, same sizes';
  const runs: Run[] = [];
  for (let i = 0; i < REPEAT; i++) {
    process.stderr.write(`abr run ${i + 1}/${REPEAT}: ladder…\n`);
    runs.push(await measure(ladderName, ladder, flv, tags, mediaS));
    process.stderr.write(`abr run ${i + 1}/${REPEAT}: separate…\n`);
    runs.push(await measure(separateName, separate, flv, tags, mediaS));
    process.stderr.write(`abr run ${i + 1}/${REPEAT}: ladder at 30 fps…\n`);
    runs.push(await measure(ladder30Name, ladder30, flv, tags, mediaS));
    process.stderr.write(`abr run ${i + 1}/${REPEAT}: separate with input frames…\n`);
    runs.push(await measure(separateKeptName, separateKept, flv, tags, mediaS));
  }
  const ladderCpu = median(runs.filter((r) => r.setup === ladderName).map((r) => r.cpuPerS));
  const separateCpu = median(runs.filter((r) => r.setup === separateName).map((r) => r.cpuPerS));
  const ladder30Cpu = median(runs.filter((r) => r.setup === ladder30Name).map((r) => r.cpuPerS));
  const keptCpu = median(runs.filter((r) => r.setup === separateKeptName).map((r) => r.cpuPerS));
  const lines = [
    `ABR ladder vs separate transcodes, dirty 540x960 9–15 fps input (${mediaS} s), real time (${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores)`,
    '',
    '| setup | run | FFmpeg CPU s per media s | fMP4 fragments per output |',
    '| --- | --- | --- | --- |',
    ...runs.map(
      (r, i) =>
        `| ${r.setup} | ${Math.floor(i / 4) + 1} | ${r.cpuPerS.toFixed(3)} | ${r.fragments.join(' / ')} |`,
    ),
    '',
    '| setup | median CPU s per media s | vs separate |',
    '| --- | --- | --- |',
    `| ${ladderName} | ${ladderCpu.toFixed(3)} | **${(ladderCpu / separateCpu).toFixed(2)}×** (goal ≤ 0.7×) |`,
    `| ${ladder30Name} | ${ladder30Cpu.toFixed(3)} | ${(ladder30Cpu / separateCpu).toFixed(2)}× |`,
    `| ${separateName} | ${separateCpu.toFixed(3)} | 1.00× |`,
    `| ${separateKeptName} | ${keptCpu.toFixed(3)} | ${(keptCpu / separateCpu).toFixed(2)}× (the ladder is ${(ladderCpu / keptCpu).toFixed(2)}× of it) |`,
  ];
  console.log(lines.join('\n'));
}

await main();
