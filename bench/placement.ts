/**
 * Placement in real Redis: latency (p50/p99, one call in flight) and throughput (CONCURRENCY calls in flight
 * over CONNECTIONS connections) for STREAMS placements on RELAYS relays, against the seed's scheme in the same
 * run on the same redis-server (architecture §8, shared/reference/ffmpeg.md):
 *   ours       RedisCloudStore.place: one Lua script (EVALSHA), least-loaded relay from a sorted set
 *   reference  each relay a JSON string under `relay:{id}` (TTL 5 min); `KEYS relay:*`, GET each (pipelined in
 *              one round trip, which is kinder than the seed's one-by-one reads), keep those seen in the last
 *              60 s, pick the fewest `currentStreams` below `maxStreams`, then a read-modify-write
 *              `currentStreams++` (GET, SET)
 * Each runs in its own database, so `KEYS` sees only the reference's relays. The reference places
 * BENCH_REFERENCE_STREAMS (2,000) streams per phase to keep the run short: its cost per call comes from the
 * relays it scans, not from how many streams are placed. Also reported: the redis-server's CPU per placement
 * (what bounds throughput once many cloud instances share one Redis), and the reference's races: increments
 * lost to concurrent read-modify-writes, and relays over `maxStreams`.
 * Goal: p99 ≤ 2 ms and ≥ 20× the reference's throughput.
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { RedisCloudStore } from '../src/cloud/store-redis.ts';
import { startRedisServer } from '../test/helpers/redis-server.ts';

const RELAYS = Number(process.env.BENCH_RELAYS ?? 1_000);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 10_000);
const CAPACITY = Number(process.env.BENCH_CAPACITY ?? 20);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 4);
const REFERENCE_STREAMS = Number(process.env.BENCH_REFERENCE_STREAMS ?? 2_000);
const TTL_MS = 120_000;

type Place = (key: string) => Promise<string | null>;

interface Phase {
  n: number;
  wallS: number;
  latenciesMs: number[];
  /** CPU seconds the redis-server spent in the phase. */
  serverCpuS: number;
}

/** CPU seconds the redis-server has used (user + system), from INFO. */
async function serverCpuS(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string): number => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** `n` placements with `concurrency` in flight, handles used round-robin. */
async function run(
  places: Place[],
  n: number,
  concurrency: number,
  tag: string,
  admin: Redis,
): Promise<Phase> {
  const latenciesMs: number[] = [];
  const cpuBefore = await serverCpuS(admin);
  let next = 0;
  let placed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      const place = places[worker % places.length]!;
      while (next < n) {
        const i = next++;
        const t = performance.now();
        const relay = await place(`user-${tag}-${i}/s`);
        latenciesMs.push(performance.now() - t);
        if (relay !== null) placed++;
      }
    }),
  );
  const wallS = (performance.now() - started) / 1000;
  const serverCpu = (await serverCpuS(admin)) - cpuBefore;
  if (placed !== n) throw new Error(`${tag}: only ${placed} of ${n} placed (capacity ${RELAYS * CAPACITY})`);
  return { n, wallS, latenciesMs: latenciesMs.sort((a, b) => a - b), serverCpuS: serverCpu };
}

// --- ours -------------------------------------------------------------------------------------------------

async function setUpOurs(url: string, prefix: string): Promise<{ places: Place[]; close(): Promise<void> }> {
  const stores = Array.from({ length: CONNECTIONS }, () => new RedisCloudStore({ redis: url, prefix }));
  const now = Date.now();
  await Promise.all(
    Array.from({ length: RELAYS }, async (_, i) => {
      const store = stores[i % stores.length]!;
      const relayId = `relay-${i}`;
      await store.upsertRelay(
        {
          relayId,
          rtmpUrl: `rtmp://${relayId}:1935`,
          hlsUrl: `http://${relayId}:8888`,
          maxStreams: CAPACITY,
        },
        now,
      );
      await store.heartbeat(relayId, { streams: [], cpu: ((i * 7919) % 400) / 100, draining: false }, now);
    }),
  );
  const places = stores.map(
    (store): Place =>
      async (key) =>
        (await store.place(key, { now: Date.now(), reservationTtlMs: TTL_MS }))?.relayId ?? null,
  );
  return { places, close: async () => void (await Promise.all(stores.map((s) => s.close()))) };
}

// --- reference: the seed's scheme -------------------------------------------------------------------------

interface SeedRelay {
  relayId: string;
  rtmpUrl: string;
  hlsUrl: string;
  maxStreams: number;
  currentStreams: number;
  lastSeen: number;
}

async function setUpReference(url: string): Promise<{
  places: Place[];
  counts(): Promise<{ total: number; over: number }>;
  close(): Promise<void>;
}> {
  const clients = Array.from({ length: CONNECTIONS }, () => new Redis(url));
  await clients[0]!.flushdb();
  const setup = clients[0]!.pipeline();
  const now = Date.now();
  for (let i = 0; i < RELAYS; i++) {
    const relay: SeedRelay = {
      relayId: `relay-${i}`,
      rtmpUrl: `rtmp://relay-${i}:1935`,
      hlsUrl: `http://relay-${i}:8888`,
      maxStreams: CAPACITY,
      currentStreams: 0,
      lastSeen: now,
    };
    setup.set(`relay:${relay.relayId}`, JSON.stringify(relay), 'EX', 300);
  }
  await setup.exec();
  const places = clients.map(
    (redis): Place =>
      async () => {
        const keys = await redis.keys('relay:*');
        const read = redis.pipeline();
        for (const key of keys) read.get(key);
        const replies = (await read.exec()) ?? [];
        const cutoff = Date.now() - 60_000;
        let best: SeedRelay | undefined;
        for (const [, value] of replies) {
          if (typeof value !== 'string') continue;
          const relay = JSON.parse(value) as SeedRelay;
          if (relay.lastSeen < cutoff || relay.currentStreams >= relay.maxStreams) continue;
          if (!best || relay.currentStreams < best.currentStreams) best = relay;
        }
        if (!best) return null;
        // stream-started: read-modify-write, as the seed planned it
        const key = `relay:${best.relayId}`;
        const current = await redis.get(key);
        if (current === null) return null;
        const relay = JSON.parse(current) as SeedRelay;
        relay.currentStreams++;
        await redis.set(key, JSON.stringify(relay), 'EX', 300);
        return relay.relayId;
      },
  );
  const counts = async (): Promise<{ total: number; over: number }> => {
    const values = await clients[0]!.mget(...Array.from({ length: RELAYS }, (_, i) => `relay:relay-${i}`));
    const relays = values.map((v) => JSON.parse(v!) as SeedRelay);
    return {
      total: relays.reduce((n, r) => n + r.currentStreams, 0),
      over: relays.filter((r) => r.currentStreams > r.maxStreams).length,
    };
  };
  return { places, counts, close: async () => void (await Promise.all(clients.map((c) => c.quit()))) };
}

// --- run -------------------------------------------------------------------------------------------------

function fmt(ms: number): string {
  return ms < 1 ? ms.toFixed(3) : ms.toFixed(2);
}

async function main(): Promise<void> {
  const server = await startRedisServer();
  const admin = new Redis(server.url);
  try {
    const oursUrl = `${server.url}/0`;
    const refUrl = `${server.url}/1`;
    console.error(`placement: ${RELAYS} relays × ${CAPACITY}, ${STREAMS} streams, redis at ${server.url}`);

    // Warm-up (script load, JIT), on throw-away keys.
    const warm = await setUpOurs(oursUrl, '{bench-warm}:');
    await run(warm.places, 2_000, CONCURRENCY, 'warm', admin);
    await warm.close();

    const oursSeq = await setUpOurs(oursUrl, '{bench-seq}:');
    const ourLatency = await run(oursSeq.places.slice(0, 1), STREAMS, 1, 'seq', admin);
    await oursSeq.close();
    const oursPar = await setUpOurs(oursUrl, '{bench-par}:');
    const ourThroughput = await run(oursPar.places, STREAMS, CONCURRENCY, 'par', admin);
    await oursPar.close();
    console.error(`ours: ${(ourLatency.wallS + ourThroughput.wallS).toFixed(1)} s`);

    const refWarm = await setUpReference(refUrl);
    await run(refWarm.places, 200, CONCURRENCY, 'warm', admin);
    await refWarm.close();
    const refSeq = await setUpReference(refUrl);
    const refLatency = await run(refSeq.places.slice(0, 1), REFERENCE_STREAMS, 1, 'seq', admin);
    await refSeq.close();
    const refPar = await setUpReference(refUrl);
    const refThroughput = await run(refPar.places, REFERENCE_STREAMS, CONCURRENCY, 'par', admin);
    const races = await refPar.counts();
    await refPar.close();
    console.error(`reference: ${(refLatency.wallS + refThroughput.wallS).toFixed(1)} s`);

    const row = (name: string, lat: Phase, thr: Phase, races: string) => ({
      name,
      n: lat.n,
      p50: percentile(lat.latenciesMs, 50),
      p99: percentile(lat.latenciesMs, 99),
      p99Loaded: percentile(thr.latenciesMs, 99),
      perS: thr.n / thr.wallS,
      serverUs: (thr.serverCpuS / thr.n) * 1e6,
      races,
    });
    const ours = row('ours (Lua script)', ourLatency, ourThroughput, '0 (atomic)');
    const lost = refThroughput.n - races.total;
    const ref = row(
      'reference (seed: KEYS + GET + RMW)',
      refLatency,
      refThroughput,
      `${lost} increments lost, ${races.over} relays over max`,
    );
    const lines = [
      `Placement, ${RELAYS} relays of ${CAPACITY}, ${STREAMS} streams (reference: ${REFERENCE_STREAMS}); ` +
        `latency with 1 call in flight, throughput with ${CONCURRENCY} in flight over ${CONNECTIONS} connections`,
      '',
      '| implementation | placements | p50 (ms) | p99 (ms) | p99 loaded (ms) | throughput (/s) | Redis CPU / placement (µs) | races |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      ...[ours, ref].map(
        (r) =>
          `| ${r.name} | ${r.n} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.p99Loaded)} | ${Math.round(r.perS)} | ${r.serverUs.toFixed(1)} | ${r.races} |`,
      ),
      `| ratio (reference ÷ ours; throughput ours ÷ reference) | | ${(ref.p50 / ours.p50).toFixed(1)}× | ` +
        `${(ref.p99 / ours.p99).toFixed(1)}× | ${(ref.p99Loaded / ours.p99Loaded).toFixed(1)}× | ` +
        `${(ours.perS / ref.perS).toFixed(1)}× | ${(ref.serverUs / ours.serverUs).toFixed(1)}× | |`,
      '',
      `Goal: p99 ≤ 2 ms: ${ours.p99 <= 2 ? 'met' : 'NOT met'} (${fmt(ours.p99)} ms); ≥ 20× the reference's ` +
        `throughput: ${ours.perS / ref.perS >= 20 ? 'met' : 'NOT met'} (${(ours.perS / ref.perS).toFixed(1)}×)`,
    ];
    console.log(lines.join('\n'));
  } finally {
    await admin.quit();
    await server.close();
  }
}

await main();
