/**
 * Re-streaming end to end: an app asks for a managed stream with a restream destination (a local RTMP
 * receiver, the relay's own RtmpServer); the glasses simulator publishes; the relay pushes the clean stream
 * to the receiver and reports `outputs[]`, which the app hears. The receiver goes down and comes back: the
 * app hears `error` then `active` again, the receiver gets the stream again from a keyframe, and the HLS
 * path is untouched (segment cadence unchanged during the outage). Also: the stream's thumbnail URL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DevSystem, startDevSystem } from '../../src/cli/compose.ts';
import type { ManagedStreamStatus } from '../../src/contracts/mentra.ts';
import { FlvTagType, type MediaTag } from '../../src/media/flv-tag.ts';
import type { Publish } from '../../src/rtmp/publish.ts';
import { RtmpServer } from '../../src/rtmp/server.ts';
import { ManagedStreamClient } from '../../src/sdk/client.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { onceEvent } from '../../src/shared/typed-emitter.ts';
import { GlassesSim } from '../../src/sim/glasses-sim.ts';
import { freePort, LOOPBACK_CLOUD_ENV, LOOPBACK_RELAY_ENV } from '../helpers/ports.ts';

interface Receiver {
  server: RtmpServer;
  publishes: { publish: Publish; tags: MediaTag[] }[];
}

async function startReceiver(port: number): Promise<Receiver> {
  const server = new RtmpServer({ log: silentLogger() });
  const r: Receiver = { server, publishes: [] };
  server.on('publish', (publish) => {
    const entry = { publish, tags: [] as MediaTag[] };
    r.publishes.push(entry);
    publish.on('tag', (tag) => entry.tags.push(tag));
  });
  await server.listen(port, '127.0.0.1');
  return r;
}

describe('re-streaming end to end', () => {
  let system: DevSystem;
  let glasses: GlassesSim;
  let port: number;
  let receiver: Receiver;

  before(async () => {
    const config = loadConfig(
      {
        ...LOOPBACK_RELAY_ENV,
        ...LOOPBACK_CLOUD_ENV,
        RELAY_PUBLIC_URL: '127.0.0.1',
        RELAY_ID: 'restream-relay',
        HEARTBEAT_SECONDS: '0.5',
        RELAY_EXPIRY_SECONDS: '5',
        RECONNECT_WINDOW_SECONDS: '2',
        THUMBNAIL_SECONDS: '1',
      },
      { publishAuth: 'off' },
    );
    system = await startDevSystem(config, silentLogger());
    port = await freePort();
    receiver = await startReceiver(port);
    glasses = new GlassesSim({
      cloudUrl: `ws://127.0.0.1:${system.cloud.port}`,
      userId: 'wearer@user.com',
      log: silentLogger(),
    });
    await glasses.connect();
  });

  after(async () => {
    await glasses?.close();
    await system?.close();
    await receiver?.server.close();
  });

  it('pushes to the destination, reports outputs, survives the destination going down and back', async () => {
    const app = new ManagedStreamClient({
      cloudUrl: `http://127.0.0.1:${system.cloud.port}`,
      userId: 'wearer@user.com',
      packageName: 'com.example.restream',
    });
    const heard: ManagedStreamStatus[] = [];
    app.onManagedStreamStatus((s) => heard.push(s));
    const outputStatus = (status: string): Promise<void> =>
      new Promise((resolve) => {
        const check = (): boolean => heard.at(-1)?.outputs?.[0]?.status === status;
        if (check()) return resolve();
        const off = app.onManagedStreamStatus(() => {
          if (check()) {
            off();
            resolve();
          }
        });
      });
    const destination = `rtmp://127.0.0.1:${port}/live/dest/restream1`;
    const urls = await app.startManagedStream({
      restreamDestinations: [{ url: destination, name: 'local' }],
    });
    const active = heard.at(-1)!;
    assert.equal(active.thumbnailUrl, urls.hlsUrl.replace(/index\.m3u8$/, 'thumbnail.jpg'));

    // The relay pushes to the receiver, and the app hears the output as active, its key never shown.
    if (receiver.publishes.length === 0) await onceEvent(receiver.server, 'publish');
    assert.equal(receiver.publishes[0]!.publish.info.key, 'live/dest/restream1');
    await outputStatus('active');
    const output = heard.at(-1)!.outputs![0]!;
    assert.equal(output.name, 'local');
    assert.doesNotMatch(output.url, /restream1/, 'the stream key is redacted');
    const firstTags = receiver.publishes[0]!.tags;
    const firstVideo = firstTags.find((t) => t.type === FlvTagType.Video && !t.isConfig);
    assert.ok(firstVideo?.keyframe, 'the destination starts at a keyframe');

    // The HLS path, watched through the outage.
    const stream = system.relay.streams.streams.find((s) => s.userId === 'wearer@user.com')!;
    const segmentTimes: number[] = [];
    stream.packager.on('segment', () => segmentTimes.push(Date.now()));

    // The destination goes down: the app hears `error`.
    await receiver.server.close();
    await outputStatus('error');
    // Down for two segments: HLS goes on meanwhile.
    await onceEvent(stream.packager, 'segment');
    await onceEvent(stream.packager, 'segment');
    // It comes back on the same port: the pusher reconnects (first retry within 5 s) and starts again.
    receiver = await startReceiver(port);
    await onceEvent(receiver.server, 'publish');
    await outputStatus('active');
    await onceEvent(stream.packager, 'segment');
    const again = receiver.publishes[0]!.tags;
    while (!again.some((t) => t.type === FlvTagType.Video && !t.isConfig)) {
      await onceEvent(stream.packager, 'segment');
    }
    const resumed = again.find((t) => t.type === FlvTagType.Video && !t.isConfig)!;
    assert.ok(resumed.keyframe, 'resumes at a keyframe');
    const restarted = receiver.publishes[0]!.publish.started;
    assert.ok(restarted?.videoConfig && restarted.audioConfig, 'configuration sent again first');

    // HLS never noticed: segments kept coming at their cadence (TARGETDURATION bound with slack).
    while (segmentTimes.length < 4) await onceEvent(stream.packager, 'segment');
    const td = stream.packager.targetDuration;
    const gaps = segmentTimes.slice(1).map((t, i) => (t - segmentTimes[i]!) / 1000);
    assert.ok(gaps.length >= 1, 'segments during the outage');
    assert.ok(Math.max(...gaps) <= 1.5 * td, `segment gaps ${gaps.join(', ')} s (TD ${td})`);
    app.close();
  });
});
