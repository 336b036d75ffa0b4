/**
 * Relay death: three real relay processes (`rtmp-relay relay`, each in its own process group) register with
 * the cloud (in-process, on a real redis-server). Glasses simulators publish two managed streams; the first
 * (watched by two apps) lands on one relay (the least loaded; reported CPU breaks the tie), the second on
 * another. The first stream's relay has its process group SIGKILLed:
 * within 3 × the relay expiry (plus CI slack) both apps hear `reconnecting` and then `active` with a new
 * hlsUrl on another relay, whose playlist plays and to which `/watch/{id}/index.m3u8` now redirects; the other
 * stream is not disturbed, and no FFmpeg the killed relay ran is left.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type CloudHandle, startCloud } from '../../src/cloud/cloud.ts';
import { signUserToken } from '../../src/cloud/user-tokens.ts';
import type { ManagedStreamStatus } from '../../src/contracts/mentra.ts';
import { ManagedStreamClient } from '../../src/sdk/client.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { GlassesSim } from '../../src/sim/glasses-sim.ts';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.ts';
import {
  ffmpegChildren,
  ffmpegGone,
  groupExists,
  killGroup,
  type NodeProcess,
  spawnRelay,
  watchStatuses,
} from '../helpers/relay-process.ts';

const HEARTBEAT_SECONDS = 0.5;
const EXPIRY_SECONDS = 2;
/** The bound (3 × expiry), plus slack for a loaded CI machine. */
const FAILOVER_DEADLINE_MS = 3 * EXPIRY_SECONDS * 1000 + 15_000;
const START_DEADLINE_MS = 20_000;
const RELAY_SECRET = 'relay-shared-secret-failover-0123456789';
const PUBLISH_SECRET = 'publish-token-secret-failover-0123456789abcdef';
const USER_SECRET = 'user-token-secret-failover-0123456789abcdefgh';

const RELAY_ENV = {
  RELAY_SHARED_SECRET: RELAY_SECRET,
  PUBLISH_TOKEN_SECRET: PUBLISH_SECRET,
  PUBLISH_AUTH: 'token',
  HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS),
  RELAY_EXPIRY_SECONDS: String(EXPIRY_SECONDS),
  MAX_STREAMS: '2',
  // Transcode, so the killed relay has an FFmpeg per stream that must not outlive it (copy runs none).
  CLEAN_PROFILE: 'transcode',
};

describe('relay failover', () => {
  let redis: RedisServer;
  let cloud: CloudHandle;
  const relays = new Map<string, NodeProcess & { hlsBase: string }>();
  const sims: GlassesSim[] = [];
  const clients: ManagedStreamClient[] = [];
  // Relays run in their own process groups: if this process dies first, they go with it.
  const killAll = (): void => {
    for (const r of relays.values()) killGroup(r.pid, 'SIGKILL');
  };

  before(async () => {
    process.once('exit', killAll);
    redis = await startRedisServer();
    const config = loadConfig({
      CLOUD_HOST: '127.0.0.1',
      CLOUD_PORT: '0',
      REDIS_URL: redis.url,
      PUBLISH_AUTH: 'token',
      PLAYBACK_AUTH: 'off', // its relays run without (LOOPBACK_RELAY_ENV); /watch is checked open here
      HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS),
      RELAY_EXPIRY_SECONDS: String(EXPIRY_SECONDS),
      KEEPALIVE_SECONDS: '1',
      ACK_TIMEOUT_SECONDS: '1',
    });
    cloud = await startCloud(config, silentLogger(), {
      relaySecret: RELAY_SECRET,
      publishTokenSecret: PUBLISH_SECRET,
      userTokenSecret: USER_SECRET,
    });
    const cloudUrl = `http://127.0.0.1:${cloud.port}`;
    const spawned = ['relay-a', 'relay-b', 'relay-c'].map((id) => spawnRelay(id, cloudUrl, RELAY_ENV));
    for (const r of spawned) relays.set(r.id, { ...r, hlsBase: '' });
    await Promise.all(
      spawned.map(async (r) => {
        await r.waitLine((l) => l.msg === 'registered with the cloud', START_DEADLINE_MS);
        // The register call was answered before that line: the store has the relay now.
        const live = await cloud.store.liveRelays(Date.now());
        const record = live.find((x) => x.relayId === r.id);
        assert.ok(record, `${r.id} is live in the cloud`);
        relays.get(r.id)!.hlsBase = record.hlsUrl;
      }),
    );
    const live = await cloud.store.liveRelays(Date.now());
    assert.deepEqual(live.map((r) => r.relayId).sort(), ['relay-a', 'relay-b', 'relay-c']);
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const s of sims) await s.close();
    for (const r of relays.values()) killGroup(r.pid, 'SIGTERM');
    await Promise.all(
      [...relays.values()].map(async (r) => {
        const timer = setTimeout(() => killGroup(r.pid, 'SIGKILL'), 5_000);
        await r.exited;
        clearTimeout(timer);
      }),
    );
    process.off('exit', killAll);
    await cloud?.close();
    await redis?.close();
  });

  const glasses = async (userId: string): Promise<GlassesSim> => {
    const sim = new GlassesSim({
      cloudUrl: `ws://127.0.0.1:${cloud.port}`,
      userId,
      token: await signUserToken(USER_SECRET, userId),
      log: silentLogger(),
    });
    sims.push(sim);
    await sim.connect();
    return sim;
  };

  const app = async (userId: string, packageName: string): Promise<ManagedStreamClient> => {
    const client = new ManagedStreamClient({
      cloudUrl: `http://127.0.0.1:${cloud.port}`,
      userId,
      packageName,
      token: await signUserToken(USER_SECRET, userId),
      startTimeoutMs: START_DEADLINE_MS,
    });
    clients.push(client);
    return client;
  };

  const relayOf = (hlsUrl: string): string | undefined =>
    [...relays.values()].find((r) => hlsUrl.startsWith(`${r.hlsBase}/hls/`))?.id;

  const playlist = async (url: string): Promise<string> => {
    const res = await fetch(url);
    assert.equal(res.status, 200, `GET ${url}`);
    return res.text();
  };

  it('moves the streams of a SIGKILLed relay to another relay within 3 × the expiry', async (t) => {
    // Stream 1: two apps watch alice's glasses; it goes to the least-loaded relay (CPU breaks the tie).
    await glasses('alice@user.com');
    const alice1 = await app('alice@user.com', 'com.example.one');
    const alice2 = await app('alice@user.com', 'com.example.two');
    const heard1 = watchStatuses(alice1);
    const heard2 = watchStatuses(alice2);
    const first = await alice1.startManagedStream();
    const joined = await alice2.startManagedStream();
    assert.deepEqual(joined, first, 'the second app joins the same stream');
    const victimId = relayOf(first.hlsUrl);
    assert.ok(victimId, `stream 1 on one of the relays: ${first.hlsUrl}`);

    // Stream 2: bob's glasses on another relay (the first already carries one of its two).
    await glasses('bob@user.com');
    const bob = await app('bob@user.com', 'com.example.bob');
    const heardBob = watchStatuses(bob);
    const bystander = await bob.startManagedStream();
    const bobRelay = relayOf(bystander.hlsUrl);
    assert.ok(bobRelay && bobRelay !== victimId, `stream 2 on another relay: ${bystander.hlsUrl}`);

    const victim = relays.get(victimId)!;
    const victimFfmpeg = ffmpegChildren(victim.pid);
    assert.ok(victimFfmpeg.length >= 1, `${victimId} runs an FFmpeg for stream 1`);

    // Relay death: the whole process group, no goodbye to the cloud.
    const before1 = heard1.seen.length;
    const before2 = heard2.seen.length;
    const beforeBob = heardBob.seen.length;
    const killedAt = Date.now();
    const movedAfterKill =
      (from: number) =>
      (s: ManagedStreamStatus, seen: ManagedStreamStatus[]): boolean =>
        s.status === 'active' &&
        s.hlsUrl !== undefined &&
        s.hlsUrl !== first.hlsUrl &&
        seen.slice(from).some((x) => x.status === 'reconnecting');
    const moved = Promise.all([
      heard1.waitFor(movedAfterKill(before1), FAILOVER_DEADLINE_MS),
      heard2.waitFor(movedAfterKill(before2), FAILOVER_DEADLINE_MS),
    ]);
    killGroup(victim.pid, 'SIGKILL');
    await victim.exited;
    assert.equal(groupExists(victim.pid), false, `${victimId}'s process group is gone`);

    const [moved1, moved2] = await moved;
    const failoverMs = Date.now() - killedAt;
    t.diagnostic(`kill → active on the new relay: ${failoverMs} ms`);
    assert.ok(failoverMs <= FAILOVER_DEADLINE_MS);
    const newUrl = moved1.hlsUrl!;
    assert.equal(moved2.hlsUrl, newUrl, 'both apps hear the same new URL');
    const newRelay = relayOf(newUrl);
    assert.ok(newRelay && newRelay !== victimId, `moved to another live relay: ${newUrl}`);
    t.diagnostic(`stream 1: ${victimId} → ${newRelay}; stream 2 stays on ${bobRelay}`);
    for (const heard of [heard1.seen.slice(before1), heard2.seen.slice(before2)]) {
      const statuses = heard.map((s) => s.status);
      t.diagnostic(`an app heard: ${statuses.join(' → ')}`);
      const reconnecting = statuses.indexOf('reconnecting');
      assert.ok(reconnecting >= 0 && reconnecting < statuses.lastIndexOf('active'), statuses.join(' → '));
      assert.ok(!statuses.includes('stopped') && !statuses.includes('error'), statuses.join(' → '));
      // `active` only with a playable URL: never the dead relay's again.
      for (const s of heard) if (s.status === 'active') assert.equal(s.hlsUrl, newUrl, statuses.join(' → '));
    }

    // The new URL plays, and the shareable URL follows the stream.
    assert.match(await playlist(newUrl), /#EXTINF/);
    const watch = await fetch(`http://127.0.0.1:${cloud.port}/watch/${first.streamId}/index.m3u8`, {
      redirect: 'manual',
    });
    assert.equal(watch.status, 302);
    assert.equal(watch.headers.get('location'), newUrl);
    const live = (await cloud.store.liveRelays(Date.now())).map((r) => r.relayId).sort();
    assert.ok(!live.includes(victimId), `${victimId} no longer live: ${live.join(', ')}`);
    assert.equal(await cloud.store.relayOf(`alice@user.com/${first.streamId}`, Date.now()), newRelay);

    // The other stream was not disturbed.
    assert.deepEqual(
      heardBob.seen.slice(beforeBob).map((s) => s.status),
      [],
      'the stream on a live relay hears nothing',
    );
    assert.deepEqual(bob.getManagedStreamUrls(), bystander);
    assert.match(await playlist(bystander.hlsUrl), /#EXTINF/);

    // No FFmpeg of the killed relay is left: with its parent gone, stdin closes and it exits by itself.
    // Not our children, so there is no exit event to await: poll /proc with a deadline.
    const deadline = Date.now() + 5_000;
    while (victimFfmpeg.some((pid) => !ffmpegGone(pid)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      victimFfmpeg.filter((pid) => !ffmpegGone(pid)),
      [],
      `${victimId}'s FFmpeg processes are gone`,
    );
    for (const pid of victimFfmpeg) assert.equal(groupExists(pid), false, `FFmpeg group ${pid} is gone`);
  });
});
