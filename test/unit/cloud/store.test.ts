/**
 * One suite, two stores: the in-memory store and the Redis store on a real redis-server (each test gets its
 * own key prefix). Time is injected (`now`), so expiry is tested without sleeping.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { CloudStore, CloudStoreOptions, RelayRecord } from '../../../src/cloud/store.ts';
import { MemoryCloudStore } from '../../../src/cloud/store-memory.ts';
import { RedisCloudStore } from '../../../src/cloud/store-redis.ts';
import type { RegisterRequest } from '../../../src/contracts/relay-api.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.ts';

interface Implementation {
  name: string;
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  make(options: CloudStoreOptions): CloudStore;
}

let redis: RedisServer | undefined;
let prefixes = 0;

const implementations: Implementation[] = [
  {
    name: 'memory',
    setUp: async () => {},
    tearDown: async () => {},
    make: (options) => new MemoryCloudStore(options),
  },
  {
    name: 'redis',
    setUp: async () => {
      redis = await startRedisServer();
    },
    tearDown: async () => {
      await redis?.close();
    },
    make: (options) =>
      new RedisCloudStore({ ...options, redis: redis!.url, prefix: `{test-${process.pid}-${++prefixes}}:` }),
  },
];

const T0 = 1_700_000_000_000;
const EXPIRY = 30_000;
const RETENTION = 120_000;
const TTL = 10_000;

function relay(relayId: string, extra: Partial<RegisterRequest> = {}): RegisterRequest {
  return {
    relayId,
    rtmpUrl: `rtmp://${relayId}.example:1935`,
    hlsUrl: `http://${relayId}.example:8888`,
    maxStreams: 10,
    ...extra,
  };
}

function live(...keys: string[]): { userId: string; streamId: string }[] {
  return keys.map((k) => {
    const [userId, streamId] = k.split('/') as [string, string];
    return { userId, streamId };
  });
}

function byId(records: RelayRecord[]): Record<string, RelayRecord> {
  return Object.fromEntries(records.map((r) => [r.relayId, r]));
}

for (const impl of implementations) {
  describe(`cloud store (${impl.name})`, () => {
    const stores: CloudStore[] = [];
    const make = (options: CloudStoreOptions = {}): CloudStore => {
      const store = impl.make({ relayExpiryMs: EXPIRY, relayRetentionMs: RETENTION, ...options });
      stores.push(store);
      return store;
    };
    const place = (store: CloudStore, key: string, now = T0, region?: string) =>
      store.place(key, { now, reservationTtlMs: TTL, ...(region ? { region } : {}) });

    before(() => impl.setUp());
    after(() => impl.tearDown());
    afterEach(async () => {
      await Promise.all(stores.splice(0).map((s) => s.close()));
    });

    it('registers relays with defaults and takes heartbeats; unknown relays are refused', async () => {
      const store = make();
      await store.upsertRelay(relay('a', { region: 'eu' }), T0);
      await store.upsertRelay(relay('b'), T0);
      assert.deepEqual(await store.liveRelays(T0), [
        {
          relayId: 'a',
          rtmpUrl: 'rtmp://a.example:1935',
          hlsUrl: 'http://a.example:8888',
          maxStreams: 10,
          region: 'eu',
          cpu: 0,
          draining: false,
          lastSeen: T0,
          streams: 0,
          reserved: 0,
        },
        {
          relayId: 'b',
          rtmpUrl: 'rtmp://b.example:1935',
          hlsUrl: 'http://b.example:8888',
          maxStreams: 10,
          cpu: 0,
          draining: false,
          lastSeen: T0,
          streams: 0,
          reserved: 0,
        },
      ]);
      assert.equal(
        await store.heartbeat('a', { streams: live('u1/s1', 'u2/s1'), cpu: 0.25, draining: false }, T0 + 5),
        true,
      );
      const a = byId(await store.liveRelays(T0 + 5)).a!;
      assert.deepEqual([a.streams, a.cpu, a.draining, a.lastSeen], [2, 0.25, false, T0 + 5]);
      assert.equal(await store.relayOf('u1/s1', T0 + 5), 'a');
      assert.equal(await store.heartbeat('nobody', { streams: [], cpu: 0, draining: false }, T0), false);
      assert.deepEqual((await store.liveRelays(T0)).length, 2);
    });

    it('register and heartbeat are idempotent; re-registering keeps what heartbeats reported', async () => {
      const store = make();
      await store.upsertRelay(relay('a'), T0);
      await store.upsertRelay(relay('a'), T0);
      const report = { streams: live('u/s1', 'u/s2'), cpu: 0.5, draining: true };
      assert.equal(await store.heartbeat('a', report, T0 + 1), true);
      assert.equal(await store.heartbeat('a', report, T0 + 1), true);
      const once = await store.liveRelays(T0 + 1);
      assert.equal(once.length, 1);
      assert.deepEqual(
        [once[0]!.streams, once[0]!.reserved, once[0]!.cpu, once[0]!.draining],
        [2, 0, 0.5, true],
      );
      await store.upsertRelay(relay('a', { maxStreams: 12 }), T0 + 2);
      const again = (await store.liveRelays(T0 + 2))[0]!;
      assert.deepEqual([again.maxStreams, again.streams, again.cpu, again.draining], [12, 2, 0.5, true]);
    });

    it('expires relays after relayExpiryMs and forgets them after the retention', async () => {
      const store = make();
      await store.upsertRelay(relay('a'), T0);
      await store.upsertRelay(relay('b'), T0);
      assert.equal((await store.liveRelays(T0 + EXPIRY - 1)).length, 2);
      await store.heartbeat('b', { streams: [], cpu: 0, draining: false }, T0 + EXPIRY - 1);
      assert.deepEqual(
        (await store.liveRelays(T0 + EXPIRY)).map((r) => r.relayId),
        ['b'],
      );
      // a is dead: nothing goes there; b takes it.
      assert.equal((await place(store, 'u/s1', T0 + EXPIRY))?.relayId, 'b');
      // a heartbeat within the retention brings a back.
      assert.equal(
        await store.heartbeat('a', { streams: [], cpu: 0, draining: false }, T0 + EXPIRY + 1),
        true,
      );
      assert.equal((await store.liveRelays(T0 + EXPIRY + 1)).length, 2);
      // Past the retention it is forgotten: its heartbeat says "unknown", so it registers again.
      const late = T0 + EXPIRY + 1 + RETENTION;
      assert.equal(await store.heartbeat('a', { streams: [], cpu: 0, draining: false }, late), false);
      assert.equal(await store.heartbeat('a', { streams: [], cpu: 0, draining: false }, late), false);
      await store.upsertRelay(relay('a'), late);
      assert.equal(await store.heartbeat('a', { streams: [], cpu: 0, draining: false }, late), true);
      // With every relay dead, nothing can be placed.
      assert.equal(await place(store, 'u/s2', late + EXPIRY), null);
    });

    it('places on the least-loaded relay, ties broken by lower cpu', async () => {
      const store = make();
      await store.upsertRelay(relay('a', { maxStreams: 10 }), T0);
      await store.upsertRelay(relay('b', { maxStreams: 20 }), T0);
      await store.upsertRelay(relay('c', { maxStreams: 10 }), T0);
      await store.heartbeat('a', { streams: live('x/1', 'x/2'), cpu: 0.9, draining: false }, T0);
      await store.heartbeat(
        'b',
        { streams: live('y/1', 'y/2', 'y/3', 'y/4'), cpu: 0.5, draining: false },
        T0,
      );
      await store.heartbeat(
        'c',
        { streams: live('z/1', 'z/2', 'z/3', 'z/4', 'z/5'), cpu: 0, draining: false },
        T0,
      );
      // a 2/10 = b 4/20 = 0.2: b has less cpu.
      const first = await place(store, 'u/s1');
      assert.deepEqual(first, {
        relayId: 'b',
        rtmpUrl: 'rtmp://b.example:1935',
        hlsUrl: 'http://b.example:8888',
        reused: false,
      });
      // b 5/20 = 0.25 > a 0.2.
      assert.equal((await place(store, 'u/s2'))?.relayId, 'a');
      // a 0.3 > b 0.25.
      assert.equal((await place(store, 'u/s3'))?.relayId, 'b');
      const records = byId(await store.liveRelays(T0));
      assert.deepEqual(
        ['a', 'b', 'c'].map((id) => [records[id]!.streams, records[id]!.reserved]),
        [
          [2, 1],
          [4, 2],
          [5, 0],
        ],
      );
      // Equal load and equal cpu: lower relayId.
      const tie = make();
      await tie.upsertRelay(relay('r2'), T0);
      await tie.upsertRelay(relay('r1'), T0);
      assert.equal((await place(tie, 'u/s1'))?.relayId, 'r1');
    });

    it('gives nothing new to draining relays', async () => {
      const store = make();
      await store.upsertRelay(relay('idle'), T0);
      await store.upsertRelay(relay('busy'), T0);
      await store.heartbeat('idle', { streams: [], cpu: 0, draining: true }, T0);
      await store.heartbeat('busy', { streams: live('a/1', 'a/2', 'a/3'), cpu: 3, draining: false }, T0);
      assert.equal((await place(store, 'u/s1'))?.relayId, 'busy');
      await store.heartbeat('busy', { streams: live('a/1', 'a/2', 'a/3'), cpu: 3, draining: true }, T0 + 1);
      assert.equal(await place(store, 'u/s2', T0 + 1), null);
      // Draining ends (a restarted relay reports draining: false): it takes streams again.
      await store.heartbeat('idle', { streams: [], cpu: 0, draining: false }, T0 + 2);
      assert.equal((await place(store, 'u/s2', T0 + 2))?.relayId, 'idle');
    });

    it('prefers the requested region and falls back to any relay when that region has no room', async () => {
      const store = make();
      await store.upsertRelay(relay('eu-1', { region: 'eu', maxStreams: 2 }), T0);
      await store.upsertRelay(relay('us-1', { region: 'us', maxStreams: 2 }), T0);
      await store.upsertRelay(relay('any-1', { maxStreams: 10 }), T0);
      await store.heartbeat('eu-1', { streams: live('e/1'), cpu: 0, draining: false }, T0);
      assert.equal((await place(store, 'u/s1', T0, 'eu'))?.relayId, 'eu-1');
      // eu is full now: least loaded anywhere.
      assert.equal((await place(store, 'u/s2', T0, 'eu'))?.relayId, 'any-1');
      assert.equal((await place(store, 'u/s3', T0, 'us'))?.relayId, 'us-1');
      assert.equal((await place(store, 'u/s4', T0, 'mars'))?.relayId, 'any-1');
      // No region: least loaded (us-1 1/2 vs any-1 2/10).
      assert.equal((await place(store, 'u/s5', T0))?.relayId, 'any-1');
      // Moving a relay to another region re-indexes it.
      await store.upsertRelay(relay('any-1', { maxStreams: 10, region: 'us' }), T0 + 1);
      assert.equal((await place(store, 'u/s6', T0 + 1, 'us'))?.relayId, 'any-1');
      await store.upsertRelay(relay('eu-1', { region: 'us', maxStreams: 20 }), T0 + 1);
      assert.equal((await place(store, 'u/s7', T0 + 1, 'eu'))?.relayId, 'eu-1');
    });

    it('keeps a stream on its relay while that relay lives, and moves it when it dies or drains', async () => {
      const store = make();
      await store.upsertRelay(relay('a'), T0);
      await store.upsertRelay(relay('b'), T0);
      const first = await place(store, 'u/s1');
      assert.deepEqual([first?.relayId, first?.reused], ['a', false]);
      // Reserved on a: asked again, it stays (the reservation is renewed), even though b is now emptier.
      const again = await place(store, 'u/s1', T0 + TTL - 1);
      assert.deepEqual([again?.relayId, again?.reused], ['a', true]);
      // Renewed: still reserved past the first reservation's expiry.
      assert.equal(await store.relayOf('u/s1', T0 + TTL + 1), 'a');
      // a reports it live: the reservation is consumed, the stream stays counted once.
      const t1 = T0 + TTL + 2;
      await store.heartbeat('a', { streams: live('u/s1'), cpu: 0, draining: false }, t1);
      let a = byId(await store.liveRelays(t1)).a!;
      assert.deepEqual([a.streams, a.reserved], [1, 0]);
      // A reconnect stays on a, even while a drains (the stream is live there).
      await store.heartbeat('a', { streams: live('u/s1'), cpu: 0, draining: true }, t1 + 1);
      const reconnect = await place(store, 'u/s1', t1 + 1);
      assert.deepEqual([reconnect?.relayId, reconnect?.reused], ['a', true]);
      a = byId(await store.liveRelays(t1 + 1)).a!;
      assert.deepEqual([a.streams, a.reserved], [1, 0]);
      // a dies: the stream moves to b.
      const t2 = t1 + 1 + EXPIRY;
      await store.heartbeat('b', { streams: [], cpu: 0, draining: false }, t2);
      const moved = await place(store, 'u/s1', t2);
      assert.deepEqual([moved?.relayId, moved?.reused], ['b', false]);
      assert.equal(await store.relayOf('u/s1', t2), 'b');
    });

    it('moves a stream only reserved on a relay that starts draining', async () => {
      const store = make();
      await store.upsertRelay(relay('a'), T0);
      await store.upsertRelay(relay('b'), T0);
      assert.equal((await place(store, 'u/s1'))?.relayId, 'a');
      await store.heartbeat('a', { streams: [], cpu: 0, draining: true }, T0 + 1);
      const moved = await place(store, 'u/s1', T0 + 1);
      assert.deepEqual([moved?.relayId, moved?.reused], ['b', false]);
      const records = byId(await store.liveRelays(T0 + 1));
      assert.deepEqual([records.a!.reserved, records.b!.reserved], [0, 1]);
    });

    it('expires reservations after reservationTtlMs, freeing the slot', async () => {
      const store = make();
      await store.upsertRelay(relay('a', { maxStreams: 1 }), T0);
      assert.equal((await place(store, 'u/s1'))?.relayId, 'a');
      assert.equal(await place(store, 'u/s2', T0 + TTL - 1), null);
      assert.equal(await store.relayOf('u/s1', T0 + TTL - 1), 'a');
      assert.equal((await store.liveRelays(T0 + TTL - 1))[0]!.reserved, 1);
      // A heartbeat that does not report it yet leaves the reservation alone.
      await store.heartbeat('a', { streams: [], cpu: 0, draining: false }, T0 + TTL - 1);
      assert.equal((await store.liveRelays(T0 + TTL - 1))[0]!.reserved, 1);
      assert.equal(await store.relayOf('u/s1', T0 + TTL), null);
      assert.equal((await store.liveRelays(T0 + TTL))[0]!.reserved, 0);
      const next = await place(store, 'u/s2', T0 + TTL);
      assert.deepEqual([next?.relayId, next?.reused], ['a', false]);
      // s1 lost its slot: placed again it finds none.
      assert.equal(await place(store, 'u/s1', T0 + TTL), null);
    });

    it('release drops a reservation and the assignment', async () => {
      const store = make();
      await store.upsertRelay(relay('a', { maxStreams: 1 }), T0);
      assert.equal((await place(store, 'u/s1'))?.relayId, 'a');
      await store.release('u/s1');
      await store.release('u/s1');
      await store.release('never/placed');
      assert.equal(await store.relayOf('u/s1', T0), null);
      assert.equal((await store.liveRelays(T0))[0]!.reserved, 0);
      const next = await place(store, 'u/s2');
      assert.deepEqual([next?.relayId, next?.reused], ['a', false]);
    });

    it('returns null when every relay is full, and never overfills', async () => {
      const store = make();
      await store.upsertRelay(relay('a', { maxStreams: 2 }), T0);
      await store.upsertRelay(relay('b', { maxStreams: 2 }), T0);
      await store.upsertRelay(relay('zero', { maxStreams: 0 }), T0);
      const got = [];
      for (let i = 0; i < 5; i++) got.push((await place(store, `u/s${i}`))?.relayId ?? null);
      assert.deepEqual(got, ['a', 'b', 'a', 'b', null]);
      // Live streams count too: a reports one of its two plus an unexpected one, so it is still full.
      await store.heartbeat('a', { streams: live('u/s0', 'other/x'), cpu: 0, draining: false }, T0 + 1);
      const a = byId(await store.liveRelays(T0 + 1)).a!;
      assert.deepEqual([a.streams, a.reserved], [2, 1]);
      assert.equal(await place(store, 'u/s9', T0 + 1), null);
      // A stream that ends (no longer reported) frees its slot once the reservation is gone too.
      await store.release('u/s2');
      await store.heartbeat('a', { streams: live('u/s0'), cpu: 0, draining: false }, T0 + 2);
      assert.equal((await place(store, 'u/s9', T0 + 2))?.relayId, 'a');
      assert.equal(await store.relayOf('other/x', T0 + 2), null);
    });

    it('a live report wins over a reservation on another relay', async () => {
      const store = make();
      await store.upsertRelay(relay('a'), T0);
      await store.upsertRelay(relay('b'), T0);
      assert.equal((await place(store, 'u/s1'))?.relayId, 'a');
      // The publisher ended up on b (an old token): b reports it, a's reservation goes.
      await store.heartbeat('b', { streams: live('u/s1'), cpu: 0, draining: false }, T0 + 1);
      const records = byId(await store.liveRelays(T0 + 1));
      assert.deepEqual([records.a!.reserved, records.b!.streams], [0, 1]);
      assert.equal(await store.relayOf('u/s1', T0 + 1), 'b');
      // Reported by a as well while b still has it: the assignment stays with b.
      await store.heartbeat('a', { streams: live('u/s1'), cpu: 0, draining: false }, T0 + 2);
      assert.equal(await store.relayOf('u/s1', T0 + 2), 'b');
      // b stops reporting it: a keeps it from its next heartbeat.
      await store.heartbeat('b', { streams: [], cpu: 0, draining: false }, T0 + 3);
      await store.heartbeat('a', { streams: live('u/s1'), cpu: 0, draining: false }, T0 + 4);
      assert.equal(await store.relayOf('u/s1', T0 + 4), 'a');
    });

    it('removeRelay forgets the relay, its reservations and its streams', async () => {
      const store = make();
      await store.upsertRelay(relay('a', { maxStreams: 1 }), T0);
      await store.heartbeat('a', { streams: live('u/live'), cpu: 0, draining: false }, T0);
      await store.upsertRelay(relay('b', { maxStreams: 1 }), T0);
      assert.equal((await place(store, 'u/s1'))?.relayId, 'b');
      await store.removeRelay('b');
      await store.removeRelay('b');
      assert.equal(await store.relayOf('u/s1', T0), null);
      assert.equal(await store.relayOf('u/live', T0), 'a');
      await store.removeRelay('a');
      assert.equal(await store.relayOf('u/live', T0), null);
      assert.deepEqual(await store.liveRelays(T0), []);
      assert.equal(await place(store, 'u/s1'), null);
      assert.equal(await store.heartbeat('a', { streams: [], cpu: 0, draining: false }, T0), false);
    });

    it('refuses a non-positive relay expiry', () => {
      assert.throws(() => impl.make({ relayExpiryMs: 0 }), { code: 'CONFIG_INVALID' });
    });
  });
}

describe('redis store key hygiene', () => {
  let server: RedisServer;
  let admin: Redis;
  before(async () => {
    server = await startRedisServer();
    admin = new Redis(server.url);
  });
  after(async () => {
    await admin.quit();
    await server.close();
  });

  it('leaves no keys behind once relays are removed or forgotten and reservations expire', async () => {
    const prefix = '{hygiene}:';
    const store = new RedisCloudStore({
      redis: server.url,
      prefix,
      relayExpiryMs: EXPIRY,
      relayRetentionMs: RETENTION,
    });
    try {
      await store.upsertRelay(relay('a', { region: 'eu' }), T0);
      await store.upsertRelay(relay('b'), T0);
      await store.heartbeat('a', { streams: live('u/live1', 'u/live2'), cpu: 1, draining: false }, T0);
      assert.ok(await store.place('u/s1', { now: T0, reservationTtlMs: TTL, region: 'eu' }));
      assert.ok(await store.place('u/s2', { now: T0, reservationTtlMs: TTL }));
      assert.ok((await admin.keys(`${prefix}*`)).length > 0);
      // b keeps heartbeating; a goes silent and is forgotten after the retention, with its streams.
      await store.heartbeat('b', { streams: [], cpu: 0, draining: false }, T0 + EXPIRY - 1);
      const late = T0 + RETENTION;
      assert.equal(await store.heartbeat('b', { streams: [], cpu: 0, draining: false }, late), true);
      assert.equal(await store.relayOf('u/live1', late), null);
      assert.deepEqual((await admin.keys(`${prefix}relay:a*`)).sort(), []);
      assert.equal(await admin.hlen(`${prefix}assign`), 0);
      await store.removeRelay('b');
      assert.deepEqual(await admin.keys(`${prefix}*`), []);
    } finally {
      await store.close();
    }
  });
});

describe('redis store while Redis is away', () => {
  it('fails fast with CLOUD_STORE_FAILED, says so once, and works again on a Redis that came back empty', async () => {
    const server = await startRedisServer();
    const logs = captureLogs();
    const store = new RedisCloudStore({ redis: server.url, relayExpiryMs: EXPIRY, log: logs.log });
    try {
      await store.upsertRelay(relay('a'), T0);
      assert.equal((await store.liveRelays(T0)).length, 1);
      await server.stop({ signal: 'SIGKILL' });
      // Every call fails, promptly (no queue waiting for a Redis that is not there), and none runs later.
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        await assert.rejects(store.upsertRelay(relay('b'), T0), { code: 'CLOUD_STORE_FAILED' });
        await assert.rejects(store.liveRelays(T0), { code: 'CLOUD_STORE_FAILED' });
        assert.ok(Date.now() - started < 2500, `failed in ${Date.now() - started} ms`);
      }
      await server.start();
      // Back, empty: the scripts are loaded again (NOSCRIPT), a heartbeat hears "unknown", a register works.
      const back = async (): Promise<boolean> => {
        for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
          try {
            return await store.heartbeat('a', { streams: [], cpu: 0, draining: false }, T0);
          } catch {
            await new Promise((r) => setTimeout(r, 50)); // still reconnecting
          }
        }
        throw new Error('the store did not come back');
      };
      assert.equal(await back(), false, 'the new Redis does not know relay a');
      await store.upsertRelay(relay('a'), T0);
      assert.deepEqual(
        (await store.liveRelays(T0)).map((r) => r.relayId),
        ['a'],
        'relay b, refused while Redis was down, was never written later',
      );
      const said = logs.lines().map((l) => l.msg);
      assert.deepEqual(
        said.filter((m) => m === 'store unreachable' || m === 'store reachable again'),
        ['store unreachable', 'store reachable again'],
      );
    } finally {
      await store.close();
      await server.close();
    }
  });
});

describe('redis-server helper', () => {
  it('fails with a clear message when redis-server is missing', async () => {
    await assert.rejects(
      startRedisServer({ binary: '/nonexistent/redis-server' }),
      /redis-server is not installed/,
    );
  });

  it('restarts on the same port, empty', async () => {
    const server = await startRedisServer();
    const client = new Redis(server.url, { maxRetriesPerRequest: null });
    try {
      await client.set('k', 'v');
      const { port } = server;
      await server.restart({ signal: 'SIGKILL' });
      assert.equal(server.port, port);
      assert.equal(await client.get('k'), null);
    } finally {
      client.disconnect();
      await server.close();
      await server.close();
    }
  });
});
