import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import type { AccessUnit, AudioConfig } from '../../../src/media/access-unit.ts';
import { OggOpusReader } from '../../../src/media/ogg-opus.ts';
import { aacConfigFor, aacEncoderArgs, ffmpegAacEncoder } from '../../../src/pipeline/aac-encoder.ts';
import { ChildReaper } from '../../../src/pipeline/child-reaper.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { adtsHeader } from '../../../src/webrtc/opus-encoder.ts';
import { loadFixture } from '../../fixtures/generate.ts';
import { OPUS_TONE_STARTS_AT } from '../../fixtures/opus.ts';
import { eventually } from '../../helpers/relay-process.ts';

const OPUS: AudioConfig = {
  kind: 'audio',
  codec: 'opus',
  config: Buffer.alloc(0),
  sampleRate: 48_000,
  channels: 1,
  frameSamples: 960,
};
const FRAME_MS = 1024 / 48;

/** The fixture's packets as a WHIP source yields them: 20 ms apart from `startMs`, `skip` left out (lost). */
async function opusUnits(startMs: number, skip: (i: number) => boolean = () => false): Promise<AccessUnit[]> {
  const packets = new OggOpusReader().push(await loadFixture('tone-opus-mono.ogg'));
  return packets.flatMap((data, i) =>
    skip(i)
      ? []
      : [{ track: 'audio' as const, dts: startMs + i * 20, pts: startMs + i * 20, keyframe: true, data }],
  );
}

/** Pushes the units and collects AAC frames until `count` came; the encoder's FFmpeg is gone afterwards. */
async function encode(units: AccessUnit[], count: number): Promise<AccessUnit[]> {
  const reaper = new ChildReaper();
  const frames: AccessUnit[] = [];
  let enough: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    enough = resolve;
  });
  const encoder = ffmpegAacEncoder({ ffmpegPath: 'ffmpeg', reaper, log: silentLogger() })(OPUS, (frame) => {
    frames.push(frame);
    if (frames.length === count) enough();
  });
  try {
    for (const au of units) encoder.push(au);
    await done;
    assert.equal(reaper.size, 1, 'one FFmpeg');
  } finally {
    encoder.close();
  }
  await eventually('FFmpeg exited on close', () => reaper.size === 0, 10_000);
  reaper.close();
  return frames;
}

describe('Opus → AAC encoder (FLV outputs of WHIP streams)', () => {
  it('announces AAC-LC 48 kHz with the Opus track’s channels; argv from numbers only', () => {
    assert.deepEqual([...aacConfigFor(OPUS).config], [0x11, 0x88]); // object type 2, rate index 3, mono
    assert.deepEqual([...aacConfigFor({ ...OPUS, channels: 2 }).config], [0x11, 0x90]);
    const args = aacEncoderArgs(96, 1);
    assert.deepEqual(args.slice(args.indexOf('-i') - 2, args.indexOf('-i') + 2), [
      '-f',
      'ogg',
      '-i',
      'pipe:0',
    ]);
    assert.equal(args.at(-1), 'pipe:1');
  });

  it('places AAC frames on the stream’s clock: the tone starts where it started in the Opus', async () => {
    const start = 5_000;
    const units = await opusUnits(start);
    // 4 s of input is 187 frames of 1024 samples; FFmpeg holds a few back until its input ends.
    const frames = await encode(units, 150);
    assert.equal(frames[0]!.pts, start, 'the priming frame is skipped: the first frame is the first input');
    for (let i = 1; i < frames.length; i++) {
      assert.ok(
        Math.abs(frames[i]!.dts - frames[i - 1]!.dts - FRAME_MS) < 1e-6,
        `frame ${i} one frame later`,
      );
    }
    // Decode what came out: the silence-to-tone edge lies where the Opus had it (plus libopus' 6.5 ms lookahead).
    const adts = Buffer.concat(
      frames.flatMap((f) => [adtsHeader(aacConfigFor(OPUS).config, f.data.length), f.data]),
    );
    const pcm = execFileSync(
      'ffmpeg',
      ['-v', 'error', '-f', 'aac', '-i', 'pipe:0', '-f', 's16le', 'pipe:1'],
      {
        input: adts,
        timeout: 30_000,
      },
    );
    let edge = -1;
    for (let i = 0; i < pcm.length / 2; i++) {
      if (Math.abs(pcm.readInt16LE(i * 2)) > 2000) {
        edge = i;
        break;
      }
    }
    // Decoded sample i is input sample i (the priming frame was skipped); the Opus starts with libopus' 312
    // samples (6.5 ms) of lookahead, which an RTP receiver plays too. Measured: 986.5 ms when FFmpeg was run
    // with -fflags +nobuffer (it dropped the first packet, and the audio came 20 ms early).
    const edgeMs = (edge / 48_000) * 1000;
    const expected = OPUS_TONE_STARTS_AT * 1000 + 6.5;
    assert.ok(
      Math.abs(edgeMs - expected) < 3,
      `the tone starts ${edgeMs.toFixed(1)} ms in, expected ${expected}`,
    );
  });

  it('a gap in the input (lost packets) is a gap in the output, not a shift', async () => {
    const start = 0;
    // Packets 50–59 lost: 200 ms missing from 1000 ms on.
    const frames = await encode(await opusUnits(start, (i) => i >= 50 && i < 60), 150);
    const steps = frames.slice(1).map((f, i) => f.dts - frames[i]!.dts);
    const jumps = steps.filter((d) => Math.abs(d - FRAME_MS) > 1e-6);
    assert.equal(jumps.length, 1, `one jump: ${jumps.map((j) => j.toFixed(1)).join(', ')}`);
    assert.ok(Math.abs(jumps[0]! - (FRAME_MS + 200)) < FRAME_MS, `the jump is the gap: ${jumps[0]}`);
    // After the gap, frames follow the input's stamps again: a frame lands within one frame of 1200 ms.
    assert.ok(frames.some((f) => f.dts >= 1200 && f.dts < 1200 + FRAME_MS));
  });

  it('a dying FFmpeg is restarted, and what comes after lands on the stream’s clock again', async () => {
    const added: number[] = [];
    const reaper = new (class extends ChildReaper {
      override add(pid: number): void {
        added.push(pid);
        super.add(pid);
      }
    })();
    const frames: AccessUnit[] = [];
    let waiting: { count: number; resolve: () => void } | null = null;
    const until = (count: number) =>
      new Promise<void>((resolve) => {
        if (frames.length >= count) resolve();
        else waiting = { count, resolve };
      });
    const encoder = ffmpegAacEncoder({ ffmpegPath: 'ffmpeg', reaper, log: silentLogger() })(OPUS, (frame) => {
      frames.push(frame);
      if (waiting && frames.length >= waiting.count) waiting.resolve();
    });
    try {
      const units = await opusUnits(0);
      for (const au of units.slice(0, 100)) encoder.push(au);
      await until(60);
      process.kill(added[0]!, 'SIGKILL');
      const deadline = Date.now() + 20_000;
      while (added.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(added.length, 2, 'a new FFmpeg after the crash');
      assert.equal(encoder.failures, 1);
      const before = frames.length;
      // The publisher went on meanwhile: its next frames are 3 s later on the stream's clock.
      for (const au of units.slice(0, 100)) encoder.push({ ...au, dts: au.dts + 3000, pts: au.pts + 3000 });
      await until(before + 60);
      const after = frames.slice(before);
      assert.equal(after[0]!.dts, 3000, 'the new run starts where its input starts');
      for (let i = 1; i < after.length; i++)
        assert.ok(Math.abs(after[i]!.dts - after[i - 1]!.dts - FRAME_MS) < 1e-6);
    } finally {
      encoder.close();
    }
    await eventually('FFmpeg exited on close', () => reaper.size === 0, 10_000);
    reaper.close();
  });
});
