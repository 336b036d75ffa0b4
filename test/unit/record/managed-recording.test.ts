/**
 * The managed stream's recording option: an app's `recording: {mode: 'automatic'}` is kept on the stream and
 * answered to its relay with the stream's start (the recording's name on every relay it visits); a stream
 * without it answers `off` with the same start; a relay's recording-ready reaches the apps' status.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManagedStreams } from '../../../src/cloud/managed-streams.ts';
import { MemoryCloudStore } from '../../../src/cloud/store-memory.ts';
import type { ManagedStreamStatus } from '../../../src/contracts/mentra.ts';
import { silentLogger } from '../../../src/shared/logger.ts';

function setup() {
  const streams = new ManagedStreams({
    store: new MemoryCloudStore(),
    glasses: { send: () => true },
    log: silentLogger(),
    tokenSecret: null,
    keepAliveMs: 60_000,
    ackTimeoutMs: 10_000,
    maxMissedAcks: 3,
    relayCheckMs: 60_000,
    probeHls: async () => true,
    staticRelays: [{ rtmpUrl: 'rtmp://10.0.0.9:1935', hlsUrl: 'http://10.0.0.9:8888' }],
    now: () => 1_733_000_000_000,
  });
  return streams;
}

describe('managed stream recording option', () => {
  it('is answered to the relay with the stream start; joining may turn it on', async () => {
    const streams = setup();
    try {
      const a = await streams.request('a@b.com', 'com.app', [], { recording: 'automatic' });
      assert.deepEqual(await streams.recordingOf('a@b.com', a.streamId!), {
        mode: 'automatic',
        startedAt: 1_733_000_000_000,
      });
      assert.equal(await streams.recordingOf('x@b.com', a.streamId!), null, 'another user: nothing');
      const b = await streams.request('c@d.com', 'com.app');
      assert.deepEqual(await streams.recordingOf('c@d.com', b.streamId!), {
        mode: 'off',
        startedAt: 1_733_000_000_000,
      });
      await streams.request('c@d.com', 'com.other', [], { recording: 'automatic' });
      assert.equal((await streams.recordingOf('c@d.com', b.streamId!))?.mode, 'automatic');
    } finally {
      await streams.close();
    }
  });

  it("a relay's recording-ready reaches the apps' status", async () => {
    const streams = setup();
    try {
      const heard: ManagedStreamStatus[] = [];
      streams.on('status', (_who, status) => heard.push(status));
      const a = await streams.request('a@b.com', 'com.app', [], { recording: 'automatic' });
      const recording = {
        id: 'r1733000000000',
        state: 'ready' as const,
        hlsUrl: 'http://10.0.0.9:8888/recordings/a-b.com/x/r1733000000000/index.m3u8',
        mp4Url: 'http://10.0.0.9:8888/recordings/a-b.com/x/r1733000000000/recording.mp4',
        thumbnailUrl: null,
        durationSeconds: 12,
      };
      await streams.recordingReady('a@b.com', a.streamId!, recording);
      assert.deepEqual(heard.at(-1)?.recordings, [recording]);
      assert.deepEqual(streams.statusOf(streams.get(a.streamId!)!).recordings, [recording]);
    } finally {
      await streams.close();
    }
  });
});
