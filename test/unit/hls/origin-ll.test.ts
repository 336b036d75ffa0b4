/**
 * The origin's low-latency side through inject(): blocking playlist reloads (ask ahead, the part arrives,
 * the answer comes; the stream ends, held requests are released; too far ahead is a 400), delta updates,
 * preload-hinted parts, and the bounds on held requests (caps, longest wait, client gone, origin closing).
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildOrigin, heldRequests, type OriginOptions } from '../../../src/hls/origin.ts';
import { Packager } from '../../../src/hls/packager.ts';
import type { Fmp4Fragment } from '../../../src/media/fmp4.ts';

const FPS = 15;

/** A low-latency stream fed one 15 fps frame per fragment (a part every 7 frames, a keyframe every 2 s). */
class Feed {
  readonly packager: Packager;
  frame = 0;

  constructor(lowLatency = true, startGraceMs = 60_000) {
    // A long start grace unless a test is about it: the hold rule alone decides, however loaded the machine.
    this.packager = new Packager({
      segmentSeconds: 2,
      targetDuration: 2,
      listSize: 5,
      lowLatency,
      partSeconds: 0.5,
      prefix: 'cafe0123',
      startGraceMs,
    });
    this.packager.setInit({ data: Buffer.from('INIT'), tracks: [] });
  }

  frames(count: number, keyframes = true): void {
    for (let i = 0; i < count; i++, this.frame++) {
      const f: Fmp4Fragment = {
        data: Buffer.from(`F${this.frame};`),
        sequence: this.frame,
        runs: [],
        keyframe: keyframes && this.frame % (2 * FPS) === 0,
        startSeconds: this.frame / FPS,
        durationSeconds: 1 / FPS,
      };
      this.packager.pushFragment(f);
    }
  }
}

function origin(
  streams: Record<string, Packager>,
  extra: Partial<OriginOptions> = {},
): { app: FastifyInstance; get: (stream: string, file: string) => Promise<LightMyRequestResponse> } {
  const app = buildOrigin({
    lookup: (user, id) => (user === 'u' ? streams[id] : undefined),
    corsOrigins: '*',
    ...extra,
  });
  return { app, get: (stream, file) => app.inject({ url: `/hls/u/${stream}/${file}` }) };
}

/** Yields to the event loop until the origin holds `n` requests (inject() parks them asynchronously). */
async function held(app: FastifyInstance, n: number): Promise<void> {
  for (let i = 0; i < 10_000 && heldRequests(app) !== n; i++) await new Promise((r) => setImmediate(r));
  assert.equal(heldRequests(app), n, 'requests held');
}

describe('LL origin: blocking playlist reload', () => {
  it('holds a request for the next part until it exists, then answers with the playlist listing it', async () => {
    const feed = new Feed();
    feed.frames(4 * FPS + 7); // two segments, one part of the next
    const { app, get } = origin({ s: feed.packager });
    const { openMsn, openParts } = feed.packager.edge;
    assert.deepEqual([openMsn, openParts], [2, 1]);
    const next = feed.packager.nextPartUri;
    const pending = get('s', `index.m3u8?_HLS_msn=${openMsn}&_HLS_part=${openParts}`);
    await held(app, 1);
    feed.frames(6);
    assert.equal(heldRequests(app), 1, 'six frames are not a part yet');
    feed.frames(1);
    const res = await pending;
    assert.equal(res.statusCode, 200);
    assert.ok(res.body.includes(`#EXT-X-PART:DURATION=0.467,URI="${next}"`), res.body);
    assert.equal(
      res.headers['cache-control'],
      'public, max-age=2',
      'a blocking answer may be cached briefly',
    );
    assert.equal(heldRequests(app), 0);
    const plain = await get('s', 'index.m3u8');
    assert.equal(plain.headers['cache-control'], 'public, max-age=1, s-maxage=1');
    await app.close();
  });

  it('holds _HLS_msn alone until that segment is complete; a past one answers at once', async () => {
    const feed = new Feed();
    feed.frames(4 * FPS + 7);
    const { app, get } = origin({ s: feed.packager });
    const past = await get('s', 'index.m3u8?_HLS_msn=0&_HLS_part=99');
    assert.equal(past.statusCode, 200, 'part 99 of a complete segment: part 0 of the next, listed');
    const pending = get('s', 'index.m3u8?_HLS_msn=2');
    await held(app, 1);
    feed.frames(2 * FPS - 7);
    assert.equal(heldRequests(app), 1, 'segment 2 is complete only when the keyframe after it comes');
    feed.frames(1);
    const res = await pending;
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /cafe0123-seg2\.m4s\n/);
    await app.close();
  });

  it('releases held requests when the stream ends: the playlist with ENDLIST, a part never made is a 404', async () => {
    const feed = new Feed();
    feed.frames(2 * FPS + 7);
    const { app, get } = origin({ s: feed.packager });
    const playlist = get('s', 'index.m3u8?_HLS_msn=2&_HLS_part=0');
    const part = get('s', feed.packager.nextPartUri);
    await held(app, 2);
    feed.packager.end();
    const [p, q] = await Promise.all([playlist, part]);
    assert.equal(p.statusCode, 200);
    assert.match(p.body, /#EXT-X-ENDLIST\n$/);
    assert.equal(p.headers['cache-control'], 'public, max-age=60');
    assert.equal(q.statusCode, 404);
    assert.equal(heldRequests(app), 0);
    const again = await get('s', 'index.m3u8?_HLS_msn=99&_HLS_part=3');
    assert.equal(again.statusCode, 200, 'directives are ignored once the playlist has ENDLIST');
    await app.close();
  });

  const bad = [
    ['_HLS_msn=4', 'beyond the last segment plus two'],
    ['_HLS_msn=1&_HLS_part=8', 'beyond the Advance Part Limit (6 parts at 0.5 s)'],
    ['_HLS_msn=2&_HLS_part=6', 'the segment after the open one, past the limit'],
    ['_HLS_part=1', '_HLS_part without _HLS_msn'],
    ['_HLS_msn=-1', 'a negative MSN'],
    ['_HLS_msn=1.5', 'a fractional MSN'],
    ['_HLS_msn=1&_HLS_msn=2', 'a repeated directive'],
  ];
  for (const [query, why] of bad) {
    it(`answers 400 at once for ${why} (${query})`, async () => {
      const feed = new Feed();
      feed.frames(2 * FPS + 7);
      const { app, get } = origin({ s: feed.packager });
      const res = await get('s', `index.m3u8?${query}`);
      assert.equal(res.statusCode, 400);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.headers['access-control-allow-origin'], '*');
      await app.close();
    });
  }

  it("holds a starting stream's first playlist until it has PART-HOLD-BACK after its first segment", async () => {
    const feed = new Feed();
    feed.frames(2 * FPS + 7); // ready: one segment, one part
    const { app, get } = origin({ s: feed.packager });
    const first = get('s', 'index.m3u8');
    await held(app, 1);
    feed.frames(2 * FPS - 7); // all of the second segment but its closing keyframe
    assert.equal(heldRequests(app), 1);
    feed.frames(1); // the second segment is complete: answered as it completes
    const res = await first;
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /cafe0123-seg1\.m4s\n#EXT-X-PRELOAD-HINT/);
    await app.close();
  });

  it('never holds a plain playlist request more than the start grace after the first segment', async () => {
    // A dirty stream whose keyframes stop after the start: the second segment would take the whole
    // TARGETDURATION (a cut without a keyframe), the rule above seconds more.
    const grace = 300;
    const feed = new Feed(true, grace);
    let startable = 0;
    feed.packager.on('startable', () => startable++);
    // The origin booted first: booting it (its first inject) can take longer than the grace on a busy machine.
    const { app, get } = origin({ s: feed.packager });
    await app.ready();
    feed.frames(2 * FPS + 1); // the first segment is complete
    const firstSegmentAt = performance.now();
    feed.frames(FPS, false); // then parts, no keyframe
    const first = get('s', 'index.m3u8');
    await held(app, 1);
    assert.equal(startable, 0, 'not startable (not ready to the cloud) while a request would wait');
    const res = await first;
    const waited = performance.now() - firstSegmentAt;
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /cafe0123-seg0\.m4s\n/);
    assert.equal(startable, 1);
    assert.ok(waited >= grace - 20, `answered ${waited.toFixed(0)} ms after the first segment`);
    // Generous for a loaded machine; the hold without the grace was seconds (the next segment).
    assert.ok(waited < grace + 700, `answered ${waited.toFixed(0)} ms after the first segment`);
    // Before the PART-HOLD-BACK rule holds, a plain answer starts a player in complete segments: the open
    // segment's parts wait for its first blocking reload, and the preload hint names the first of them
    // (the playlist as it stood when segment 0 completed; never one ending on a segment URI, see
    // hlsjs-merge.test.ts).
    assert.match(res.body, /cafe0123-seg0\.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="cafe0123-part5\.m4s"\n$/);
    const again = await get('s', 'index.m3u8');
    assert.equal(again.statusCode, 200, 'answered at once from then on');
    const blocking = await get('s', 'index.m3u8?_HLS_msn=1&_HLS_part=0');
    assert.match(blocking.body, /cafe0123-seg0\.m4s\n#EXT-X-PROGRAM-DATE-TIME:[^\n]+\n#EXT-X-PART:/);
    assert.match(blocking.body, /PRELOAD-HINT/);
    assert.equal(heldRequests(app), 0);
    await app.close();
  });

  it('ignores delivery directives on a classic stream', async () => {
    const feed = new Feed(false);
    feed.frames(2 * FPS + 7);
    const { app, get } = origin({ s: feed.packager });
    const res = await get('s', 'index.m3u8?_HLS_msn=3&_HLS_part=2&_HLS_skip=YES');
    assert.equal(res.statusCode, 200);
    assert.doesNotMatch(res.body, /PART|SKIP/);
    await app.close();
  });

  it('answers _HLS_skip=YES with a delta update', async () => {
    const feed = new Feed();
    feed.frames(2 * FPS * 9 + 1); // nine segments: seven stay listed, one of them is skippable
    const { app, get } = origin({ s: feed.packager });
    const res = await get('s', `index.m3u8?_HLS_msn=${feed.packager.edge.lastMsn}&_HLS_skip=YES`);
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n#EXT-X-MAP/);
    const v2 = await get('s', 'index.m3u8?_HLS_skip=v2');
    assert.match(v2.body, /#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n/);
    await app.close();
  });
});

describe('LL origin: preload-hinted parts', () => {
  it('holds a request for the hinted part until it exists, then sends it whole and immutable', async () => {
    const feed = new Feed();
    feed.frames(4 * FPS + 3);
    const { app, get } = origin({ s: feed.packager });
    const name = feed.packager.nextPartUri;
    const playlist = await get('s', 'index.m3u8');
    assert.match(playlist.body, new RegExp(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${name}"\\n$`));
    const later = await get(
      's',
      name.replace(/part(\d+)/, (_m, n) => `part${Number(n) + 1}`),
    );
    assert.equal(later.statusCode, 404, 'a part beyond the hinted one is not waited for');
    assert.equal(later.headers['cache-control'], 'no-store', 'nor cached as missing');
    const pending = get('s', name);
    await held(app, 1);
    feed.frames(4);
    const res = await pending;
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'F60;F61;F62;F63;F64;F65;F66;', 'the frames from the keyframe at 4 s');
    assert.equal(res.headers['content-type'], 'video/mp4');
    assert.match(String(res.headers['cache-control']), /immutable/);
    const again = await get('s', name);
    assert.equal(again.body, res.body, 'and it stays served by that name');
    await app.close();
  });
});

describe('LL origin: bounds on held requests', () => {
  it('caps them per stream and overall (503 at once)', async () => {
    const a = new Feed();
    const b = new Feed();
    a.frames(2 * FPS + 7);
    b.frames(2 * FPS + 7);
    const { app, get } = origin(
      { a: a.packager, b: b.packager },
      { blocking: { maxPerStream: 2, maxTotal: 3 } },
    );
    const ask = (s: string): ReturnType<typeof get> => get(s, 'index.m3u8?_HLS_msn=1&_HLS_part=1');
    const held2 = [ask('a'), ask('a')];
    await held(app, 2);
    const third = await ask('a');
    assert.equal(third.statusCode, 503, 'per stream');
    assert.equal(third.headers['cache-control'], 'no-store');
    const onB = ask('b');
    await held(app, 3);
    const fourth = await ask('b');
    assert.equal(fourth.statusCode, 503, 'overall');
    a.frames(7);
    b.frames(7);
    for (const res of await Promise.all([...held2, onB])) assert.equal(res.statusCode, 200);
    assert.equal(heldRequests(app), 0);
    await app.close();
  });

  it('answers 503 when nothing came within the longest wait', async () => {
    const feed = new Feed();
    feed.frames(2 * FPS + 7);
    const { app, get } = origin({ s: feed.packager }, { blocking: { maxHoldMs: 30 } });
    const res = await get('s', 'index.m3u8?_HLS_msn=1&_HLS_part=1');
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.equal(heldRequests(app), 0);
    await app.close();
  });

  it('releases them when the origin closes, without waiting for their wait to end', async () => {
    const feed = new Feed();
    feed.frames(2 * FPS + 7);
    const { app, get } = origin({ s: feed.packager }, { blocking: { maxHoldMs: 60_000 } });
    const pending = [get('s', 'index.m3u8?_HLS_msn=2'), get('s', feed.packager.nextPartUri)];
    await held(app, 2);
    await app.close();
    for (const res of await Promise.all(pending)) assert.equal(res.statusCode, 503);
    assert.equal(heldRequests(app), 0);
    assert.equal(feed.packager.listenerCount('update'), 0, 'no listener left on the packager');
  });

  it('lets go of a request whose client went away', async () => {
    const feed = new Feed();
    feed.frames(2 * FPS + 7);
    const { app } = origin({ s: feed.packager }, { blocking: { maxHoldMs: 60_000 } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const req = httpRequest({ host: '127.0.0.1', port, path: '/hls/u/s/index.m3u8?_HLS_msn=2' });
    req.on('error', () => {}); // the abort below
    req.end();
    await held(app, 1);
    req.destroy();
    await held(app, 0);
    assert.equal(feed.packager.listenerCount('update'), 0);
    await app.close();
  });
});
