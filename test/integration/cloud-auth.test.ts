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
    const config = loadConfig({ CLOUD_HOST: '127.0.0.1', CLOUD_PORT: '0', HEARTBEAT_SECONDS: '1' });
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
