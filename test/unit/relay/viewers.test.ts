import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hlsRequestKind } from '../../../src/relay/hls-requests.ts';
import { ViewerTracker } from '../../../src/relay/viewers.ts';

test('a viewer counts while it fetched within the window, once however often it fetches', () => {
  const v = new ViewerTracker({ windowMs: 10_000 });
  v.seen('s', 'a', 0);
  v.seen('s', 'a', 1000);
  v.seen('s', 'b', 2000);
  v.seen('other', 'a', 2000);
  assert.equal(v.count('s', 2000), 2);
  assert.equal(v.count('other', 2000), 1);
  assert.equal(v.count('s', 11_500), 1, 'a left the window at 11 s, b is still in');
  v.seen('s', 'a', 11_600);
  assert.equal(v.count('s', 11_600), 2, 'a came back');
  assert.equal(v.count('s', 30_000), 0);
  assert.equal(v.count('nobody', 0), 0);
  v.seen('s', 'a', 30_000);
  v.forget('s');
  assert.equal(v.count('s', 30_000), 0);
});

test('clients and streams are capped; what does not fit is counted, expired room is reused', () => {
  const v = new ViewerTracker({ windowMs: 1000, maxPerStream: 3, maxStreams: 2 });
  for (const c of ['a', 'b', 'c', 'd']) v.seen('s', c, 0);
  assert.equal(v.count('s', 0), 3);
  assert.equal(v.overflow, 1);
  v.seen('s', 'e', 5000); // the old ones expired: room again
  assert.equal(v.count('s', 5000), 1);
  v.seen('t', 'x', 5000);
  v.seen('u', 'x', 5000); // a third stream while two are live
  assert.equal(v.overflow, 2);
  assert.equal(v.count('u', 5000), 0);
  v.seen('u', 'x', 9000); // s and t expired: u fits now
  assert.equal(v.count('u', 9000), 1);
});

test('HLS request kinds from the file name and query', () => {
  const cases: [string | undefined, Record<string, unknown>, string][] = [
    ['index.m3u8', {}, 'playlist'],
    ['index.m3u8', { _HLS_msn: '4', _HLS_part: '1' }, 'playlist_blocking'],
    ['0a1b2c3d-init0.mp4', {}, 'init'],
    ['0a1b2c3d-seg12.m4s', {}, 'segment'],
    ['0a1b2c3d-seg12.3.m4s', {}, 'part'],
    [undefined, {}, 'other'],
    ['favicon.ico', {}, 'other'],
  ];
  for (const [file, query, kind] of cases) assert.equal(hlsRequestKind(file, query), kind, `${file}`);
});
