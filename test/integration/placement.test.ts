/**
 * Placement under contention: 500 concurrent `place` calls for distinct streams against 10 relays of
 * capacity 20 place exactly 200, never more than 20 on a relay, and answer null to the other 300. In Redis the
 * calls go through several connections to a real redis-server, so the scripts really interleave on the
 * server; the memory store runs the same test. Concurrent placements of one stream all land on one relay.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { CloudStore, Placement } from '../../src/cloud/store.ts';
import { MemoryCloudStore } from '../../src/cloud/store-memory.ts';
import { RedisCloudStore } from '../../src/cloud/store-redis.ts';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.ts';

const RELAYS = 10;
const CAPACITY = 20;
const CALLS = 500;
const CONNECTIONS = 8;
const NOW = 1_700_000_000_000;

let redis: RedisServer | undefined;
let prefixes = 0;

/** Several handles on one store: for Redis, one connection each on a shared prefix. */
const implementations: { name: string; open(): CloudStore[] }[] = [
  {
    name: 'memory',
    open: () => [new MemoryCloudStore()],
  },
  {
    name: 'redis',
    open: () => {
      const prefix = `{placement-${process.pid}-${++prefixes}}:`;
      return Array.from({ length: CONNECTIONS }, () => new RedisCloudStore({ redis: redis!.url, prefix }));
    },
  },
];

before(async () => {
  redis = await startRedisServer();
});

after(async () => {
  await redis?.close();
});

for (const impl of implementations) {
  describe(`concurrent placement (${impl.name})`, () => {
    let handles: CloudStore[] = [];
    afterEach(async () => {
      await Promise.all(handles.map((h) => h.close()));
      handles = [];
    });

    async function setUp(): Promise<void> {
      handles = impl.open();
      for (let i = 0; i < RELAYS; i++) {
        await handles[0]!.upsertRelay(
          {
            relayId: `relay-${i}`,
            rtmpUrl: `rtmp://relay-${i}.example:1935`,
            hlsUrl: `http://relay-${i}.example:8888`,
            maxStreams: CAPACITY,
          },
          NOW,
        );
      }
    }

    it(`${CALLS} concurrent placements fill ${RELAYS} relays of ${CAPACITY} exactly`, async () => {
      await setUp();
      const results = await Promise.all(
        Array.from({ length: CALLS }, (_, i) =>
          handles[i % handles.length]!.place(`user-${i}/stream`, { now: NOW, reservationTtlMs: 60_000 }),
        ),
      );
      const placed = results.filter((r): r is Placement => r !== null);
      assert.equal(placed.length, RELAYS * CAPACITY);
      assert.equal(results.filter((r) => r === null).length, CALLS - RELAYS * CAPACITY);
      const perRelay = new Map<string, number>();
      for (const p of placed) perRelay.set(p.relayId, (perRelay.get(p.relayId) ?? 0) + 1);
      assert.equal(perRelay.size, RELAYS);
      for (const [relayId, n] of perRelay) assert.ok(n <= CAPACITY, `${relayId} got ${n}`);
      assert.ok(placed.every((p) => !p.reused));
      // The store's own counts agree, and a full house takes nothing more.
      const records = await handles[0]!.liveRelays(NOW);
      assert.deepEqual(
        records.map((r) => r.reserved),
        Array(RELAYS).fill(CAPACITY),
      );
      assert.equal(
        await handles[1 % handles.length]!.place('late/stream', { now: NOW, reservationTtlMs: 1 }),
        null,
      );
    });

    it('concurrent placements of one stream land on one relay with one reservation', async () => {
      await setUp();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          handles[i % handles.length]!.place('same/stream', { now: NOW, reservationTtlMs: 60_000 }),
        ),
      );
      const relays = new Set(results.map((r) => r?.relayId));
      assert.equal(relays.size, 1);
      assert.equal(results.filter((r) => r?.reused === false).length, 1);
      const records = await handles[0]!.liveRelays(NOW);
      assert.equal(
        records.reduce((n, r) => n + r.reserved, 0),
        1,
      );
    });
  });
}
