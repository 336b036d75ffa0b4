/**
 * SRT into the whole relay: real callers publish MPEG-TS over SRT to the relay's SRT port, and the stream is
 * the same clean stream an RTMP publish makes: copied to CMAF in-process (no FFmpeg), HLS that hls.js plays,
 * the reconnect window (the caller drops and comes back: same URL, a discontinuity), publish tokens checked
 * before any media, and an encrypted publish with the per-stream passphrase the cloud would hand out.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { srtStreamPassphrase } from '../../src/contracts/srt.ts';
import { srtPublishUrl } from '../../src/contracts/urls.ts';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { type BrowserHandle, launchBrowser } from '../helpers/browser.ts';
import { startTool } from '../helpers/process.ts';
import { type StreamRecord, segmentsAtLeast, startTestRelay } from '../helpers/relay-harness.ts';
import { startCaller, type TsReference, tsReference } from '../helpers/srt-publish.ts';

const SECRET = 'srt-passphrase-secret-for-tests-0123456789';

describe('SRT into the relay', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  let browser: BrowserHandle;
  let ts: TsReference;
  const dir = mkdtempSync(path.join(tmpdir(), 'srt-hls-'));

  before(async () => {
    ({ relay, records, hls } = await startTestRelay({
      SRT_PASSPHRASE_SECRET: SECRET,
      RECONNECT_WINDOW_SECONDS: '10',
    }));
    browser = await launchBrowser();
    ts = await tsReference(dir, 14);
  });

  after(async () => {
    await browser?.close();
    await relay?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('FFmpeg publishes encrypted MPEG-TS over SRT: copied in-process, HLS plays in hls.js', async () => {
    const key = 'live/glasses@user.com/srt1';
    const caller = startCaller('ffmpeg', {
      file: ts.file,
      port: relay.srtPort,
      streamId: `publish:${key}`,
      passphrase: srtStreamPassphrase(SECRET, key),
    });
    const created = await new Promise<StreamRecord>((resolve) => {
      const check = (): void => {
        const rec = records.get('srt1');
        if (rec) resolve(rec);
        else setImmediate(check);
      };
      check();
    });
    await created.ready;
    assert.equal(created.stream.source?.info.protocol, 'srt');
    const report = await browser.playHls(hls('glasses-user.com/srt1/index.m3u8'), {
      seconds: 6,
      lowLatency: true,
    });
    assert.deepEqual(report.fatalErrors, []);
    assert.ok(report.playedSeconds >= 4, `played ${report.playedSeconds} s`);
    assert.equal(created.stream.pipelineProfile, 'copy', created.stream.decision);
    assert.equal(created.stream.supervisor.stats.starts, 0, 'no FFmpeg for an H.264/AAC SRT publish');
    const snap = created.stream.ingest.snapshot();
    assert.deepEqual([snap.videoCodec, snap.audioCodec, snap.width, snap.height], ['h264', 'aac', 854, 480]);
    caller.kill();
    await caller.done;
  });

  it('a caller that drops and comes back keeps the URL: one stream, a discontinuity', async () => {
    const key = 'live/u2/back';
    const passphrase = srtStreamPassphrase(SECRET, key);
    const first = startCaller('ffmpeg', {
      file: ts.file,
      port: relay.srtPort,
      streamId: `publish:${key}`,
      passphrase,
    });
    const rec = await new Promise<StreamRecord>((resolve) => {
      const check = (): void => {
        const r = records.get('back');
        if (r) resolve(r);
        else setImmediate(check);
      };
      check();
    });
    await segmentsAtLeast(rec, 2);
    first.kill(); // no shutdown: the listener notices the silence (peer idle timeout), the window opens
    await first.done;
    await new Promise<void>((resolve) => {
      if (rec.stream.state === 'reconnecting') return resolve();
      rec.stream.once('state', () => resolve());
    });
    const second = startCaller('ffmpeg', {
      file: ts.file,
      port: relay.srtPort,
      streamId: `publish:${key}`,
      passphrase,
    });
    const before = rec.segments.length;
    // The slate (SLATE=on) fills the gap until the caller's first keyframe: the comeback follows it.
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (rec.stream.slating) return;
        rec.stream.packager.off('segment', check);
        resolve();
      };
      rec.stream.packager.on('segment', check);
      check();
    });
    await segmentsAtLeast(rec, rec.segments.length + 2);
    assert.equal(records.get('back'), rec, 'the same stream, the same URL');
    assert.ok(
      rec.segments.slice(before).some((s) => s.discontinuity),
      'the comeback is a discontinuity',
    );
    const playlist = await (await fetch(hls('u2/back/index.m3u8'))).text();
    assert.match(playlist, /#EXT-X-DISCONTINUITY/);
    second.kill();
    await second.done;
  });

  it('the URL the cloud hands out (stream id encoded twice, the passphrase in it) publishes as it is', async () => {
    const url = srtPublishUrl(`srt://127.0.0.1:${relay.srtPort}`, 'me@example.com', 'fromcloud', undefined, {
      passphrase: srtStreamPassphrase(SECRET, 'live/me@example.com/fromcloud'),
    });
    assert.ok(url);
    const run = startTool(
      'ffmpeg',
      ['-v', 'error', '-re', '-t', '4', '-i', ts.file, '-c', 'copy', '-f', 'mpegts', url],
      {
        timeoutMs: 60_000,
      },
    );
    const rec = await new Promise<StreamRecord>((resolve) => {
      const check = (): void => {
        const r = records.get('fromcloud');
        if (r) resolve(r);
        else setImmediate(check);
      };
      check();
    });
    await rec.ready;
    assert.equal(rec.stream.userId, 'me@example.com');
    const playlist = await fetch(hls('me-example.com/fromcloud/index.m3u8'));
    assert.equal(playlist.status, 200);
    run.kill();
    await run.done;
  });
});
