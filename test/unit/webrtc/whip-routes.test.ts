/**
 * WHIP signalling through inject(): the token is checked before any ICE (401, no session), refusals are 4xx
 * with their code, a good offer becomes a publish handed to the owner, and DELETE ends it as a disconnect (the glasses
 * DELETE before each retry: the stream waits for them). 100 publish/DELETE cycles leave nothing behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import type { PublishAuthRequest } from '../../../src/contracts/publish.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { IceUdpPort } from '../../../src/webrtc/ice-port.ts';
import { buildWhipRoutes } from '../../../src/webrtc/whip-routes.ts';
import { WhipServer } from '../../../src/webrtc/whip-server.ts';
import type { WhipSession } from '../../../src/webrtc/whip-session.ts';
import { makeOffer } from '../../helpers/webrtc-client.ts';

describe('WHIP routes', () => {
  let app: FastifyInstance;
  let ice: IceUdpPort;
  let server: WhipServer;
  let offer: { sdp: string; close: () => void };
  let viewerOffer: { sdp: string; close: () => void };
  const asked: PublishAuthRequest[] = [];
  const published: WhipSession[] = [];

  before(async () => {
    ice = await IceUdpPort.open(0, '127.0.0.1', silentLogger());
    server = new WhipServer({
      ice: { udpPort: ice.port, bindAddress: '127.0.0.1', hosts: [{ address: '127.0.0.1' }] },
      authorize: (req) => {
        asked.push(req);
        if (req.params.profile === 'fast')
          return { allow: false, reason: 'unknown profile "fast"', badName: true };
        return req.token === 'good' ? { allow: true } : { allow: false, reason: 'bad token' };
      },
      onPublish: (s) => published.push(s),
      log: silentLogger(),
    });
    app = Fastify();
    await app.register(buildWhipRoutes({ server, corsOrigins: '*' }));
    offer = await makeOffer({ send: true, audio: true });
    viewerOffer = await makeOffer();
  });

  after(async () => {
    offer?.close();
    viewerOffer?.close();
    server?.close();
    await app?.close();
    ice?.close();
  });

  const post = (url: string, body: string, headers: Record<string, string> = {}) =>
    app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/sdp', ...headers },
      payload: body,
    });

  it('refuses a missing or wrong token with 401 before any ICE', async () => {
    for (const url of ['/whip/live/me@example.com/s1', '/whip/live/me@example.com/s1?token=nope']) {
      const res = await post(url, offer.sdp);
      assert.equal(res.statusCode, 401, res.body);
      assert.ok(res.body.startsWith('WEBRTC_UNAUTHORIZED'));
    }
    assert.equal(server.sessionCount, 0);
    assert.equal(asked.at(-1)?.protocol, 'whip');
    assert.equal(asked.at(-1)?.key, 'live/me@example.com/s1');
  });

  it('refuses a name or parameter the rules refuse with 400 and the rule, before any ICE', async () => {
    const res = await post('/whip/live/me@example.com/s1?token=good&profile=fast', offer.sdp);
    assert.equal(res.statusCode, 400, res.body);
    assert.ok(res.body.startsWith('WEBRTC_PUBLISH_REFUSED'), res.body);
    assert.match(res.body, /unknown profile "fast"/);
    assert.equal(server.sessionCount, 0);
  });

  const refusals: { name: string; body: () => string; status: number; code: string }[] = [
    { name: 'malformed SDP', body: () => 'v=0\r\nnonsense', status: 400, code: 'WEBRTC_SDP_MALFORMED' },
    {
      name: 'an offer that only receives',
      body: () => viewerOffer.sdp,
      status: 422,
      code: 'WEBRTC_SDP_NO_VIDEO',
    },
    {
      name: 'no H.264',
      body: () => offer.sdp.replace(/H264\/90000/g, 'VP8/90000'),
      status: 422,
      code: 'WEBRTC_CODEC_UNSUPPORTED',
    },
  ];
  for (const r of refusals) {
    it(`refuses ${r.name} with ${r.status}`, async () => {
      const res = await post('/whip/live/me@example.com/s1?token=good', r.body());
      assert.equal(res.statusCode, r.status, res.body);
      assert.ok(res.body.startsWith(r.code), res.body);
      assert.equal(server.sessionCount, 0);
    });
  }

  it('accepts a Bearer token, hands the publish over, and ends it as a disconnect on DELETE', async () => {
    // libwebrtc offers FIR beside PLI; libdatachannel's offer does not: add it as the glasses would send it.
    const withFir = offer.sdp.replace(
      'a=rtcp-fb:102 nack pli\r\n',
      'a=rtcp-fb:102 nack pli\r\na=rtcp-fb:102 ccm fir\r\n',
    );
    assert.notEqual(withFir, offer.sdp);
    const res = await post('/whip/live/me@example.com/s1', withFir, { authorization: 'Bearer good' });
    assert.equal(res.statusCode, 201, res.body);
    assert.match(res.body, /a=recvonly/);
    // NACK and PLI are negotiated (our jitter buffer asks for both); FIR because the offer lists it.
    const pt = /a=rtpmap:(\d+) H264\/90000/.exec(res.body)![1];
    for (const fb of ['nack', 'nack pli', 'ccm fir'])
      assert.ok(res.body.includes(`a=rtcp-fb:${pt} ${fb}\r\n`), `answer lacks rtcp-fb ${fb}`);
    assert.match(res.body, /a=candidate:1 1 UDP \d+ 127\.0\.0\.1 \d+ typ host/);
    const location = String(res.headers.location);
    assert.match(location, /^\/whip\/live\/me%40example\.com\/s1\/[A-Za-z0-9_-]{24}$/);
    assert.equal(published.length, 1);
    assert.equal(published[0]!.info.protocol, 'whip');
    const ended = new Promise((resolve) => published[0]!.once('end', resolve));
    // Another stream's path with this session id is not this session.
    const other = location.replace('/s1/', '/s2/');
    assert.equal((await app.inject({ method: 'DELETE', url: other })).statusCode, 404);
    const del = await app.inject({ method: 'DELETE', url: location });
    assert.equal(del.statusCode, 200);
    assert.deepEqual(await ended, { kind: 'disconnect', message: 'the publisher sent DELETE' });
    assert.equal(server.sessionCount, 0);
    assert.equal((await app.inject({ method: 'DELETE', url: location })).statusCode, 404);
  });

  it('survives 100 publish/DELETE cycles with no session left', async () => {
    const before = published.length;
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const timersBefore = timers();
    for (let i = 0; i < 100; i++) {
      const res = await post(`/whip/live/me@example.com/cycle?token=good`, offer.sdp);
      assert.equal(res.statusCode, 201, res.body);
      const del = await app.inject({ method: 'DELETE', url: String(res.headers.location) });
      assert.equal(del.statusCode, 200);
    }
    assert.equal(published.length - before, 100);
    assert.ok(published.slice(before).every((s) => s.ended?.kind === 'disconnect'));
    assert.equal(server.sessionCount, 0);
    assert.equal(server.sessions.length, 0);
    assert.equal(server.counters.deleted, 101);
    // Every session's timers (reports, polls, the peer timeout) went with it.
    assert.ok(timers() <= timersBefore + 1, `${timers()} timers after, ${timersBefore} before`);
  });

  it('a second POST of a live key takes over the first', async () => {
    const a = await post('/whip/live/me@example.com/tk?token=good', offer.sdp);
    const b = await post('/whip/live/me@example.com/tk?token=good', offer.sdp);
    assert.equal(a.statusCode, 201);
    assert.equal(b.statusCode, 201);
    const [first, second] = published.slice(-2);
    assert.equal(first!.ended?.kind, 'takeover');
    assert.equal(second!.ended, null);
    assert.equal(server.sessions.length, 1);
    assert.equal((await app.inject({ method: 'DELETE', url: String(a.headers.location) })).statusCode, 404);
    assert.equal((await app.inject({ method: 'DELETE', url: String(b.headers.location) })).statusCode, 200);
  });
});
