/**
 * SRT under loss: FFmpeg publishes through a loopback UDP relay that drops datagrams each way and delays
 * them with jitter. At 5 % each way with the default 120 ms latency, retransmissions fill every hole in
 * time: no frame is missing and the TS has no discontinuity. At 20 % the stream degrades (too-late drops)
 * and recovers when the link does, and nothing crashes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SrtListener } from '../../src/srt/listener.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import {
  nextPublish,
  publishedBy,
  startCaller,
  type TsReference,
  tsReference,
} from '../helpers/srt-publish.ts';
import { UdpLossProxy } from '../helpers/udp-loss-proxy.ts';

describe('SRT under loss', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'srt-loss-'));
  const logs = captureLogs('info');
  const listener = new SrtListener({ log: logs.log, peerIdleTimeoutMs: 2000 });
  let port = 0;
  let ref: TsReference;

  before(async () => {
    port = await listener.listen(0, '127.0.0.1');
    ref = await tsReference(dir, 6);
  });
  after(async () => {
    await listener.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('5 % loss each way with jitter: no missing frame at the default latency', {
    timeout: 90_000,
  }, async () => {
    const proxy = new UdpLossProxy({ port }, { upLoss: 0.05, downLoss: 0.05, jitterMs: 10, seed: 5 });
    try {
      const proxyPort = await proxy.listen();
      const published = nextPublish(listener, 'lossy');
      const run = startCaller('ffmpeg', {
        file: ref.file,
        port: proxyPort,
        streamId: 'publish:live/u1/lossy',
      });
      const rec = await publishedBy(published, run, 'ffmpeg');
      // The caller's shutdown is one datagram and may be lost too: then the peer idle timeout ends it.
      assert.ok(['unpublish', 'idle-timeout'].includes((await rec.ended).kind));
      assert.equal(await run.done, 0);
      const video = rec.aus.filter((a) => a.track === 'video');
      const audio = rec.aus.filter((a) => a.track === 'audio');
      const t = rec.source.transportStats();
      const demux = rec.source.stats.demux;
      assert.ok(
        proxy.counters.upDropped > 10 && proxy.counters.downDropped > 0,
        JSON.stringify(proxy.counters),
      );
      assert.ok(t.packetsLost > 10 && t.packetsRetransmitted > 10, JSON.stringify(t));
      assert.equal(t.packetsDropped, 0, 'no too-late drop');
      assert.equal(demux.continuityErrors, 0, 'no discontinuity');
      assert.equal(video.length, ref.video.length, 'every video frame');
      assert.ok(audio.length >= ref.audio.length - 15, `${audio.length} audio frames of ${ref.audio.length}`);
      logs.log.info({ proxy: proxy.counters, transport: t }, 'srt 5% loss result');
    } finally {
      await proxy.close();
    }
  });

  it('20 % loss: the stream degrades, recovers with the link, never crashes', {
    timeout: 90_000,
  }, async () => {
    const proxy = new UdpLossProxy({ port }, { upLoss: 0.2, downLoss: 0.2, jitterMs: 20, seed: 9 });
    try {
      const proxyPort = await proxy.listen();
      const published = nextPublish(listener, 'bad_link');
      const run = startCaller('ffmpeg', {
        file: ref.file,
        port: proxyPort,
        streamId: 'publish:live/u1/bad_link',
      });
      const rec = await publishedBy(published, run, 'ffmpeg');
      // The link recovers halfway through the media (the caller sends in real time).
      await new Promise<void>((resolve) => setTimeout(resolve, 3000));
      proxy.setProfile({ upLoss: 0, downLoss: 0, jitterMs: 0 });
      const recoveredAt = rec.aus.length;
      const reason = await rec.ended;
      await run.done;
      assert.ok(['unpublish', 'idle-timeout'].includes(reason.kind), reason.kind);
      const t = rec.source.transportStats();
      assert.ok(t.packetsLost > 20, JSON.stringify(t));
      const after = rec.aus.slice(recoveredAt).filter((a) => a.track === 'video');
      assert.ok(
        after.length >= ref.video.length / 2 - 15,
        `${after.length} video frames after the link recovered`,
      );
      logs.log.info(
        { proxy: proxy.counters, transport: t, demux: rec.source.stats.demux },
        'srt 20% loss result',
      );
    } finally {
      await proxy.close();
    }
  });
});
