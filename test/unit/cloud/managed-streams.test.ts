import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManagedStreamError, ManagedStreams } from '../../../src/cloud/managed-streams.ts';
import { MemoryCloudStore } from '../../../src/cloud/store-memory.ts';
import type { CloudToGlasses } from '../../../src/contracts/mentra.ts';
import { silentLogger } from '../../../src/shared/logger.ts';

function setup(options: { staticRelays?: { rtmpUrl: string; hlsUrl: string }[] } = {}) {
  const store = new MemoryCloudStore();
  const sent: { userId: string; message: CloudToGlasses }[] = [];
  const streams = new ManagedStreams({
    store,
    glasses: {
      send: (userId, message) => {
        sent.push({ userId, message });
        return true;
      },
    },
    log: silentLogger(),
    tokenSecret: null,
    keepAliveMs: 60_000,
    ackTimeoutMs: 10_000,
    maxMissedAcks: 3,
    relayCheckMs: 60_000,
    ...options,
  });
  return { store, sent, streams };
}

describe('managed streams', () => {
  it('refuses with NO_RELAY_AVAILABLE when no relay is registered and no static list exists', async () => {
    const { streams } = setup();
    await assert.rejects(
      streams.request('a@b.com', 'com.app'),
      (e: unknown) => e instanceof ManagedStreamError && e.code === 'NO_RELAY_AVAILABLE',
    );
    await streams.close();
  });

  it("falls back to the seed's static relay list while no relay is registered", async () => {
    const { streams, sent } = setup({
      staticRelays: [
        { rtmpUrl: 'rtmp://10.0.0.9:1935', hlsUrl: 'http://10.0.0.9:8888' },
        { rtmpUrl: 'rtmp://10.0.0.10:1935', hlsUrl: 'http://10.0.0.10:8888' },
      ],
    });
    const a = await streams.request('a@b.com', 'com.app');
    const b = await streams.request('c@d.com', 'com.app');
    const starts = sent
      .filter((s) => s.message.type === 'start_rtmp_stream')
      .map((s) => (s.message as { rtmpUrl: string }).rtmpUrl);
    assert.deepEqual(starts, [
      `rtmp://10.0.0.9:1935/live/a@b.com/${a.streamId}`,
      `rtmp://10.0.0.10:1935/live/c@d.com/${b.streamId}`,
    ]);
    await streams.close();
  });

  it('prefers registered relays, joins later apps as viewers, and stops the glasses when the last leaves', async () => {
    const { streams, sent, store } = setup({
      staticRelays: [{ rtmpUrl: 'rtmp://10.0.0.9:1935', hlsUrl: 'http://10.0.0.9:8888' }],
    });
    await store.upsertRelay(
      { relayId: 'r1', rtmpUrl: 'rtmp://relay1:1935', hlsUrl: 'http://relay1:8888', maxStreams: 5 },
      Date.now(),
    );
    const first = await streams.request('a@b.com', 'com.one');
    const second = await streams.request('a@b.com', 'com.two');
    assert.equal(second.streamId, first.streamId, 'one managed stream per user');
    assert.match(
      (sent[0]!.message as { rtmpUrl: string }).rtmpUrl,
      /^rtmp:\/\/relay1:1935\/live\/a@b\.com\/[A-Za-z0-9]{8}$/,
    );
    await streams.stop('a@b.com', 'com.one');
    assert.ok(!sent.some((s) => s.message.type === 'stop_rtmp_stream'), 'another viewer remains');
    await streams.stop('a@b.com', 'com.two');
    assert.ok(
      sent.some((s) => s.message.type === 'stop_rtmp_stream'),
      'the last viewer left',
    );
    await streams.close();
  });
});
