/**
 * The Live Input API end to end, against real peers: a cloud and a relay (one process, `dev` composition,
 * publish tokens on) on a real redis-server, real FFmpeg publishing and a real RTMP receiver. Create a live
 * input → FFmpeg publishes to `rtmps.url + rtmps.streamKey` → GET shows it connected with its codecs and
 * resolution → its HLS plays (playlist, init and media segments fetched) → an output is added → the receiver
 * gets the stream (video from a keyframe) and the output reports `active` → the output is disabled → the
 * receiver's publish ends → the input is deleted → the relay ends the stream (FFmpeg is cut off) and nothing
 * about the input is left in Redis. And an input published over SRT with its `srt {url, streamId,
 * passphrase}` (encrypted, FFmpeg's libsrt) shows connected over SRT.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { type DevSystem, startDevSystem } from '../../src/cli/compose.ts';
import { LiveInput, Output } from '../../src/cloud/live-inputs/schemas.ts';
import { FlvTagType, type MediaTag } from '../../src/media/flv-tag.ts';
import type { Publish } from '../../src/rtmp/publish.ts';
import { RtmpServer } from '../../src/rtmp/server.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { onceEvent } from '../../src/shared/typed-emitter.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { freePort, LOOPBACK_CLOUD_ENV, LOOPBACK_RELAY_ENV } from '../helpers/ports.ts';
import { startTool, type ToolRun } from '../helpers/process.ts';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.ts';
import { eventually } from '../helpers/relay-process.ts';

const TOKEN = 'live-input-e2e-api-token-0123456789';
const ACCOUNT = '023e105f4ecef8ad9ca31a8372d0c353';

interface Receiver {
  server: RtmpServer;
  port: number;
  publishes: { publish: Publish; tags: MediaTag[] }[];
}

async function startReceiver(): Promise<Receiver> {
  const server = new RtmpServer({ log: silentLogger() });
  const port = await freePort();
  const r: Receiver = { server, port, publishes: [] };
  server.on('publish', (publish) => {
    const entry = { publish, tags: [] as MediaTag[] };
    r.publishes.push(entry);
    publish.on('tag', (tag) => entry.tags.push(tag));
  });
  await server.listen(port, '127.0.0.1');
  return r;
}

/** Every key, field, member and value in Redis, as text (to look for what must be gone). */
async function redisDump(redis: Redis): Promise<string> {
  const out: string[] = [];
  for (const key of await redis.keys('*')) {
    out.push(key);
    const type = await redis.type(key);
    if (type === 'string') out.push((await redis.get(key)) ?? '');
    else if (type === 'hash') out.push(JSON.stringify(await redis.hgetall(key)));
    else if (type === 'set') out.push(...(await redis.smembers(key)));
    else if (type === 'zset') out.push(...(await redis.zrange(key, 0, -1)));
    else if (type === 'list') out.push(...(await redis.lrange(key, 0, -1)));
  }
  return out.join('\n');
}

describe('Live Input API end to end (FFmpeg, relay, Redis, an RTMP receiver)', () => {
  let redisServer: RedisServer;
  let redis: Redis;
  let system: DevSystem;
  let receiver: Receiver;
  let ffmpeg: ToolRun | undefined;
  let api: string;
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

  before(async () => {
    redisServer = await startRedisServer();
    redis = new Redis(redisServer.url);
    const config = loadConfig(
      {
        ...LOOPBACK_RELAY_ENV,
        ...LOOPBACK_CLOUD_ENV,
        RELAY_PUBLIC_URL: '127.0.0.1',
        RELAY_ID: 'live-input-relay',
        REDIS_URL: redisServer.url,
        HEARTBEAT_SECONDS: '0.5',
        RELAY_EXPIRY_SECONDS: '5',
        RECONNECT_WINDOW_SECONDS: '3',
        CLEAN_PROFILE: 'copy',
        CLOUD_API_TOKEN: TOKEN,
        CLOUD_ACCOUNT_ID: ACCOUNT,
        SRT_PASSPHRASE_SECRET: 'live-input-e2e-srt-passphrase-secret',
      },
      { publishAuth: 'token' },
    );
    system = await startDevSystem(config, silentLogger());
    api = `http://127.0.0.1:${system.cloud.port}/client/v4/accounts/${ACCOUNT}/stream/live_inputs`;
    receiver = await startReceiver();
    await eventually('relay registered', () => system.agent.registered, 30_000);
  });

  after(async () => {
    ffmpeg?.kill();
    await ffmpeg?.done.catch(() => {});
    await system?.close();
    await receiver?.server.close();
    redis?.disconnect();
    await redisServer?.close();
  });

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: auth,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.json()) as { result: unknown; success: boolean; errors: unknown[] };
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(json.success, true);
    return json.result;
  };
  const getInput = async (uid: string) => LiveInput.parse(await call('GET', `/${uid}`));

  it('creates, publishes, plays, re-streams, disables the output, deletes; Redis ends empty of it', async () => {
    const input = LiveInput.parse(
      await call('POST', '', { meta: { name: 'e2e', userId: 'wearer@example.com' } }),
    );
    assert.ok(input.rtmps, 'placed on the relay: rtmps credentials');
    assert.ok((await redisDump(redis)).includes(input.uid), 'the input is in Redis');

    // FFmpeg publishes to url + streamKey, as a Cloudflare client would.
    const flv = await fixturePath('steady-30fps.flv');
    // biome-ignore format: one flag and its value a line
    ffmpeg = startTool('ffmpeg', [
      '-hide_banner', '-loglevel', 'error', '-nostdin',
      '-re', '-stream_loop', '-1', '-i', flv,
      '-c', 'copy', '-f', 'flv', `${input.rtmps.url}${input.rtmps.streamKey}`,
    ], { timeoutMs: 180_000 });
    const ffmpegDone = ffmpeg.done;

    // GET shows it connected, with codecs and resolution from the relay's heartbeats.
    const connected = await eventually(
      'connected with codecs',
      async () => {
        const x = await getInput(input.uid);
        return x.status === 'connected' && x.connection?.videoCodec ? x : undefined;
      },
      60_000,
    );
    assert.equal(connected.connection?.state, 'connected');
    assert.equal(connected.connection?.relayId, 'live-input-relay');
    assert.match(connected.connection?.videoCodec ?? '', /avc|h264/i);
    assert.equal(connected.connection?.protocol, 'rtmp');
    assert.ok((connected.connection?.width ?? 0) > 0 && (connected.connection?.height ?? 0) > 0);

    // HLS plays: the playlist lists segments, and its init and media segments are served.
    const hlsUrl = connected.hls?.url ?? '';
    assert.match(hlsUrl, /\/hls\/wearer-example\.com\/[0-9a-f]{32}\/index\.m3u8$/);
    const playlist = await eventually(
      'playlist with two segments',
      async () => {
        const res = await fetch(hlsUrl);
        const text = res.ok ? await res.text() : '';
        return (text.match(/#EXTINF/g) ?? []).length >= 2 ? text : undefined;
      },
      60_000,
    );
    const uris = [
      /#EXT-X-MAP:URI="([^"]+)"/.exec(playlist)?.[1],
      ...playlist.split('\n').filter((l) => l && !l.startsWith('#')),
    ].filter((u): u is string => Boolean(u));
    assert.ok(uris.length >= 3, playlist);
    for (const uri of uris.slice(0, 3)) {
      const res = await fetch(new URL(uri, hlsUrl));
      assert.equal(res.status, 200, uri);
      assert.ok((await res.arrayBuffer()).byteLength > 0, uri);
    }

    // An output: the relay pushes to the receiver (from a keyframe), and the output reports active.
    const port = receiver.port;
    const output = Output.parse(
      await call('POST', `/${input.uid}/outputs`, {
        url: `rtmp://127.0.0.1:${port}/live/dest`,
        streamKey: 'restream-key-1',
      }),
    );
    assert.equal(output.streamKey, '****ey-1');
    if (receiver.publishes.length === 0) await onceEvent(receiver.server, 'publish');
    const pushed = receiver.publishes[0]!;
    assert.equal(pushed.publish.info.key, 'live/dest/restream-key-1');
    await eventually(
      'video at the receiver',
      () => pushed.tags.some((t) => t.type === FlvTagType.Video && !t.isConfig),
      30_000,
    );
    const firstVideo = pushed.tags.find((t) => t.type === FlvTagType.Video && !t.isConfig);
    assert.ok(firstVideo?.keyframe, 'the receiver starts at a keyframe');
    await eventually(
      'output active',
      async () => {
        const list = (await call('GET', `/${input.uid}/outputs`)) as unknown[];
        return Output.parse(list[0]).status?.state === 'active';
      },
      30_000,
    );

    // Disabled: the relay stops pushing (at its next heartbeat's destinations round).
    const ended = onceEvent(pushed.publish, 'end');
    const disabled = Output.parse(
      await call('PUT', `/${input.uid}/outputs/${output.uid}`, { enabled: false }),
    );
    assert.equal(disabled.enabled, false);
    await ended;

    // Deleted: the relay ends the stream (FFmpeg is cut off), and Redis forgets the input.
    await call('DELETE', `/${input.uid}`);
    const res = await fetch(`${api}/${input.uid}`, { headers: auth });
    assert.equal(res.status, 404);
    const exit = await ffmpegDone;
    assert.notEqual(exit.code, null, 'FFmpeg exited on its own (the relay closed the publish)');
    await eventually(
      'nothing of the input left in Redis',
      async () => !(await redisDump(redis)).includes(input.uid),
      30_000,
    );
  });

  it('takes an encrypted SRT publish made from srt {url, streamId, passphrase}', async () => {
    const input = LiveInput.parse(await call('POST', '', { meta: { name: 'srt' } }));
    assert.ok(input.srt, 'the relay announced SRT: srt credentials');
    // As a client puts them in FFmpeg's srt:// URL: every value percent-encoded.
    const url = `${input.srt.url}?streamid=${encodeURIComponent(input.srt.streamId)}&passphrase=${encodeURIComponent(input.srt.passphrase)}`;
    const flv = await fixturePath('steady-30fps.flv');
    // biome-ignore format: one flag and its value a line
    const srt = startTool('ffmpeg', [
      '-hide_banner', '-loglevel', 'error', '-nostdin',
      '-re', '-stream_loop', '-1', '-i', flv,
      '-c', 'copy', '-f', 'mpegts', url,
    ], { timeoutMs: 120_000 });
    try {
      const connected = await eventually(
        'connected over SRT',
        async () => {
          const x = await getInput(input.uid);
          return x.status === 'connected' && x.connection?.protocol ? x : undefined;
        },
        60_000,
      );
      assert.equal(connected.connection?.protocol, 'srt');
    } finally {
      srt.kill();
      await srt.done.catch(() => {});
    }
    await call('DELETE', `/${input.uid}`);
  });
});
