/**
 * WHEP playback in Debian's Chromium from a stream that replays a real fixture (H.264 + AAC, 30 fps, 2 s
 * GOPs) in real time: the browser decodes frames, its first frame comes fast, and a DELETE ends the session.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { silentLogger } from '../../src/shared/logger.ts';
import { buildWhepRoutes } from '../../src/webrtc/whep-routes.ts';
import { WhepServer } from '../../src/webrtc/whep-server.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { FakeWhepSource } from '../helpers/fake-whep-source.ts';
import { readFlvAccessUnits } from '../helpers/flv-access-units.ts';
import { launchWhepBrowser, type WhepBrowser } from '../helpers/whep-browser.ts';

describe('WHEP playback in Chromium', { timeout: 180_000 }, () => {
  let source: FakeWhepSource;
  let server: WhepServer;
  let app: FastifyInstance;
  let browser: WhepBrowser;
  let base: string;

  before(async () => {
    source = new FakeWhepSource(readFlvAccessUnits(await fixturePath('steady-30fps.flv')));
    server = await WhepServer.start({
      udpPort: 0,
      bindAddress: '127.0.0.1',
      hosts: [{ host: '127.0.0.1' }],
      lookup: (userPath, streamId) => (userPath === 'u' && streamId === 's' ? source : undefined),
      log: silentLogger(),
    });
    app = Fastify();
    await app.register(buildWhepRoutes({ server, corsOrigins: '*' }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    source.start();
    browser = await launchWhepBrowser();
  });

  after(async () => {
    await browser?.close();
    source?.end();
    server?.close();
    await app?.close();
  });

  it('decodes frames, starts fast, and ends on DELETE', async () => {
    await new Promise((r) => setTimeout(r, 700)); // be mid-GOP: the fast start has frames to replay
    const viewer = await browser.play(`${base}/whep/u/s`);
    assert.equal(viewer.answer.status, 201, viewer.answer.body);
    assert.match(viewer.answer.location ?? '', /^\/whep\/u\/s\/[A-Za-z0-9_-]{24}$/);
    const s1 = await viewer.waitFrames(30, 30_000);
    const s2 = await viewer.waitFrames(s1.framesDecoded + 30, 30_000);
    console.log(JSON.stringify(s2));
    assert.equal(server.sessionCount, 1);
    assert.equal(await viewer.close({ delete: true }), 200);
    assert.equal(server.sessionCount, 0);
    assert.equal(server.outputCount, 0);
  });
});
