/**
 * The real media path watched by hls.js in Chromium: the dirty stream plays, then faults: an FFmpeg SIGKILLed mid-stream, a
 * publisher that drops and comes back within the reconnect window, and 50 publish/unpublish cycles that must
 * leave no FFmpeg and no memory behind. Timers are set short through the environment.
 */
import assert from 'node:assert/strict';

import { after, before, describe, it } from 'node:test';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { onceEvent } from '../../src/shared/typed-emitter.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { type BrowserHandle, launchBrowser } from '../helpers/browser.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';
import { ffmpegChildrenOfThisProcess } from '../helpers/relay-process.ts';

function nthSegment(record: StreamRecord, n: number): Promise<void> {
  if (record.segments.length >= n) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (): void => {
      if (record.segments.length >= n) {
        record.stream.packager.off('segment', on);
        resolve();
      }
    };
    record.stream.packager.on('segment', on);
  });
}

describe('faults', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  let browser: BrowserHandle;
  let file = '';

  before(async () => {
    ({ relay, records, hls } = await startTestRelay({
      RECONNECT_WINDOW_SECONDS: '10',
      HLS_END_GRACE_SECONDS: '5',
    }));
    browser = await launchBrowser();
    file = await fixturePath('glasses-854x480.flv');
  });

  after(async () => {
    await browser?.close();
    await relay?.close();
  });

  it('plays the dirty stream in hls.js (auto profile, across its switch to transcode) for 10 s', async () => {
    const dirty = await fixturePath('dirty-540x960.flv');
    const pub = publishFlv(dirty, { port: relay.rtmpPort, user: 'glasses@user.com', stream: 'dirty' });
    await pub.started;
    const rec = records.get('dirty')!;
    await rec.ready;
    const report = await browser.playHls(hls('glasses-user.com/dirty/index.m3u8'), { seconds: 10 });
    await pub.stop();
    assert.deepEqual(report.fatalErrors, []);
    assert.ok(report.playedSeconds >= 7, `played ${report.playedSeconds} s`);
    assert.deepEqual(report.stalls, []);
  });

  it('plays on through an FFmpeg killed with SIGKILL mid-stream (transcode)', async () => {
    // Copy runs in-process; a transcode is where an FFmpeg can die.
    const pub = publishFlv(file, { port: relay.rtmpPort, user: 'u1', stream: 'killed?profile=transcode' });
    await pub.started;
    const created = records.get('killed')!; // registered when the publish went live, before Publish.Start
    await created.ready;
    const playing = browser.playHls(hls('u1/killed/index.m3u8'), { seconds: 14 });
    await nthSegment(created, 4);
    const pid = created.stream.supervisor.running?.pid;
    assert.ok(pid, 'ffmpeg running');
    process.kill(pid, 'SIGKILL');
    const report = await playing;
    await pub.stop();
    assert.deepEqual(report.fatalErrors, []);
    assert.ok(report.playedSeconds >= 8, `played ${report.playedSeconds} s`);
    assert.ok(
      report.stalls.every((s) => s.durationMs < 5000),
      JSON.stringify(report.stalls),
    );
    assert.ok(created.stream.supervisor.stats.restarts >= 1);
    assert.ok(
      created.segments.some((s) => s.discontinuity),
      'a discontinuity after the restart',
    );
  });

  it('keeps the URL through a publisher drop and republish within the window', async () => {
    const first = publishFlv(file, { port: relay.rtmpPort, user: 'u2', stream: 'comeback', toMs: 9000 });
    await first.started;
    const rec = records.get('comeback')!;
    await rec.ready;
    const playing = browser.playHls(hls('u2/comeback/index.m3u8'), { seconds: 14 });
    await nthSegment(rec, 3);
    first.drop();
    await first.done.catch(() => {});
    const second = publishFlv(file, {
      port: relay.rtmpPort,
      user: 'u2',
      stream: 'comeback',
      fromMs: 9000,
      rebase: true,
    });
    const report = await playing;
    await second.stop();
    assert.deepEqual(report.fatalErrors, []);
    assert.ok(report.playedSeconds >= 8, `played ${report.playedSeconds} s`);
    assert.ok(
      report.stalls.every((s) => s.durationMs < 5000),
      JSON.stringify(report.stalls),
    );
    assert.equal(records.get('comeback'), rec, 'the same stream (same URL, same playlist)');
    assert.ok(
      rec.segments.some((s) => s.discontinuity),
      'the comeback is a discontinuity',
    );
    for (let i = 1; i < rec.sequences.length; i++)
      assert.ok(rec.sequences[i]!.media >= rec.sequences[i - 1]!.media);
  });

  it('restarts an FFmpeg that stalls (SIGSTOP) through the watchdog (transcode)', async () => {
    const stalled = await startTestRelay({ FFMPEG_WATCHDOG_SECONDS: '1.5' });
    try {
      const pub = publishFlv(file, {
        port: stalled.relay.rtmpPort,
        user: 'u4',
        stream: 'stalled?profile=transcode',
        toMs: 12_000,
      });
      await pub.started;
      const rec = stalled.records.get('stalled')!;
      await rec.ready;
      const pid = rec.stream.supervisor.running!.pid!;
      const exited = onceEvent(rec.stream.supervisor, 'exit');
      const restarted = new Promise<void>((resolve) => rec.stream.supervisor.once('init', () => resolve()));
      process.kill(pid, 'SIGSTOP'); // alive, fed, silent
      const [exit] = await exited;
      assert.equal(exit.signal, 'SIGKILL');
      assert.equal(rec.stream.supervisor.stats.stalls, 1);
      await restarted;
      await nthSegment(rec, rec.segments.length + 1);
      assert.ok(rec.segments.at(-1)!.discontinuity || rec.segments.some((s) => s.discontinuity));
      await pub.stop();
    } finally {
      await stalled.relay.close();
    }
  });

  it('leaves no FFmpeg and no memory behind after 50 publish/unpublish cycles', async (t) => {
    const cycles = await startTestRelay({ RECONNECT_WINDOW_SECONDS: '0.1', HLS_END_GRACE_SECONDS: '0.1' });
    const gc = (globalThis as { gc?: () => void }).gc;
    // Collect until freed ArrayBuffers are really returned (V8 releases their memory after a turn).
    const settle = async (): Promise<void> => {
      for (let k = 0; k < 3; k++) {
        gc?.();
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    };
    // What the relay holds (JS heap + external buffers) must not grow from the first cycle to the last. RSS
    // is checked for growth once malloc's arenas have warmed up (measured: they settle by about cycle 25,
    // some 20–28 MB above cycle 1, then stay flat to cycle 120).
    let afterFirst = 0;
    let rssAt25 = 0;
    let rssLate = Number.POSITIVE_INFINITY;
    const held = (): number => {
      const m = process.memoryUsage();
      return m.heapUsed + m.external;
    };
    try {
      for (let i = 0; i < 50; i++) {
        const pub = publishFlv(file, {
          port: cycles.relay.rtmpPort,
          user: 'u3',
          stream: 'cycle',
          toMs: 2500,
          speed: Number.POSITIVE_INFINITY,
        });
        await pub.done;
        const rec = cycles.records.get('cycle')!;
        await rec.ended;
        await onceEvent(rec.stream, '@freed');
        if (i === 0) {
          await settle();
          afterFirst = held();
        }
        if (i === 25) {
          await settle();
          rssAt25 = process.memoryUsage().rss;
        }
        // The lowest RSS of the last cycles: a leak raises every sample, a transient spike (another test
        // process's load making malloc grab an arena for a moment) only some.
        if (i >= 44) {
          await settle();
          rssLate = Math.min(rssLate, process.memoryUsage().rss);
        }
      }
      await settle();
      const grown = (held() - afterFirst) / 1048576;
      const rssGrown = (rssLate - rssAt25) / 1048576;
      t.diagnostic(
        `heap + external grew ${grown.toFixed(1)} MB over 49 cycles; rss ${rssGrown.toFixed(1)} MB over the last 24`,
      );
      assert.ok(grown < 20, `heap + external grew ${grown.toFixed(1)} MB over 49 cycles`);
      // 20 MB, the bound, from a warmed-up baseline: seen at 10.5 MB with the suite running beside it.
      assert.ok(rssGrown < 20, `rss grew ${rssGrown.toFixed(1)} MB from cycle 25 to 50`);
      assert.equal(cycles.relay.reaper.size, 0, 'no FFmpeg registered');
      assert.deepEqual(ffmpegChildrenOfThisProcess(), [], 'no FFmpeg process left');
      assert.equal(cycles.relay.streams.streams.length, 0, 'every stream freed');
    } finally {
      await cycles.relay.close();
    }
  });
});
