/**
 * Real SRT callers on loopback against the listener: FFmpeg (libsrt), srt-live-transmit and GStreamer
 * srtsink each publish 4 s of the glasses fixture as MPEG-TS in real time; the MediaSource must start with
 * both configurations and yield every video frame with ffprobe's timing (audio may lose its last PES or two:
 * FFmpeg closes its SRT socket without lingering, so what its sender still held at the end is gone). Encryption with the right passphrase works, a wrong or missing
 * one is refused; a refused token and a bad stream id are refused before any media; the newest publisher of
 * a key takes over.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PublishAuthRequest } from '../../src/contracts/publish.ts';
import { isAudioConfig, isVideoConfig } from '../../src/media/access-unit.ts';
import { SrtListener } from '../../src/srt/listener.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import {
  nextPublish,
  publishedBy,
  type Recording,
  type SrtCaller,
  startCaller,
  type TsReference,
  tsReference,
} from '../helpers/srt-publish.ts';

const PASSPHRASE = 'glasses-passphrase-42';

function assertMatches(rec: Recording, ref: TsReference, label: string): void {
  assert.ok(rec.start, `${label}: started`);
  assert.ok(isVideoConfig(rec.start.video), `${label}: video config`);
  assert.equal(rec.start.video.width, 854);
  assert.equal(rec.start.video.height, 480);
  assert.ok(isAudioConfig(rec.start.audio), `${label}: audio config`);
  const video = rec.aus.filter((a) => a.track === 'video');
  const audio = rec.aus.filter((a) => a.track === 'audio');
  assert.equal(video.length, ref.video.length, `${label}: video frames`);
  const t0 = video[0]!.dts;
  video.forEach((au, i) => {
    assert.ok(Math.abs(au.dts - t0 - ref.video[i]!.dts) < 1, `${label}: video ${i} at ${au.dts - t0} ms`);
    assert.equal(au.keyframe, ref.video[i]!.key, `${label}: video ${i} keyframe`);
  });
  assert.ok(
    audio.length >= ref.audio.length - 15 && audio.length <= ref.audio.length,
    `${label}: ${audio.length} audio frames of ${ref.audio.length}`,
  );
  audio.forEach((au, i) => {
    assert.ok(Math.abs(au.dts - t0 - ref.audio[i]!) < 1, `${label}: audio ${i}`);
  });
}

describe('real SRT callers', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'srt-clients-'));
  const logs = captureLogs();
  const requests: PublishAuthRequest[] = [];
  const listener = new SrtListener({
    log: logs.log,
    passphrase: (key) => (key.endsWith('/enc') ? PASSPHRASE : null),
    authorize: (req) => {
      requests.push(req);
      if (req.token === 'expired') return { allow: false, reason: 'publish token expired' };
      if (req.token === 'elsewhere') return { allow: false, reason: 'publish token is for another relay' };
      return { allow: true };
    },
  });
  let port = 0;
  let ref: TsReference;

  before(async () => {
    port = await listener.listen(0, '127.0.0.1');
    ref = await tsReference(dir, 4);
  });
  after(async () => {
    await listener.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const caller of ['ffmpeg', 'srt-live-transmit', 'srtsink'] as SrtCaller[]) {
    it(`${caller} publishes; every frame arrives with its timing`, { timeout: 90_000 }, async () => {
      const streamId = caller.replace(/-/g, '_');
      const published = nextPublish(listener, streamId);
      const run = startCaller(caller, {
        file: ref.file,
        port,
        streamId: `publish:live/u1/${streamId}?token=tok-${streamId}`,
      });
      const rec = await publishedBy(published, run, caller);
      assert.equal(rec.source.info.protocol, 'srt');
      assert.equal(rec.source.info.key, `live/u1/${streamId}`);
      const reason = await rec.ended;
      assert.equal(reason.kind, 'unpublish');
      assert.equal(await run.done, 0);
      assertMatches(rec, ref, caller);
      const req = requests.find((r) => r.streamId === streamId);
      assert.equal(req?.token, `tok-${streamId}`);
      assert.equal(req?.protocol, 'srt');
      const t = rec.source.transportStats();
      assert.ok(t.packetsReceived > 100 && t.rttMs >= 0 && t.receiveBufferCapacity > 0);
    });
  }

  it('encryption: ffmpeg with the passphrase publishes, a wrong or missing one is refused', {
    timeout: 90_000,
  }, async () => {
    const wrong = startCaller('ffmpeg', {
      file: ref.file,
      port,
      streamId: 'publish:live/u1/enc',
      passphrase: 'not-the-passphrase',
    });
    assert.notEqual(await wrong.done, 0);
    const none = startCaller('ffmpeg', { file: ref.file, port, streamId: 'publish:live/u1/enc' });
    assert.notEqual(await none.done, 0);
    const unexpected = startCaller('ffmpeg', {
      file: ref.file,
      port,
      streamId: 'publish:live/u1/plain',
      passphrase: PASSPHRASE,
    });
    assert.notEqual(await unexpected.done, 0);
    assert.ok((listener.stats.errors.get('SRT_BAD_SECRET') ?? 0) >= 3);
    const published = nextPublish(listener, 'enc');
    // New keys every 150 packets: the caller switches between its even and odd key mid-stream (KMREQ).
    const run = startCaller('ffmpeg', {
      file: ref.file,
      port,
      streamId: 'publish:live/u1/enc',
      passphrase: PASSPHRASE,
      extra: { kmrefreshrate: '150', kmpreannounce: '40' },
    });
    const rec = await publishedBy(published, run, 'ffmpeg with the passphrase');
    await rec.ended;
    assert.equal(await run.done, 0);
    assertMatches(rec, ref, 'encrypted');
    assert.equal(rec.source.transportStats().packetsUndecryptable, 0);
    assert.ok(rec.source.transportStats().keyRefreshes >= 1, 'the keys changed mid-stream');
  });

  it('refuses before any media: bad stream id, expired token, another relay', {
    timeout: 60_000,
  }, async () => {
    const before = listener.stats.publishes;
    for (const [streamId, code] of [
      ['publish:live/u1', 'SRT_BAD_STREAM_ID'],
      ['publish:live/u1/x?token=expired', 'SRT_UNAUTHORIZED'],
      ['#!::r=live/u1/x,m=publish,s=elsewhere', 'SRT_FORBIDDEN'],
    ] as const) {
      const n = listener.stats.errors.get(code) ?? 0;
      const run = startCaller('ffmpeg', { file: ref.file, port, streamId });
      assert.notEqual(await run.done, 0, streamId);
      assert.ok((listener.stats.errors.get(code) ?? 0) > n, code);
    }
    assert.equal(listener.stats.publishes, before);
  });

  it('the newest publisher of a key takes over', { timeout: 90_000 }, async () => {
    const first = nextPublish(listener, 'take');
    const a = startCaller('ffmpeg', { file: ref.file, port, streamId: 'publish:live/u1/take' });
    const recA = await publishedBy(first, a, 'first publisher');
    await new Promise<void>((resolve) => recA.source.once('start', () => resolve()));
    const second = nextPublish(listener, 'take');
    const b = startCaller('srtsink', { file: ref.file, port, streamId: 'publish:live/u1/take' });
    const recB = await publishedBy(second, b, 'second publisher');
    assert.equal((await recA.ended).kind, 'takeover');
    assert.equal((await recB.ended).kind, 'unpublish');
    a.kill();
    await a.done;
    await b.done;
    assert.equal(listener.publishes.length, 0);
  });
});
