import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FleetView, streamHlsUrl } from '../../../src/cloud/fleet-view.ts';
import type { HeartbeatRequest } from '../../../src/contracts/relay-api.ts';

function setup(options: { maxRelays?: number; maxStreamsPerRelay?: number; maxHlsUrls?: number } = {}) {
  const clock = { now: 1_000_000 };
  const view = new FleetView({ expiryMs: 30_000, now: () => clock.now, ...options });
  return { clock, view };
}

const hb = (relayId: string, streams: HeartbeatRequest['streams'], extra: Partial<HeartbeatRequest> = {}) =>
  ({ relayId, streams, cpu: 0.25, draining: false, ...extra }) satisfies HeartbeatRequest;

const BASES: Record<string, string> = { r1: 'http://10.0.0.1:8888', r2: 'http://10.0.0.2:8888/' };
const baseOf = (relayId: string): string | undefined => BASES[relayId];

describe('fleet view', () => {
  it('keeps the latest heartbeat of each relay: streams with state and stats, cpu, draining', () => {
    const { clock, view } = setup();
    view.heartbeat(hb('r1', [{ userId: 'a@b.com', streamId: 's1', state: 'publishing' }]));
    clock.now += 1000;
    view.heartbeat(
      hb(
        'r1',
        [
          {
            userId: 'a@b.com',
            streamId: 's1',
            state: 'reconnecting',
            stats: { fps: 14, bitrateKbps: 950, width: 540, height: 960 },
          },
        ],
        { cpu: 0.5, draining: true },
      ),
    );
    assert.deepEqual(view.relays(), [
      { relayId: 'r1', cpu: 0.5, draining: true, receivedAt: clock.now, reported: 1, omitted: 0 },
    ]);
    assert.deepEqual(view.streams(baseOf), [
      {
        userId: 'a@b.com',
        streamId: 's1',
        relayId: 'r1',
        state: 'reconnecting',
        stats: { fps: 14, bitrateKbps: 950, width: 540, height: 960 },
        hlsUrl: 'http://10.0.0.1:8888/hls/a-b.com/s1/index.m3u8',
        webrtcUrl: null,
        receivedAt: clock.now,
      },
    ]);
  });

  it('copes with absent stats, and does not hold the heartbeat it was given', () => {
    const { view } = setup();
    const request = hb('r1', [
      { userId: 'u', streamId: 's', state: 'publishing', stats: { fps: 10 } },
      { userId: 'u', streamId: 't', state: 'publishing' },
    ]);
    view.heartbeat(request);
    request.streams[0]!.stats!.fps = 99;
    request.streams.pop();
    const streams = view.streams();
    assert.deepEqual(
      streams.map((s) => [s.streamId, s.stats, s.hlsUrl]),
      [
        ['s', { fps: 10 }, null],
        ['t', null, null],
      ],
    );
  });

  it('drops relays whose last heartbeat is older than the expiry', () => {
    const { clock, view } = setup();
    view.heartbeat(hb('r1', [{ userId: 'u', streamId: 's1', state: 'publishing' }]));
    clock.now += 10_000;
    view.heartbeat(hb('r2', [{ userId: 'u', streamId: 's2', state: 'publishing' }]));
    clock.now += 19_999;
    assert.deepEqual(
      view.relays().map((r) => r.relayId),
      ['r1', 'r2'],
    );
    clock.now += 1;
    assert.deepEqual(
      view.relays().map((r) => r.relayId),
      ['r2'],
    );
    assert.deepEqual(
      view.streams().map((s) => s.streamId),
      ['s2'],
    );
    clock.now += 10_000;
    assert.deepEqual(view.relays(), []);
    assert.deepEqual(view.streams(), []);
  });

  it('forgets a relay that deregisters, with the URLs it announced', () => {
    const { view } = setup();
    view.heartbeat(hb('r1', [{ userId: 'u', streamId: 's1', state: 'publishing' }]));
    view.hlsReady({
      userId: 'u',
      streamId: 's1',
      relayId: 'r1',
      hlsUrl: 'https://cdn.example/hls/u/s1/index.m3u8',
    });
    view.deregistered('r1');
    assert.deepEqual(view.relays(), []);
    view.heartbeat(hb('r1', [{ userId: 'u', streamId: 's1', state: 'publishing' }]));
    assert.equal(view.streams(baseOf)[0]!.hlsUrl, 'http://10.0.0.1:8888/hls/u/s1/index.m3u8');
  });

  it("prefers the URL hls-ready announced on the stream's relay, else derives it from the relay's base", () => {
    const { view } = setup();
    view.heartbeat(hb('r1', [{ userId: 'a@b.com', streamId: 's1', state: 'publishing' }]));
    view.hlsReady({
      userId: 'a@b.com',
      streamId: 's1',
      relayId: 'r1',
      hlsUrl: 'https://cdn.example/hls/a-b.com/s1/index.m3u8',
      webrtcUrl: 'http://10.0.0.1:8888/whep/a-b.com/s1',
    });
    assert.equal(view.streams(baseOf)[0]!.hlsUrl, 'https://cdn.example/hls/a-b.com/s1/index.m3u8');
    assert.equal(view.streams(baseOf)[0]!.webrtcUrl, 'http://10.0.0.1:8888/whep/a-b.com/s1');
    // The stream moved to r2: r1's announcement is its old home.
    view.deregistered('r1');
    view.hlsReady({
      userId: 'a@b.com',
      streamId: 's1',
      relayId: 'r1',
      hlsUrl: 'https://old.example/hls/a-b.com/s1/index.m3u8',
    });
    view.heartbeat(hb('r2', [{ userId: 'a@b.com', streamId: 's1', state: 'publishing' }]));
    assert.equal(view.streams(baseOf)[0]!.hlsUrl, 'http://10.0.0.2:8888/hls/a-b.com/s1/index.m3u8');
    assert.equal(view.streams(baseOf)[0]!.webrtcUrl, null, 'WHEP is never derived: r2 announced none');
    // An announcement without a relayId (the seed's body) counts for whichever relay reports the stream.
    view.hlsReady({ userId: 'a@b.com', streamId: 's1', hlsUrl: 'http://seed.example/x.m3u8' });
    assert.equal(view.streams(baseOf)[0]!.hlsUrl, 'http://seed.example/x.m3u8');
  });

  it('lists a stream two relays report once: the one publishing, then the latest heartbeat', () => {
    const { clock, view } = setup();
    view.heartbeat(hb('r1', [{ userId: 'u', streamId: 's', state: 'publishing' }]));
    clock.now += 100;
    view.heartbeat(hb('r2', [{ userId: 'u', streamId: 's', state: 'reconnecting' }]));
    assert.deepEqual(
      view.streams().map((s) => `${s.relayId}:${s.state}`),
      ['r1:publishing'],
    );
    clock.now += 100;
    view.heartbeat(hb('r2', [{ userId: 'u', streamId: 's', state: 'publishing' }]));
    assert.deepEqual(
      view.streams().map((s) => `${s.relayId}:${s.state}`),
      ['r2:publishing'],
    );
  });

  it('is bounded: relays (oldest heartbeat gives way), streams per heartbeat, announced URLs', () => {
    const { clock, view } = setup({ maxRelays: 2, maxStreamsPerRelay: 2, maxHlsUrls: 2 });
    for (const id of ['r1', 'r2', 'r3']) {
      view.heartbeat(hb(id, []));
      clock.now += 1;
    }
    assert.deepEqual(
      view.relays().map((r) => r.relayId),
      ['r2', 'r3'],
    );
    const streams = ['s1', 's2', 's3', 's4'].map((streamId) => ({
      userId: 'u',
      streamId,
      state: 'publishing' as const,
    }));
    view.heartbeat(hb('r2', streams));
    const r2 = view.relays().find((r) => r.relayId === 'r2')!;
    assert.equal(r2.reported, 4);
    assert.equal(r2.omitted, 2);
    assert.deepEqual(
      view.streams().map((s) => s.streamId),
      ['s1', 's2'],
    );
    for (const streamId of ['s1', 's2', 's3'])
      view.hlsReady({ userId: 'u', streamId, relayId: 'r2', hlsUrl: `http://x/${streamId}.m3u8` });
    // s1's announcement gave way to s3's; s1 falls back to the derived URL (no base here: null).
    assert.deepEqual(
      view.streams().map((s) => s.hlsUrl),
      [null, 'http://x/s2.m3u8'],
    );
  });

  it('derives HLS URLs in the contract shape', () => {
    assert.equal(
      streamHlsUrl('http://h:8888//', 'test@user.com', 'stream123'),
      'http://h:8888/hls/test-user.com/stream123/index.m3u8',
    );
  });
});
