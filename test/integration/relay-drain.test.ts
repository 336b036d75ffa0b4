/**
 * Graceful drain (what SIGTERM does to a relay): new publishes are refused, the cloud hears `draining` and
 * gives the relay nothing new, the live stream runs on until its publisher is done, every event reaches the
 * cloud, the relay deregisters, and no FFmpeg is left.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startRelayNode } from '../../src/cli/compose.ts';
import { startCloud } from '../../src/cloud/cloud.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { FlvPublishError, publishFlv } from '../helpers/flv-publisher.ts';
import { LOOPBACK_CLOUD_ENV, LOOPBACK_RELAY_ENV } from '../helpers/ports.ts';

const RELAY_SECRET = 'drain-relay-secret-0123456789';

describe('graceful drain', () => {
  it('refuses new publishes, reports draining, lets the live stream finish, then leaves cleanly', async () => {
    const env = {
      ...LOOPBACK_CLOUD_ENV,
      ...LOOPBACK_RELAY_ENV,
      RELAY_ID: 'drainer',
      RELAY_PUBLIC_URL: '127.0.0.1',
      HEARTBEAT_SECONDS: '0.3',
      RELAY_EXPIRY_SECONDS: '5',
      RECONNECT_WINDOW_SECONDS: '30',
      DRAIN_TIMEOUT_SECONDS: '20',
    };
    const cloud = await startCloud(loadConfig(env, { publishAuth: 'off' }), silentLogger(), {
      relaySecret: RELAY_SECRET,
      publishTokenSecret: null,
      userTokenSecret: null,
    });
    const config = loadConfig(
      { ...env, CLOUD_API_URL: `http://127.0.0.1:${cloud.port}` },
      { publishAuth: 'off' },
    );
    const node = await startRelayNode(config, silentLogger(), {
      relaySecret: RELAY_SECRET,
      publishTokenSecret: null,
    });
    try {
      assert.deepEqual(
        (await cloud.store.liveRelays(Date.now())).map((r) => r.relayId),
        ['drainer'],
      );
      const file = await fixturePath('glasses-854x480.flv');
      const live = publishFlv(file, { port: node.relay.rtmpPort, user: 'u', stream: 'live', toMs: 5000 });
      await live.started;
      const started = Date.now();
      const drained = node.drain();
      assert.equal(node.relay.draining, true);
      assert.equal(node.relay.ready(), false);
      const late = publishFlv(file, { port: node.relay.rtmpPort, user: 'u', stream: 'late', toMs: 1000 });
      await assert.rejects(
        late.done,
        (e: unknown) => e instanceof FlvPublishError && e.status === 'NetStream.Publish.Unauthorized',
      );
      // The cloud hears `draining` at once (the drain sends a heartbeat): nothing new is placed here.
      assert.equal(await cloud.store.place('x@y.com/new', { now: Date.now(), reservationTtlMs: 1000 }), null);
      await live.done; // the live publish was not cut
      await drained;
      assert.ok(Date.now() - started < 15_000, 'the drain ended when the stream did, not at the timeout');
      assert.equal(node.relay.reaper.size, 0, 'no FFmpeg left');
      assert.equal(node.agent.queued, 0, 'every event reached the cloud');
      assert.deepEqual(await cloud.store.liveRelays(Date.now()), [], 'deregistered');
    } finally {
      await node.close();
      await cloud.close();
    }
  });
});
