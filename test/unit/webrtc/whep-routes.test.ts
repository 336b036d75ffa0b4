/**
 * WHEP signalling through inject(): every refusal is a clear 4xx with a stable code in its body, CORS on
 * every answer, and a good offer gets 201 + Location + a complete answer announcing WEBRTC_HOSTS.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AccessUnit } from '../../../src/media/access-unit.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { TypedEmitter } from '../../../src/shared/typed-emitter.ts';
import { buildWhepRoutes } from '../../../src/webrtc/whep-routes.ts';
import { WhepServer } from '../../../src/webrtc/whep-server.ts';
import type { WhepSourceEvents, WhepSourceStream } from '../../../src/webrtc/whep-source.ts';
import { fixturePath } from '../../fixtures/generate.ts';
import { type FlvMedia, readFlvAccessUnits } from '../../helpers/flv-access-units.ts';
import { makeOffer } from '../../helpers/webrtc-client.ts';

class StaticSource extends TypedEmitter<WhepSourceEvents> implements WhepSourceStream {
  constructor(
    readonly media: FlvMedia,
    readonly gop: AccessUnit[],
  ) {
    super();
  }
  tracks() {
    return { video: this.media.video, audio: this.media.audio };
  }
  recentGop() {
    return this.gop;
  }
}

/** Drops the m-section whose m-line starts with `m=${kind}`. */
function withoutSection(sdp: string, kind: string): string {
  const sections = sdp.split(/\r\n(?=m=)/);
  return sections.filter((s) => !s.startsWith(`m=${kind}`)).join('\r\n');
}

describe('WHEP routes', () => {
  let app: FastifyInstance;
  let server: WhepServer;
  let offer: { sdp: string; close: () => void };
  let audioOffer: { sdp: string; close: () => void };
  const sources = new Map<string, WhepSourceStream>();

  before(async () => {
    const media = readFlvAccessUnits(await fixturePath('steady-9fps.flv'));
    const firstKey = media.units.findIndex((u) => u.track === 'video' && u.keyframe);
    const gop = media.units.slice(firstKey, firstKey + 20);
    sources.set('u/s', new StaticSource(media, gop));
    // B-frames: presentation order differs from decode order.
    const videoGop = gop.filter((u) => u.track === 'video');
    const reordered = videoGop.map((u, i) => ({ ...u, pts: u.dts + (i % 2 === 1 ? 200 : 0) }));
    sources.set('u/bframes', new StaticSource(media, reordered));
    sources.set('u/novideo', new StaticSource({ ...media, video: null }, []));
    server = await WhepServer.start({
      udpPort: 0,
      bindAddress: '127.0.0.1',
      hosts: [{ host: '127.0.0.1' }, { host: 'localhost', port: 40000 }],
      lookup: (userPath, streamId) => sources.get(`${userPath}/${streamId}`),
      log: silentLogger(),
      maxSessions: 2,
    });
    app = Fastify();
    await app.register(buildWhepRoutes({ server, corsOrigins: ['https://app.example'] }));
    offer = await makeOffer();
    audioOffer = await makeOffer({ audio: true });
  });

  after(async () => {
    offer?.close();
    audioOffer?.close();
    server?.close();
    await app?.close();
  });

  const post = (url: string, body: string, type = 'application/sdp') =>
    app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': type, origin: 'https://app.example' },
      payload: body,
    });

  it('answers the CORS preflight with the methods and headers a WHEP player needs', async () => {
    const res = await app.inject({
      method: 'OPTIONS',
      url: '/whep/u/s',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(String(res.headers['access-control-allow-methods']), /POST/);
    assert.match(String(res.headers['access-control-allow-headers']), /content-type/);
    assert.match(String(res.headers['access-control-expose-headers']), /location/);
    const other = await app.inject({
      method: 'OPTIONS',
      url: '/whep/u/s',
      headers: { origin: 'https://evil' },
    });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
  });

  it('answers CORS itself inside an app that registered @fastify/cors (the relay origin: GET/HEAD only)', async () => {
    const host = Fastify();
    await host.register(cors, { origin: '*', methods: ['GET', 'HEAD', 'OPTIONS'] });
    await host.register(buildWhepRoutes({ server, corsOrigins: '*' }));
    try {
      const res = await host.inject({
        method: 'OPTIONS',
        url: '/whep/u/s/AAAAAAAAAAAAAAAAAAAAAAAA',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'DELETE' },
      });
      assert.equal(res.statusCode, 204);
      assert.match(String(res.headers['access-control-allow-methods']), /DELETE/);
      const post = await host.inject({
        method: 'POST',
        url: '/whep/u/nosuch',
        headers: { 'content-type': 'application/sdp', origin: 'https://app.example' },
        payload: offer.sdp,
      });
      assert.equal(post.statusCode, 404);
      assert.equal(post.headers['access-control-allow-origin'], '*');
      assert.match(String(post.headers['access-control-expose-headers']), /location/);
    } finally {
      await host.close();
    }
  });

  const refusals: {
    name: string;
    url?: string;
    body: () => string;
    type?: string;
    status: number;
    code: string;
  }[] = [
    { name: 'not SDP at all', body: () => 'hello', status: 400, code: 'WEBRTC_SDP_MALFORMED' },
    {
      name: 'SDP with no m-line',
      body: () => 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n',
      status: 400,
      code: 'WEBRTC_SDP_MALFORMED',
    },
    {
      name: 'no ICE credentials',
      body: () => offer.sdp.replace(/a=ice-(ufrag|pwd):.*\r\n/g, ''),
      status: 400,
      code: 'WEBRTC_SDP_MALFORMED',
    },
    {
      name: 'no video m-line',
      body: () => withoutSection(audioOffer.sdp, 'video'),
      status: 422,
      code: 'WEBRTC_SDP_NO_VIDEO',
    },
    {
      name: 'only unsupported codecs',
      body: () => offer.sdp.replace(/H264\/90000/g, 'VP8/90000'),
      status: 422,
      code: 'WEBRTC_CODEC_UNSUPPORTED',
    },
    {
      name: 'H.264 in packetization mode 0 only',
      body: () => offer.sdp.replace(/packetization-mode=1/g, 'packetization-mode=0'),
      status: 422,
      code: 'WEBRTC_CODEC_UNSUPPORTED',
    },
    {
      name: 'a wrong content type',
      body: () => offer.sdp,
      type: 'text/plain',
      status: 415,
      code: 'WEBRTC_CONTENT_TYPE',
    },
    {
      name: 'an unknown stream',
      url: '/whep/u/nope',
      body: () => offer.sdp,
      status: 404,
      code: 'WEBRTC_STREAM_NOT_FOUND',
    },
    {
      name: 'a path with odd characters',
      url: '/whep/..%2Fetc/s',
      body: () => offer.sdp,
      status: 404,
      code: 'WEBRTC_STREAM_NOT_FOUND',
    },
    {
      name: 'a stream with B-frames',
      url: '/whep/u/bframes',
      body: () => offer.sdp,
      status: 409,
      code: 'WEBRTC_B_FRAMES',
    },
    {
      name: 'a stream with no video yet',
      url: '/whep/u/novideo',
      body: () => offer.sdp,
      status: 409,
      code: 'WEBRTC_STREAM_NOT_READY',
    },
  ];
  for (const r of refusals) {
    it(`refuses ${r.name} with ${r.status} ${r.code}`, async () => {
      const res = await post(r.url ?? '/whep/u/s', r.body(), r.type);
      assert.equal(res.statusCode, r.status, res.body);
      assert.ok(res.body.startsWith(r.code), res.body);
      assert.equal(res.headers['access-control-allow-origin'], 'https://app.example');
      assert.equal(server.sessionCount, 0);
    });
  }

  it('refuses an offer larger than any real one before reading it', async () => {
    const res = await post('/whep/u/s', `${offer.sdp}a=x:${'y'.repeat(70_000)}\r\n`);
    assert.equal(res.statusCode, 413);
  });

  it('answers a good offer: 201, Location, the announced candidates only, and DELETE ends it', async () => {
    const res = await post('/whep/u/s', audioOffer.sdp);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['content-type'], 'application/sdp');
    const location = String(res.headers.location);
    assert.match(location, /^\/whep\/u\/s\/[A-Za-z0-9_-]{24}$/);
    const candidates = res.body.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
    assert.ok(candidates.length >= 2);
    assert.ok(candidates.every((c) => / 127\.0\.0\.1 /.test(c)));
    assert.ok(candidates.some((c) => c.endsWith(`127.0.0.1 ${server.udpPort} typ host`)));
    assert.ok(
      candidates.some((c) => c.endsWith('127.0.0.1 40000 typ host')),
      'a named host is resolved',
    );
    assert.match(res.body, /a=end-of-candidates/);
    assert.match(res.body, /a=rtpmap:102 H264\/90000/);
    assert.match(res.body, /a=rtpmap:111 opus\/48000/);
    assert.match(res.body, /a=sendonly/);
    assert.equal(server.sessionCount, 1);

    const sessionId = location.split('/').at(-1)!;
    const wrongStream = await app.inject({ method: 'DELETE', url: `/whep/u/other/${sessionId}` });
    assert.equal(wrongStream.statusCode, 404);
    const patch = await app.inject({ method: 'PATCH', url: location });
    assert.equal(patch.statusCode, 405);
    const del = await app.inject({ method: 'DELETE', url: location });
    assert.equal(del.statusCode, 200);
    assert.equal(server.sessionCount, 0);
    const again = await app.inject({ method: 'DELETE', url: location });
    assert.equal(again.statusCode, 404);
  });

  it('refuses offers past WEBRTC_MAX_SESSIONS with 503', async () => {
    const a = await post('/whep/u/s', offer.sdp);
    const b = await post('/whep/u/s', audioOffer.sdp);
    assert.equal(a.statusCode, 201);
    assert.equal(b.statusCode, 201);
    const c = await post('/whep/u/s', offer.sdp);
    assert.equal(c.statusCode, 503);
    assert.ok(c.body.startsWith('WEBRTC_TOO_MANY_SESSIONS'));
    for (const r of [a, b]) await app.inject({ method: 'DELETE', url: String(r.headers.location) });
    assert.equal(server.sessionCount, 0);
  });
});
