/**
 * Thumbnails on a real relay: a published stream's latest keyframe is served as a small JPEG of the
 * configured width at /hls/{userPath}/{streamId}/thumbnail.jpg; unknown streams and hostile names get 404.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isJpeg } from '../../src/pipeline/thumbnailer.ts';
import { onceEvent } from '../../src/shared/typed-emitter.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { type FlvPublisher, publishFlv } from '../helpers/flv-publisher.ts';
import { jpegSize } from '../helpers/jpeg.ts';
import { type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';

describe('relay thumbnails', () => {
  let relay: Awaited<ReturnType<typeof startTestRelay>>['relay'];
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  let pub: FlvPublisher;

  before(async () => {
    ({ relay, records, hls } = await startTestRelay({ THUMBNAIL_SECONDS: '0.5', THUMBNAIL_WIDTH: '240' }));
    pub = publishFlv(await fixturePath('glasses-854x480.flv'), {
      port: relay.rtmpPort,
      user: 'thumb@user.com',
      stream: 'pic1',
      toMs: 8000,
    });
    await pub.started;
  });

  after(async () => {
    await pub?.stop().catch(() => {});
    await relay.close();
  });

  it('serves the latest keyframe as a JPEG of the configured width', async () => {
    const stream = records.get('pic1')!.stream;
    (await stream.packager.ready) ? Promise.resolve() : onceEvent(stream.packager, 'ready');
    let res = await fetch(hls('thumb-user.com/pic1/thumbnail.jpg'));
    for (let i = 0; res.status === 404 && i < 50; i++) {
      await onceEvent(stream.packager, 'segment'); // a keyframe went by: a thumbnail follows shortly
      res = await fetch(hls('thumb-user.com/pic1/thumbnail.jpg'));
    }
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/jpeg');
    assert.match(res.headers.get('cache-control') ?? '', /max-age=\d+/);
    const jpeg = Buffer.from(await res.arrayBuffer());
    assert.ok(isJpeg(jpeg), 'a complete JPEG');
    assert.deepEqual(jpegSize(jpeg), { width: 240, height: 134 });
  });

  it('404 for unknown streams and names that are not ours', async () => {
    for (const path of [
      'nobody/none/thumbnail.jpg',
      'thumb-user.com/..%2F..%2Fetc/thumbnail.jpg',
      'thumb-user.com/pic1/thumbnail.png',
    ]) {
      const res = await fetch(hls(path));
      assert.equal(res.status, 404, path);
    }
  });
});
