/**
 * WHEP through a loopback UDP relay that drops 5 % of datagrams each way, announced to the browser through
 * WEBRTC_HOSTS (`127.0.0.1:relayPort`): Chromium NACKs what it lost, the relay's NACK responder resends it
 * from its history, and frames keep decoding.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { silentLogger } from '../../src/shared/logger.ts';
import { freeUdpPort } from '../../src/webrtc/ice-port.ts';
import { buildWhepRoutes } from '../../src/webrtc/whep-routes.ts';
import { WhepServer } from '../../src/webrtc/whep-server.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { FakeWhepSource } from '../helpers/fake-whep-source.ts';
import { readFlvAccessUnits } from '../helpers/flv-access-units.ts';
import { type LossyRelay, startLossyRelay } from '../helpers/udp-lossy-relay.ts';
import { launchWhepBrowser, type WhepBrowser } from '../helpers/whep-browser.ts';

describe('WHEP under 5 % loss each way', { timeout: 180_000 }, () => {
  let source: FakeWhepSource;
  let server: WhepServer;
  let app: FastifyInstance;
  let browser: WhepBrowser;
  let relay: LossyRelay;
  let url: string;

  before(async () => {
    source = new FakeWhepSource(readFlvAccessUnits(await fixturePath('steady-30fps.flv')));
    // The loss relay needs the server's port and the server announces the relay's: pick the server's port
    // first, start the relay toward it, then the server announcing the relay.
    const udpPort = await freeUdpPort('127.0.0.1');
    relay = await startLossyRelay({ targetPort: udpPort, loss: 0.05, seed: 17 });
    server = await WhepServer.start({
      udpPort,
      bindAddress: '127.0.0.1',
      hosts: [{ host: '127.0.0.1', port: relay.port }],
      lookup: (userPath, streamId) => (userPath === 'u' && streamId === 's' ? source : undefined),
      log: silentLogger(),
    });
    app = Fastify();
    await app.register(buildWhepRoutes({ server, corsOrigins: '*' }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/whep/u/s`;
    source.start();
    browser = await launchWhepBrowser();
  });

  after(async () => {
    await browser?.close();
    source?.end();
    server?.close();
    await relay?.close();
    await app?.close();
  });

  it('recovers lost packets with NACK and keeps decoding', async () => {
    const viewer = await browser.play(url);
    assert.equal(viewer.answer.status, 201, viewer.answer.body);
    assert.match(viewer.answer.body, new RegExp(`127\\.0\\.0\\.1 ${relay.port} typ host`));
    const start = await viewer.waitFrames(10, 60_000);
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 8_000)); // watch a while: loss is statistical
    const end = await viewer.stats();
    const seconds = (Date.now() - t0) / 1000;
    const fps = (end.framesDecoded - start.framesDecoded) / seconds;
    console.log(
      JSON.stringify({ fps, seconds, ...end, relayDropped: relay.dropped, relayForwarded: relay.forwarded }),
    );
    assert.ok(relay.dropped.down > 20, 'the relay dropped media');
    assert.ok(end.nackCount > 0, 'the browser asked for retransmissions');
    assert.ok(fps >= 20, `decoding went on at ${fps.toFixed(1)} fps (source 30 fps)`);
    await viewer.close();
  });
});
