/**
 * The CMAF writer against FFmpeg on the same input: an FLV FFmpeg encoded (x264 main profile with B-frames
 * + AAC; baseline + AAC; the glasses fixture) goes through our FLV reader, the FLV demuxer and CmafWriter
 * into a file, and through `ffmpeg -c copy -f mp4 -movflags +frag_keyframe+empty_moov+default_base_moof`
 * into another. ffprobe must find the same packets in both, per stream and in order: payload hashes,
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
import type { AccessUnit, AudioConfig, VideoConfig } from '../../src/media/access-unit.ts';
import { CmafWriter } from '../../src/media/cmaf-writer.ts';
import { readFlv } from '../../src/media/flv-reader.ts';
import { FlvTagType, type MediaTag } from '../../src/media/flv-tag.ts';
import { isKeyframeAu, parseAvcConfig } from '../../src/media/nal.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { runTool, startTool } from '../helpers/process.ts';

const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/**
 * H.264 + AAC FLV tags to configurations and access units (a stand-in for src/media/flv-demux.ts until it
 * is on this branch): the avcC record (4-byte NAL lengths, as x264 writes), the AudioSpecificConfig, and
 * frames with PTS = DTS + the composition time, keyframes from the NAL types.
 */
function demux(tags: MediaTag[]): {
  video: VideoConfig | null;
  audio: AudioConfig | null;
  aus: AccessUnit[];
} {
  let video: VideoConfig | null = null;
  let audio: AudioConfig | null = null;
  const aus: AccessUnit[] = [];
  for (const tag of tags) {
    const body = tag.data;
    if (tag.type === FlvTagType.Video && (body[0]! & 0x0f) === 7) {
      if (body[1] === 0) {
        const record = Buffer.from(body.subarray(5));
        const avcc = parseAvcConfig(record);
        assert.equal(video, null, 'one video configuration');
        assert.equal(avcc.lengthSize, 4);
        video = { kind: 'video', codec: 'h264', record, width: avcc.width ?? 0, height: avcc.height ?? 0 };
      } else if (body[1] === 1) {
        const data = body.subarray(5);
        const dts = tag.timestamp;
        aus.push({
          track: 'video',
          dts,
          pts: dts + body.readIntBE(2, 3),
          keyframe: isKeyframeAu('h264', data),
          data,
        });
      }
    } else if (tag.type === FlvTagType.Audio && body[0]! >> 4 === 10) {
      if (body[1] === 0) {
        const asc = Buffer.from(body.subarray(2));
        assert.equal(audio, null, 'one audio configuration');
        const sampleRate = AAC_RATES[((asc[0]! & 0x07) << 1) | (asc[1]! >> 7)]!;
        const channels = (asc[1]! >> 3) & 0x0f;
        audio = { kind: 'audio', codec: 'aac', config: asc, sampleRate, channels, frameSamples: 1024 };
      } else {
        aus.push({
          track: 'audio',
          dts: tag.timestamp,
          pts: tag.timestamp,
          keyframe: true,
          data: body.subarray(2),
        });
      }
    }
  }
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

/** An FLV as FFmpeg encodes it: 4 s of test pattern and tone, x264 with the given options. */
async function encodeFlv(name: string, x264: string[]): Promise<string> {
  const file = path.join(dir, `${name}.flv`);
  await runTool('ffmpeg', [
    ...['-hide_banner', '-loglevel', 'error', '-nostdin', '-y'],
    ...['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=15'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100'],
    ...['-map', '0:v', '-map', '1:a', '-t', '4'],
    ...[
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-threads',
      '1',
      '-pix_fmt',
      'yuv420p',
      '-g',
      '15',
      ...x264,
    ],
    ...['-c:a', 'aac', '-ac', '1', '-f', 'flv', file],
  ]);
  return file;
}

const INPUTS: { name: string; flv: () => Promise<string>; bframes: boolean; jump?: boolean }[] = [
  {
    name: 'x264 main profile with B-frames + AAC',
    flv: () => encodeFlv('main-bframes', ['-profile:v', 'main', '-bf', '2']),
    bframes: true,
  },
  {
    name: 'x264 baseline + AAC',
    flv: () => encodeFlv('baseline', ['-profile:v', 'baseline']),
    bframes: false,
  },
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
      assert.ok(video && audio);
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
