/**
 * The GPU encoder path with real FFmpeg on a machine without a GPU: a relay told (as if its probe had said
 * so) to transcode with h264_nvenc starts FFmpeg with the NVENC argv, that FFmpeg fails (no CUDA here),
 * and the stream falls back to libx264 for good: it becomes playable, the GPU session is given back and the
 * fall-back is counted. This is what a GPU that dies while running looks like to a stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startRelay } from '../../src/relay/relay.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { onceEvent } from '../../src/shared/typed-emitter.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { LOOPBACK_RELAY_ENV } from '../helpers/ports.ts';

describe('GPU encoder fall-back', () => {
  const logs = captureLogs('info');
  let relay: Awaited<ReturnType<typeof startRelay>>;

  before(async () => {
    const config = loadConfig(
      { ...LOOPBACK_RELAY_ENV, GPU_MAX_SESSIONS: '1', FFMPEG_RESTART_BACKOFF_SECONDS: '0.1' },
      { publishAuth: 'off' },
    );
    relay = await startRelay(config, logs.log, { encoderProbe: { encoder: 'h264_nvenc', tried: [] } });
  });

  after(() => relay?.close());

  it('a failing GPU encode falls back to libx264 and the stream plays', async () => {
    const created = onceEvent(relay.streams, 'created');
    const pub = publishFlv(await fixturePath('glasses-854x480.flv'), {
      port: relay.rtmpPort,
      user: 'gpu@user.com',
      stream: 'g1?profile=transcode',
      toMs: 8000,
    });
    const [stream] = await created;
    await onceEvent(stream, 'ready');
    const lines = logs.lines();
    assert.ok(
      lines.some((l) => /the GPU encoder failed/.test(String(l.msg)) && l.encoder === 'h264_nvenc'),
      'the fall-back is logged',
    );
    assert.ok(stream.supervisor.stats.crashes >= 1, 'the NVENC FFmpeg failed');
    const info = (await relay.api.inject({ method: 'GET', url: '/api/relay' })).statusCode;
    assert.ok(info === 503 || info === 200, 'relay info answers (503 without a control token)');
    const res = await fetch(`http://127.0.0.1:${relay.hlsPort}/hls/gpu-user.com/g1/index.m3u8`);
    assert.equal(res.status, 200);
    await pub.stop();
  });
});
