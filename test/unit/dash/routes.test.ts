/**
 * The DASH routes (src/dash/routes.ts) through inject(), on the HLS origin as the relay registers them: the
 * MPD's type, CORS and cache headers, 404 for unknown or not yet playable streams, 400 for paths that break
 * the name rules, the templates' URLs resolving to media the HLS routes serve, a token carried into them,
 * the authorize hook, and /dash/time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildDashRoutes } from '../../../src/dash/routes.ts';
import { buildOrigin } from '../../../src/hls/origin.ts';
import type { Packager } from '../../../src/hls/packager.ts';
import { checkMpd } from '../../helpers/mpd-check.ts';
import { stream } from './fixture.ts';

describe('dash routes', () => {
  let app: FastifyInstance;
  const live = stream('aaaaaaaa');
  const starting = stream('bbbbbbbb');
  const packagers = new Map<string, Packager>([
    ['u-x.com/live', live.packager],
    ['u-x.com/starting', starting.packager],
  ]);

  before(async () => {
    live.newRun();
    live.feed(0, 6100);
    starting.newRun();
    const lookup = (userPath: string, streamId: string): Packager | undefined =>
      packagers.get(`${userPath}/${streamId}`);
    app = buildOrigin({ lookup, corsOrigins: '*' });
    await app.register(
      buildDashRoutes({
        lookup,
        corsOrigins: '*',
        authorize: (request, _userPath, streamId) =>
          streamId !== 'live' || (request.query as { token?: string }).token !== 'refused',
      }),
    );
    await app.ready();
  });
  after(() => app.close());

  it('serves a live MPD: application/dash+xml, CORS, short caching, an ETag', async () => {
    const res = await app.inject({ url: '/dash/u-x.com/live/index.mpd', headers: { host: 'relay:8888' } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/dash+xml');
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.equal(res.headers['cache-control'], 'public, max-age=1, s-maxage=1');
    const m = checkMpd(res.body);
    assert.equal(m.type, 'dynamic');
    assert.deepEqual(m.utcTiming, [
      { scheme: 'urn:mpeg:dash:utc:http-iso:2014', value: 'http://relay:8888/dash/time' },
    ]);
    const again = await app.inject({
      url: '/dash/u-x.com/live/index.mpd',
      headers: { host: 'relay:8888', 'if-none-match': String(res.headers.etag) },
    });
    assert.equal(again.statusCode, 304);
  });

  it("the templates resolve to the HLS routes' init and segments", async () => {
    const res = await app.inject({ url: '/dash/u-x.com/live/index.mpd' });
    const r = checkMpd(res.body).periods[0]!.representations[0]!;
    const base = 'http://relay/dash/u-x.com/live/index.mpd';
    const init = new URL(r.initialization, base).pathname;
    assert.equal(init, '/hls/u-x.com/live/aaaaaaaa-init0.mp4');
    for (const seg of r.segments) {
      const path = new URL(r.media.replace('$Number$', String(seg.number)), base).pathname;
      const media = await app.inject({ url: path });
      assert.equal(media.statusCode, 200, path);
      assert.equal(media.headers['cache-control'], 'public, max-age=31536000, immutable');
    }
    assert.equal((await app.inject({ url: init })).statusCode, 200);
  });

  it('carries a token into every URL it writes; the authorize hook can refuse', async () => {
    const res = await app.inject({ url: '/dash/u-x.com/live/index.mpd?token=abc.DEF-123_x' });
    const r = checkMpd(res.body).periods[0]!.representations[0]!;
    assert.ok(r.initialization.endsWith('?token=abc.DEF-123_x'));
    assert.ok(r.media.endsWith('-seg$Number$.m4s?token=abc.DEF-123_x'));
    const odd = await app.inject({ url: '/dash/u-x.com/live/index.mpd?token=%22%3E%3Cx' });
    assert.ok(!odd.body.includes('token='), 'a token outside the JWT alphabet is not written back');
    const refused = await app.inject({ url: '/dash/u-x.com/live/index.mpd?token=refused' });
    assert.equal(refused.statusCode, 403);
    assert.equal(refused.headers['cache-control'], 'no-store');
  });

  // `mine`: answered by the DASH routes (no-store); the others fall to the origin's not-found handler.
  const statuses: { url: string; status: number; why: string; mine?: boolean }[] = [
    { url: '/dash/u-x.com/nope/index.mpd', status: 404, why: 'an unknown stream', mine: true },
    { url: '/dash/u-x.com/starting/index.mpd', status: 404, why: 'a stream with no segment yet', mine: true },
    { url: '/dash/..%2F..%2Fetc/live/index.mpd', status: 400, why: 'traversal in userPath', mine: true },
    { url: '/dash/u-x.com/a.b/index.mpd', status: 400, why: 'a streamId outside the name rules', mine: true },
    { url: '/dash/.hidden/live/index.mpd', status: 400, why: 'a userPath starting with a dot', mine: true },
    { url: `/dash/${'u'.repeat(129)}/live/index.mpd`, status: 400, why: 'a userPath too long', mine: true },
    { url: '/dash/u-x.com/live/other.mpd', status: 404, why: 'another file' },
    { url: '/dash/u-x.com/live/../../hls/u-x.com/live/index.m3u8', status: 404, why: 'dots in the path' },
  ];
  for (const s of statuses) {
    it(`answers ${s.status} for ${s.why}`, async () => {
      const res = await app.inject({ url: s.url });
      assert.equal(res.statusCode, s.status, res.body);
      assert.equal(res.headers['access-control-allow-origin'], '*');
      if (s.mine) assert.equal(res.headers['cache-control'], 'no-store');
    });
  }

  it('an ended stream: a static MPD cached a minute', async () => {
    const s = stream('cccccccc');
    s.newRun();
    s.feed(0, 4100);
    s.packager.end();
    packagers.set('u-x.com/ended', s.packager);
    const res = await app.inject({ url: '/dash/u-x.com/ended/index.mpd' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['cache-control'], 'public, max-age=60');
    const m = checkMpd(res.body);
    assert.equal(m.type, 'static');
    assert.ok(m.mediaPresentationDuration! > 3.9);
  });

  it('GET /dash/time: the origin clock, never cached', async () => {
    const before = Date.now();
    const res = await app.inject({ url: '/dash/time' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['access-control-allow-origin'], '*');
    const t = Date.parse(res.body);
    assert.ok(t >= before - 5 && t <= Date.now() + 5, res.body);
  });
});
