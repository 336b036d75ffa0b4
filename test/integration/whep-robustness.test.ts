/**
 * WHEP against hostile and careless peers: 10^4 junk datagrams (random bytes, STUN binding requests for
 * sessions that do not exist, RTP/RTCP and DTLS look-alikes) on the shared UDP port while Chromium plays →
 * it keeps playing and nothing crashes; 200 connect/disconnect cycles of libdatachannel viewers (lighter than
 * 200 browser pages on a loaded machine; DELETE, or the peer just going away) → no session, output, encoder,
 * FFmpeg or file descriptor left behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
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

const STUN_MAGIC = 0x2112a442;

/** One junk datagram of a kind chosen by `i`. */
function junk(i: number): Buffer {
  switch (i % 5) {
    case 0:
      return randomBytes(1 + (i % 1400));
    case 1: {
      // A STUN binding request naming a session that does not exist.
      const user = Buffer.from(`${randomBytes(4).toString('hex')}:${randomBytes(4).toString('hex')}`);
      const attr = Buffer.alloc(4 + user.length + ((4 - (user.length % 4)) % 4));
      attr.writeUInt16BE(0x0006, 0);
      attr.writeUInt16BE(user.length, 2);
      user.copy(attr, 4);
      const header = Buffer.alloc(20);
      header.writeUInt16BE(0x0001, 0);
      header.writeUInt16BE(attr.length, 2);
      header.writeUInt32BE(STUN_MAGIC, 4);
      randomBytes(12).copy(header, 8);
      return Buffer.concat([header, attr]);
    }
    case 2: {
      // A STUN header that lies about its length.
      const b = randomBytes(20 + (i % 64));
      b.writeUInt16BE(0x0001, 0);
      b.writeUInt16BE(0xfffc, 2);
      b.writeUInt32BE(STUN_MAGIC, 4);
      return b;
    }
    case 3: {
      const b = randomBytes(12 + (i % 1200));
      b[0] = 0x80;
      b[1] = i % 2 ? 0xc8 : 0x66; // RTCP SR or RTP PT 102
      return b;
    }
    default: {
      const b = randomBytes(13 + (i % 300));
      b[0] = 22; // DTLS handshake record
      b[1] = 0xfe;
      b[2] = 0xfd;
      return b;
    }
  }
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('WHEP robustness', { timeout: 300_000 }, () => {
  let source: FakeWhepSource;
  let server: WhepServer;
  let app: FastifyInstance;
  let url: string;
  let browser: WhepBrowser;
  const reaper = new ChildReaper();

  before(async () => {
    source = new FakeWhepSource(readFlvAccessUnits(await fixturePath('steady-9fps.flv')));
    server = await WhepServer.start({
      udpPort: 0,
      bindAddress: '127.0.0.1',
      hosts: [{ host: '127.0.0.1' }],
      lookup: (userPath, streamId) => (userPath === 'u' && streamId === 's' ? source : undefined),
      log: silentLogger(),
      opus: ffmpegOpusEncoder({ ffmpegPath: 'ffmpeg', reaper, log: silentLogger() }),
      connectTimeoutMs: 10_000,
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
    await app?.close();
    reaper.close();
  });

  it('drops 10^4 hostile datagrams on the UDP port while a viewer keeps playing', async () => {
    const viewer = await browser.play(url);
    assert.equal(viewer.answer.status, 201, viewer.answer.body);
    await viewer.waitFrames(5, 30_000);
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    try {
      for (let i = 0; i < 10_000; i++) {
        await new Promise<void>((resolve, reject) =>
          socket.send(junk(i), server.udpPort, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
        );
      }
    } finally {
      socket.close();
    }
    const { framesDecoded } = await viewer.stats();
    await viewer.waitFrames(framesDecoded + 9, 30_000);
    assert.equal(await viewer.close(), 200);
    assert.equal(server.sessionCount, 0);
  });

  it('leaves nothing behind after 200 connect/disconnect cycles', async () => {
    const fdsBefore = openFds();
    const CYCLES = 200;
    await browser.cycles(url, CYCLES, 4);
    const deadline = Date.now() + 30_000;
    while ((server.sessionCount > 0 || reaper.size > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(server.sessionCount, 0, 'sessions');
    assert.equal(server.outputCount, 0, 'stream outputs');
    assert.equal(server.encoderCount, 0, 'Opus encoders');
    assert.equal(reaper.size, 0, 'FFmpeg processes');
    assert.equal(source.listenerCount('au'), 0, 'the stream is no longer listened to');
    // Closed peer connections give their sockets back once their native objects are collected and their
    // close finished (measured: 30-60 UDP sockets right after 200 cycles, none 20 s and a GC later).
    setFlagsFromString('--expose_gc');
    const gc = runInNewContext('gc') as () => void;
    let fdsAfter = openFds();
    const fdDeadline = Date.now() + 60_000;
    while (fdsAfter > fdsBefore + 4 && Date.now() < fdDeadline) {
      gc();
      await new Promise((r) => setTimeout(r, 1000));
      fdsAfter = openFds();
    }
    assert.ok(fdsAfter <= fdsBefore + 4, `file descriptors: ${fdsBefore} before, ${fdsAfter} after`);
  });
});
