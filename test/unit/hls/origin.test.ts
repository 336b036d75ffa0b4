import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { buildOrigin, PLAYLIST_TYPE } from '../../../src/hls/origin.ts';
import { Packager } from '../../../src/hls/packager.ts';

function readyPackager(): Packager {
  const p = new Packager({ segmentSeconds: 2, targetDuration: 2, listSize: 5, prefix: 'cafe0123' });
  p.setInit({ data: Buffer.from('INIT'), tracks: [] });
  for (let i = 0; i < 5; i++) {
    p.pushFragment({
      data: Buffer.from(`F${i}`),
      sequence: i,
      runs: [],
      keyframe: i % 4 === 0,
      startSeconds: i * 0.5,
      durationSeconds: 0.5,
    });
  }
  return p;
}

describe('HLS origin', () => {
  const packager = readyPackager();
  const pending = new Packager({ segmentSeconds: 2, targetDuration: 2, listSize: 5 });
  const app = buildOrigin({
    lookup: (user, stream) =>
      user === 'test-user.com' && stream === 'stream123'
        ? packager
        : user === 'u' && stream === 'later'
          ? pending
          : undefined,
    corsOrigins: '*',
  });
  after(() => app.close());

  it('serves the playlist with its MIME type, short caching, an ETag and CORS', async () => {
    const res = await app.inject({
      url: '/hls/test-user.com/stream123/index.m3u8',
      headers: { origin: 'https://app.example' },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], PLAYLIST_TYPE);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.match(String(res.headers['cache-control']), /max-age=1/);
    assert.match(res.body, /cafe0123-seg0\.m4s/);
    const again = await app.inject({
      url: '/hls/test-user.com/stream123/index.m3u8',
      headers: { 'if-none-match': String(res.headers.etag) },
    });
    assert.equal(again.statusCode, 304);
  });

  it('serves init and segments as immutable video/mp4', async () => {
    for (const [file, body] of [
      ['cafe0123-init0.mp4', 'INIT'],
      ['cafe0123-seg0.m4s', 'F0F1F2F3'],
    ]) {
      const res = await app.inject({ url: `/hls/test-user.com/stream123/${file}` });
      assert.equal(res.statusCode, 200, file);
      assert.equal(res.headers['content-type'], 'video/mp4');
      assert.match(String(res.headers['cache-control']), /immutable/);
      assert.equal(res.body, body);
    }
  });

  const notFound = [
    '/hls/test-user.com/stream123/cafe0123-seg9.m4s',
    '/hls/test-user.com/stream123/deadbeef-seg0.m4s',
    '/hls/test-user.com/stream123/..%2F..%2Fetc%2Fpasswd',
    '/hls/test-user.com/stream123/index.m3u8%00',
    '/hls/..%2F..%2Fetc/stream123/index.m3u8',
    '/hls/test-user.com/..%2Fx/index.m3u8',
    '/hls/nobody/stream123/index.m3u8',
    '/hls/test-user.com/stream123/',
    '/hls/u/later/index.m3u8',
    '/etc/passwd',
  ];
  for (const url of notFound) {
    it(`answers 404 with CORS for ${url}`, async () => {
      const res = await app.inject({ url, headers: { origin: 'https://app.example' } });
      assert.equal(res.statusCode, 404);
      assert.equal(res.headers['access-control-allow-origin'], '*');
    });
  }

  it('answers CORS preflight', async () => {
    const res = await app.inject({
      method: 'OPTIONS',
      url: '/hls/test-user.com/stream123/index.m3u8',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' },
    });
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers['access-control-allow-origin'], '*');
  });

  it('honours an origin allow-list', async () => {
    const strict = buildOrigin({ lookup: () => packager, corsOrigins: ['https://ok.example'] });
    const ok = await strict.inject({ url: '/hls/a/b/index.m3u8', headers: { origin: 'https://ok.example' } });
    assert.equal(ok.headers['access-control-allow-origin'], 'https://ok.example');
    const no = await strict.inject({
      url: '/hls/a/b/index.m3u8',
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(no.headers['access-control-allow-origin'], undefined);
    await strict.close();
  });

  it('has /health', async () => {
    const res = await app.inject({ url: '/health' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok' });
  });
});
