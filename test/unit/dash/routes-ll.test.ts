/**
 * Low-latency DASH on the routes (src/dash/routes.ts), through inject(): the MPD of a low-latency stream
 * (`?ll=1`) lists the segment being made with availabilityTimeOffset and availabilityTimeComplete="false", media from
 * the DASH route beside it; that route streams the segment being made part by part and ends it when it
 * completes (the bytes are the segment HLS then serves), answers complete segments as immutable, 404s what is
 * too far ahead or behind, and a request still streaming ends when the origin closes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildDashRoutes } from '../../../src/dash/routes.ts';
import { buildOrigin } from '../../../src/hls/origin.ts';
import type { Packager } from '../../../src/hls/packager.ts';
import { checkMpd } from '../../helpers/mpd-check.ts';
import { stream } from './fixture.ts';

describe('low-latency DASH routes', () => {
  let app: FastifyInstance;
  const s = stream('eeeeeeee', { lowLatency: true });

  before(async () => {
    s.newRun();
    s.feed(0, 6700); // three segments and parts of the fourth
    const lookup = (_u: string, id: string): Packager | undefined => (id === 'll' ? s.packager : undefined);
    app = buildOrigin({ lookup, corsOrigins: '*' });
    await app.register(buildDashRoutes({ lookup, corsOrigins: '*' }));
    await app.ready();
  });
  after(() => app.close());

  it('lists the segment being made, available early, from the DASH route', async () => {
    const res = await app.inject({ url: '/dash/u/ll/index.mpd?ll=1', headers: { host: 'relay' } });
    assert.equal(res.statusCode, 200);
    const m = checkMpd(res.body);
    const r = m.periods[0]!.representations[0]!;
    const open = s.packager.openSegment!;
    assert.ok(open, 'a segment is being made');
    assert.equal(r.segments.at(-1)!.number, open.msn, 'the last entry is the segment being made');
    assert.equal(r.segments.at(-1)!.d, r.segments.at(-2)!.d, 'its duration: the one before');
    assert.equal(r.media, 'eeeeeeee-seg$Number$.m4s');
    assert.match(res.body, /availabilityTimeOffset="1\.5" availabilityTimeComplete="false"/);
    assert.equal(m.latencyTarget, 3);
    assert.equal(m.suggestedPresentationDelay, 3);
  });

  it('without ?ll=1: complete segments only, from the HLS routes', async () => {
    const res = await app.inject({ url: '/dash/u/ll/index.mpd', headers: { host: 'relay' } });
    const r = checkMpd(res.body).periods[0]!.representations[0]!;
    assert.equal(r.segments.at(-1)!.number, s.packager.segments.at(-1)!.msn);
    assert.equal(r.media, '../../../hls/u/ll/eeeeeeee-seg$Number$.m4s');
    assert.doesNotMatch(res.body, /availabilityTime/);
    assert.equal(checkMpd(res.body).latencyTarget, 6);
  });

  it('streams the segment being made until it completes: the bytes HLS serves then', async () => {
    const msn = s.packager.openSegment!.msn;
    const pending = app.inject({ url: `/dash/u/ll/eeeeeeee-seg${msn}.m4s` });
    await new Promise((resolve) => setImmediate(resolve));
    s.feed(6700, 8200); // the segment completes at 8 s
    const res = await pending;
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    const whole = s.packager.resource(`eeeeeeee-seg${msn}.m4s`)!;
    assert.ok(whole.data.equals(res.rawPayload), 'the same bytes');
    const again = await app.inject({ url: `/dash/u/ll/eeeeeeee-seg${msn}.m4s` });
    assert.equal(again.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.ok(again.rawPayload.equals(whole.data));
  });

  it('404s segments too far ahead, gone, or of another prefix; other files too', async () => {
    const open = s.packager.edge.openMsn;
    for (const file of [
      `eeeeeeee-seg${open + 2}.m4s`,
      'eeeeeeee-seg0x.m4s',
      `ffffffff-seg${open}.m4s`,
      'index.m3u8',
    ]) {
      const res = await app.inject({ url: `/dash/u/ll/${file}` });
      assert.equal(res.statusCode, 404, file);
    }
    assert.equal((await app.inject({ url: '/dash/u/nope/eeeeeeee-seg1.m4s' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/dash/u/a.b/eeeeeeee-seg1.m4s' })).statusCode, 400);
  });

  it('a segment still streaming ends when the origin closes', async () => {
    const next = s.packager.edge.openMsn + 1;
    const pending = app.inject({ url: `/dash/u/ll/eeeeeeee-seg${next}.m4s` });
    await new Promise((resolve) => setImmediate(resolve));
    const closing = app.close();
    const res = await pending;
    assert.equal(res.statusCode, 503, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    await closing;
  });
});
