/**
 * Managed start (issue 16, and MentraOS' 9.8 s from Start to a playable URL, their issue #3523): request →
 * `active` → first segment fetched, over BENCH_STARTS (100) managed starts one after the other, with the
 * cloud in-process, one relay process and the glasses simulator replaying a fixture on loopback. Phases:
 *   command   the app's POST → the start command at the glasses (placement, token, WebSocket)
 *   publish   → the glasses' publish started (RTMP connect, handshake, publish authorized)
 *   ready     → the app hears `active` (first segment on the relay, hls-ready, the cloud's playlist check,
 *               the status to the app over server-sent events)
 *   segment   → the first segment listed in the playlist fetched
 * Goal: request → first segment ≤ 3 s p95.
 *
 * Then status fan-out across replicas: BENCH_FANOUT_STREAMS (50) managed streams, two apps following each
 * one's events, BENCH_FANOUT_ROUNDS (20) status changes per stream caused on one cloud (a relay's
 * re-streaming report); the apps follow on the same cloud (one replica) or on a second cloud on the same
 * Redis (two replicas: every status crosses Redis pub/sub). Latency from the relay's call to each app's
 * event (p50, p99) and statuses delivered per second.
 */
import { performance } from 'node:perf_hooks';
import { startCloud } from '../src/cloud/cloud.ts';
import { signUserToken } from '../src/cloud/user-tokens.ts';
import { readFlv } from '../src/media/flv-reader.ts';
import { ManagedStreamClient } from '../src/sdk/client.ts';
import { loadConfig } from '../src/shared/config.ts';
import { silentLogger } from '../src/shared/logger.ts';
import { GlassesSim } from '../src/sim/glasses-sim.ts';
import { loadFixture } from '../test/fixtures/generate.ts';
import { startRedisServer } from '../test/helpers/redis-server.ts';
import { killGroup, spawnRelay } from '../test/helpers/relay-process.ts';

const STARTS = Number(process.env.BENCH_STARTS ?? 100);
const RELAY_SECRET = 'relay-shared-secret-bench-0123456789';
const SECRET = 'publish-and-user-token-secret-bench-0123456789';
const PHASES = ['command', 'publish', 'ready', 'segment', 'total'] as const;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const replay = readFlv(await loadFixture('glasses-854x480.flv')).tags;
  const config = loadConfig({
    CLOUD_HOST: '127.0.0.1',
    CLOUD_PORT: '0',
    PUBLISH_AUTH: 'token',
    HEARTBEAT_SECONDS: '1',
  });
  const cloud = await startCloud(config, silentLogger(), {
    relaySecret: RELAY_SECRET,
    publishTokenSecret: SECRET,
    userTokenSecret: SECRET,
  });
  const relay = spawnRelay('bench-relay', cloud.url.replace('localhost', '127.0.0.1'), {
    RELAY_SHARED_SECRET: RELAY_SECRET,
    PUBLISH_TOKEN_SECRET: SECRET,
    PUBLISH_AUTH: 'token',
    HEARTBEAT_SECONDS: '1',
    MAX_STREAMS: '20',
    CLEAN_PROFILE: 'copy',
  });
  const samples: Record<(typeof PHASES)[number], number[]> = {
    command: [],
    publish: [],
    ready: [],
    segment: [],
    total: [],
  };
  try {
    await relay.waitLine((l) => l.msg === 'registered with the cloud', 60_000);
    for (let i = 0; i < STARTS; i++) {
      const userId = `bench${i}@start.test`;
      const token = await signUserToken(SECRET, userId);
      const sim = new GlassesSim({
        cloudUrl: cloud.url.replace(/^http/, 'ws'),
        userId,
        token,
        log: silentLogger(),
        replay,
      });
      await sim.connect();
      let commandAt = 0;
      let publishAt = 0;
      sim.on('message', (m) => {
        if (m.type === 'start_rtmp_stream' && !commandAt) commandAt = performance.now();
      });
      sim.on('status', (s) => {
        if (s.type === 'rtmp_stream_status' && s.status === 'streaming' && !publishAt)
          publishAt = performance.now();
      });
      const app = new ManagedStreamClient({ cloudUrl: cloud.url, userId, packageName: 'com.bench', token });
      const t0 = performance.now();
      const urls = await app.startManagedStream();
      const activeAt = performance.now();
      const playlist = await (await fetch(urls.hlsUrl)).text();
      const first = playlist.split('\n').find((l) => l && !l.startsWith('#'));
      if (!first) throw new Error('no segment in the playlist');
      const seg = await fetch(new URL(first, urls.hlsUrl));
      await seg.arrayBuffer();
      if (!seg.ok) throw new Error(`segment ${seg.status}`);
      const segmentAt = performance.now();
      samples.command.push(commandAt - t0);
      samples.publish.push(publishAt - commandAt);
      samples.ready.push(activeAt - publishAt);
      samples.segment.push(segmentAt - activeAt);
      samples.total.push(segmentAt - t0);
      await app.stopManagedStream();
      app.close();
      await sim.close();
    }
  } finally {
    killGroup(relay.pid, 'SIGKILL');
    await cloud.close();
  }
  if (STARTS > 0) report(samples);
  await fanoutBench();
}

function report(samples: Record<(typeof PHASES)[number], number[]>): void {
  console.log(`\n### Managed start: request → active → first segment (${STARTS} starts, loopback)\n`);
  console.log('| phase | p50 ms | p95 ms | max ms |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const phase of PHASES) {
    const sorted = [...samples[phase]].sort((a, b) => a - b);
    console.log(
      `| ${phase} | ${percentile(sorted, 50).toFixed(0)} | ${percentile(sorted, 95).toFixed(0)} | ${sorted.at(-1)!.toFixed(0)} |`,
    );
  }
  const p95 = percentile(
    [...samples.total].sort((a, b) => a - b),
    95,
  );
  console.log(
    `\ngoal: request → first segment ≤ 3000 ms p95: ${p95 <= 3000 ? 'met' : 'NOT met'} (${p95.toFixed(0)} ms)`,
  );
}

const FANOUT_STREAMS = Number(process.env.BENCH_FANOUT_STREAMS ?? 50);
const FANOUT_ROUNDS = Number(process.env.BENCH_FANOUT_ROUNDS ?? 20);

/** One fan-out run: streams created and changed on `a`, followed on `b` (the same cloud or another). */
async function fanout(a: string, b: string): Promise<{ latencies: number[]; perSecond: number }> {
  const relayHeaders = { authorization: `Bearer ${RELAY_SECRET}`, 'content-type': 'application/json' };
  const suffix = Math.random().toString(36).slice(2, 8);
  const streams: { userId: string; streamId: string; headers: Record<string, string> }[] = [];
  for (let i = 0; i < FANOUT_STREAMS; i++) {
    const userId = `fan${i}-${suffix}@fanout.test`;
    const headers = {
      authorization: `Bearer ${await signUserToken(SECRET, userId)}`,
      'content-type': 'application/json',
    };
    const res = await fetch(`${a}/api/managed-streams`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ userId, packageName: 'com.fanout' }),
    });
    const { streamId } = (await res.json()) as { streamId: string };
    streams.push({ userId, streamId, headers });
  }
  const latencies: number[] = [];
  const sentAt = new Map<string, number>();
  let expected = 0;
  let received = 0;
  let allIn: () => void = () => {};
  const aborts: AbortController[] = [];
  await Promise.all(
    streams.flatMap((s) =>
      [0, 1].map(async () => {
        const abort = new AbortController();
        aborts.push(abort);
        const res = await fetch(`${b}/api/managed-streams/${s.streamId}/events`, {
          headers: s.headers,
          signal: abort.signal,
        });
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        let first = true;
        void (async () => {
          for (;;) {
            const { value, done } = await reader.read().catch(() => ({ value: '', done: true }));
            if (done) return;
            buffer += value;
            let at = buffer.indexOf('\n\n');
            while (at >= 0) {
              const event = buffer.slice(0, at);
              buffer = buffer.slice(at + 2);
              at = buffer.indexOf('\n\n');
              if (!event.startsWith('data: ')) continue;
              if (first) {
                first = false; // the current status at connect
                continue;
              }
              const status = JSON.parse(event.slice(6)) as {
                streamId: string;
                outputs?: { name?: string }[];
              };
              const sent = sentAt.get(`${status.streamId}/${status.outputs?.[0]?.name}`);
              if (sent !== undefined) latencies.push(performance.now() - sent);
              if (++received === expected) allIn();
            }
          }
        })();
      }),
    ),
  );
  await new Promise((r) => setTimeout(r, 300)); // every follower connected and past its first status
  expected = streams.length * 2 * FANOUT_ROUNDS;
  const done = new Promise<void>((resolve) => {
    allIn = resolve;
  });
  const started = performance.now();
  for (let round = 0; round < FANOUT_ROUNDS; round++) {
    await Promise.all(
      streams.map(async (s) => {
        const name = `r${round}`;
        sentAt.set(`${s.streamId}/${name}`, performance.now());
        const res = await fetch(`${a}/api/relay/restream-status`, {
          method: 'POST',
          headers: relayHeaders,
          body: JSON.stringify({
            relayId: 'fanout-relay',
            userId: s.userId,
            streamId: s.streamId,
            outputs: [{ url: 'rtmp://example/live/[redacted]', name, status: 'active' }],
          }),
        });
        await res.arrayBuffer();
      }),
    );
  }
  await Promise.race([done, new Promise((r) => setTimeout(r, 30_000))]);
  const seconds = (performance.now() - started) / 1000;
  for (const abort of aborts) abort.abort();
  for (const s of streams)
    await fetch(`${a}/api/managed-streams/${s.streamId}/viewers/com.fanout`, {
      method: 'DELETE',
      headers: s.headers,
    });
  return { latencies, perSecond: received / seconds };
}

async function fanoutBench(): Promise<void> {
  const redis = await startRedisServer();
  const config = loadConfig({
    CLOUD_HOST: '127.0.0.1',
    CLOUD_PORT: '0',
    PUBLISH_AUTH: 'token',
    REDIS_URL: redis.url,
    HEARTBEAT_SECONDS: '10',
  });
  const options = { relaySecret: RELAY_SECRET, publishTokenSecret: SECRET, userTokenSecret: SECRET };
  const one = await startCloud(config, silentLogger(), options);
  const two = await startCloud(config, silentLogger(), options);
  try {
    const register = await fetch(`http://127.0.0.1:${one.port}/api/relay/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${RELAY_SECRET}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        relayId: 'fanout-relay',
        rtmpUrl: 'rtmp://127.0.0.1:1',
        hlsUrl: 'http://127.0.0.1:1',
        maxStreams: 100_000,
      }),
    });
    await register.arrayBuffer();
    const a = `http://127.0.0.1:${one.port}`;
    const b = `http://127.0.0.1:${two.port}`;
    console.log(
      `\n### Status fan-out: ${FANOUT_STREAMS} streams × 2 apps × ${FANOUT_ROUNDS} statuses (Redis state)\n`,
    );
    console.log('| apps follow on | p50 ms | p99 ms | statuses/s |');
    console.log('| --- | ---: | ---: | ---: |');
    for (const [label, follow] of [
      ['one replica (the one changed)', a],
      ['another replica', b],
    ] as const) {
      const { latencies, perSecond } = await fanout(a, follow);
      const sorted = latencies.sort((x, y) => x - y);
      console.log(
        `| ${label} | ${percentile(sorted, 50).toFixed(1)} | ${percentile(sorted, 99).toFixed(1)} | ${perSecond.toFixed(0)} |`,
      );
    }
  } finally {
    await two.close();
    await one.close();
    await redis.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
