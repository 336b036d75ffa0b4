/**
 * Copy streams with no FFmpeg: the media core writes CMAF in-process, and real players take it. hls.js in
 * Chromium plays, low-latency and classic, the glasses stream, an x264 main-profile stream with B-frames
 * (composition offsets in `trun` v1), and a stream whose picture size changes mid-stream (a new init segment
 * and a discontinuity); no FFmpeg process exists under the relay while they play.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { type FixtureName, fixturePath } from '../fixtures/generate.ts';
import { type BrowserHandle, launchBrowser, stallTrace } from '../helpers/browser.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { probe } from '../helpers/process.ts';
import { initOf, type StreamRecord, segmentsAtLeast, startTestRelay } from '../helpers/relay-harness.ts';

/** Child processes of this process (the relay runs in it), by name, from /proc. */
function children(): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')));
    } catch {
      // the process ended while we looked: not ours to count
    }
  }
  return out;
}

describe('copy streams in players, no FFmpeg', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  let browser: BrowserHandle;

  before(async () => {
    ({ relay, records, hls } = await startTestRelay({ CLEAN_PROFILE: 'copy' }));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await relay?.close();
  });

  const cases: { name: string; fixture: FixtureName; lowLatency: boolean; size?: [number, number] }[] = [
    { name: 'glasses 854x480, LL', fixture: 'glasses-854x480.flv', lowLatency: true },
    { name: 'B-frames (x264 main), classic', fixture: 'bframes-15fps.flv', lowLatency: false },
    { name: 'B-frames (x264 main), LL', fixture: 'bframes-15fps.flv', lowLatency: true },
  ];
  for (const c of cases) {
    it(`plays ${c.name} with no FFmpeg under the relay`, async () => {
      const stream = c.name.replace(/\W+/g, '-').replace(/-$/, '');
      const pub = publishFlv(await fixturePath(c.fixture), { port: relay.rtmpPort, user: 'u', stream });
      await pub.started;
      const rec = records.get(stream)!;
      await rec.ready;
      const playing = browser.playHls(hls(`u/${stream}/index.m3u8`), {
        seconds: 8,
        lowLatency: c.lowLatency,
      });
      const during = children();
      const report = await playing;
      const after = children();
      await pub.stop();
      assert.deepEqual(report.fatalErrors, [], c.name);
      assert.ok(report.playedSeconds >= 6, `${c.name}: played ${report.playedSeconds} s`);
      assert.deepEqual(report.stalls, [], `${c.name}: ${stallTrace(report)}`);
      assert.ok(
        !during.includes('ffmpeg') && !after.includes('ffmpeg'),
        `children: ${[...during, ...after]}`,
      );
      assert.equal(rec.stream.supervisor.stats.starts, 0, 'no FFmpeg started for a copy stream');
      assert.equal(rec.stream.pipelineProfile, 'copy');
    });
  }

  it('a mid-stream size change is a new init and a discontinuity; both sizes decode and play', async () => {
    const stream = 'resize';
    const pub = publishFlv(await fixturePath('resize-15fps.flv'), {
      port: relay.rtmpPort,
      user: 'u',
      stream,
    });
    await pub.started;
    const rec = records.get(stream)!;
    await rec.ready;
    const report = await browser.playHls(hls(`u/${stream}/index.m3u8`), { seconds: 16, lowLatency: true });
    await pub.done;
    await rec.ended;
    assert.deepEqual(report.fatalErrors, []);
    assert.ok(
      report.playedSeconds >= 13,
      `played ${report.playedSeconds} s; stalls ${JSON.stringify(report.stalls)}; ${JSON.stringify(report.nonFatalErrors)}`,
    );
    const sizes = new Set<string>();
    for (const seg of rec.segments) {
      const init = initOf(rec, seg);
      const video = init.tracks.find((t) => t.kind === 'video')!;
      sizes.add(`${video.width}x${video.height}`);
    }
    assert.deepEqual([...sizes], ['854x480', '540x960']);
    const change = rec.segments.findIndex((s) => s.discontinuity);
    assert.ok(change > 0, 'a discontinuity where the size changes');
    assert.ok(rec.segments[change]!.independent, 'the new size starts with a keyframe');
    assert.equal(rec.stream.supervisor.stats.starts, 0);
  });

  it('ffprobe decodes every segment of the B-frame stream with its init', async () => {
    const rec = records.get('B-frames-x264-main-LL')!;
    await segmentsAtLeast(rec, 3);
    const seg = rec.segments[1]!;
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const path = await import('node:path');
    const dir = mkdtempSync(path.join((await import('node:os')).tmpdir(), 'copy-'));
    try {
      const file = path.join(dir, 'seg.mp4');
      writeFileSync(file, Buffer.concat([initOf(rec, seg).data, seg.data]));
      const streams = await probe(file);
      const video = streams.find((s) => s.codec_type === 'video');
      assert.equal(video?.profile, 'Main');
      assert.ok(Number(video?.nb_read_frames) >= 20, `frames ${video?.nb_read_frames}`);
      assert.equal(streams.find((s) => s.codec_type === 'audio')?.codec_name, 'aac');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
