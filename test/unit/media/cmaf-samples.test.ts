/**
 * CMAF back to samples (src/media/cmaf-samples.ts), against the in-process CMAF writer: the init's avcC and
 * AudioSpecificConfig come back byte for byte, and every sample of every fragment comes back with its bytes,
 * keyframe flag, decode time and composition offset (B-frames included). A truncated fragment is refused
 * with FMP4_MALFORMED, never read past its end.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccessUnit, AudioConfig, VideoConfig } from '../../../src/media/access-unit.ts';
import { readCmafInit, readCmafSamples } from '../../../src/media/cmaf-samples.ts';
import { CmafWriter } from '../../../src/media/cmaf-writer.ts';
import { buildAvcConfig } from '../../../src/media/nal.ts';
import { ErrorCodes } from '../../../src/shared/errors.ts';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const VIDEO: VideoConfig = {
  kind: 'video',
  codec: 'h264',
  record: buildAvcConfig([hex('6742c01fd900881e7bf0110000030001000003003c0f183248')], [hex('68ebe3cb22c0')]),
  width: 540,
  height: 960,
};
const AUDIO: AudioConfig = {
  kind: 'audio',
  codec: 'aac',
  config: hex('1210'),
  sampleRate: 44100,
  channels: 2,
  frameSamples: 1024,
};

/** 3 GOPs of 15 fps video with B-frames (I P B B P B B …) and 44.1 kHz AAC, in decode order. */
function units(): AccessUnit[] {
  const out: AccessUnit[] = [];
  const frameMs = 1000 / 15;
  for (let i = 0; i < 45; i++) {
    const dts = Math.round(i * frameMs);
    // Reordered: a P frame shows two frames later, the B frames before it one frame earlier.
    const shift = i % 15 === 0 ? 0 : i % 3 === 1 ? 2 : -1;
    const pts = i % 15 === 0 ? dts + Math.round(frameMs) : dts + Math.round((1 + shift) * frameMs);
    const nal = Buffer.alloc(20 + i, i);
    nal[4] = i % 15 === 0 ? 0x65 : 0x41;
    nal.writeUInt32BE(nal.length - 4, 0);
    out.push({ track: 'video', dts, pts, keyframe: i % 15 === 0, data: nal });
  }
  for (let k = 0; k < 130; k++) {
    const t = (k * 1024 * 1000) / 44100;
    out.push({ track: 'audio', dts: t, pts: t, keyframe: true, data: Buffer.alloc(100 + (k % 7), k) });
  }
  return out.sort((a, b) => a.dts - b.dts);
}

describe('CMAF samples', () => {
  const writer = new CmafWriter({ video: VIDEO, audio: AUDIO });
  const input = units();
  const fragments = [...input.flatMap((au) => writer.push(au)), ...writer.flush()];

  it('reads the configurations of the init back', () => {
    const configs = readCmafInit(writer.init.data);
    assert.deepEqual(configs.video?.config.record, VIDEO.record);
    assert.equal(configs.video?.config.width, 540);
    assert.equal(configs.video?.config.height, 960);
    assert.deepEqual(configs.audio?.config.config, AUDIO.config);
    assert.equal(configs.audio?.config.sampleRate, 44100);
    assert.equal(configs.audio?.config.channels, 2);
  });

  it('reads every sample back: bytes, keyframes, decode times and composition offsets', () => {
    const configs = readCmafInit(writer.init.data);
    const samples = fragments.flatMap((f) => readCmafSamples(configs, f.data));
    for (const track of ['video', 'audio'] as const) {
      const want = input.filter((u) => u.track === track);
      const got = samples.filter((s) => s.track === track);
      assert.equal(got.length, want.length, `${track} samples`);
      got.forEach((s, i) => {
        const u = want[i]!;
        assert.deepEqual(s.data, u.data, `${track} ${i} bytes`);
        assert.equal(s.keyframe, u.keyframe, `${track} ${i} keyframe`);
        assert.ok(Math.abs(s.dts * 1000 - u.dts) <= 1, `${track} ${i} dts ${s.dts * 1000} vs ${u.dts}`);
        if (track === 'video')
          assert.ok(Math.abs((s.pts - s.dts) * 1000 - (u.pts - u.dts)) <= 1, `video ${i} composition offset`);
      });
    }
  });

  it('refuses a truncated fragment with FMP4_MALFORMED', () => {
    const configs = readCmafInit(writer.init.data);
    const whole = fragments[1]!.data;
    for (const cut of [8, 40, whole.length - 1]) {
      assert.throws(
        () => readCmafSamples(configs, whole.subarray(0, cut)),
        (err: { code?: string }) => err.code === ErrorCodes.FMP4_MALFORMED,
        `cut at ${cut}`,
      );
    }
  });
});
