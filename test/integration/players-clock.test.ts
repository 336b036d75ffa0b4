/**
 * Timing that follows the arrival clock when the media clock lies (issue 15), end to end: a publisher whose
 * media clock runs at 0.8× and at 1.2× of real time (the FLV publisher paced at that speed: 0.8 or 1.2 s of
 * media per second), default profile, LL-HLS; hls.js (lowLatencyMode, defaults) plays 40 s of each without
 * a stall, and its latency stays within 1 s of where it settled after the start. The relay re-stamped the
 * stream (counted) at the measured rate. Without it, hls.js drifted from 3.8 s to 30 s behind and stalled.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { simPublishArgs } from '../../src/sim/glasses-sim.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { type BrowserHandle, launchBrowser, stallTrace } from '../helpers/browser.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';

const WATCH_SECONDS = 40;
/** The samples of the first seconds of playback, before the latency settles, are not held to the bound. */
const SETTLE_SECONDS = 3;

describe('players stay close when the media clock lies', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  let browser: BrowserHandle;

  before(async () => {
    ({ relay, records, hls } = await startTestRelay({ HLS_LOW_LATENCY: 'on' }));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await relay?.close();
  });

  for (const speed of [0.8, 1.2]) {
    it(`plays 40 s of a ${speed}x media clock without a stall, latency within 1 s`, async (t) => {
      const stream = `clock${speed * 10}`;
      const pub = publishFlv(await fixturePath('steady-clock-15fps.flv'), {
        port: relay.rtmpPort,
        user: 'glasses@user.com',
        stream,
        speed,
      });
      await pub.started;
      const rec = records.get(stream)!;
      await rec.ready;
      let publishing = true;
      void pub.done.then(
        () => (publishing = false),
        () => (publishing = false),
      );
      const report = await browser.playHls(hls(`glasses-user.com/${stream}/index.m3u8`), {
        seconds: WATCH_SECONDS,
        lowLatency: true,
        startTimeoutMs: 60_000,
      });
      // The fixture must outlast the watch: a stall at the end of its media is not the relay's.
      assert.ok(publishing, 'the publisher ran out of media before the player was done (a longer fixture)');
      await pub.stop();
      const clock = rec.stream.clock.stats;
      const latencies = report.samples
        .filter((s) => s.hlsLatency !== null && s.currentTime >= SETTLE_SECONDS)
        .map((s) => s.hlsLatency!);
      t.diagnostic(
        `${speed}x: scale ${clock.scale.toFixed(3)} after ${clock.restamps} re-stamp(s); hls.js latency ` +
          `${Math.min(...latencies).toFixed(2)}–${Math.max(...latencies).toFixed(2)} s, stalls ${report.stalls.length}`,
      );
      t.diagnostic(
        `samples (played s: latency s): ${report.samples
          .filter((_x, i) => i % 4 === 0)
          .map((x) => `${x.currentTime.toFixed(1)}:${x.hlsLatency?.toFixed(2)}`)
          .join(' ')}`,
      );
      t.diagnostic(
        `drift: ${JSON.stringify(clock)}; first errors: ${report.nonFatalErrors.slice(0, 2).join(' | ')}`,
      );
      assert.deepEqual(report.fatalErrors, []);
      assert.deepEqual(report.stalls, [], stallTrace(report));
      assert.ok(report.playedSeconds >= WATCH_SECONDS - 2, `played ${report.playedSeconds} s`);
      assert.ok(clock.restamps >= 1, 're-stamped, counted');
      assert.ok(Math.abs(clock.scale - 1 / speed) < 0.05, `scale ${clock.scale}`);
      const settled = latencies[0]!;
      for (const l of latencies) {
        assert.ok(
          Math.abs(l - settled) <= 1,
          `latency ${l.toFixed(2)} s, started at ${settled.toFixed(2)} s`,
        );
      }
    });
  }
});

describe("the glasses simulator's encode keeps real time", () => {
  it('its FFmpeg makes a second of media per second of wall time, frames dropped and all', async () => {
    // FFmpeg's own progress (out_time: media written) against the wall clock, over 6 s once it runs.
    const dir = mkdtempSync(path.join(tmpdir(), 'sim-clock-'));
    const child = spawn('ffmpeg', simPublishArgs(path.join(dir, 'sim.flv')), {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    try {
      let first: { wall: number; media: number } | null = null;
      let ratio = 0;
      for await (const line of createInterface({ input: child.stdout })) {
        const m = /^out_time_us=(\d+)$/.exec(line);
        if (!m) continue;
        const point = { wall: performance.now(), media: Number(m[1]) / 1000 };
        if (point.media <= 0) continue;
        first ??= point;
        if (point.wall - first.wall >= 6000) {
          ratio = (point.media - first.media) / (point.wall - first.wall);
          break;
        }
      }
      assert.ok(first, 'FFmpeg reported progress (is ffmpeg installed? npm test sets it up)');
      // It renumbered the frames it kept: 0.82 s of media per second (issue 15).
      assert.ok(ratio > 0.95 && ratio < 1.05, `media per wall second ${ratio.toFixed(3)}`);
    } finally {
      if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
