/**
 * A managed stream over WHIP, as current MentraOS firmware does it: relays announce their WHIP base at
 * register; with GLASSES_INGEST=whip the cloud sends `start_stream` whose `streamUrl` is the relay's
 * `http://…/whip/live/{userId}/{streamId}?token=…`; the simulated glasses publish H.264 + Opus over WebRTC
 * (FFmpeg's RTP through node-datachannel, non-trickle, no auth header); the relay checks the token before any
 * ICE and the app hears `active` with an HLS URL that plays. Stopping the stream DELETEs the WHIP session.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DevSystem, startDevSystem } from '../../src/cli/compose.ts';
import { ManagedStreamClient } from '../../src/sdk/client.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { GlassesSim } from '../../src/sim/glasses-sim.ts';
import { LOOPBACK_CLOUD_ENV, LOOPBACK_RELAY_ENV } from '../helpers/ports.ts';
import { eventually } from '../helpers/relay-process.ts';

describe('managed stream over WHIP', { timeout: 120_000 }, () => {
  let system: DevSystem;
  let glasses: GlassesSim;

  before(async () => {
    const config = loadConfig(
      {
        ...LOOPBACK_RELAY_ENV,
        ...LOOPBACK_CLOUD_ENV,
        RELAY_PUBLIC_URL: '127.0.0.1',
        RELAY_ID: 'whip-relay',
        PUBLISH_AUTH: 'token',
        GLASSES_INGEST: 'whip',
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

  it('start_stream hands out a WHIP URL with its token; the glasses publish WHIP; the app gets a playable URL', async () => {
    glasses = new GlassesSim({
      cloudUrl: `ws://127.0.0.1:${system.cloud.port}`,
      userId: 'whip@user.com',
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
      userId: 'whip@user.com',
      packageName: 'com.example.whip',
    });
    const stream = await app.startManagedStream();
    assert.match(
      urls[0] ?? '',
      /^http:\/\/127\.0\.0\.1:\d+\/whip\/live\/whip@user\.com\/\w+\?token=eyJ[\w-]+\.[\w-]+\.[\w-]+$/,
    );
    // The token is checked before any ICE: the same URL without it is refused.
    const bare = await fetch(urls[0]!.replace(/\?token=.*$/, ''), {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: 'v=0\r\n',
    });
    assert.equal(bare.status, 401);
    const relayStream = system.relay.streams.streams.find((s) => s.streamId === stream.streamId);
    assert.equal(relayStream?.source?.info.protocol, 'whip', 'the publish came over WHIP');
    assert.match(relayStream?.decision ?? '', /^copy: H\.264\/Opus/);
    const playlist = await fetch(stream.hlsUrl);
    assert.equal(playlist.status, 200);
    assert.match(await playlist.text(), /#EXTINF/);
    await app.stopManagedStream();
    app.close();
    await eventually('the WHIP session gone', () => system.relay.webrtc.whip.sessionCount === 0, 30_000);
  });
});
