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

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
