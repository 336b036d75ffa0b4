import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { createHlsProbe, hasMedia } from '../../../src/cloud/hls-probe.ts';

describe('hls probe', () => {
  it('counts only playlists with media', () => {
    assert.ok(hasMedia('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.m4s\n'));
    assert.ok(hasMedia('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n540p.m3u8\n'));
    assert.ok(!hasMedia('#EXTM3U\n#EXT-X-TARGETDURATION:2\n'));
    assert.ok(!hasMedia('not found'));
  });

  it('answers true once the URL serves media, false at its deadline, and stops when aborted', async () => {
    let serving = false;
    const server = createServer((_req, res) => {
      if (!serving) return res.writeHead(404).end('no');
      res
        .writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl' })
        .end('#EXTM3U\n#EXTINF:2,\na.ts\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hls/a/s/index.m3u8`;
    try {
      const probe = createHlsProbe({ deadlineMs: 10_000, intervalMs: 20 });
      const pending = probe(url, new AbortController().signal);
      setTimeout(() => (serving = true), 100);
      assert.equal(await pending, true);
      serving = false;
      assert.equal(
        await createHlsProbe({ deadlineMs: 150, intervalMs: 20 })(url, new AbortController().signal),
        false,
      );
      const abort = new AbortController();
      const aborted = probe(url, abort.signal);
      abort.abort();
      assert.equal(await aborted, false);
      assert.equal(await probe('http://127.0.0.1:1/nothing', AbortSignal.timeout(300)), false, 'refused');
    } finally {
      server.close();
    }
  });
});
