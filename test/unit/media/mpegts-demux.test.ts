import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AccessUnit, isVideoConfig } from '../../../src/media/access-unit.ts';
import { audioSpecificConfig, parseAdtsHeader, splitAdts } from '../../../src/media/adts.ts';
import { type DemuxOutput, MpegTsDemuxer, TS_PACKET } from '../../../src/media/mpegts-demux.ts';
import { fixturePath } from '../../fixtures/generate.ts';
import { runTool } from '../../helpers/process.ts';

/** MPEG-TS made by FFmpeg from a fixture (-c copy), and what ffprobe reads in it. */
interface Made {
  ts: Buffer;
  video: { dts: number; pts: number; key: boolean }[];
  audio: number[];
}

async function makeTs(dir: string, name: string, extra: string[] = []): Promise<Made> {
  const out = path.join(dir, name);
  const input = await fixturePath('steady-9fps.flv');
  await runTool('ffmpeg', ['-v', 'error', '-i', input, '-c', 'copy', ...extra, '-f', 'mpegts', '-y', out]);
  const csv = await runTool('ffprobe', [
    '-v',
    'error',
    '-show_entries',
    'packet=codec_type,pts,dts,flags',
    '-of',
    'csv=p=0',
    out,
  ]);
  const video: Made['video'] = [];
  const audio: number[] = [];
  for (const line of csv.trim().split('\n')) {
    const [type, pts, dts, flags] = line.split(',');
    if (type === 'video') video.push({ pts: Number(pts), dts: Number(dts), key: flags!.startsWith('K') });
    else if (type === 'audio') audio.push(Number(pts));
  }
  return { ts: readFileSync(out), video, audio };
}

function demuxAll(ts: Buffer, chunkSizes: (i: number) => number, d = new MpegTsDemuxer()) {
  const outputs: DemuxOutput[] = [];
  for (let pos = 0, i = 0; pos < ts.length; i++) {
    const n = chunkSizes(i);
    outputs.push(...d.push(ts.subarray(pos, pos + n)));
    pos += n;
  }
  outputs.push(...d.flush());
  const aus = outputs.flatMap((o) => (o.type === 'au' ? [o.au] : []));
  const configs = outputs.flatMap((o) => (o.type === 'config' ? [o.config] : []));
  return {
    d,
    aus,
    configs,
    video: aus.filter((a) => a.track === 'video'),
    audio: aus.filter((a) => a.track === 'audio'),
  };
}

/** Each AVCC payload parses back into NAL units that fill it exactly. */
function assertAvcc(au: AccessUnit): void {
  let o = 0;
  while (o < au.data.length) {
    const n = au.data.readUInt32BE(o);
    assert.ok(n > 0 && o + 4 + n <= au.data.length, 'AVCC length in bounds');
    o += 4 + n;
  }
  assert.equal(o, au.data.length);
}

describe('MPEG-TS demux on FFmpeg output', () => {
  let dir: string;
  let plain: Made;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'mpegts-'));
    plain = await makeTs(dir, 'plain.ts');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('yields every frame ffprobe sees, with its timestamps, whatever the chunking', () => {
    for (const sizes of [() => 1316, () => TS_PACKET * 100, (i: number) => 1 + ((i * 7919) % 3000)]) {
      const { video, audio, configs, d } = demuxAll(plain.ts, sizes);
      assert.equal(video.length, plain.video.length);
      assert.equal(audio.length, plain.audio.length);
      video.forEach((au, i) => {
        assert.ok(Math.abs(au.dts - plain.video[i]!.dts / 90) < 1e-6, `video ${i} dts`);
        assert.ok(Math.abs(au.pts - plain.video[i]!.pts / 90) < 1e-6, `video ${i} pts`);
        assert.equal(au.keyframe, plain.video[i]!.key, `video ${i} keyframe`);
        assertAvcc(au);
      });
      audio.forEach((au, i) => {
        assert.ok(Math.abs(au.pts - plain.audio[i]! / 90) < 0.05, `audio ${i} pts`);
      });
      assert.equal(d.stats.continuityErrors, 0);
      assert.equal(d.stats.droppedPes, 0);
      const video0 = configs.find((c) => c.kind === 'video');
      assert.ok(isVideoConfig(video0));
      assert.equal(video0.width, 540);
      assert.equal(video0.height, 960);
      assert.equal(video0.record[0], 1);
      const audio0 = configs.find((c) => c.kind === 'audio');
      assert.ok(audio0 && audio0.codec === 'aac');
      assert.equal(audio0.sampleRate, 44100);
      assert.equal(audio0.frameSamples, 1024);
    }
  });

  it('keeps SPS and PPS in band on keyframes, and video PES span many TS packets', () => {
    const { video } = demuxAll(plain.ts, () => 1316);
    const key = video.find((a) => a.keyframe)!;
    assert.ok(key.data.length > TS_PACKET * 4, 'a keyframe spans many TS packets');
    const types: number[] = [];
    for (let o = 0; o < key.data.length; o += 4 + key.data.readUInt32BE(o))
      types.push(key.data[o + 4]! & 0x1f);
    assert.ok(types.includes(7) && types.includes(8) && types.includes(5), `NAL types ${types}`);
    assert.ok(!types.includes(9), 'no access unit delimiter');
  });

  it('counts a continuity error and drops only the broken PES', () => {
    // Remove one TS packet in the middle of a large video PES (a keyframe's continuation packet).
    const ts = Buffer.from(plain.ts);
    let cut = -1;
    for (let p = TS_PACKET * 200; p < ts.length; p += TS_PACKET) {
      const pid = ((ts[p + 1]! & 0x1f) << 8) | ts[p + 2]!;
      const pusi = (ts[p + 1]! & 0x40) !== 0;
      if (pid === 0x100 && !pusi) {
        cut = p;
        break;
      }
    }
    assert.ok(cut > 0);
    const broken = Buffer.concat([ts.subarray(0, cut), ts.subarray(cut + TS_PACKET)]);
    const { video, audio, d } = demuxAll(broken, () => 1316);
    assert.equal(d.stats.continuityErrors, 1);
    assert.equal(d.stats.droppedPes, 1);
    assert.equal(video.length, plain.video.length - 1);
    assert.equal(audio.length, plain.audio.length);
  });

  it('unwraps PTS/DTS across 2^33', async () => {
    const wrapped = await makeTs(dir, 'wrap.ts', ['-output_ts_offset', '95440']);
    assert.ok(
      wrapped.video.some((v) => v.dts < 90_000 * 10),
      'the file wraps',
    );
    const { video, audio } = demuxAll(wrapped.ts, () => 1316);
    assert.equal(video.length, wrapped.video.length);
    for (let i = 1; i < video.length; i++) assert.ok(video[i]!.dts > video[i - 1]!.dts, `dts ${i} increases`);
    for (let i = 1; i < audio.length; i++)
      assert.ok(audio[i]!.dts > audio[i - 1]!.dts, `audio ${i} increases`);
    assert.ok(video.at(-1)!.dts > 2 ** 33 / 90);
  });

  it('survives garbage and mutated packets without throwing', () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const d = new MpegTsDemuxer();
    d.push(plain.ts.subarray(0, TS_PACKET * 50));
    for (let i = 0; i < 2000; i++) {
      const p = Buffer.from(
        plain.ts.subarray((rand() % 1000) * TS_PACKET, (rand() % 1000) * TS_PACKET + TS_PACKET * 7),
      );
      for (let k = 0; k < 4; k++) if (p.length > 0) p[rand() % p.length] = rand() & 0xff;
      d.push(i % 10 === 0 ? Buffer.from(Array.from({ length: rand() % 2000 }, () => rand() & 0xff)) : p);
    }
    d.flush();
    assert.ok(d.stats.packets > 0);
  });
});

describe('ADTS', () => {
  it('reads a header and builds the AudioSpecificConfig', () => {
    // AAC-LC, 44.1 kHz (index 4), mono, frame of 10 bytes, no CRC.
    const frame = Buffer.from([0xff, 0xf1, 0x50, 0x40, 0x01, 0x5f, 0xfc, 1, 2, 3]);
    const h = parseAdtsHeader(frame);
    assert.deepEqual(h, {
      headerLength: 7,
      frameLength: 10,
      objectType: 2,
      sampleRateIndex: 4,
      sampleRate: 44100,
      channelConfig: 1,
      blocks: 1,
    });
    assert.deepEqual(audioSpecificConfig(h!), Buffer.from([0x12, 0x08]));
    const { frames, rest } = splitAdts(Buffer.concat([frame, frame, frame.subarray(0, 5)]));
    assert.equal(frames.length, 2);
    assert.deepEqual(frames[0]!.data, Buffer.from([1, 2, 3]));
    assert.equal(rest.length, 5);
    assert.equal(parseAdtsHeader(Buffer.from([0xff, 0xf1, 0x50])), null);
  });
});
