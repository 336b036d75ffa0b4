import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { PublishInfo } from '../../../src/contracts/publish.ts';
import { buildOrigin } from '../../../src/hls/origin.ts';
import { ChildReaper } from '../../../src/pipeline/child-reaper.ts';
import { buildControlApi } from '../../../src/relay/control-api.ts';
import { ViewerTracker } from '../../../src/relay/viewers.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { SrtSource } from '../../../src/srt/source.ts';
import { IngestStats } from '../../../src/stream/ingest-stats.ts';
import { StreamRegistry } from '../../../src/stream/registry.ts';

const TOKEN = 'control-token-for-tests';

function build(options: { token?: string; ready?: () => boolean; kick?: (key: string) => boolean } = {}) {
  const config = loadConfig({});
  const reaper = new ChildReaper();
  const kicked: string[] = [];
  const kick = (key: string): boolean => {
    kicked.push(key);
    return options.kick?.(key) ?? false;
  };
  const streams = new StreamRegistry({ hls: config.hls, stream: config.stream, log: silentLogger(), reaper });
  const app = buildControlApi({
    kick,
    streams,
    token: 'token' in options ? options.token : TOKEN,
    ready: options.ready ?? (() => true),
    relayInfo: () => ({ relayId: 'relay-1', maxStreams: 20 }),
  });
  const close = async (): Promise<void> => {
    await app.close();
    reaper.close();
  };
  return { app, streams, kicked, close };
}

const auth = { authorization: `Bearer ${TOKEN}` };

test('health answers without a token; ready follows the hook', async (t) => {
  let ready = true;
  const { app, close } = build({ ready: () => ready });
  t.after(close);
  const health = await app.inject({ method: 'GET', url: '/health' });
  assert.equal(health.statusCode, 200);
  assert.deepEqual(health.json(), { status: 'ok' });
  assert.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200);
  ready = false;
  const notReady = await app.inject({ method: 'GET', url: '/ready' });
  assert.equal(notReady.statusCode, 503);
});

test('operator routes: 401 without or with a wrong token, 200 with it', async (t) => {
  const { app, close } = build();
  t.after(close);
  for (const headers of [
    {},
    { authorization: 'Bearer wrong' },
    { authorization: TOKEN },
    { authorization: 'Bearer ' },
  ]) {
    for (const [method, url] of [
      ['GET', '/api/streams'],
      ['GET', '/api/relay'],
      ['POST', '/api/streams/u/s/kick'],
    ] as const) {
      const res = await app.inject({ method, url, headers });
      assert.equal(res.statusCode, 401, `${method} ${url} ${JSON.stringify(headers)}`);
      assert.equal(res.json().code, 'CONTROL_API_UNAUTHORIZED');
    }
  }
  const list = await app.inject({ method: 'GET', url: '/api/streams', headers: auth });
  assert.equal(list.statusCode, 200);
  assert.deepEqual(list.json(), { streams: [] });
  const relay = await app.inject({ method: 'GET', url: '/api/relay', headers: auth });
  assert.equal(relay.statusCode, 200);
  assert.deepEqual(relay.json(), { relayId: 'relay-1', maxStreams: 20 });
});

test('kick: 404 for no live publish, 200 after kicking live/{userId}/{streamId}, 400 for a bad name', async (t) => {
  const { app, kicked, close } = build({ kick: (key) => key === 'live/user@example.com/cam_1' });
  t.after(close);
  const unknown = await app.inject({ method: 'POST', url: '/api/streams/nobody/s1/kick', headers: auth });
  assert.equal(unknown.statusCode, 404);
  assert.equal(unknown.json().code, 'STREAM_NOT_FOUND');
  const ok = await app.inject({
    method: 'POST',
    url: '/api/streams/user@example.com/cam_1/kick',
    headers: auth,
  });
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(ok.json(), { kicked: true, key: 'live/user@example.com/cam_1' });
  assert.deepEqual(kicked, ['live/nobody/s1', 'live/user@example.com/cam_1']);
  const bad = await app.inject({ method: 'POST', url: '/api/streams/..evil/s1/kick', headers: auth });
  assert.equal(bad.statusCode, 400);
  const badStream = await app.inject({ method: 'POST', url: '/api/streams/u/s.1/kick', headers: auth });
  assert.equal(badStream.statusCode, 400);
  assert.equal(kicked.length, 2);
});

test('a real RtmpServer with nothing live answers 404 to a kick', async (t) => {
  const { app, close } = build();
  t.after(close);
  const res = await app.inject({ method: 'POST', url: '/api/streams/u/s/kick', headers: auth });
  assert.equal(res.statusCode, 404);
});

test('without CONTROL_API_TOKEN the operator routes answer 503; probes still work', async (t) => {
  const { app, close } = build({ token: undefined });
  t.after(close);
  const res = await app.inject({ method: 'GET', url: '/api/streams', headers: auth });
  assert.equal(res.statusCode, 503);
  assert.equal(res.json().error, 'control API token not configured');
  assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200);
});

test('the API reads the registry on demand and never listens to it (nothing to release)', async () => {
  const { streams, close } = build();
  assert.equal(streams.listenerCount('created'), 0);
  await close();
});

test('HLS origin /ready: ready by default, 503 at capacity, /health unchanged', async (t) => {
  const plain = buildOrigin({ lookup: () => undefined, corsOrigins: '*' });
  let full = false;
  const gated = buildOrigin({ lookup: () => undefined, corsOrigins: '*', ready: () => !full });
  t.after(() => Promise.all([plain.close(), gated.close()]));
  assert.equal((await plain.inject({ method: 'GET', url: '/ready' })).statusCode, 200);
  assert.equal((await gated.inject({ method: 'GET', url: '/ready' })).statusCode, 200);
  full = true;
  assert.equal((await gated.inject({ method: 'GET', url: '/ready' })).statusCode, 503);
  const health = await gated.inject({ method: 'GET', url: '/health' });
  assert.equal(health.statusCode, 200);
  assert.deepEqual(health.json(), { status: 'ok' });
});

test('GET /api/streams lists each stream with its stats, ingest figures, viewers and uptime', async (t) => {
  let clock = 1_000_000;
  const registry = new EventEmitter() as EventEmitter & { streams: unknown[] };
  // 540x960 H.264 + AAC at 10 fps, a keyframe every 2 s, 1000-byte frames: 80 kbit/s of video.
  const ingest = new IngestStats();
  ingest.start({
    metadata: { width: 540, height: 960 },
    video: { kind: 'video', codec: 'h264', record: Buffer.alloc(7), width: 0, height: 0 },
    audio: {
      kind: 'audio',
      codec: 'aac',
      config: Buffer.from([0x12, 0x10]),
      sampleRate: 44100,
      channels: 2,
      frameSamples: 1024,
    },
    hasAudio: true,
    hasVideo: true,
  });
  for (let i = 0; i <= 40; i++) {
    const keyframe = i % 20 === 0;
    ingest.au({
      track: 'video',
      dts: i * 100,
      pts: i * 100,
      data: Buffer.alloc(1000, keyframe ? 0x17 : 0x27),
      keyframe,
    });
  }
  const viewers = new ViewerTracker({ windowMs: 10_000 });
  const stream = {
    createdAt: clock,
    ingest,
    key: 'live/u1/s1',
    userId: 'u1',
    streamId: 's1',
    state: 'publishing',
    profile: 'auto',
    pipelineProfile: 'copy',
    decision: 'GOP fits',
    packager: { stats: { segments: 4, breaches: 1, discontinuities: 0 } },
    supervisor: { stats: { starts: 2, restarts: 1, crashes: 1, stalls: 0 } },
    repair: { counts: { negative: 0, duplicate: 3, backward: 0, jumpForward: 0, wrap: 0, avSkew: 0 } },
  };
  registry.streams = [];
  const app = buildControlApi({
    kick: () => false,
    streams: registry as unknown as StreamRegistry,
    token: TOKEN,
    ready: () => true,
    relayInfo: () => ({}),
    viewers,
    now: () => clock,
  });
  t.after(() => app.close());
  registry.streams.push(stream);
  clock += 42_000;
  viewers.seen('live/u1/s1', 'a', clock - 20_000); // left the window
  viewers.seen('live/u1/s1', 'b', clock - 1000);
  viewers.seen('live/u1/s1', 'c', clock);
  viewers.seen('live/u1/s1', 'c', clock);
  const res = await app.inject({ method: 'GET', url: '/api/streams', headers: auth });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json(), {
    streams: [
      {
        key: 'live/u1/s1',
        userId: 'u1',
        streamId: 's1',
        state: 'publishing',
        profile: 'auto',
        pipelineProfile: 'copy',
        decision: 'GOP fits',
        segments: 4,
        breaches: 1,
        discontinuities: 0,
        ffmpeg: { starts: 2, restarts: 1, crashes: 1, stalls: 0 },
        repairs: { negative: 0, duplicate: 3, backward: 0, jumpForward: 0, wrap: 0, avSkew: 0 },
        ingest: {
          profile: 'auto',
          pipelineProfile: 'copy',
          uptimeSeconds: 42,
          segments: 4,
          viewers: 2,
          videoCodec: 'h264',
          audioCodec: 'aac',
          width: 540,
          height: 960,
          fps: 10,
          keyframeIntervalSeconds: 2,
          bitrateKbps: 80,
        },
        transport: null,
        uptimeSeconds: 42,
      },
    ],
  });
});

test("GET /api/streams: an SRT publish's transport counters (RTT, loss, retransmissions, drops, buffer)", async (t) => {
  const registry = new EventEmitter() as EventEmitter & { streams: unknown[] };
  const connection = {
    rttMs: 12.5,
    rttVarMs: 3,
    latencyMs: 120,
    packetsReceived: 1000,
    bytesReceived: 1_316_000,
    packetsLost: 40,
    packetsRetransmitted: 38,
    packetsRecovered: 38,
    packetsDropped: 2,
    packetsBelated: 1,
    packetsOverflow: 0,
    packetsUndecryptable: 0,
    keyRefreshes: 0,
    acksSent: 50,
    naksSent: 9,
    receiveBufferPackets: 17,
    receiveBufferCapacity: 8192,
  };
  const info = { app: 'live', userId: 'u1', streamId: 's1', key: 'live/u1/s1', remoteAddress: '127.0.0.1' };
  const source = new SrtSource(info as unknown as PublishInfo, () => connection);
  const base = {
    createdAt: 0,
    ingest: new IngestStats(),
    state: 'publishing',
    profile: 'copy',
    pipelineProfile: 'copy',
    decision: '',
    packager: { stats: { segments: 0, breaches: 0, discontinuities: 0 } },
    supervisor: { stats: { starts: 0, restarts: 0, crashes: 0, stalls: 0 } },
    repair: { counts: { negative: 0, duplicate: 0, backward: 0, jumpForward: 0, wrap: 0, avSkew: 0 } },
  };
  registry.streams = [
    { ...base, key: 'live/u1/s1', userId: 'u1', streamId: 's1', source },
    { ...base, key: 'live/u1/s2', userId: 'u1', streamId: 's2', source: new EventEmitter() }, // RTMP: none
  ];
  const app = buildControlApi({
    kick: () => false,
    streams: registry as unknown as StreamRegistry,
    token: TOKEN,
    ready: () => true,
    relayInfo: () => ({}),
    now: () => 0,
  });
  t.after(() => app.close());
  const read = async () => {
    const res = await app.inject({ method: 'GET', url: '/api/streams', headers: auth });
    assert.equal(res.statusCode, 200);
    return (res.json() as { streams: { streamId: string; transport: unknown }[] }).streams;
  };
  let streams = await read();
  assert.deepEqual(streams[0]?.transport, {
    transport: 'srt',
    rttMs: 12.5,
    latencyMs: 120,
    packetsReceived: 1000,
    packetsLost: 40,
    packetsRetransmitted: 38,
    packetsDropped: 2,
    receiveBufferPackets: 17,
    receiveBufferCapacity: 8192,
  });
  assert.equal(streams[1]?.transport, null);
  // Read on demand: the next request sees the connection's newer counters.
  connection.packetsLost = 41;
  streams = await read();
  assert.equal((streams[0]?.transport as { packetsLost: number } | undefined)?.packetsLost, 41);
});
