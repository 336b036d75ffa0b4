import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManagedStreamError, ManagedStreams } from '../../../src/cloud/managed-streams.ts';
import type { CloudStore } from '../../../src/cloud/store.ts';
import { MemoryCloudStore } from '../../../src/cloud/store-memory.ts';
import { MemoryStreamState } from '../../../src/cloud/stream-state.ts';
import { createPublishTokenVerifier } from '../../../src/cloud/tokens.ts';
import type { CloudToGlasses, ManagedStreamStatus } from '../../../src/contracts/mentra.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { parseSrtStreamId } from '../../../src/srt/stream-id.ts';
import { eventually } from '../../helpers/relay-process.ts';

/** Lets the background playlist check and its status run (they follow a few promise turns). */
async function eventuallyHeard(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(done());
}

function setup(
  options: {
    staticRelays?: { rtmpUrl: string; hlsUrl: string }[];
    probeHls?: (url: string, signal: AbortSignal) => Promise<boolean>;
    hlsPublicBaseUrl?: string;
    keepAliveMs?: number;
  } = {},
) {
  const store = new MemoryCloudStore();
  const sent: { userId: string; message: CloudToGlasses }[] = [];
  const streams = new ManagedStreams({
    store,
    glasses: {
      send: (userId, message) => {
        sent.push({ userId, message });
        return true;
      },
    },
    log: silentLogger(),
    tokenSecret: null,
    keepAliveMs: 60_000,
    ackTimeoutMs: 10_000,
    maxMissedAcks: 3,
    relayCheckMs: 60_000,
    probeHls: async () => true,
    ...options,
  });
  return { store, sent, streams };
}

describe('managed streams', () => {
  it('refuses with NO_RELAY_AVAILABLE when no relay is registered and no static list exists', async () => {
    const { streams } = setup();
    await assert.rejects(
      streams.request('a@b.com', 'com.app'),
      (e: unknown) => e instanceof ManagedStreamError && e.code === 'NO_RELAY_AVAILABLE',
    );
    await streams.close();
  });

  it("falls back to the seed's static relay list while no relay is registered", async () => {
    const { streams, sent } = setup({
      staticRelays: [
        { rtmpUrl: 'rtmp://10.0.0.9:1935', hlsUrl: 'http://10.0.0.9:8888' },
        { rtmpUrl: 'rtmp://10.0.0.10:1935', hlsUrl: 'http://10.0.0.10:8888' },
      ],
    });
    const a = await streams.request('a@b.com', 'com.app');
    const b = await streams.request('c@d.com', 'com.app');
    const starts = sent
      .filter((s) => s.message.type === 'start_rtmp_stream')
      .map((s) => (s.message as { rtmpUrl: string }).rtmpUrl);
    assert.deepEqual(starts, [
      `rtmp://10.0.0.9:1935/live/a@b.com/${a.streamId}`,
      `rtmp://10.0.0.10:1935/live/c@d.com/${b.streamId}`,
    ]);
    await streams.close();
  });

  it('prefers registered relays, joins later apps as viewers, and stops the glasses when the last leaves', async () => {
    const { streams, sent, store } = setup({
      staticRelays: [{ rtmpUrl: 'rtmp://10.0.0.9:1935', hlsUrl: 'http://10.0.0.9:8888' }],
    });
    await store.upsertRelay(
      { relayId: 'r1', rtmpUrl: 'rtmp://relay1:1935', hlsUrl: 'http://relay1:8888', maxStreams: 5 },
      Date.now(),
    );
    const first = await streams.request('a@b.com', 'com.one');
    const second = await streams.request('a@b.com', 'com.two');
    assert.equal(second.streamId, first.streamId, 'one managed stream per user');
    assert.match(
      (sent[0]!.message as { rtmpUrl: string }).rtmpUrl,
      /^rtmp:\/\/relay1:1935\/live\/a@b\.com\/[A-Za-z0-9]{8}$/,
    );
    await streams.stop('a@b.com', 'com.one');
    assert.ok(!sent.some((s) => s.message.type === 'stop_rtmp_stream'), 'another viewer remains');
    await streams.stop('a@b.com', 'com.two');
    assert.ok(
      sent.some((s) => s.message.type === 'stop_rtmp_stream'),
      'the last viewer left',
    );
    await streams.close();
  });
});

describe('managed streams: a relay that refuses the publish', () => {
  it('ends the stream in error with the reason (issue 15: an input the relay cannot use), glasses stopped', async () => {
    const { streams, store, sent } = setup();
    await store.upsertRelay(
      { relayId: 'r1', rtmpUrl: 'rtmp://relay1:1935', hlsUrl: 'http://relay1:8888', maxStreams: 5 },
      Date.now(),
    );
    try {
      const heard: ManagedStreamStatus[] = [];
      streams.on('status', (_who, status) => heard.push(status));
      const id = (await streams.request('a@b.com', 'com.one')).streamId!;
      await streams.relayStreamEnded('a@b.com', id, 'r1', 'ffmpeg made nothing of this input, twice');
      const last = heard.at(-1)!;
      assert.equal(last.status, 'error');
      assert.match(String(last.message), /refused the stream: ffmpeg made nothing of this input/);
      assert.ok(sent.some((s) => s.message.type === 'stop_rtmp_stream'));
    } finally {
      await streams.close();
    }
  });
});

describe('managed streams: re-streaming and thumbnails', () => {
  it("pushes the union of the viewing apps' destinations, and tells apps the outputs the relay reports", async () => {
    const { streams, store } = setup();
    await store.upsertRelay(
      { relayId: 'r1', rtmpUrl: 'rtmp://relay1:1935', hlsUrl: 'http://relay1:8888', maxStreams: 5 },
      Date.now(),
    );
    try {
      const heard: ManagedStreamStatus[] = [];
      streams.on('status', (_who, status) => heard.push(status));
      const yt = { url: 'rtmp://a.rtmp.youtube.com/live2/KEY1', name: 'YouTube' };
      const tw = { url: 'rtmps://live.twitch.tv/app/KEY2' };
      const first = await streams.request('a@b.com', 'com.one', [yt]);
      const id = first.streamId!;
      await streams.request('a@b.com', 'com.two', [yt, tw]);
      assert.deepEqual(await streams.destinationsOf('a@b.com', id), [yt, tw], 'each URL once');
      assert.deepEqual(await streams.destinationsOf('other@b.com', id), [], "not another user's stream");
      await streams.stop('a@b.com', 'com.two');
      assert.deepEqual(
        await streams.destinationsOf('a@b.com', id),
        [yt],
        'a leaving app takes its destinations',
      );

      const outputs = [
        { url: 'rtmp://a.rtmp.youtube.com/live2/[redacted]', name: 'YouTube', status: 'active' as const },
      ];
      const before = heard.length;
      await streams.restreamStatus('a@b.com', id, outputs);
      await streams.restreamStatus('a@b.com', id, outputs); // the same report again: no new status
      assert.equal(heard.length, before + 1, 'one status for the new outputs');
      assert.deepEqual(heard.at(-1)!.outputs, outputs);
      assert.deepEqual(streams.statusOf(streams.get(id)!).outputs, outputs);

      await streams.hlsReady('a@b.com', id, 'r1', `http://relay1:8888/hls/a-b.com/${id}/index.m3u8`);
      const active = streams.statusOf(streams.get(id)!);
      assert.equal(active.thumbnailUrl, `http://relay1:8888/hls/a-b.com/${id}/thumbnail.jpg`);
      assert.equal(active.previewUrl, active.thumbnailUrl);
    } finally {
      await streams.close(); // its timers would keep the test process alive
    }
  });
});

const EXPIRY = 1000;

/**
 * Relay liveness with a clock the test moves (store time and the monotonic clock together), a store that
 * can be made to fail call by call, and a timer that never fires on its own (checks are called by hand).
 */
function livenessSetup() {
  const clock = { now: 1_000_000 };
  const memory = new MemoryCloudStore({ relayExpiryMs: EXPIRY });
  const failing = new Set<keyof CloudStore>();
  const store = new Proxy(memory, {
    get(target, name: keyof CloudStore) {
      const value = target[name];
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        if (failing.has(name)) throw new RelayError(ErrorCodes.CLOUD_STORE_FAILED, 'Redis is down');
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  }) as CloudStore;
  const sent: { userId: string; message: CloudToGlasses }[] = [];
  const streams = new ManagedStreams({
    store,
    glasses: {
      send: (userId, message) => {
        sent.push({ userId, message });
        return true;
      },
    },
    log: silentLogger(),
    tokenSecret: null,
    keepAliveMs: 600_000,
    ackTimeoutMs: 10_000,
    maxMissedAcks: 3,
    relayCheckMs: 60_000,
    relayExpiryMs: EXPIRY,
    now: () => clock.now,
    monotonic: () => clock.now,
    probeHls: async () => true,
  });
  const statuses: ManagedStreamStatus[] = [];
  streams.on('status', (_who, status) => statuses.push(status));
  const relay = (id: string) => ({
    relayId: id,
    rtmpUrl: `rtmp://${id}:1935`,
    hlsUrl: `http://${id}:8888`,
    maxStreams: 1,
  });
  /** The relay calls as its agent does: a heartbeat, and when the store does not know it, a register. */
  const beat = async (id: string, reported: { userId: string; streamId: string }[] = []) => {
    streams.relayContact(id);
    if (failing.has('heartbeat')) return;
    const report = { streams: reported, cpu: 0, draining: false };
    if (await memory.heartbeat(id, report, clock.now)) return;
    await memory.upsertRelay(relay(id), clock.now);
    await memory.heartbeat(id, report, clock.now);
  };
  const startsFor = (relayId: string) =>
    sent.filter(
      (s) => s.message.type === 'start_rtmp_stream' && s.message.rtmpUrl.startsWith(`rtmp://${relayId}:`),
    ).length;
  return { clock, memory, failing, streams, sent, statuses, relay, beat, startsFor };
}

describe('managed streams: relay liveness and store faults', () => {
  it('keeps the streams of a relay the store lost while it still calls; moves them once it is silent', async () => {
    const { clock, memory, streams, statuses, relay, beat, startsFor } = livenessSetup();
    await memory.upsertRelay(relay('r1'), clock.now);
    const first = await streams.request('a@b.com', 'com.app');
    await memory.upsertRelay(relay('r2'), clock.now);
    assert.equal(startsFor('r1'), 1);
    await streams.hlsReady('a@b.com', first.streamId!, 'r1', 'http://r1:8888/hls/a-b.com/x/index.m3u8');
    // Redis restarted empty: the store knows no relay, but r1 keeps calling (its heartbeats hear 404).
    await memory.removeRelay('r1');
    await memory.removeRelay('r2');
    for (let i = 0; i < 5; i++) {
      clock.now += EXPIRY / 2;
      await beat('r1');
      await streams.checkRelays();
    }
    assert.deepEqual(
      statuses.map((s) => s.status),
      ['initializing', 'active'],
      'nothing moved, nobody was told anything',
    );
    // r2 registers again and heartbeats; r1 falls silent for the expiry: now it is lost.
    await memory.upsertRelay(relay('r2'), clock.now);
    clock.now += EXPIRY;
    await beat('r2');
    await streams.checkRelays();
    assert.equal(startsFor('r2'), 1, 'moved to r2');
    assert.equal(statuses.at(-1)?.status, 'reconnecting');
    await streams.close();
  });

  it('after the cloud was not running, gives every relay an expiry to be heard before any is lost', async () => {
    const { clock, memory, streams, statuses, relay, beat, startsFor } = livenessSetup();
    await memory.upsertRelay(relay('r1'), clock.now);
    await streams.request('a@b.com', 'com.app');
    await memory.upsertRelay(relay('r2'), clock.now);
    const onR2 = [{ userId: 'c@d.com', streamId: (await streams.request('c@d.com', 'com.app')).streamId! }];
    await memory.upsertRelay(relay('r3'), clock.now);
    assert.deepEqual([startsFor('r1'), startsFor('r2')], [1, 1]);
    // Frozen for five minutes: every relay looks expired, and nothing was heard meanwhile.
    clock.now += 300_000;
    await streams.checkRelays();
    clock.now += EXPIRY / 2;
    await beat('r2', onR2);
    await beat('r3');
    await streams.checkRelays();
    assert.deepEqual(
      statuses.map((s) => s.status),
      ['initializing', 'initializing'],
      'no relay lost during the grace',
    );
    // The grace is over: r2 was heard again, r1 was not and is lost; its stream moves to r3.
    clock.now += EXPIRY / 2 + 1;
    await beat('r2', onR2);
    await beat('r3');
    await streams.checkRelays();
    assert.equal(startsFor('r3'), 1, "r1's stream moved to r3");
    assert.equal(startsFor('r2'), 1, "r2's stream stayed");
    assert.deepEqual(
      statuses.map((s) => s.status),
      ['initializing', 'initializing', 'reconnecting'],
    );
    await streams.close();
  });

  it('never throws a store failure out of an effect; a placement it prevented is tried again', async () => {
    const { clock, memory, failing, streams, statuses, relay, beat, startsFor } = livenessSetup();
    await memory.upsertRelay(relay('r1'), clock.now);
    const first = await streams.request('a@b.com', 'com.app');
    await memory.upsertRelay(relay('r2'), clock.now);
    const second = await streams.request('c@d.com', 'com.app');
    // The store goes down: the glasses of the first stream stop; ending it must release the relay,
    // which fails, and the stream ends all the same (this rejected, unhandled, and crashed the cloud).
    failing.add('release');
    await streams.glassesMessage('a@b.com', {
      type: 'rtmp_stream_status',
      streamId: first.streamId!,
      status: 'stopped',
    });
    assert.equal(streams.get(first.streamId!), undefined, 'ended');
    assert.equal(statuses.at(-1)?.status, 'stopped');
    // r2 dies while placement fails: the stream waits, reconnecting, for the store to come back.
    await memory.upsertRelay(relay('r3'), clock.now);
    failing.add('place');
    clock.now += EXPIRY;
    await beat('r3');
    await streams.checkRelays();
    assert.equal(streams.get(second.streamId!)?.state.phase, 'reconnecting');
    assert.equal(streams.get(second.streamId!)?.state.relayId, null);
    assert.equal(startsFor('r3'), 0);
    await streams.checkRelays();
    assert.equal(startsFor('r3'), 0, 'still down');
    failing.clear();
    await beat('r3');
    await streams.checkRelays();
    assert.equal(startsFor('r3'), 1, 'placed again once the store answers');
    assert.equal(streams.get(second.streamId!)?.state.relayId, 'r3');
    assert.ok(!statuses.some((s) => s.status === 'error'), 'nobody was told of an error');
    await streams.close();
  });
});

describe('managed streams: honest statuses and ends on the relay', () => {
  const r1 = { relayId: 'r1', rtmpUrl: 'rtmp://relay1:1935', hlsUrl: 'http://relay1:8888', maxStreams: 5 };

  it('says active only once the announced playlist answers, and never for one that does not', async () => {
    const asked: ((ok: boolean) => void)[] = [];
    const { streams, store } = setup({
      probeHls: () => new Promise<boolean>((resolve) => asked.push(resolve)),
    });
    /** Answers the next playlist check, once it was asked. */
    const answer = async (ok: boolean): Promise<void> => {
      while (asked.length === 0) await new Promise((r) => setImmediate(r));
      asked.shift()!(ok);
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    };
    await store.upsertRelay(r1, Date.now());
    try {
      const heard: string[] = [];
      streams.on('status', (_who, status) => heard.push(status.status));
      const { streamId } = await streams.request('a@b.com', 'com.app');
      const id = streamId!;
      const url = `http://relay1:8888/hls/a-b.com/${id}/index.m3u8`;
      const ready = streams.hlsReady('a@b.com', id, 'r1', url);
      while (asked.length === 0) await new Promise((r) => setImmediate(r));
      assert.deepEqual(heard, ['initializing'], 'nothing before the playlist answers');
      await answer(false);
      await ready;
      assert.deepEqual(heard, ['initializing'], 'a playlist that never answered is never announced');
      const again = streams.hlsReady('a@b.com', id, 'r1', url);
      await answer(true);
      await again;
      assert.deepEqual(heard, ['initializing', 'active']);
      // Glasses reconnect to the same relay: the old URL is checked again before active.
      const status = (s: 'reconnecting' | 'reconnected') =>
        streams.glassesMessage('a@b.com', { type: 'rtmp_stream_status', streamId: id, status: s });
      await status('reconnecting');
      await status('reconnected');
      assert.deepEqual(heard, ['initializing', 'active', 'reconnecting']);
      await answer(true);
      assert.deepEqual(heard, ['initializing', 'active', 'reconnecting', 'active']);
      // hls-ready from a relay that does not hold the stream is not even checked.
      await streams.hlsReady('a@b.com', id, 'r2', url);
      assert.equal(asked.length, 0);
    } finally {
      await streams.close();
    }
  });

  it("carries the relay's WHEP URL in every active status (never the HLS CDN's base), and in the SDK's", async () => {
    const { streams, store } = setup({ hlsPublicBaseUrl: 'https://cdn.example' });
    await store.upsertRelay(r1, Date.now());
    try {
      const heard: ManagedStreamStatus[] = [];
      streams.on('status', (_who, status) => heard.push(status));
      const id = (await streams.request('a@b.com', 'com.app')).streamId!;
      const whep = `http://relay1:8888/whep/a-b.com/${id}`;
      await streams.hlsReady('a@b.com', id, 'r1', `http://relay1:8888/hls/a-b.com/${id}/index.m3u8`, whep);
      const active = heard.at(-1)!;
      assert.equal(active.status, 'active');
      assert.equal(active.hlsUrl, `https://cdn.example/hls/a-b.com/${id}/index.m3u8`);
      assert.equal(active.webrtcUrl, whep);
      assert.equal(streams.statusOf((await streams.load(id))!).webrtcUrl, whep, 'REST and SSE too');
      // Not playable while the glasses reconnect; back with the same URL when active again.
      const status = (s: 'reconnecting' | 'reconnected') =>
        streams.glassesMessage('a@b.com', { type: 'rtmp_stream_status', streamId: id, status: s });
      await status('reconnecting');
      assert.equal(heard.at(-1)!.status, 'reconnecting');
      assert.equal(heard.at(-1)!.webrtcUrl, undefined);
      await status('reconnected');
      await eventuallyHeard(() => heard.at(-1)!.status === 'active');
      assert.equal(heard.at(-1)!.webrtcUrl, whep);
      // A relay that announces no WHEP (an older one) gives apps none.
      const other = (await streams.request('c@d.com', 'com.app')).streamId!;
      await streams.hlsReady('c@d.com', other, 'r1', `http://relay1:8888/hls/c-d.com/${other}/index.m3u8`);
      const last = heard.at(-1)!;
      assert.equal(last.streamId, other);
      assert.equal(last.status, 'active');
      assert.equal(last.webrtcUrl, undefined);
    } finally {
      await streams.close();
    }
  });

  it('tells the relay in its heartbeat answer to end a stopped stream, and only on that relay', async () => {
    const { streams, store } = setup();
    await store.upsertRelay(r1, Date.now());
    try {
      const { streamId } = await streams.request('a@b.com', 'com.app');
      const mine = { userId: 'a@b.com', streamId: streamId!, state: 'reconnecting' as const };
      const direct = { userId: 'd@b.com', streamId: 'direct', state: 'publishing' as const };
      assert.deepEqual(
        await streams.streamsToEnd({ relayId: 'r1', streams: [mine, direct] }),
        [],
        'live: kept',
      );
      assert.deepEqual(
        await streams.streamsToEnd({ relayId: 'r9', streams: [mine] }),
        [{ userId: 'a@b.com', streamId }],
        'a copy on a relay that does not hold it ends',
      );
      await streams.stop('a@b.com', 'com.app');
      await streams.glassesMessage('a@b.com', {
        type: 'rtmp_stream_status',
        streamId: streamId!,
        status: 'stopped',
      });
      assert.equal(streams.get(streamId!), undefined);
      assert.deepEqual(await streams.streamsToEnd({ relayId: 'r1', streams: [mine, direct] }), [
        { userId: 'a@b.com', streamId },
      ]);
      assert.deepEqual(
        await streams.streamsToEnd({ relayId: 'r1', streams: [{ ...mine, state: 'ended' }] }),
        [],
      );
    } finally {
      await streams.close();
    }
  });
});

describe('managed streams: glasses with no socket', () => {
  it('holds the start for glasses that are not connected and sends it when they connect', async () => {
    const store = new MemoryCloudStore();
    const link = { connected: false };
    const sent: CloudToGlasses[] = [];
    const streams = new ManagedStreams({
      store,
      glasses: {
        send: (_u, m) => {
          if (!link.connected) return false;
          sent.push(m);
          return true;
        },
      },
      log: silentLogger(),
      tokenSecret: null,
      keepAliveMs: 600_000,
      ackTimeoutMs: 10_000,
      maxMissedAcks: 3,
      relayCheckMs: 600_000,
      probeHls: async () => true,
    });
    try {
      await store.upsertRelay(
        { relayId: 'r1', rtmpUrl: 'rtmp://relay1:1935', hlsUrl: 'http://relay1:8888', maxStreams: 5 },
        Date.now(),
      );
      const { streamId } = await streams.request('a@b.com', 'com.app');
      assert.equal(sent.length, 0, 'nobody to send it to');
      link.connected = true;
      await streams.glassesConnected('a@b.com');
      assert.equal(sent.length, 1);
      assert.equal(sent[0]!.type, 'start_rtmp_stream');
      assert.equal(sent[0]!.streamId, streamId);
      await streams.glassesConnected('a@b.com');
      assert.equal(sent.length, 1, 'sent once');
    } finally {
      await streams.close();
    }
  });
});

describe('managed streams: GLASSES_INGEST', () => {
  it("hands out the relay's SRT or WHIP base when it announced one, else RTMP", async () => {
    for (const [ingest, expected] of [
      // The stream id's segments are percent-encoded, then the whole value again as a URL option (srt.ts);
      // the stream's own passphrase rides along.
      [
        'srt',
        /^srt:\/\/relay1:8890\?streamid=publish%3Alive%2Fa%2540b\.com%2F[A-Za-z0-9]{8}&passphrase=pp-live%2Fa%40b\.com%2F[A-Za-z0-9]{8}$/,
      ],
      ['whip', /^http:\/\/relay1:8888\/whip\/live\/a@b\.com\/[A-Za-z0-9]{8}$/],
      ['rtmp', /^rtmp:\/\/relay1:1935\/live\/a@b\.com\/[A-Za-z0-9]{8}$/],
    ] as const) {
      const store = new MemoryCloudStore();
      const sent: CloudToGlasses[] = [];
      const streams = new ManagedStreams({
        store,
        glasses: {
          send: (_u, m) => {
            sent.push(m);
            return true;
          },
        },
        log: silentLogger(),
        tokenSecret: null,
        keepAliveMs: 600_000,
        ackTimeoutMs: 10_000,
        maxMissedAcks: 3,
        relayCheckMs: 600_000,
        glassesIngest: ingest,
        srtPassphrase: (key) => `pp-${key}`,
        probeHls: async () => true,
      });
      try {
        await store.upsertRelay(
          {
            relayId: 'r1',
            rtmpUrl: 'rtmp://relay1:1935',
            hlsUrl: 'http://relay1:8888',
            srtUrl: 'srt://relay1:8890',
            whipUrl: 'http://relay1:8888',
            maxStreams: 5,
          },
          Date.now(),
        );
        await streams.request('a@b.com', 'com.app');
        const start = sent.find((m) => m.type === 'start_rtmp_stream');
        assert.match(start?.type === 'start_rtmp_stream' ? start.rtmpUrl : '', expected, ingest);
      } finally {
        await streams.close();
      }
    }
  });
});

describe('managed streams: SRT for the longest ids', () => {
  it('hands out the compact token when a JWT would not fit the 512-byte stream id, and the relay accepts it', async () => {
    const secret = 'publish-token-secret-for-unit-tests-0123456789';
    // The longest user id the naming contract allows, full of characters that percent-encode.
    const userId = `${'a@'.repeat(63)}b.`.slice(0, 128);
    const store = new MemoryCloudStore();
    const sent: CloudToGlasses[] = [];
    const streams = new ManagedStreams({
      store,
      glasses: {
        send: (_u, m) => {
          sent.push(m);
          return true;
        },
      },
      log: silentLogger(),
      tokenSecret: secret,
      keepAliveMs: 600_000,
      ackTimeoutMs: 10_000,
      maxMissedAcks: 3,
      relayCheckMs: 600_000,
      glassesIngest: 'srt',
      srtPassphrase: (key) => `pp-${key.length}`,
      probeHls: async () => true,
    });
    try {
      await store.upsertRelay(
        {
          relayId: 'r1',
          rtmpUrl: 'rtmp://relay1:1935',
          hlsUrl: 'http://relay1:8888',
          srtUrl: 'srt://relay1:8890',
          maxStreams: 5,
        },
        Date.now(),
      );
      await streams.request(userId, 'com.app');
      const start = sent.find((m) => m.type === 'start_rtmp_stream');
      const url = new URL(start?.type === 'start_rtmp_stream' ? start.rtmpUrl : 'x:');
      assert.equal(url.protocol, 'srt:', 'SRT, not the RTMP fallback');
      const streamIdOption = url.searchParams.get('streamid') ?? '';
      assert.ok(Buffer.byteLength(streamIdOption) <= 512, `${Buffer.byteLength(streamIdOption)} bytes`);
      const parsed = parseSrtStreamId(streamIdOption);
      assert.ok(parsed.ok, 'the relay parses it');
      assert.match(parsed.target.token ?? '', /^c1\./);
      const verify = createPublishTokenVerifier({ secret, relayId: 'r1' });
      assert.deepEqual(await verify(parsed.target), { allow: true });
    } finally {
      await streams.close();
    }
  });
});

describe('managed streams: glasses that fail on SRT', () => {
  const relay = {
    relayId: 'r1',
    rtmpUrl: 'rtmp://relay1:1935',
    hlsUrl: 'http://relay1:8888',
    srtUrl: 'srt://relay1:8890',
    maxStreams: 5,
  };
  /** Two replicas on one state store and one relay store: what one records, the other acts on. */
  function replicas(srtUrl: string | undefined) {
    const store = new MemoryCloudStore();
    const state = new MemoryStreamState();
    const sent: { replica: string; message: CloudToGlasses }[] = [];
    const make = (replica: string) =>
      new ManagedStreams({
        store,
        state,
        glasses: {
          send: (_u, message) => {
            sent.push({ replica, message });
            return true;
          },
        },
        log: silentLogger(),
        tokenSecret: null,
        keepAliveMs: 600_000,
        ackTimeoutMs: 10_000,
        maxMissedAcks: 3,
        relayCheckMs: 600_000,
        glassesIngest: 'srt',
        probeHls: async () => true,
        probeRelay: async () => true,
      });
    const a = make('a');
    const b = make('b');
    const urls = () =>
      sent.flatMap((s) =>
        s.message.type === 'start_rtmp_stream' ? [`${s.replica} ${s.message.rtmpUrl}`] : [],
      );
    const stops = () => sent.filter((s) => s.message.type === 'stop_rtmp_stream').length;
    const ready = store.upsertRelay({ ...relay, srtUrl }, Date.now());
    const close = async (): Promise<void> => {
      await a.close();
      await b.close(); // its timers would keep the test process alive
    };
    return { a, b, state, urls, stops, ready, close };
  }
  const error = (streamId: string) =>
    ({
      type: 'rtmp_stream_status',
      streamId,
      status: 'error',
      errorDetails: 'connection timed out',
    }) as const;

  it('an error on SRT starts the glasses again on RTMP (any replica), once; a later error ends the stream', async () => {
    const { a, b, state, urls, stops, ready, close } = replicas(relay.srtUrl);
    await ready;
    try {
      const { streamId } = await a.request('a@b.com', 'com.app');
      const id = streamId!;
      assert.equal(urls().length, 1);
      assert.match(urls()[0]!, /^a srt:\/\/relay1:8890\?streamid=/);
      assert.equal((await state.get(id))?.ingest, 'srt', 'the record says what the glasses were handed');

      // The glasses' error reaches the other replica: it reads the record and retries them on RTMP.
      await b.glassesMessage('a@b.com', error(id));
      assert.deepEqual(urls().slice(1), [`b rtmp://relay1:1935/live/a@b.com/${id}`]);
      assert.equal(stops(), 0, 'not ended');
      const record = await state.get(id);
      assert.equal(record?.srtFailed, true);
      assert.equal(record?.ingest, 'rtmp');
      assert.equal(record?.state.phase, 'initializing', 'the apps still wait for the same stream');
      assert.equal(record?.state.relayId, 'r1', 'same relay');

      // The RTMP publish goes live as any other.
      await a.hlsReady('a@b.com', id, 'r1', `http://relay1:8888/hls/a-b.com/${id}/index.m3u8`);
      assert.equal((await state.get(id))?.state.phase, 'active');

      // RTMP failing too is a real error: the stream ends.
      await a.glassesMessage('a@b.com', error(id));
      assert.equal(await state.get(id), null, 'ended');
      assert.equal(stops(), 1);
      assert.equal(urls().length, 2, 'no third start');
    } finally {
      await close();
    }
  });

  it('glasses handed RTMP (the relay announced no SRT) that report an error end the stream as before', async () => {
    const { a, state, urls, stops, ready, close } = replicas(undefined);
    await ready;
    try {
      const { streamId } = await a.request('a@b.com', 'com.app');
      assert.match(urls()[0]!, /^a rtmp:\/\//);
      assert.equal((await state.get(streamId!))?.ingest, undefined, 'RTMP, the default, is not written');
      await a.glassesMessage('a@b.com', error(streamId!));
      assert.equal(await state.get(streamId!), null);
      assert.equal(stops(), 1);
      assert.equal(urls().length, 1);
    } finally {
      await close();
    }
  });
});

describe('managed streams: keep-alives', () => {
  it('sends none before the glasses answered about the stream (one would overtake the start), then every round', async () => {
    const { streams, sent } = setup({
      staticRelays: [{ rtmpUrl: 'rtmp://10.0.0.9:1935', hlsUrl: 'http://10.0.0.9:8888' }],
      keepAliveMs: 5,
    });
    const keepAlives = () => sent.filter((s) => s.message.type === 'keep_rtmp_stream_alive').length;
    try {
      const { streamId } = await streams.request('a@b.com', 'com.app');
      assert.ok(sent.some((s) => s.message.type === 'start_rtmp_stream'));
      // Absence can only be watched for a while: twenty rounds.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(keepAlives(), 0, 'no keep-alive while the glasses have said nothing');
      await streams.glassesMessage('a@b.com', {
        type: 'rtmp_stream_status',
        streamId,
        status: 'initializing',
      });
      // Rounds run on a timer: waited for in real time (a busy machine runs them late), not in promise turns.
      await eventually('a keep-alive once the glasses answered', () => keepAlives() > 0, 10_000);
    } finally {
      await streams.close();
    }
  });
});
