import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  type DashboardManaged,
  type DashboardOptions,
  type DashboardOutput,
  type DashboardRelaySource,
  type DashboardSnapshot,
  dashboardRoutes,
  outputOf,
} from '../../../src/cloud/dashboard-routes.ts';
import { FleetView } from '../../../src/cloud/fleet-view.ts';
import type { RelayStreamState, StreamStats } from '../../../src/contracts/relay-api.ts';

const TOKEN = 'dashboard-token-for-tests-0123456789';
const NOW = 1_700_000_000_000;

type RelayRow = Awaited<ReturnType<DashboardRelaySource['liveRelays']>>[number];

const relay = (relayId: string, extra: Partial<RelayRow> = {}): RelayRow => ({
  relayId,
  rtmpUrl: `rtmp://${relayId}:1935`,
  hlsUrl: `http://${relayId}:8888`,
  maxStreams: 20,
  cpu: 0.5,
  draining: false,
  lastSeen: NOW - 1000,
  streams: 1,
  reserved: 0,
  ...extra,
});

/** A relay source with a function field (style rule 9), a real fleet view, a fixed clock. */
function setup(options: Partial<DashboardOptions> & { relays?: DashboardRelaySource } = {}) {
  const clock = { now: NOW };
  const fleet = new FleetView({ expiryMs: 30_000, now: () => clock.now });
  const rows: RelayRow[] = [relay('r1')];
  const app: FastifyInstance = Fastify();
  void app.register(dashboardRoutes, {
    relays: { liveRelays: async () => rows },
    fleet,
    token: TOKEN,
    refreshMs: 20,
    lateAfterMs: 5000,
    now: () => clock.now,
    ...options,
  });
  return { app, fleet, rows, clock };
}

const auth = { authorization: `Bearer ${TOKEN}` };

describe('stream output health', () => {
  const cases: [string, RelayStreamState, StreamStats | null, DashboardManaged | null, DashboardOutput][] = [
    ['ended', 'ended', { segments: 0, uptimeSeconds: 99 }, null, { health: 'ended', reason: null }],
    ['no stats (an older relay)', 'publishing', null, null, { health: 'unknown', reason: null }],
    ['stats without segments', 'publishing', { fps: 10 }, null, { health: 'unknown', reason: null }],
    ['segments made', 'publishing', { segments: 3, uptimeSeconds: 9 }, null, { health: 'ok', reason: null }],
    [
      'within the grace',
      'publishing',
      { segments: 0, uptimeSeconds: 14 },
      null,
      { health: 'starting', reason: 'waiting for the first HLS segment' },
    ],
    [
      'none after the grace',
      'publishing',
      { segments: 0, uptimeSeconds: 15.4 },
      null,
      { health: 'failing', reason: 'no HLS segment after 15 s' },
    ],
    [
      'reconnecting, never made any',
      'reconnecting',
      { segments: 0, uptimeSeconds: 40 },
      null,
      { health: 'failing', reason: 'no HLS segment after 40 s' },
    ],
    [
      'managed stream in error',
      'publishing',
      { segments: 5, uptimeSeconds: 40 },
      { phase: 'error', status: 'error', viewers: 1 },
      { health: 'failing', reason: 'the managed stream is in error' },
    ],
  ];
  for (const [name, state, stats, managed, expected] of cases) {
    it(`${name}: ${expected.health}`, () => {
      assert.deepEqual(outputOf({ state, stats }, managed, 15_000), expected);
    });
  }
});

describe('dashboard routes', () => {
  it('answers 503 DASHBOARD_DISABLED without a configured token, and still serves the page', async () => {
    const { app } = setup({ token: undefined });
    for (const url of ['/api/dashboard', '/api/dashboard/events']) {
      const res = await app.inject({ url, headers: auth });
      assert.equal(res.statusCode, 503, url);
      assert.equal(res.json().code, 'DASHBOARD_DISABLED');
    }
    assert.equal((await app.inject({ url: '/dashboard' })).statusCode, 200);
    await app.close();
  });

  it('answers 401 DASHBOARD_UNAUTHORIZED to a missing or wrong token', async () => {
    const { app } = setup();
    for (const authorization of [undefined, 'Bearer nope', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`, 'Bearer ']) {
      for (const url of ['/api/dashboard', '/api/dashboard/events']) {
        const res = await app.inject({ url, headers: authorization ? { authorization } : {} });
        assert.equal(res.statusCode, 401, `${url} ${authorization}`);
        assert.equal(res.json().code, 'DASHBOARD_UNAUTHORIZED');
      }
    }
    // The token in a query string is not a way in (it would land in access logs).
    assert.equal((await app.inject({ url: `/api/dashboard?token=${TOKEN}` })).statusCode, 401);
    await app.close();
  });

  it('snapshots the live relays (load, health) and their streams (state, stats, URL, managed phase)', async () => {
    const { app, fleet, rows, clock } = setup({
      managed: (userId, streamId) =>
        userId === 'a@b.com' && streamId === 's1'
          ? { phase: 'active', status: 'active', viewers: 2 }
          : undefined,
    });
    rows.push(
      relay('r2', { draining: true, streams: 0, region: 'eu' }),
      relay('r3', { lastSeen: NOW - 6000, streams: 0, reserved: 1, maxStreams: 4 }),
    );
    fleet.heartbeat({
      relayId: 'r1',
      cpu: 0.5,
      draining: false,
      streams: [
        {
          userId: 'a@b.com',
          streamId: 's1',
          state: 'publishing',
          stats: { fps: 14.2, bitrateKbps: 1100, width: 540, height: 960, videoCodec: 'h264', viewers: 3 },
        },
        { userId: 'c@d.com', streamId: 's2', state: 'reconnecting' },
      ],
    });
    fleet.hlsReady({
      userId: 'a@b.com',
      streamId: 's1',
      relayId: 'r1',
      hlsUrl: 'https://cdn.x/hls/a-b.com/s1/index.m3u8',
      webrtcUrl: 'http://r1:8888/whep/a-b.com/s1',
    });
    // A relay the store no longer lists: its streams are not shown.
    fleet.heartbeat({
      relayId: 'gone',
      cpu: 0,
      draining: false,
      streams: [{ userId: 'e@f.com', streamId: 's3', state: 'publishing' }],
    });
    clock.now += 500;
    const res = await app.inject({ url: '/api/dashboard', headers: auth });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
    const body = res.json() as DashboardSnapshot;
    assert.equal(body.generatedAt, new Date(NOW + 500).toISOString());
    assert.deepEqual(body.relays[0], {
      relayId: 'r1',
      rtmpUrl: 'rtmp://r1:1935',
      hlsUrl: 'http://r1:8888',
      region: null,
      maxStreams: 20,
      streams: 1,
      reserved: 0,
      load: 0.05,
      cpu: 0.5,
      draining: false,
      lastSeenSecondsAgo: 1.5,
      health: 'ok',
      healthy: true,
    });
    assert.deepEqual(
      body.relays.map((r) => [r.relayId, r.health, r.healthy, r.load, r.region]),
      [
        ['r1', 'ok', true, 0.05, null],
        ['r2', 'draining', false, 0, 'eu'],
        ['r3', 'late', false, 0.25, null],
      ],
    );
    assert.deepEqual(body.streams, [
      {
        userId: 'a@b.com',
        streamId: 's1',
        relayId: 'r1',
        state: 'publishing',
        hlsUrl: 'https://cdn.x/hls/a-b.com/s1/index.m3u8',
        webrtcUrl: 'http://r1:8888/whep/a-b.com/s1',
        stats: { fps: 14.2, bitrateKbps: 1100, width: 540, height: 960, videoCodec: 'h264', viewers: 3 },
        managed: { phase: 'active', status: 'active', viewers: 2 },
        output: { health: 'unknown', reason: null },
      },
      {
        userId: 'c@d.com',
        streamId: 's2',
        relayId: 'r1',
        state: 'reconnecting',
        hlsUrl: 'http://r1:8888/hls/c-d.com/s2/index.m3u8',
        webrtcUrl: null,
        stats: null,
        managed: null,
        output: { health: 'unknown', reason: null },
      },
    ]);
    await app.close();
  });

  it('serves the page, its script, style and hls.js with their types, and redirects / to it', async () => {
    const { app } = setup();
    const page = await app.inject({ url: '/dashboard' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html; charset=utf-8/);
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.match(page.body, /<script type="module" src="\/dashboard\/app\.js">/);
    assert.equal((await app.inject({ url: '/dashboard/' })).body, page.body);
    const cases: [string, RegExp, RegExp][] = [
      ['/dashboard/app.js', /^text\/javascript; charset=utf-8/, /api\/dashboard\/events/],
      ['/dashboard/style.css', /^text\/css; charset=utf-8/, /\.stream/],
      ['/dashboard/hls.min.js', /^text\/javascript; charset=utf-8/, /isSupported/],
    ];
    for (const [url, type, content] of cases) {
      const res = await app.inject({ url });
      assert.equal(res.statusCode, 200, url);
      assert.match(String(res.headers['content-type']), type, url);
      assert.match(res.body, content, url);
    }
    const root = await app.inject({ url: '/' });
    assert.equal(root.statusCode, 302);
    assert.equal(root.headers.location, '/dashboard');
    await app.close();
  });

  it('serves nothing else: unknown names and traversal attempts are 404', async () => {
    const { app } = setup();
    for (const url of [
      '/dashboard/x',
      '/dashboard/index.html',
      '/dashboard/app.js.map',
      '/dashboard/..%2f..%2fpackage.json',
      '/dashboard/%2e%2e/%2e%2e/package.json',
      '/dashboard/..%5c..%5cpackage.json',
      '/dashboard/../package.json',
      '/dashboard/app.js/../../package.json',
      '/dashboard/app.js%00.css',
      '/web/index.html',
      '/package.json',
    ]) {
      const res = await app.inject({ url });
      assert.equal(res.statusCode, 404, url);
      assert.doesNotMatch(res.body, /"devDependencies"/, url);
    }
    await app.close();
  });

  it('pushes snapshots as server-sent events, caps clients, and releases a client that goes', async () => {
    const counts: number[] = [];
    let countChanged: () => void = () => {};
    const { app, fleet } = setup({
      maxClients: 1,
      onClientCount: (n) => {
        counts.push(n);
        countChanged();
      },
    });
    const clientCount = (n: number): Promise<void> =>
      counts.at(-1) === n
        ? Promise.resolve()
        : new Promise((resolve) => {
            countChanged = () => counts.at(-1) === n && resolve();
          });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/api/dashboard/events`;
    try {
      const first = new AbortController();
      const res = await fetch(url, { headers: auth, signal: first.signal });
      assert.equal(res.status, 200);
      assert.match(String(res.headers.get('content-type')), /^text\/event-stream/);
      const events = readEvents(res);
      const initial = await events.next();
      assert.equal(initial.event, 'snapshot');
      assert.deepEqual((initial.data as DashboardSnapshot).streams, []);
      // Live: what the next heartbeat says shows in a later snapshot, pushed by the timer.
      fleet.heartbeat({
        relayId: 'r1',
        cpu: 0.1,
        draining: false,
        streams: [{ userId: 'u', streamId: 's', state: 'publishing' }],
      });
      for (;;) {
        const next = (await events.next()).data as DashboardSnapshot;
        if (next.streams.length === 1) break;
      }

      const refused = await fetch(url, { headers: auth });
      assert.equal(refused.status, 503);
      assert.equal(((await refused.json()) as { code: string }).code, 'DASHBOARD_TOO_MANY_CLIENTS');

      first.abort();
      await clientCount(0);
      const again = new AbortController();
      const res2 = await fetch(url, { headers: auth, signal: again.signal });
      assert.equal(res2.status, 200);
      assert.equal((await readEvents(res2).next()).event, 'snapshot');
      // Closing the app ends the open event stream and releases its timer (close() would hang otherwise).
      await app.close();
      await clientCount(0);
      assert.deepEqual(counts, [1, 0, 1, 0]);
      again.abort();
    } finally {
      await app.close();
    }
  });

  it('ends open event streams when the app closes', async () => {
    const { app } = setup();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/api/dashboard/events`;
    const res = await fetch(url, { headers: auth });
    const events = readEvents(res);
    await events.next();
    const closing = app.close();
    await assert.rejects(async () => {
      for (;;) await events.next();
    }, /event stream ended/);
    await closing;
  });
});

/** Reads server-sent events from a fetch response, one `next()` per event. */
function readEvents(res: Response): { next(): Promise<{ event: string; data: unknown }> } {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  return {
    async next() {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          return { event, data: JSON.parse(data.join('\n')) };
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('event stream ended');
        buffer += value;
      }
    },
  };
}
