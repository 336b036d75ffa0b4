/**
 * The origin with playback tokens on (inject): every kind of request (playlist, blocking reload, init,
 * segment, part, preload-hinted part) is refused without the stream's token (401) or with another's (403),
 * and answered with it; a playlist answered to `?token=` lists every URI with it (segments, parts, the
 * preload hint, EXT-X-MAP, rendition reports, the multivariant's variants), and only then; the rewrite on
 * its own is table-tested on rendered playlists.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { renderMultivariantPlaylist } from '../../../src/hls/multivariant.ts';
import { buildOrigin, heldRequests } from '../../../src/hls/origin.ts';
import { Packager } from '../../../src/hls/packager.ts';
import { renderMediaPlaylist, withUriQuery } from '../../../src/hls/playlist.ts';
import {
  createPlaybackTokenSigner,
  createPlaybackTokenVerifier,
  playbackGuard,
} from '../../../src/shared/playback-token.ts';

const SECRET = 'playback-secret-for-unit-tests-0123456789';
const FPS = 15;
const signer = createPlaybackTokenSigner({ secret: SECRET, ttlSeconds: 600 });
const TOKEN = signer.sign('a@b.com', 's');
const OTHER = signer.sign('a@b.com', 'other');

function feed(): Packager {
  const p = new Packager({
    segmentSeconds: 2,
    targetDuration: 2,
    listSize: 5,
    lowLatency: true,
    partSeconds: 0.5,
    prefix: 'cafe0123',
  });
  p.setInit({ data: Buffer.from('INIT'), tracks: [] });
  frames(p, 0, 4 * FPS + 7);
  return p;
}

function frames(p: Packager, from: number, count: number): void {
  for (let f = from; f < from + count; f++) {
    p.pushFragment({
      data: Buffer.from(`F${f};`),
      sequence: f,
      runs: [],
      keyframe: f % (2 * FPS) === 0,
      startSeconds: f / FPS,
      durationSeconds: 1 / FPS,
    });
  }
}

function origin(p: Packager): FastifyInstance {
  return buildOrigin({
    lookup: (user, id) => (user === 'a-b.com' && (id === 's' || id === 'other') ? p : undefined),
    corsOrigins: '*',
    playback: playbackGuard({ mode: 'token', verify: createPlaybackTokenVerifier({ secret: SECRET }) }),
  });
}

/** Every URI of a playlist: URI lines and URI="…" attributes. */
function urisOf(text: string): string[] {
  return [
    ...text.split('\n').filter((l) => l !== '' && !l.startsWith('#')),
    ...[...text.matchAll(/URI="([^"]*)"/g)].map((m) => m[1]!),
  ];
}

describe('origin with playback tokens', () => {
  it('refuses every kind of request without the token (401) or with another stream’s (403)', async () => {
    const p = feed();
    const app = origin(p);
    const files = ['index.m3u8', 'index.m3u8?_HLS_msn=1', 'cafe0123-init0.mp4', 'cafe0123-seg0.m4s'];
    files.push(p.segments.at(-1)!.parts![0]!.uri, p.nextPartUri);
    for (const file of files) {
      const sep = file.includes('?') ? '&' : '?';
      const none = await app.inject({ url: `/hls/a-b.com/s/${file}` });
      assert.equal(none.statusCode, 401, file);
      assert.equal(none.json().code, 'PLAYBACK_UNAUTHORIZED');
      const other = await app.inject({ url: `/hls/a-b.com/s/${file}${sep}token=${OTHER}` });
      assert.equal(other.statusCode, 403, file);
      const bad = await app.inject({ url: `/hls/a-b.com/s/${file}${sep}token=${TOKEN.slice(0, -2)}xx` });
      assert.equal(bad.statusCode, 403, `${file}: tampered`);
    }
    assert.equal(heldRequests(app), 0, 'a refused request is never held');
    const head = await app.inject({ method: 'HEAD', url: '/hls/a-b.com/s/cafe0123-seg0.m4s' });
    assert.equal(head.statusCode, 401, 'HEAD too');
    for (const file of files.slice(0, 5)) {
      const sep = file.includes('?') ? '&' : '?';
      const ok = await app.inject({ url: `/hls/a-b.com/s/${file}${sep}token=${TOKEN}` });
      assert.equal(ok.statusCode, 200, file);
    }
    await app.close();
  });

  it('writes the token into every URI of the playlist it answers, blocking reloads included', async () => {
    const p = feed();
    const app = origin(p);
    const res = await app.inject({ url: `/hls/a-b.com/s/index.m3u8?token=${TOKEN}` });
    assert.equal(res.statusCode, 200);
    const uris = urisOf(res.body);
    assert.ok(uris.length > 10, res.body);
    for (const uri of uris) assert.ok(uri.endsWith(`?token=${TOKEN}`), uri);
    assert.match(res.body, /#EXT-X-MAP:URI="cafe0123-init0\.mp4\?token=/);
    assert.match(res.body, /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[^"]+\?token=/);
    // A blocking reload (as hls.js asks it: the token, then the directives) is answered the same way.
    const { openMsn, openParts } = p.edge;
    const pending = app.inject({
      url: `/hls/a-b.com/s/index.m3u8?token=${TOKEN}&_HLS_msn=${openMsn}&_HLS_part=${openParts}`,
    });
    for (let i = 0; i < 10_000 && heldRequests(app) !== 1; i++) await new Promise((r) => setImmediate(r));
    frames(p, 4 * FPS + 7, 7);
    const blocked = await pending;
    assert.equal(blocked.statusCode, 200);
    for (const uri of urisOf(blocked.body)) assert.ok(uri.endsWith(`?token=${TOKEN}`), uri);
    // The hinted part, asked for with the URI the playlist gave, is served once made.
    const hinted = urisOf(blocked.body).find((u) => u.startsWith(p.nextPartUri))!;
    const part = app.inject({ url: `/hls/a-b.com/s/${hinted}` });
    frames(p, 4 * FPS + 14, 7);
    assert.equal((await part).statusCode, 200);
    await app.close();
  });

  it('lists plain URIs when the token came in a header, or when tokens are off', async () => {
    const p = feed();
    const app = origin(p);
    const res = await app.inject({
      url: '/hls/a-b.com/s/index.m3u8',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body.includes('token='), false);
    await app.close();
    const open = buildOrigin({
      lookup: () => p,
      corsOrigins: '*',
      playback: playbackGuard({ mode: 'off' }),
    });
    const plain = await open.inject({ url: `/hls/a-b.com/s/index.m3u8?token=${TOKEN}` });
    assert.equal(plain.statusCode, 200);
    assert.equal(plain.body.includes('token='), false, 'off: nothing checked, nothing written');
    await open.close();
  });
});

describe('withUriQuery', () => {
  it('appends to every URI of a media playlist and of a multivariant one, nothing else', () => {
    const media = renderMediaPlaylist({
      targetDuration: 2,
      mediaSequence: 0,
      discontinuitySequence: 0,
      segments: [
        {
          uri: 'x-seg0.m4s',
          duration: 2,
          discontinuity: false,
          initUri: 'x-init0.mp4',
          programDateTime: 0,
          parts: [{ uri: 'x-part0.m4s', duration: 0.5, independent: true }],
        },
      ],
      ended: false,
      serverControl: { partTarget: 0.5, partHoldBack: 1.5, holdBack: 6, canSkipUntil: 12 },
      open: { discontinuity: false, initUri: 'x-init0.mp4', programDateTime: 2000, parts: [] },
      preloadHint: 'x-part1.m4s',
      renditionReports: [{ uri: '360p.m3u8', lastMsn: 0, lastPart: 0 }],
    });
    const out = withUriQuery(media, 'token=T');
    assert.equal(
      out,
      media
        .replace('x-seg0.m4s', 'x-seg0.m4s?token=T')
        .replace('"x-init0.mp4"', '"x-init0.mp4?token=T"')
        .replace('"x-part0.m4s"', '"x-part0.m4s?token=T"')
        .replace('"x-part1.m4s"', '"x-part1.m4s?token=T"')
        .replace('"360p.m3u8"', '"360p.m3u8?token=T"'),
    );
    const mv = renderMultivariantPlaylist([
      { uri: '720p.m3u8', bandwidth: 2e6, width: 720, height: 1280, codecs: ['avc1.64001f'], frameRate: 15 },
      {
        uri: '360p.m3u8?x=1',
        bandwidth: 5e5,
        width: 360,
        height: 640,
        codecs: ['avc1.64001f'],
        frameRate: 15,
      },
    ]);
    assert.deepEqual(
      withUriQuery(mv, 'token=T')
        .split('\n')
        .filter((l) => l && !l.startsWith('#')),
      ['720p.m3u8?token=T', '360p.m3u8?x=1&token=T'],
    );
    assert.equal(withUriQuery(media, ''), media);
  });
});
