import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildCloudApp } from '../../../src/cloud/app.ts';
import type { RelayRoutesStore } from '../../../src/cloud/relay-routes.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';

const SECRET = 'relay-shared-secret-for-tests-0123456789';

/** A recording fake with function fields (style rule 9): the store itself has its own suite. */
function fakeStore(): RelayRoutesStore & { calls: string[]; known: Set<string> } {
  const calls: string[] = [];
  const known = new Set<string>();
  return {
    calls,
    known,
    upsertRelay: async (r) => {
      calls.push(`upsert:${r.relayId}:${r.maxStreams}`);
      known.add(r.relayId);
    },
    heartbeat: async (id, report) => {
      calls.push(`heartbeat:${id}:${report.streams.length}`);
      return known.has(id);
    },
    removeRelay: async (id) => {
      calls.push(`remove:${id}`);
      known.delete(id);
    },
    release: async (key) => {
      calls.push(`release:${key}`);
    },
  };
}

const register = {
  relayId: 'relay-1',
  rtmpUrl: 'rtmp://10.0.0.5:1935',
  hlsUrl: 'http://10.0.0.5:8888',
  maxStreams: 20,
};

describe('cloud relay routes', () => {
  it('refuses calls without the shared secret or with a wrong one, and changes nothing', async () => {
    const store = fakeStore();
    const app = buildCloudApp({ store, relaySecret: SECRET });
    for (const authorization of [
      undefined,
      'Bearer nope',
      `Basic ${SECRET}`,
      `Bearer ${SECRET}x`,
      'Bearer ',
    ]) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/relay/register',
        payload: register,
        headers: authorization ? { authorization } : {},
      });
      assert.equal(res.statusCode, 401, String(authorization));
      assert.equal(res.json().code, 'RELAY_UNAUTHORIZED');
    }
    assert.deepEqual(store.calls, []);
    await app.close();
  });

  it('accepts the previous shared secret during a rotation, and only the two configured', async () => {
    const store = fakeStore();
    const previous = 'relay-shared-secret-previous-0123456789';
    const app = buildCloudApp({ store, relaySecret: SECRET, relaySecretPrevious: previous });
    for (const [secret, status] of [
      [SECRET, 200],
      [previous, 200],
      ['relay-shared-secret-unknown-0123456789', 401],
    ] as const) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/relay/register',
        payload: register,
        headers: { authorization: `Bearer ${secret}` },
      });
      assert.equal(res.statusCode, status, secret);
    }
    await app.close();
  });

  it('passes re-streaming statuses on, and refuses malformed ones', async () => {
    const store = fakeStore();
    const seen: unknown[] = [];
    const app = buildCloudApp({
      store,
      relaySecret: SECRET,
      events: { restreamStatus: (e) => seen.push(e) },
    });
    const headers = { authorization: `Bearer ${SECRET}` };
    const ok = {
      relayId: 'relay-1',
      userId: 'a@b.com',
      streamId: 's1',
      outputs: [{ url: 'rtmp://x/app/[redacted]', status: 'error', error: 'connection refused' }],
    };
    const res = await app.inject({ method: 'POST', url: '/api/relay/restream-status', payload: ok, headers });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(seen, [ok]);
    const bad = await app.inject({
      method: 'POST',
      url: '/api/relay/restream-status',
      payload: { ...ok, outputs: [{ url: 'x', status: 'exploded' }] },
      headers,
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(seen.length, 1);
    await app.close();
  });

  it('registers idempotently, heartbeats, and asks an unknown relay to register', async () => {
    const store = fakeStore();
    const app = buildCloudApp({ store, relaySecret: SECRET });
    const post = (url: string, payload: unknown) =>
      app.inject({
        method: 'POST',
        url,
        payload: payload as object,
        headers: { authorization: `Bearer ${SECRET}` },
      });
    assert.equal(
      (await post('/api/relay/heartbeat', { relayId: 'relay-1', streams: [], cpu: 0.1, draining: false }))
        .statusCode,
      404,
    );
    assert.equal((await post('/api/relay/register', register)).statusCode, 200);
    assert.equal((await post('/api/relay/register', register)).statusCode, 200);
    const hb = await post('/api/relay/heartbeat', {
      relayId: 'relay-1',
      streams: [
        { userId: 'a@b.com', streamId: 's1', state: 'publishing' },
        { userId: 'a@b.com', streamId: 's2', state: 'ended' },
      ],
      cpu: 0.2,
      draining: false,
    });
    assert.equal(hb.statusCode, 200);
    assert.equal(
      (await post('/api/relay/stream-ended', { relayId: 'relay-1', userId: 'a@b.com', streamId: 's1' }))
        .statusCode,
      200,
    );
    assert.equal((await post('/api/relay/deregister', { relayId: 'relay-1' })).statusCode, 200);
    assert.deepEqual(store.calls, [
      'heartbeat:relay-1:0',
      'upsert:relay-1:20',
      'upsert:relay-1:20',
      'heartbeat:relay-1:1',
      'release:a@b.com/s1',
      'remove:relay-1',
    ]);
    await app.close();
  });

  it('refuses bodies that break the contract with 400, naming the fields', async () => {
    const store = fakeStore();
    const app = buildCloudApp({ store, relaySecret: SECRET });
    const bad: [string, unknown][] = [
      ['/api/relay/register', { ...register, maxStreams: -1 }],
      ['/api/relay/register', { ...register, relayId: '../../etc' }],
      ['/api/relay/register', { ...register, rtmpUrl: 'not a url' }],
      ['/api/relay/heartbeat', { relayId: 'relay-1', streams: 'all', cpu: 0, draining: false }],
      ['/api/relay/stream-started', { relayId: 'relay-1', userId: '.bad', streamId: 's' }],
      ['/api/rtmp-relay/hls-ready', { userId: 'u', streamId: 's', hlsUrl: 'javascript:alert(1)' }],
      ['/api/relay/register', { ...register, hlsUrl: 'file:///etc/passwd' }],
    ];
    for (const [url, payload] of bad) {
      const res = await app.inject({
        method: 'POST',
        url,
        payload: payload as object,
        headers: { authorization: `Bearer ${SECRET}` },
      });
      assert.equal(res.statusCode, 400, `${url} ${JSON.stringify(payload)}`);
      assert.equal(res.json().code, 'RELAY_BAD_REQUEST');
    }
    assert.deepEqual(store.calls, []);
    await app.close();
  });

  it('passes hls-ready (the seed path) and stream events on, and serves destinations', async () => {
    const heard: string[] = [];
    const app = buildCloudApp({
      store: fakeStore(),
      relaySecret: SECRET,
      events: {
        hlsReady: (e) => heard.push(`ready:${e.userId}/${e.streamId}:${e.hlsUrl}:${e.dashUrl}`),
        streamStarted: (e) => heard.push(`started:${e.streamId}`),
        destinations: (u, s) => [{ url: `rtmp://yt/${u}/${s}`, name: 'yt' }],
      },
    });
    const headers = { authorization: `Bearer ${SECRET}` };
    await app.inject({
      method: 'POST',
      url: '/api/rtmp-relay/hls-ready',
      headers,
      payload: {
        userId: 'a@b.com',
        streamId: 's1',
        hlsUrl: 'http://r:8888/hls/a-b.com/s1/index.m3u8',
        relayId: 'r',
      },
    });
    await app.inject({
      method: 'POST',
      url: '/api/relay/stream-started',
      headers,
      payload: { relayId: 'r', userId: 'a@b.com', streamId: 's1' },
    });
    assert.deepEqual(heard, ['ready:a@b.com/s1:http://r:8888/hls/a-b.com/s1/index.m3u8:', 'started:s1']);
    const dest = await app.inject({ url: '/api/relay/destinations/a@b.com/s1', headers });
    assert.deepEqual(dest.json(), { destinations: [{ url: 'rtmp://yt/a@b.com/s1', name: 'yt' }] });
    assert.equal(
      (await app.inject({ url: '/api/relay/destinations/a@b.com/bad.id', headers })).statusCode,
      400,
    );
    assert.equal((await app.inject({ url: '/health' })).statusCode, 200);
    await app.close();
  });

  it('refuses hls-ready without the relayId that sends it', async () => {
    const heard: string[] = [];
    const app = buildCloudApp({
      store: fakeStore(),
      relaySecret: SECRET,
      events: { hlsReady: (e) => heard.push(e.hlsUrl) },
    });
    const res = await app.inject({
      method: 'POST',
      url: '/api/rtmp-relay/hls-ready',
      headers: { authorization: `Bearer ${SECRET}` },
      payload: { userId: 'a@b.com', streamId: 's1', hlsUrl: 'http://r:8888/hls/a-b.com/s1/index.m3u8' },
    });
    assert.equal(res.statusCode, 400);
    assert.deepEqual(heard, []);
    await app.close();
  });

  it("asks the guard before every stream event and changes nothing on a refusal (the store's release included)", async () => {
    const heard: string[] = [];
    const asked: string[] = [];
    const store = fakeStore();
    const app = buildCloudApp({
      store,
      relaySecret: SECRET,
      guard: async (e) => {
        asked.push(`${e.kind}:${e.relayId}:${e.urls.length}`);
        return e.relayId === 'evil' ? { code: 'RELAY_NOT_HOLDER', reason: 'not yours' } : null;
      },
      events: {
        hlsReady: (e) => heard.push(`ready:${e.relayId}`),
        streamStarted: (e) => heard.push(`started:${e.relayId}`),
        streamEnded: (e) => heard.push(`ended:${e.relayId}`),
      },
    });
    const post = (url: string, payload: object) =>
      app.inject({ method: 'POST', url, payload, headers: { authorization: `Bearer ${SECRET}` } });
    const stream = { userId: 'a@b.com', streamId: 's1' };
    const hls = { ...stream, hlsUrl: 'http://r:8888/hls/a-b.com/s1/index.m3u8' };
    for (const relayId of ['evil', 'good']) {
      const expected = relayId === 'evil' ? 403 : 200;
      const a = await post('/api/relay/stream-started', { ...stream, relayId });
      const b = await post('/api/rtmp-relay/hls-ready', { ...hls, relayId });
      const c = await post('/api/relay/stream-ended', { ...stream, relayId });
      assert.deepEqual([a.statusCode, b.statusCode, c.statusCode], [expected, expected, expected], relayId);
      if (relayId === 'evil') {
        assert.equal(c.json().code, 'RELAY_NOT_HOLDER');
        assert.deepEqual(heard, [], 'nothing heard from a refused relay');
        assert.deepEqual(store.calls, [], 'nothing released for a refused relay');
      }
    }
    assert.deepEqual(heard, ['started:good', 'ready:good', 'ended:good']);
    assert.deepEqual(store.calls, ['release:a@b.com/s1']);
    assert.deepEqual(asked.slice(0, 3), ['stream-started:evil:0', 'hls-ready:evil:1', 'stream-ended:evil:0']);
    await app.close();
  });

  it('answers a heartbeat with the streams the cloud wants ended on that relay', async () => {
    const store = fakeStore();
    store.known.add('relay-1');
    const app = buildCloudApp({
      store,
      relaySecret: SECRET,
      events: {
        streamsToEnd: (hb) =>
          hb.streams
            .filter((s) => s.streamId === 'gone')
            .map(({ userId, streamId }) => ({ userId, streamId })),
      },
    });
    const res = await app.inject({
      method: 'POST',
      url: '/api/relay/heartbeat',
      headers: { authorization: `Bearer ${SECRET}` },
      payload: {
        relayId: 'relay-1',
        cpu: 0,
        draining: false,
        streams: [
          { userId: 'a@b.com', streamId: 'gone', state: 'reconnecting' },
          { userId: 'a@b.com', streamId: 'kept', state: 'publishing' },
        ],
      },
    });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { ok: true, end: [{ userId: 'a@b.com', streamId: 'gone' }] });
    await app.close();
  });

  it('tells heartbeat listeners (the dashboard) only what the store accepted, stats included', async () => {
    const heard: string[] = [];
    const store = fakeStore();
    const app = buildCloudApp({
      store,
      relaySecret: SECRET,
      events: {
        heartbeat: (hb) =>
          heard.push(`heartbeat:${hb.relayId}:${hb.streams.map((s) => `${s.state}/${s.stats?.fps ?? '-'}`)}`),
        deregistered: (relayId) => heard.push(`deregistered:${relayId}:${store.known.has(relayId)}`),
      },
    });
    const post = (url: string, payload: unknown) =>
      app.inject({
        method: 'POST',
        url,
        payload: payload as object,
        headers: { authorization: `Bearer ${SECRET}` },
      });
    const beat = {
      relayId: 'relay-1',
      streams: [
        { userId: 'a@b.com', streamId: 's1', state: 'publishing', stats: { fps: 14, bitrateKbps: 900 } },
        { userId: 'a@b.com', streamId: 's2', state: 'ended' },
      ],
      cpu: 0.2,
      draining: false,
    };
    assert.equal((await post('/api/relay/heartbeat', beat)).statusCode, 404);
    assert.equal((await post('/api/relay/register', register)).statusCode, 200);
    assert.equal((await post('/api/relay/heartbeat', beat)).statusCode, 200);
    const badStats = { ...beat, streams: [{ ...beat.streams[0], stats: { fps: -1 } }] };
    assert.equal((await post('/api/relay/heartbeat', badStats)).statusCode, 400);
    assert.equal((await post('/api/relay/deregister', { relayId: 'relay-1' })).statusCode, 200);
    assert.deepEqual(heard, ['heartbeat:relay-1:publishing/14,ended/-', 'deregistered:relay-1:false']);
    await app.close();
  });

  it('tells contact listeners of every authenticated register and heartbeat, known to the store or not', async () => {
    const contacts: string[] = [];
    const store = fakeStore();
    const app = buildCloudApp({ store, relaySecret: SECRET, events: { contact: (id) => contacts.push(id) } });
    const post = (url: string, payload: object, authorization = `Bearer ${SECRET}`) =>
      app.inject({ method: 'POST', url, payload, headers: { authorization } });
    const beat = { relayId: 'relay-1', streams: [], cpu: 0, draining: false };
    assert.equal((await post('/api/relay/heartbeat', beat)).statusCode, 404, 'unknown: still a contact');
    assert.equal((await post('/api/relay/heartbeat', beat, 'Bearer nope')).statusCode, 401);
    assert.equal((await post('/api/relay/heartbeat', { relayId: 'relay-1' })).statusCode, 400);
    assert.equal((await post('/api/relay/register', register)).statusCode, 200);
    assert.equal((await post('/api/relay/heartbeat', beat)).statusCode, 200);
    assert.deepEqual(contacts, ['relay-1', 'relay-1', 'relay-1']);
    await app.close();
  });

  it('answers 503 (try again) when the store cannot be reached, after telling contact listeners', async () => {
    const contacts: string[] = [];
    const down = async (): Promise<never> => {
      throw new RelayError(ErrorCodes.CLOUD_STORE_FAILED, 'Reached the max retries per request limit');
    };
    const app = buildCloudApp({
      store: { upsertRelay: down, heartbeat: down, removeRelay: down, release: down },
      relaySecret: SECRET,
      events: { contact: (id) => contacts.push(id) },
    });
    app.get('/boom', async () => {
      throw new Error('a bug');
    });
    const headers = { authorization: `Bearer ${SECRET}` };
    for (const [url, payload] of [
      ['/api/relay/register', register],
      ['/api/relay/heartbeat', { relayId: 'relay-1', streams: [], cpu: 0, draining: false }],
      ['/api/relay/stream-ended', { relayId: 'relay-1', userId: 'a@b.com', streamId: 's1' }],
    ] as const) {
      const res = await app.inject({ method: 'POST', url, payload, headers });
      assert.equal(res.statusCode, 503, url);
      assert.equal(res.headers['retry-after'], '1');
      assert.equal(res.json().code, 'CLOUD_STORE_FAILED');
    }
    assert.deepEqual(contacts, ['relay-1', 'relay-1']);
    // Anything else keeps fastify's own answer.
    assert.equal((await app.inject({ url: '/boom' })).statusCode, 500);
    await app.close();
  });
});
