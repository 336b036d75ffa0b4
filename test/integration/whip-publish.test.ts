/**
 * WHIP ingest, first cut: Debian Chromium's fake camera publishes H.264 + Opus, non-trickle as the glasses
 * do, to a WhipSession behind a test route; the session yields a start with an avcC built from the in-band
 * SPS/PPS, then video access units (a keyframe first, NAL units well formed) and Opus audio.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { type Browser, chromium } from 'playwright-core';
import type { AccessUnit, SourceStart } from '../../src/media/access-unit.ts';
import { nalUnits, parseAvcConfig } from '../../src/media/nal.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { IceUdpPort } from '../../src/webrtc/ice-port.ts';
import { chooseWhipCodecs, parseOffer } from '../../src/webrtc/sdp.ts';
import { WhipSession } from '../../src/webrtc/whip-session.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../helpers/browser.ts';

const PAGE = `<!doctype html><html><body><script>
window.publish = async (url) => {
  const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480, frameRate: 15 }, audio: true });
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.pc = pc;
  for (const track of media.getTracks()) {
    const t = pc.addTransceiver(track, { direction: 'sendonly' });
    if (track.kind === 'video') {
      const h264 = RTCRtpSender.getCapabilities('video').codecs.filter((c) => c.mimeType === 'video/H264');
      t.setCodecPreferences(h264);
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((r) => { pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') r(); }); setTimeout(r, 5000); });
  }
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp });
  const body = await res.text();
  if (res.status === 201) await pc.setRemoteDescription({ type: 'answer', sdp: body });
  return res.status + ' ' + (res.status === 201 ? '' : body);
};
</script></body></html>`;

describe('WHIP publish from Chromium (first cut)', { timeout: 180_000 }, () => {
  let app: FastifyInstance;
  let ice: IceUdpPort;
  let browser: Browser;
  let base: string;
  const sessions: WhipSession[] = [];

  before(async () => {
    ice = await IceUdpPort.open(0, '127.0.0.1', silentLogger());
    app = Fastify();
    app.addContentTypeParser('application/sdp', { parseAs: 'string' }, (_r, body, done) => done(null, body));
    app.get('/', async (_req, reply) => reply.type('text/html').send(PAGE));
    app.post('/whip', async (req, reply) => {
      const offer = String(req.body);
      const session = new WhipSession({
        info: {
          id: sessions.length + 1,
          key: 'live/u/s',
          userId: 'u',
          streamId: 's',
          params: {},
          remoteAddress: req.ip,
          startedAt: Date.now(),
          protocol: 'whip',
        },
        offer,
        choice: chooseWhipCodecs(parseOffer(offer)),
        udpPort: ice.port,
        bindAddress: '127.0.0.1',
        hosts: [{ address: '127.0.0.1' }],
        log: silentLogger(),
      });
      sessions.push(session);
      return reply
        .code(201)
        .header('location', '/whip/1')
        .type('application/sdp')
        .send(await session.open());
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [
        ...CHROMIUM_ARGS,
        '--allow-loopback-in-peer-connection',
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
      ],
    });
  });

  after(async () => {
    await browser?.close();
    for (const s of sessions) s.close();
    await app?.close();
    ice?.close();
  });

  it('yields a start, then H.264 access units from a keyframe on, and Opus', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${base}/`);
    const pending = new Promise<{ start: SourceStart; units: AccessUnit[] }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no media in 60 s')), 60_000);
      const check = (): void => {
        const s = sessions[0];
        if (!s) return void setTimeout(check, 50);
        const units: AccessUnit[] = [];
        s.on('au', (au) => {
          units.push(au);
          if (
            units.filter((u) => u.track === 'video').length >= 30 &&
            units.some((u) => u.track === 'audio')
          ) {
            clearTimeout(timer);
            resolve({ start: s.started!, units });
          }
        });
      };
      check();
    });
    const status = await page.evaluate(`publish(${JSON.stringify(`${base}/whip`)})`);
    assert.equal(String(status).trim(), '201');
    const { start, units } = await pending;
    assert.ok(start.video && start.video.kind === 'video' && start.video.codec === 'h264');
    const avc = parseAvcConfig((start.video as { record: Buffer }).record);
    assert.equal(avc.width, 640);
    assert.equal(avc.height, 480);
    const video = units.filter((u) => u.track === 'video');
    assert.equal(video[0]!.keyframe, true);
    for (const au of video) assert.ok(nalUnits(au.data).length > 0);
    for (let i = 1; i < video.length; i++) assert.ok(video[i]!.dts >= video[i - 1]!.dts);
    assert.ok(units.some((u) => u.track === 'audio' && u.data.length > 0));
    sessions[0]!.close();
    assert.equal(sessions[0]!.ended?.kind, 'unpublish');
  });
});
