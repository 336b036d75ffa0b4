/**
 * WHEP playback in Debian's Chromium from a stream that replays a real fixture (H.264 + AAC, 30 fps, 2 s
 * GOPs) in real time: the browser decodes frames, its first frame comes fast, and a DELETE ends the session.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { ChildReaper } from '../../src/pipeline/child-reaper.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { ffmpegOpusEncoder } from '../../src/webrtc/opus-encoder.ts';
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
  const reaper = new ChildReaper();

  before(async () => {
    source = new FakeWhepSource(readFlvAccessUnits(await fixturePath('steady-30fps.flv')));
    server = await WhepServer.start({
      udpPort: 0,
      bindAddress: '127.0.0.1',
      hosts: [{ host: '127.0.0.1' }],
      lookup: (userPath, streamId) => (userPath === 'u' && streamId === 's' ? source : undefined),
      log: silentLogger(),
      opus: ffmpegOpusEncoder({ ffmpegPath: 'ffmpeg', reaper, log: silentLogger() }),
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
    reaper.close();
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

  it('plays the AAC audio as Opus from one FFmpeg that runs only while someone listens', async () => {
    const viewer = await browser.play(`${base}/whep/u/s`, { audio: true });
    assert.equal(viewer.answer.status, 201, viewer.answer.body);
    assert.match(viewer.answer.body, /a=rtpmap:\d+ opus\/48000/i);
    const second = await browser.play(`${base}/whep/u/s`, { audio: true });
    await viewer.waitFrames(15, 30_000);
    assert.equal(server.encoderCount, 1, 'one encoder for the stream, whatever the viewers');
    assert.equal(reaper.size, 1);
    const deadline = Date.now() + 20_000;
    let stats = await viewer.stats();
    while (stats.audioPacketsReceived < 50 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      stats = await viewer.stats();
    }
    assert.ok(stats.audioPacketsReceived >= 50, JSON.stringify(stats));
    await viewer.close();
    assert.equal(server.encoderCount, 1);
    await second.close();
    assert.equal(server.encoderCount, 0);
    const gone = Date.now() + 10_000;
    while (reaper.size > 0 && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
    assert.equal(reaper.size, 0, 'the encoder exited with its last listener');
  });

  it('closes its sessions when the stream ends, and refuses new offers', async () => {
    const viewer = await browser.play(`${base}/whep/u/s`, { audio: true });
    assert.equal(viewer.answer.status, 201, viewer.answer.body);
    await viewer.waitFrames(5, 30_000);
    source.end();
    assert.equal(server.sessionCount, 0);
    assert.equal(server.outputCount, 0);
    const deadline = Date.now() + 20_000;
    let state = (await viewer.stats()).connectionState;
    while (state === 'connected' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      state = (await viewer.stats()).connectionState;
    }
    assert.notEqual(state, 'connected', 'the browser saw the session end');
    const again = await fetch(`${base}/whep/u/s`, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: viewer.answer.body,
    });
    assert.equal(again.status, 404);
    await viewer.close({ delete: false });
    const gone = Date.now() + 10_000;
    while (reaper.size > 0 && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
    assert.equal(reaper.size, 0);
  });
});
