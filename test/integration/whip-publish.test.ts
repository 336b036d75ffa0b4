/**
 * WHIP sessions against a real publisher: Debian Chromium's fake camera publishes H.264 + Opus, non-trickle
 * as the glasses do, through the WHIP routes and WhipServer (no relay around them), over a loopback UDP
 * proxy announced as the ICE candidate (as WEBRTC_HOSTS would):
 * - clean: a start with the avcC from the in-band SPS/PPS, a keyframe first, Opus; our receiver reports
 *   reach the publisher (it measures a round-trip time from their LSR/DLSR); an output's keyframe request
 *   is a PLI the publisher counts, answered by a keyframe;
 * - 5 % loss each way: the publisher receives NACKs and retransmits, the jitter buffer recovers packets,
 *   frames keep coming whole;
 * - takeover by a second POST, DELETE as a disconnect, and a peer gone silent ends as a disconnect;
 * - 10^4 hostile datagrams (random, STUN-, RTP-, RTCP- and DTLS-shaped) at the ICE port during a publish: the
 *   publish goes on.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AccessUnit, SourceStart } from '../../src/media/access-unit.ts';
import { nalUnits, parseAvcConfig } from '../../src/media/nal.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { IceUdpPort } from '../../src/webrtc/ice-port.ts';
import { buildWhipRoutes } from '../../src/webrtc/whip-routes.ts';
import { WhipServer } from '../../src/webrtc/whip-server.ts';
import type { WhipSession } from '../../src/webrtc/whip-session.ts';
import { UdpLossProxy } from '../helpers/udp-loss-proxy.ts';
import { launchWhipBrowser, type WhipBrowser } from '../helpers/whip-browser.ts';

const TOKEN = 'good-token';

/** Resolves when `predicate` holds, polling (getStats and counters have no events); rejects after `ms`. */
async function until<T>(what: string, ms: number, probe: () => Promise<T> | T, ok: (v: T) => boolean) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function collect(session: WhipSession): { units: AccessUnit[]; start: Promise<SourceStart> } {
  const units: AccessUnit[] = [];
  session.on('au', (au) => units.push(au));
  const start = session.started
    ? Promise.resolve(session.started)
    : new Promise<SourceStart>((resolve) => session.once('start', resolve));
  return { units, start };
}

describe('WHIP publish from Chromium', { timeout: 240_000 }, () => {
  let app: FastifyInstance;
  let ice: IceUdpPort;
  let proxy: UdpLossProxy;
  let server: WhipServer;
  let browser: WhipBrowser;
  let base: string;
  const published: WhipSession[] = [];
  const waiters: Array<(s: WhipSession) => void> = [];
  const nextSession = (): Promise<WhipSession> => new Promise((resolve) => waiters.push(resolve));

  before(async () => {
    ice = await IceUdpPort.open(0, '127.0.0.1', silentLogger());
    proxy = new UdpLossProxy({ port: ice.port }, { upLoss: 0, downLoss: 0, jitterMs: 0, seed: 7 });
    const proxyPort = await proxy.listen();
    server = new WhipServer({
      ice: {
        udpPort: ice.port,
        bindAddress: '127.0.0.1',
        hosts: [{ address: '127.0.0.1', port: proxyPort }],
      },
      authorize: (r) => (r.token === TOKEN ? { allow: true } : { allow: false, reason: 'bad token' }),
      onPublish: (s) => {
        published.push(s);
        waiters.shift()?.(s);
      },
      log: silentLogger(),
      peerTimeoutMs: 2_000,
    });
    app = Fastify();
    await app.register(buildWhipRoutes({ server, corsOrigins: '*' }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    browser = await launchWhipBrowser();
  });

  after(async () => {
    await browser?.close();
    server?.close();
    await app?.close();
    await proxy?.close();
    ice?.close();
  });

  const url = (stream: string): string => `${base}/whip/live/u@example.com/${stream}?token=${TOKEN}`;

  it('yields H.264 from a keyframe and Opus; receiver reports and PLIs reach the publisher', async () => {
    const session = nextSession();
    const publisher = await browser.publish(url('clean'), { hideCandidates: true });
    assert.equal(publisher.post.status, 201, publisher.post.body);
    assert.match(publisher.post.location ?? '', /^\/whip\/live\/u%40example\.com\/clean\/[A-Za-z0-9_-]{24}$/);
    const s = await session;
    const { units, start } = collect(s);
    const started = await start;
    assert.ok(started.video?.kind === 'video' && started.video.codec === 'h264');
    const avc = parseAvcConfig((started.video as { record: Buffer }).record);
    assert.equal(avc.width, 640);
    assert.equal(avc.height, 480);
    assert.equal(started.audio?.kind === 'audio' && started.audio.codec, 'opus');
    await until(
      '30 video frames and audio',
      60_000,
      () => units,
      (u) => u.filter((x) => x.track === 'video').length >= 30 && u.some((x) => x.track === 'audio'),
    );
    const video = units.filter((u) => u.track === 'video');
    for (const au of video) assert.ok(nalUnits(au.data).length > 0);
    for (let i = 1; i < video.length; i++) assert.ok(video[i]!.dts >= video[i - 1]!.dts);

    // Our receiver reports: Chromium computes a round-trip time only from a report that echoes its SR.
    const stats = await until(
      'a receiver report with RTT',
      30_000,
      () => publisher.stats(),
      (st) => st.remote !== null && st.remote.roundTripTime !== null,
    );
    assert.match(stats.codec ?? '', /H264/i);

    // An output asks for a keyframe: the publisher counts a PLI and a keyframe follows.
    const keyframesBefore = units.filter((u) => u.keyframe && u.track === 'video').length;
    const pliBefore = stats.pliCount;
    await new Promise((r) => setTimeout(r, 1_100)); // past the request rate limit of the start-up PLI
    s.requestKeyframe();
    await until(
      'a PLI counted',
      20_000,
      () => publisher.stats(),
      (st) => st.pliCount > pliBefore,
    );
    await until(
      'a keyframe after the PLI',
      20_000,
      () => units,
      (u) => u.filter((x) => x.keyframe && x.track === 'video').length > keyframesBefore,
    );

    assert.equal(await publisher.close(), 200);
    assert.equal(s.ended?.kind, 'disconnect');
    assert.equal(server.sessionCount, 0);
  });

  it('NACKs under 5 % loss each way: retransmissions fill the holes, frames come whole', async () => {
    const session = nextSession();
    const publisher = await browser.publish(url('lossy'), { hideCandidates: true });
    assert.equal(publisher.post.status, 201, publisher.post.body);
    const s = await session;
    const { units, start } = collect(s);
    // The loss starts once media flows: what is measured is NACK, not how ICE and DTLS retry their handshake
    // under loss (on a loaded machine that took longer than the test waits).
    await start;
    const before = units.length;
    proxy.setProfile({ upLoss: 0.05, downLoss: 0.05, jitterMs: 4 });
    await until(
      '150 video frames under loss',
      90_000,
      () => units.slice(before),
      (u) => u.filter((x) => x.track === 'video').length >= 150,
    );
    const stats = await publisher.stats();
    proxy.setProfile({ upLoss: 0, downLoss: 0, jitterMs: 0 });
    const c = s.counters;
    assert.ok(stats.nackCount > 0, `the publisher got no NACK: ${JSON.stringify(stats)}`);
    assert.ok(stats.retransmittedPacketsSent > 0, 'nothing was retransmitted');
    assert.ok(c.video.nacked > 0 && c.video.recovered > 0, JSON.stringify(c));
    // Most holes are filled: far fewer given up than went missing.
    assert.ok(c.video.lost < c.video.missing / 2, JSON.stringify(c));
    for (const au of units.filter((u) => u.track === 'video')) assert.ok(nalUnits(au.data).length > 0);
    await publisher.close();
  });

  it('a second POST takes over; a silent peer ends as a disconnect', async () => {
    const first = nextSession();
    const a = await browser.publish(url('takeover'), { hideCandidates: true });
    assert.equal(a.post.status, 201);
    const sa = await first;
    const second = nextSession();
    const b = await browser.publish(url('takeover'), { hideCandidates: true });
    assert.equal(b.post.status, 201);
    const sb = await second;
    assert.equal(sa.ended?.kind, 'takeover');
    assert.equal(sb.ended, null);
    assert.equal(server.counters.takeovers, 1);
    await a.close({ delete: false });
    // The link dies without a DELETE: nothing reaches the relay any more.
    await until(
      'media from the second',
      30_000,
      () => sb.started,
      (x) => x !== null,
    );
    proxy.setProfile({ upLoss: 1, downLoss: 1 });
    const ended = await new Promise<string>((resolve) => sb.once('end', (r) => resolve(r.kind)));
    proxy.setProfile({ upLoss: 0, downLoss: 0 });
    assert.equal(ended, 'disconnect');
    await b.close({ delete: false });
    assert.equal(server.sessionCount, 0);
  });

  it('refuses a missing or wrong token with 401 before any peer connection exists', async () => {
    const publisher = await browser.publish(`${base}/whip/live/u@example.com/nope?token=wrong`);
    assert.equal(publisher.post.status, 401);
    const bare = await browser.publish(`${base}/whip/live/u@example.com/nope`);
    assert.equal(bare.post.status, 401);
    const bearer = await browser.publish(`${base}/whip/live/u@example.com/bearer`, { bearer: TOKEN });
    assert.equal(bearer.post.status, 201);
    assert.equal(server.counters.refused, 2);
    await publisher.close();
    await bare.close();
    await bearer.close();
  });

  it('10^4 hostile datagrams at the ICE port leave a live publish running', async () => {
    const session = nextSession();
    const publisher = await browser.publish(url('hostile'), { hideCandidates: true });
    assert.equal(publisher.post.status, 201);
    const s = await session;
    const { units } = collect(s);
    await until(
      'media',
      30_000,
      () => units.length,
      (n) => n > 20,
    );
    const socket = dgram.createSocket('udp4');
    let seed = 5;
    const random = (n: number): Buffer => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        b[i] = seed >> 16;
      }
      return b;
    };
    const shapes = [
      (b: Buffer) => b, // noise
      (b: Buffer) => Buffer.concat([Buffer.from([0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42]), b]), // STUN binding
      (b: Buffer) => Buffer.concat([Buffer.from([0x80, 96]), b]), // RTP
      (b: Buffer) => Buffer.concat([Buffer.from([0x81, 205, 0, 3]), b]), // RTCP NACK
      (b: Buffer) => Buffer.concat([Buffer.from([22, 0xfe, 0xfd]), b]), // DTLS handshake
    ];
    for (let i = 0; i < 10_000; i++) {
      const datagram = shapes[i % shapes.length]!(random(20 + (i % 200)));
      await new Promise<void>((resolve) => socket.send(datagram, ice.port, '127.0.0.1', () => resolve()));
    }
    socket.close();
    const before = units.length;
    await until(
      'media after the flood',
      30_000,
      () => units.length,
      (n) => n > before + 30,
    );
    assert.equal(s.ended, null);
    await publisher.close();
  });
});
