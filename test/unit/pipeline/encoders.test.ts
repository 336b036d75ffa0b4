import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import {
  encoderArgs,
  ffmpegProbeRunner,
  GpuSessions,
  type ProbeRunner,
  probeArgs,
  selectEncoder,
  VIDEO_ENCODERS,
} from '../../../src/pipeline/encoders.ts';
import { SEED_VIDEO_ENCODE } from '../../../src/pipeline/ffmpeg-args.ts';

test('libx264 at the seed target is the seed encode exactly', () => {
  assert.deepEqual(encoderArgs('libx264'), { input: [], output: [...SEED_VIDEO_ENCODE] });
});

test('argv per encoder (golden)', () => {
  const target = { width: 540, height: 960, fps: 30, gop: 60, bitrate: '1M', maxrate: '1.2M', bufsize: '2M' };
  assert.deepEqual(encoderArgs('h264_nvenc', target), {
    input: ['-hwaccel', 'cuda', '-hwaccel_output_format', 'cuda'],
    output: [
      '-vf',
      'scale_cuda=540:960',
      '-c:v',
      'h264_nvenc',
      '-preset',
      'p4',
      '-tune',
      'll',
      '-profile:v',
      'baseline',
      '-r',
      '30',
      '-g',
      '60',
      '-keyint_min',
      '60',
      '-forced-idr',
      '1',
      '-rc',
      'cbr',
      '-b:v',
      '1M',
      '-maxrate',
      '1.2M',
      '-bufsize',
      '2M',
    ],
  });
  assert.deepEqual(encoderArgs('h264_vaapi', target, { vaapiDevice: '/dev/dri/renderD129' }), {
    input: ['-vaapi_device', '/dev/dri/renderD129'],
    output: [
      '-vf',
      'format=nv12,hwupload,scale_vaapi=540:960',
      '-c:v',
      'h264_vaapi',
      '-profile:v',
      'constrained_baseline',
      '-r',
      '30',
      '-g',
      '60',
      '-keyint_min',
      '60',
      '-b:v',
      '1M',
      '-maxrate',
      '1.2M',
      '-bufsize',
      '2M',
    ],
  });
  assert.deepEqual(encoderArgs('h264_qsv', target).input, [
    '-init_hw_device',
    'qsv=hw',
    '-filter_hw_device',
    'hw',
  ]);
  assert.equal(encoderArgs('libx264', target).output.slice(0, 2).join(' '), '-vf scale=540:960');
});

test('selection: auto takes the first GPU encoder whose probe works, else libx264', async () => {
  const calls: string[] = [];
  const runner =
    (working: string[]): ProbeRunner =>
    async (args) => {
      const encoder = args[args.indexOf('-c:v') + 1]!;
      calls.push(encoder);
      return working.includes(encoder) ? { ok: true, stderr: '' } : { ok: false, stderr: `no ${encoder}\n` };
    };
  let r = await selectEncoder('auto', runner([]));
  assert.equal(r.encoder, 'libx264');
  assert.deepEqual(calls, ['h264_nvenc', 'h264_vaapi', 'h264_qsv']);
  assert.deepEqual(
    r.tried.map((t) => t.reason),
    ['no h264_nvenc', 'no h264_vaapi', 'no h264_qsv'],
  );
  calls.length = 0;
  r = await selectEncoder('auto', runner(['h264_vaapi', 'h264_qsv']));
  assert.equal(r.encoder, 'h264_vaapi');
  assert.deepEqual(calls, ['h264_nvenc', 'h264_vaapi']);
  calls.length = 0;
  r = await selectEncoder('h264_qsv', runner([]));
  assert.equal(r.encoder, 'libx264', 'a named GPU encoder that fails falls back');
  assert.deepEqual(calls, ['h264_qsv']);
  calls.length = 0;
  r = await selectEncoder('libx264', runner([]));
  assert.equal(r.encoder, 'libx264');
  assert.deepEqual(calls, [], 'libx264 needs no probe');
});

test('the real probe on this machine: every GPU encoder is compiled in, none has hardware, libx264 works', async () => {
  const encoders = execFileSync('ffmpeg', ['-hide_banner', '-encoders'], { encoding: 'utf8' });
  for (const e of VIDEO_ENCODERS) assert.match(encoders, new RegExp(`\\b${e}\\b`), `${e} compiled in`);
  const run = ffmpegProbeRunner();
  assert.equal((await run(probeArgs('libx264'), 10_000)).ok, true, 'the probe argv itself is valid');
  const r = await selectEncoder('auto', run, { timeoutMs: 10_000 });
  assert.equal(r.encoder, 'libx264');
  assert.equal(r.tried.length, 3);
  for (const t of r.tried) {
    assert.equal(t.ok, false);
    assert.doesNotMatch(t.reason ?? '', /Unknown encoder|Unrecognized option/, `${t.encoder}: ${t.reason}`);
  }
  const missing = await ffmpegProbeRunner('/nonexistent/ffmpeg')(probeArgs('libx264'), 5000);
  assert.equal(missing.ok, false);
});

test('GPU sessions are capped; a refusal is a CPU fall-back, counted', () => {
  const gpu = new GpuSessions(2);
  const a = gpu.acquire();
  const b = gpu.acquire();
  assert.ok(a && b);
  assert.equal(gpu.acquire(), null);
  assert.equal(gpu.fallbacks, 1);
  a();
  a(); // twice is once
  assert.equal(gpu.used, 1);
  assert.ok(gpu.acquire());
  assert.equal(new GpuSessions(0).acquire(), null);
});

test('a GPU encode goes into the transcode argv: device setup before -i, the encoder instead of the seed', async () => {
  const { buildFfmpegArgs } = await import('../../../src/pipeline/ffmpeg-args.ts');
  const nvenc = encoderArgs('h264_nvenc');
  const args = buildFfmpegArgs({ profile: 'transcode', hasVideo: true, hasAudio: true, videoEncode: nvenc });
  const input = args.indexOf('-i');
  assert.ok(args.indexOf('-hwaccel') >= 0 && args.indexOf('-hwaccel') < input, 'hwaccel before the input');
  assert.equal(args[args.indexOf('-c:v') + 1], 'h264_nvenc');
  assert.ok(!args.includes('libx264'));
  // Copy never encodes: the GPU argv does not apply.
  const copy = buildFfmpegArgs({ profile: 'copy', hasVideo: true, hasAudio: true, videoEncode: nvenc });
  assert.ok(!copy.includes('-hwaccel') && !copy.includes('h264_nvenc'));
});
