import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChildReaper } from '../../../src/pipeline/child-reaper.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { adtsHeader, ffmpegOpusEncoder, opusEncoderArgs } from '../../../src/webrtc/opus-encoder.ts';
import { fixturePath } from '../../fixtures/generate.ts';
import { readFlvAccessUnits } from '../../helpers/flv-access-units.ts';
import { eventually } from '../../helpers/relay-process.ts';

describe('AAC → Opus encoder', () => {
  it('builds its argv from numbers only (no shell, nothing from a request)', () => {
    const args = opusEncoderArgs(48, 1);
    assert.deepEqual(args.slice(args.indexOf('-i'), args.indexOf('-i') + 2), ['-i', 'pipe:0']);
    assert.equal(args.at(-1), 'pipe:1');
    assert.ok(args.includes('libopus'));
  });

  it('writes ADTS headers FFmpeg reads (AAC-LC 44.1 kHz mono)', () => {
    const h = adtsHeader(Buffer.from([0x12, 0x08]), 100);
    assert.deepEqual([...h], [0xff, 0xf1, 0x50, 0x40, 0x0d, 0x7f, 0xfc]);
  });

  it('turns a fixture’s AAC into 20 ms Opus packets on the stream’s clock, and its FFmpeg goes on close', async () => {
    const media = readFlvAccessUnits(await fixturePath('steady-30fps.flv'));
    assert.ok(media.audio);
    const audio = media.units.filter((u) => u.track === 'audio').slice(0, 150);
    const reaper = new ChildReaper();
    const packets: { size: number; time: number }[] = [];
    let resolveEnough: () => void = () => {};
    const enough = new Promise<void>((resolve) => {
      resolveEnough = resolve;
    });
    const encoder = ffmpegOpusEncoder({ ffmpegPath: 'ffmpeg', reaper, log: silentLogger() })(
      media.audio,
      (packet, time) => {
        packets.push({ size: packet.length, time });
        if (packets.length === 100) resolveEnough();
      },
    );
    try {
      for (const au of audio) encoder.push(au);
      await enough;
      assert.equal(reaper.size, 1);
      const first = audio[0]!.pts;
      assert.equal(packets[0]!.time, first);
      for (let i = 1; i < packets.length; i++) assert.equal(packets[i]!.time - packets[i - 1]!.time, 20);
      assert.ok(packets.every((p) => p.size > 0 && p.size < 1500));
    } finally {
      encoder.close();
    }
    await eventually('FFmpeg exited', () => reaper.size === 0, 10_000);
    reaper.close();
  });
});
