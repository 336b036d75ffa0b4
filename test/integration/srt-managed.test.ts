/**
 * A managed stream over SRT, as current MentraOS firmware does it: with GLASSES_INGEST=srt the cloud sends
 * `start_stream` whose `streamUrl` is the relay's announced SRT base with the stream id (publish token
 * inside) and the stream's passphrase; the simulated glasses publish MPEG-TS over SRT with FFmpeg (libsrt);
 * the relay checks the token before any media and the app hears `active` with an HLS URL that plays.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DevSystem, startDevSystem } from '../../src/cli/compose.ts';
import { ManagedStreamClient } from '../../src/sdk/client.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { GlassesSim } from '../../src/sim/glasses-sim.ts';
import { LOOPBACK_CLOUD_ENV, LOOPBACK_RELAY_ENV } from '../helpers/ports.ts';

describe('managed stream over SRT', () => {
  let system: DevSystem;
  let glasses: GlassesSim;

  before(async () => {
    const config = loadConfig(
      {
        ...LOOPBACK_RELAY_ENV,
        ...LOOPBACK_CLOUD_ENV,
        RELAY_PUBLIC_URL: '127.0.0.1',
        RELAY_ID: 'srt-relay',
        PUBLISH_AUTH: 'token',
        GLASSES_INGEST: 'srt',
        SRT_PASSPHRASE_SECRET: 'srt-managed-passphrase-secret-0123456789',
        HEARTBEAT_SECONDS: '0.5',
        RELAY_EXPIRY_SECONDS: '3',
      },
      { publishAuth: 'off' },
    );
    system = await startDevSystem(config, silentLogger());
  });

  after(async () => {
    await glasses?.close();
    await system?.close();
  });

  it('start_stream hands out an encrypted SRT URL; the glasses publish over SRT; the app gets a playable URL', async () => {
    glasses = new GlassesSim({
      cloudUrl: `ws://127.0.0.1:${system.cloud.port}`,
      userId: 'srt@user.com',
      commands: 'stream',
      log: silentLogger(),
    });
    const urls: string[] = [];
    glasses.on('message', (m) => {
      if (m.type === 'start_rtmp_stream') urls.push(m.rtmpUrl);
    });
    await glasses.connect();
    const app = new ManagedStreamClient({
      cloudUrl: `http://127.0.0.1:${system.cloud.port}`,
      userId: 'srt@user.com',
      packageName: 'com.example.srt',
    });
    const stream = await app.startManagedStream();
    assert.match(
      urls[0] ?? '',
      /^srt:\/\/127\.0\.0\.1:\d+\?streamid=publish%3Alive%2Fsrt%2540user\.com%2F\w+%3Ftoken%3D[^&]+&passphrase=[\w-]{32}$/,
    );
    const relayStream = system.relay.streams.streams.find((s) => s.streamId === stream.streamId);
    assert.equal(relayStream?.source?.info.protocol, 'srt', 'the publish came over SRT');
    const playlist = await fetch(stream.hlsUrl);
    assert.equal(playlist.status, 200);
    assert.match(await playlist.text(), /#EXTINF/);
    app.close();
  });
});
