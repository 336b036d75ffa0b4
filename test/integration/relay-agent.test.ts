/**
 * The relay agent against a real cloud app that is away at first: stream events wait in a bounded queue, in
 * order, and reach the cloud once it answers; registration follows through the heartbeat loop.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { buildCloudApp } from '../../src/cloud/app.ts';
import { RelayAgent } from '../../src/relay/agent.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import type { StreamRegistry } from '../../src/stream/registry.ts';
import { freePort } from '../helpers/ports.ts';

const SECRET = 'agent-test-secret-0123456789';

/** A stand-in registry that emits what a real one does (one layer under test: the agent). */
function fakeRegistry(): StreamRegistry & EventEmitter {
  const e = new EventEmitter() as EventEmitter & { streams: unknown[] };
  e.streams = [];
  return e as unknown as StreamRegistry & EventEmitter;
}

const stream = { userId: 'a@b.com', streamId: 's1' };
const relay = {
  relayId: 'relay-x',
  rtmpUrl: 'rtmp://127.0.0.1:1935',
  hlsUrl: 'http://127.0.0.1:8888',
  maxStreams: 4,
};

describe('relay agent', () => {
  it('queues stream events while the cloud is away and delivers them in order when it answers', async () => {
    const port = await freePort();
    const registry = fakeRegistry();
    const agent = new RelayAgent({
      cloudUrl: `http://127.0.0.1:${port}`,
      secret: SECRET,
      relay,
      heartbeatMs: 200,
      streams: registry,
      log: silentLogger(),
      retryMs: { first: 50, max: 200 },
      whep: true,
    });
    await agent.start();
    assert.equal(agent.registered, false);
    registry.emit('created', stream);
    registry.emit('ready', stream);
    registry.emit('ended', stream);
    assert.equal(agent.queued, 3);

    const heard: string[] = [];
    let registered: () => void = () => {};
    const registeredOnce = new Promise<void>((r) => (registered = r));
    let delivered: () => void = () => {};
    const allDelivered = new Promise<void>((r) => (delivered = r));
    const note = (what: string): void => {
      heard.push(what);
      if (heard.length === 3) delivered();
    };
    const app = buildCloudApp({
      relaySecret: SECRET,
      store: {
        upsertRelay: async () => registered(),
        heartbeat: async () => true,
        removeRelay: async () => {},
        release: async () => {},
      },
      events: {
        streamStarted: (e) => note(`started:${e.streamId}`),
        hlsReady: (e) => note(`ready:${e.hlsUrl} ${e.webrtcUrl}`),
        streamEnded: (e) => note(`ended:${e.streamId}`),
      },
    });
    await app.listen({ port, host: '127.0.0.1' });
    try {
      await allDelivered;
      await registeredOnce;
      assert.deepEqual(heard, [
        'started:s1',
        'ready:http://127.0.0.1:8888/hls/a-b.com/s1/index.m3u8 http://127.0.0.1:8888/whep/a-b.com/s1',
        'ended:s1',
      ]);
      assert.ok(agent.stats.failed >= 1, 'the first tries failed');
    } finally {
      await agent.close();
      await app.close();
    }
  });

  it('keeps its queue bounded, dropping and counting the oldest', async () => {
    const registry = fakeRegistry();
    const agent = new RelayAgent({
      cloudUrl: `http://127.0.0.1:${await freePort()}`,
      secret: SECRET,
      relay,
      heartbeatMs: 60_000,
      streams: registry,
      log: silentLogger(),
      maxQueue: 2,
      retryMs: { first: 60_000, max: 60_000 },
    });
    await agent.start();
    for (let i = 0; i < 5; i++) registry.emit('created', { userId: 'a@b.com', streamId: `s${i}` });
    assert.equal(agent.queued, 2);
    assert.equal(agent.stats.dropped, 3);
    await agent.close();
  });

  it('sends one heartbeat at a time: a cloud that does not answer gets no pile of calls', async () => {
    const port = await freePort();
    let inFlight = 0;
    let most = 0;
    let beats = 0;
    let release: () => void = () => {};
    const answer = new Promise<void>((r) => (release = r));
    let fiveSeen: () => void = () => {};
    const five = new Promise<void>((r) => (fiveSeen = r));
    const app = buildCloudApp({
      relaySecret: SECRET,
      store: {
        upsertRelay: async () => {},
        // A frozen cloud: the first heartbeat waits; the later ones would pile up behind it.
        heartbeat: async () => {
          inFlight++;
          most = Math.max(most, inFlight);
          if (++beats === 5) fiveSeen();
          if (beats === 1) await answer;
          inFlight--;
          return true;
        },
        removeRelay: async () => {},
        release: async () => {},
      },
    });
    await app.listen({ port, host: '127.0.0.1' });
    const agent = new RelayAgent({
      cloudUrl: `http://127.0.0.1:${port}`,
      secret: SECRET,
      relay,
      heartbeatMs: 20,
      streams: fakeRegistry(),
      log: silentLogger(),
    });
    try {
      await agent.start();
      assert.equal(agent.registered, true);
      // Twenty-five periods without an answer: still the one call. Then the cloud answers and the
      // heartbeats go on, one after the other.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(beats, 1, 'no second heartbeat while the first waits');
      release();
      await five;
      assert.equal(most, 1, 'never two in flight');
    } finally {
      await agent.close();
      await app.close();
    }
  });
});
