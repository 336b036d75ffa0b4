/**
 * The live-input stores (memory, and Redis on a real redis-server) pass one suite: create refuses a taken
 * uid, a save carries its version (a stale one is refused), relay reports are kept only while the input
 * exists, a remove drops the record and its reports and notes (with a TTL) the relay a live stream must end
 * on, until that relay reports it ended; nothing of a removed input stays in Redis.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import {
  type LiveInputRecord,
  type LiveInputStore,
  MemoryLiveInputStore,
} from '../../../src/cloud/live-inputs/state.ts';
import { RedisLiveInputStore } from '../../../src/cloud/live-inputs/state-redis.ts';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.ts';

const record = (uid: string): LiveInputRecord => ({
  v: 0,
  uid,
  userId: 'u@example.com',
  created: 1,
  modified: 1,
  meta: { name: 'x' },
  enabled: true,
  deleteRecordingAfterDays: null,
  recording: {
    mode: 'off',
    timeoutSeconds: 0,
    requireSignedURLs: false,
    allowedOrigins: [],
    hideLiveViewerCount: false,
  },
  relayId: 'r1',
  placedAt: 1,
  outputs: [{ uid: 'o'.repeat(32), url: 'rtmp://d/app', streamKey: 'secret', enabled: true }],
});

function suite(name: string, make: () => Promise<{ store: LiveInputStore; dump?: () => Promise<string> }>) {
  describe(`live-input store: ${name}`, () => {
    const uid = 'a'.repeat(32);
    const key = `u@example.com/${uid}`;

    it('creates once, saves by version, keeps reports only while the input exists, removes it all', async () => {
      const { store, dump } = await make();
      assert.equal(await store.create(record(uid)), true);
      assert.equal(await store.create(record(uid)), false, 'uid taken');
      assert.equal(await store.count(), 1);
      const a = (await store.get(uid))!;
      const b = (await store.get(uid))!;
      a.meta = { name: 'a' };
      assert.equal(await store.save(a), true);
      assert.equal(a.v, 1);
      b.meta = { name: 'b' };
      assert.equal(await store.save(b), false, 'stale');
      assert.deepEqual((await store.get(uid))?.meta, { name: 'a' });
      assert.deepEqual(
        (await store.all()).map((r) => r.uid),
        [uid],
      );

      await store.setConnection(uid, { relayId: 'r1', state: 'publishing', at: 5, stats: { fps: 15 } });
      await store.setOutputs(uid, [{ url: 'rtmp://d/***', name: 'o', status: 'active' }]);
      const reports = await store.reports(uid);
      assert.equal(reports.connection?.state, 'publishing');
      assert.equal(reports.connection?.stats?.fps, 15);
      assert.equal(reports.outputs[0]?.status, 'active');

      assert.equal(await store.remove(uid, { key, relayId: 'r1', ttlMs: 60_000 }), true);
      assert.equal(await store.remove(uid), false);
      assert.equal(await store.get(uid), null);
      assert.deepEqual(await store.reports(uid), { connection: null, outputs: [] });
      assert.equal(await store.endedOn(key), 'r1');
      // A late report brings nothing back.
      await store.setConnection(uid, { relayId: 'r1', state: 'publishing', at: 6 });
      await store.setOutputs(uid, []);
      assert.deepEqual(await store.reports(uid), { connection: null, outputs: [] });
      await store.forgetEnded(key);
      assert.equal(await store.endedOn(key), null);
      assert.equal(await store.count(), 0);
      if (dump) assert.ok(!(await dump()).includes(uid), 'nothing of it left');
      await store.close();
    });

    it('notes no relay for an input removed while not live', async () => {
      const { store } = await make();
      const other = 'b'.repeat(32);
      await store.create(record(other));
      assert.equal(await store.remove(other), true);
      assert.equal(await store.endedOn(`u@example.com/${other}`), null);
      await store.close();
    });
  });
}

suite('memory', async () => ({ store: new MemoryLiveInputStore() }));

describe('redis', () => {
  let server: RedisServer;
  let redis: Redis;
  let n = 0;
  before(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url);
  });
  after(async () => {
    redis?.disconnect();
    await server?.close();
  });
  suite('redis', async () => {
    const prefix = `{t${n++}}:`;
    const dump = async (): Promise<string> => {
      const keys = await redis.keys(`${prefix}*`);
      const parts = [...keys];
      for (const k of keys) {
        const type = await redis.type(k);
        if (type === 'string') parts.push((await redis.get(k)) ?? '');
        if (type === 'set') parts.push(...(await redis.smembers(k)));
        if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(k)));
      }
      return parts.join('\n');
    };
    return { store: new RedisLiveInputStore({ redis, prefix }), dump };
  });
});
