/**
 * The managed-stream state stores (memory and Redis) against one suite, a cloud's managed streams on Redis
 * surviving their process (a second instance on the same Redis carries on), and Redis left with nothing but
 * live state (or keys that expire by themselves) after 1000 streams started and stopped.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisBus } from '../../../src/cloud/bus.ts';
import { KeepAliveTracker } from '../../../src/cloud/keepalive.ts';
import { begin } from '../../../src/cloud/lifecycle.ts';
import { ManagedStreams } from '../../../src/cloud/managed-streams.ts';
import { MemoryCloudStore } from '../../../src/cloud/store-memory.ts';
import { RedisCloudStore } from '../../../src/cloud/store-redis.ts';
import {
  MemoryStreamState,
  type StreamRecord,
  type StreamStateStore,
} from '../../../src/cloud/stream-state.ts';
import { RedisStreamState } from '../../../src/cloud/stream-state-redis.ts';
import type { CloudToGlasses } from '../../../src/contracts/mentra.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.ts';

function record(userId: string, streamId: string): StreamRecord {
  return {
    v: 0,
    streamId,
    userId,
    sessionId: 'sess',
    viewers: ['com.app'],
    state: begin('r1').state,
    keepAlive: new KeepAliveTracker({ ackTimeoutMs: 1000 }).snapshot(),
    retry: null,
    destinations: [],
    outputs: [],
    createdAt: 1,
  };
}

let server: RedisServer;
let redis: Redis;
let prefixes = 0;

before(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
});
after(async () => {
  await redis.quit();
  await server.close();
});

const kinds: [string, () => StreamStateStore][] = [
  ['memory', () => new MemoryStreamState()],
  ['redis', () => new RedisStreamState({ redis, prefix: `{t${prefixes++}}:` })],
];

for (const [kind, make] of kinds) {
  describe(`stream state (${kind})`, () => {
    it('creates one stream per user, saves only the current version, removes and remembers the end', async () => {
      const s = make();
      const a = record('a@b.com', 's1');
      assert.equal(await s.create(a), null);
      const other = await s.create(record('a@b.com', 's2'));
      assert.equal(other?.streamId, 's1', "the user's existing stream");
      const loaded = (await s.get('s1'))!;
      const stale = structuredClone(loaded);
      loaded.viewers.push('com.two');
      assert.equal(await s.save(loaded), true);
      assert.equal(loaded.v, 1);
      stale.viewers = [];
      assert.equal(await s.save(stale), false, 'a stale version is refused');
      assert.deepEqual((await s.byUser('a@b.com'))?.viewers, ['com.app', 'com.two']);
      assert.deepEqual(
        (await s.all()).map((r) => r.streamId),
        ['s1'],
      );
      assert.equal(await s.remove(stale, 'r1', 60_000), false, 'a stale remove is refused');
      assert.equal(await s.remove(loaded, 'r1', 60_000), true);
      assert.equal(await s.get('s1'), null);
      assert.equal(await s.byUser('a@b.com'), null);
      assert.deepEqual(await s.all(), []);
      assert.equal(await s.endedOn('a@b.com', 's1'), 'r1');
      assert.equal(await s.endedOn('a@b.com', 'zz'), null);
    });

    it('holds the latest glasses command until it is taken', async () => {
      const s = make();
      const stop: CloudToGlasses = { type: 'keep_rtmp_stream_alive', streamId: 's', ackId: 'a' };
      await s.holdCommand('u@x', { ...stop, ackId: 'old' }, 60_000);
      await s.holdCommand('u@x', stop, 60_000);
      assert.deepEqual(await s.takeCommand('u@x'), stop);
      assert.equal(await s.takeCommand('u@x'), null);
    });
  });
}

describe('managed streams on Redis', () => {
  const relay = {
    relayId: 'r1',
    rtmpUrl: 'rtmp://relay1:1935',
    hlsUrl: 'http://relay1:8888',
    maxStreams: 100_000,
  };

  const instance = (prefix: string) => {
    const sent: CloudToGlasses[] = [];
    const store = new RedisCloudStore({ redis, prefix });
    const bus = new RedisBus({ redis, prefix, log: silentLogger() });
    const streams = new ManagedStreams({
      store,
      state: new RedisStreamState({ redis, prefix }),
      bus,
      glasses: {
        send: (_u, m) => {
          sent.push(m);
          return true;
        },
      },
      log: silentLogger(),
      tokenSecret: null,
      keepAliveMs: 600_000,
      ackTimeoutMs: 10_000,
      maxMissedAcks: 3,
      relayCheckMs: 600_000,
      probeHls: async () => true,
    });
    return { streams, store, bus, sent };
  };

  it('a second cloud on the same Redis finds every stream; the first one closing ends nothing', async () => {
    const prefix = '{resume}:';
    const one = instance(prefix);
    await one.bus.ready;
    await one.store.upsertRelay(relay, Date.now());
    const { streamId } = await one.streams.request('a@b.com', 'com.app');
    await one.streams.hlsReady(
      'a@b.com',
      streamId!,
      'r1',
      `http://relay1:8888/hls/a-b.com/${streamId}/index.m3u8`,
    );
    await one.streams.close();
    await one.bus.close();
    const two = instance(prefix);
    await two.streams.ready;
    const found = two.streams.get(streamId!);
    assert.equal(found?.state.phase, 'active', 'resumed from Redis at start');
    assert.equal(
      two.streams.statusOf(found!).hlsUrl,
      `http://relay1:8888/hls/a-b.com/${streamId}/index.m3u8`,
    );
    await two.streams.stop('a@b.com', 'com.app');
    assert.ok(
      two.sent.some((m) => m.type === 'stop_rtmp_stream'),
      'the second cloud acts on it',
    );
    await two.streams.close();
    await two.bus.close();
  });

  it('leaves nothing but live state (or keys that expire by themselves) after 1000 streams started and stopped', async () => {
    const prefix = '{scan}:';
    const one = instance(prefix);
    await one.bus.ready;
    await one.store.upsertRelay(relay, Date.now());
    const started = performance.now();
    for (let i = 0; i < 1000; i++) {
      const userId = `u${i}@scan.test`;
      const { streamId } = await one.streams.request(userId, 'com.app');
      await one.streams.stop(userId, 'com.app');
      await one.streams.glassesMessage(userId, {
        type: 'rtmp_stream_status',
        streamId: streamId!,
        status: 'stopped',
      });
    }
    console.log(
      `# 1000 managed streams started and stopped on Redis in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const lasting = [];
    for (const key of keys) if ((await redis.pttl(key)) < 0) lasting.push(key);
    // Lasting keys: the relay's own state, the epoch marker; nothing per stream.
    assert.deepEqual(
      lasting.filter((k) => !/(seen|relay:r1|eligible|ms:epoch)/.test(k)),
      [],
      `keys without an end: ${lasting.join(', ')}`,
    );
    assert.equal(await redis.hlen(`${prefix}assign`), 0, 'no assignment left');
    assert.equal(await redis.zcard(`${prefix}resv`), 0, 'no reservation left');
    assert.equal(await redis.scard(`${prefix}ms:all`), 0, 'no stream indexed');
    await one.streams.close();
    await one.bus.close();
    await new MemoryCloudStore().close();
  });
});
