/**
 * The cloud's doors with production identity (user tokens): the app and glasses WebSockets and the REST API
 * refuse no token, forged, expired and other users' tokens, and a refused call changes nothing; the app
 * WebSocket speaks the MentraOS names.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { type CloudHandle, startCloud } from '../../src/cloud/cloud.ts';
import { signUserToken } from '../../src/cloud/user-tokens.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { silentLogger } from '../../src/shared/logger.ts';

const SECRET = 'user-and-publish-token-secret-0123456789abcdef';
const RELAY_SECRET = 'relay-shared-secret-0123456789';

function upgrade(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; ws?: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    ws.once('error', () => resolve({ status: 0 }));
  });
}

describe('cloud identity', () => {
  let cloud: CloudHandle;
  let base: string;
  let ws: string;

  before(async () => {
    const config = loadConfig({
      CLOUD_HOST: '127.0.0.1',
      CLOUD_PORT: '0',
      HEARTBEAT_SECONDS: '1',
      SSE_KEEPALIVE_SECONDS: '0.2',
    });
    cloud = await startCloud(config, silentLogger(), {
      relaySecret: RELAY_SECRET,
      publishTokenSecret: SECRET,
      userTokenSecret: SECRET,
    });
    base = `http://127.0.0.1:${cloud.port}`;
    ws = `ws://127.0.0.1:${cloud.port}`;
    const res = await fetch(`${base}/api/relay/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${RELAY_SECRET}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        relayId: 'r1',
        rtmpUrl: 'rtmp://127.0.0.1:1935',
        hlsUrl: 'http://127.0.0.1:8888',
        maxStreams: 5,
      }),
    });
    assert.equal(res.status, 200);
  });

  after(() => cloud.close());

  const forged = async (): Promise<string> => {
    const other = new TextEncoder().encode('another-secret-another-secret-another');
    return new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('a@b.com')
      .setAudience('user')
      .setExpirationTime('1h')
      .sign(other);
  };
  const expired = (): Promise<string> =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('a@b.com')
      .setAudience('user')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(new TextEncoder().encode(SECRET));

  it('refuses WebSocket upgrades without a valid token, and unknown paths', async () => {
    for (const path of ['/app-ws', '/glasses-ws']) {
      assert.equal((await upgrade(`${ws}${path}`)).status, 401, `${path} without a token`);
      assert.equal((await upgrade(`${ws}${path}?userId=a@b.com`)).status, 401, `${path} with a plain userId`);
      assert.equal(
        (await upgrade(`${ws}${path}`, { authorization: `Bearer ${await forged()}` })).status,
        401,
        `${path} forged`,
      );
      assert.equal((await upgrade(`${ws}${path}?token=${await expired()}`)).status, 401, `${path} expired`);
    }
    assert.equal((await upgrade(`${ws}/nowhere`)).status, 404);
  });

  it("refuses REST calls for another user's stream and changes nothing", async () => {
    const token = await signUserToken(SECRET, 'eve@x.com');
    const res = await fetch(`${base}/api/managed-streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ userId: 'a@b.com', packageName: 'com.evil' }),
    });
    assert.equal(res.status, 401);
    assert.equal(cloud.streams.byUser('a@b.com'), undefined);
  });

  const relayCall = (path: string, body: object): Promise<Response> =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${RELAY_SECRET}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it("answers a stream's status and events only to its user's token", async () => {
    const token = await signUserToken(SECRET, 'st@x.com');
    const created = await fetch(`${base}/api/managed-streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ userId: 'st@x.com', packageName: 'com.app' }),
    });
    assert.equal(created.status, 200);
    const { streamId } = (await created.json()) as { streamId: string };
    const other = await signUserToken(SECRET, 'eve@x.com');
    for (const path of [`/api/managed-streams/${streamId}`, `/api/managed-streams/${streamId}/events`]) {
      for (const headers of [
        {} as Record<string, string>,
        { authorization: `Bearer ${other}` },
        { authorization: `Bearer ${await forged()}` },
      ]) {
        const res = await fetch(`${base}${path}`, { headers });
        assert.equal(res.status, 404, `${path} ${JSON.stringify(Object.keys(headers))}`);
        await res.arrayBuffer();
      }
    }
    const status = await fetch(`${base}/api/managed-streams/${streamId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(status.status, 200);
    assert.equal(((await status.json()) as { streamId: string }).streamId, streamId);
    const events = await fetch(`${base}/api/managed-streams/${streamId}/events?token=${token}`);
    assert.equal(events.status, 200);
    // The current status first, then comment keep-alives while nothing happens (proxies cut silence).
    const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes(': keep-alive')) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the event stream stayed open');
      text += value;
    }
    assert.match(text, /^data: \{"type":"managed_stream_status","status":"initializing"/);
    await reader.cancel();
  });

  it('refuses hls-ready and stream-ended from a relay that does not hold the stream, before changing anything', async () => {
    const register = await relayCall('/api/relay/register', {
      relayId: 'r2',
      rtmpUrl: 'rtmp://127.0.0.2:1935',
      hlsUrl: 'http://127.0.0.2:8888',
      maxStreams: 0,
    });
    assert.equal(register.status, 200);
    const token = await signUserToken(SECRET, 'hole@x.com');
    const created = await fetch(`${base}/api/managed-streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ userId: 'hole@x.com', packageName: 'com.app' }),
    });
    const { streamId } = (await created.json()) as { streamId: string };
    const stream = { userId: 'hole@x.com', streamId };
    assert.equal(cloud.streams.get(streamId)?.state.relayId, 'r1');
    const own = `http://127.0.0.1:8888/hls/hole-x.com/${streamId}/index.m3u8`;
    const refusals: [object, string][] = [
      [{ ...stream, hlsUrl: 'http://evil.example/x.m3u8' }, 'no relayId'],
      [{ ...stream, hlsUrl: own, relayId: 'r2' }, 'another relay'],
      [
        { ...stream, hlsUrl: 'http://evil.example/hls/hole-x.com/x/index.m3u8', relayId: 'r1' },
        'a foreign URL',
      ],
      [
        {
          ...stream,
          hlsUrl: `http://127.0.0.1:8888.evil.example/hls/hole-x.com/${streamId}/index.m3u8`,
          relayId: 'r1',
        },
        'a look-alike host',
      ],
    ];
    for (const [body, why] of refusals) {
      const res = await relayCall('/api/rtmp-relay/hls-ready', body);
      assert.ok(res.status === 400 || res.status === 403, `${why}: ${res.status}`);
    }
    const ended = await relayCall('/api/relay/stream-ended', { ...stream, relayId: 'r2' });
    assert.equal(ended.status, 403);
    assert.equal(await cloud.store.relayOf(`hole@x.com/${streamId}`), 'r1', 'the assignment is kept');
    assert.equal(cloud.streams.get(streamId)?.state.reported.status, 'initializing', 'no status changed');
    const ready = await relayCall('/api/rtmp-relay/hls-ready', { ...stream, hlsUrl: own, relayId: 'r1' });
    assert.equal(ready.status, 200, 'the holder with its own URL is heard');
  });

  it('speaks the MentraOS names on the app WebSocket', async () => {
    const token = await signUserToken(SECRET, 'a@b.com');
    const { status, ws: socket } = await upgrade(`${ws}/app-ws`, { authorization: `Bearer ${token}` });
    assert.equal(status, 101);
    const next = (): Promise<Record<string, unknown>> =>
      new Promise((resolve) =>
        socket!.once('message', (d) => resolve(JSON.parse(String(d)) as Record<string, unknown>)),
      );
    let reply = next();
    socket!.send(JSON.stringify({ type: 'managed_stream_request', packageName: 'com.example.app' }));
    const first = await reply;
    assert.equal(first.type, 'managed_stream_status');
    assert.equal(first.status, 'initializing');
    assert.match(String(first.streamId), /^[A-Za-z0-9]{8}$/);
    assert.equal(first.hlsUrl, undefined, 'no URL before HLS exists');
    reply = next();
    socket!.send(JSON.stringify({ type: 'stream_status_check' }));
    assert.equal((await reply).streamId, first.streamId);
    reply = next();
    socket!.send('{"type":"nonsense"}');
    assert.equal((await reply).status, 'error');
    socket!.close();
  });
});
