/**
 * The CMAF writer against FFmpeg on the same input: an FLV FFmpeg encoded (x264 main profile with B-frames
 * + AAC; baseline + AAC; the glasses and dirty fixtures) goes through our FLV reader, the FLV demuxer
 * (src/media/flv-demux.ts, as RTMP publishes take it) and CmafWriter into a file, and through
 * `ffmpeg -c copy -f mp4 -movflags +frag_keyframe+empty_moov+default_base_moof` into another. ffprobe must find the same packets in both, per stream and in order: payload hashes,
 * keyframe flags, and timestamps within one tick (of the coarser time base) once the starts are aligned
 * (FFmpeg moves each track's first sample to 0, so the first packet is left out of the timing check);
 * audio within one AAC frame, because our audio clock counts samples where FFmpeg copies FLV's rounded
 * milliseconds (the difference is FLV's rounding, under a frame by construction). ffprobe -show_frames
 * must decode all of ours without a word on stderr. Real ffmpeg and ffprobe: a missing tool fails.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type AccessUnit,
  type AudioConfig,
  isAudioConfig,
  isVideoConfig,
  type VideoConfig,
} from '../../src/media/access-unit.ts';
import { CmafWriter } from '../../src/media/cmaf-writer.ts';
import { FlvDemuxer } from '../../src/media/flv-demux.ts';
import { readFlv } from '../../src/media/flv-reader.ts';
import type { MediaTag } from '../../src/media/flv-tag.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { generateSteadyFlv } from '../fixtures/steady.ts';
import { runTool, startTool } from '../helpers/process.ts';

/** FLV tags to the writer's configurations and access units, through the relay's own FLV demuxer. */
function demux(tags: MediaTag[]): { video: VideoConfig; audio: AudioConfig; aus: AccessUnit[] } {
  const demuxer = new FlvDemuxer();
  const aus: AccessUnit[] = [];
  let configs = 0;
  for (const tag of tags) {
    const out = demuxer.push(tag);
    if (out?.config) configs++;
    if (out?.au) aus.push(out.au);
  }
  assert.equal(configs, 2, 'one configuration per track (a change would need a new writer)');
  assert.equal(demuxer.skipped, 0);
  const { video, audio } = demuxer;
  assert.ok(isVideoConfig(video) && isAudioConfig(audio), 'H.264 and AAC');
  return { video, audio, aus };
}

interface Packet {
  pts: number;
  dts: number;
  keyframe: boolean;
  size: number;
  hash: string;
}

interface Probed {
  /** Per codec type: the stream's time base in seconds per tick, and its packets in order. */
  video: { tick: number; packets: Packet[] };
  audio: { tick: number; packets: Packet[] };
}

/** ffprobe's JSON, through a file: runTool keeps only the tail of a long stdout. */
async function ffprobeJson(file: string, name: string, args: string[]): Promise<unknown> {
  const out = `${file}.${name}.json`;
  await runTool('ffprobe', ['-v', 'error', '-of', 'json', '-o', out, ...args, file]);
  return JSON.parse(readFileSync(out, 'utf8'));
}

async function probePackets(file: string): Promise<Probed> {
  const json = (await ffprobeJson(file, 'packets', [
    ...['-show_data_hash', 'MD5', '-show_entries'],
    'stream=index,codec_type,time_base:packet=stream_index,pts,dts,size,flags,data_hash',
  ])) as {
    streams: { index: number; codec_type: string; time_base: string }[];
    packets: {
      stream_index: number;
      pts: number;
      dts: number;
      size: string;
      flags: string;
      data_hash: string;
    }[];
  };
  const result: Probed = { video: { tick: 0, packets: [] }, audio: { tick: 0, packets: [] } };
  for (const kind of ['video', 'audio'] as const) {
    const stream = json.streams.find((s) => s.codec_type === kind);
    assert.ok(stream, `${file} has a ${kind} stream`);
    const [num, den] = stream.time_base.split('/').map(Number) as [number, number];
    const tick = num / den;
    result[kind] = {
      tick,
      packets: json.packets
        .filter((p) => p.stream_index === stream.index)
        .map((p) => ({
          pts: p.pts * tick,
          dts: p.dts * tick,
          keyframe: p.flags.startsWith('K'),
          size: Number(p.size),
          hash: p.data_hash,
        })),
    };
  }
  return result;
}

/** ffprobe decodes every frame of the file; anything it says on stderr fails. Returns frames per type. */
async function decodeAll(file: string): Promise<{ video: number; audio: number }> {
  const out = `${file}.frames.json`;
  const run = await startTool(
    'ffprobe',
    ['-v', 'error', '-show_entries', 'frame=media_type', '-of', 'json', '-o', out, file],
    { timeoutMs: 120_000 },
  ).done;
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr.trim(), '', 'decoding our file is silent');
  const frames = (JSON.parse(readFileSync(out, 'utf8')) as { frames: { media_type: string }[] }).frames;
  return {
    video: frames.filter((f) => f.media_type === 'video').length,
    audio: frames.filter((f) => f.media_type === 'audio').length,
  };
}

let dir = '';

/** A baseline-profile FLV made by the steady fixture generator (x264 baseline has no B-frames). */
async function baselineFlv(): Promise<string> {
  const file = path.join(dir, 'baseline.flv');
  const recipe = { width: 320, height: 240, fps: 15, seconds: 4, gopSeconds: 1, videoKbps: 300 } as const;
  writeFileSync(file, await generateSteadyFlv({ ...recipe, profile: 'baseline' }));
  return file;
}

const INPUTS: { name: string; flv: () => Promise<string>; bframes: boolean; jump?: boolean }[] = [
  {
    name: 'x264 main profile with B-frames + AAC (854x480, 20 s)',
    flv: () => fixturePath('bframes-15fps.flv'),
    bframes: true,
  },
  { name: 'x264 baseline + AAC', flv: baselineFlv, bframes: false },
  {
    name: 'the glasses fixture (854x480, dropped frames)',
    flv: () => fixturePath('glasses-854x480.flv'),
    bframes: false,
  },
  {
    name: 'the dirty fixture (a varying frame rate, a 7 s GOP, a 5 s timestamp jump)',
    flv: () => fixturePath('dirty-540x960.flv'),
    bframes: false,
    jump: true,
  },
];

describe('cmaf: our fragments carry what FFmpeg -c copy -f mp4 carries', { timeout: 300_000 }, () => {
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'rtmp-relay-cmaf-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const input of INPUTS) {
    it(input.name, async () => {
      const flv = await input.flv();
      const base = path.join(dir, path.basename(flv, '.flv'));
      const { video, audio, aus } = demux(readFlv(readFileSync(flv)).tags);
      const writer = new CmafWriter({ video, audio });
      const fragments = [...aus.flatMap((au) => writer.push(au)), ...writer.flush()];
      writeFileSync(`${base}.ours.mp4`, Buffer.concat([writer.init.data, ...fragments.map((f) => f.data)]));
      await runTool('ffmpeg', [
        ...['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-i', flv, '-c', 'copy'],
        ...['-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', `${base}.ref.mp4`],
      ]);
      const [ours, ref, decoded] = await Promise.all([
        probePackets(`${base}.ours.mp4`),
        probePackets(`${base}.ref.mp4`),
        decodeAll(`${base}.ours.mp4`),
      ]);
      assert.equal(writer.stats.samples, aus.length);
      for (const kind of ['video', 'audio'] as const) {
        const a = ours[kind].packets;
        const b = ref[kind].packets;
        assert.ok(b.length > 20, `${kind}: FFmpeg wrote ${b.length} packets`);
        assert.equal(a.length, b.length, `${kind}: packet count`);
        assert.deepEqual(
          a.map((p) => p.hash),
          b.map((p) => p.hash),
          `${kind}: payloads`,
        );
        assert.deepEqual(
          a.map((p) => p.size),
          b.map((p) => p.size),
        );
        assert.deepEqual(
          a.map((p) => p.keyframe),
          b.map((p) => p.keyframe),
          `${kind}: keyframes`,
        );
        // FFmpeg starts each track's first sample at 0 whatever its FLV time (it has no edit list to say
        // otherwise): align on the second packet and leave the first out of the timing check.
        const shift = b[1]!.dts - a[1]!.dts;
        const tolerance =
          kind === 'video' ? Math.max(ours.video.tick, ref.video.tick) : 1024 / audio.sampleRate;
        let worst = 0;
        for (let i = 1; i < a.length; i++) {
          worst = Math.max(
            worst,
            Math.abs(a[i]!.dts + shift - b[i]!.dts),
            Math.abs(a[i]!.pts + shift - b[i]!.pts),
          );
        }
        assert.ok(
          worst <= tolerance + 1e-9,
          `${kind}: timestamps differ by up to ${worst} s (allowed ${tolerance})`,
        );
      }
      // Across the jump our audio clock resyncs to the FLV time (and lands where FFmpeg's does, above).
      assert.equal(writer.stats.audioResyncs > 0, input.jump === true, 'audio resyncs at the jump only');
      if (input.bframes)
        assert.ok(
          ours.video.packets.some((p) => p.pts > p.dts + 1e-6),
          'B-frames reorder',
        );
      assert.equal(decoded.video, ours.video.packets.length, 'every frame decodes');
      assert.equal(decoded.audio, ours.audio.packets.length, 'every audio frame decodes');
    });
  }
});
