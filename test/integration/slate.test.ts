/**
 * The slate while the glasses reconnect, against real peers: a real FFmpeg publishing 540x960 over RTMP is
 * SIGKILLed mid-stream and comes back 6 s later, while hls.js (LL) plays in Chromium and the stream is
 * re-streamed over RTMP to a destination (the relay's own RTMP server: a second stream whose access units
 * are counted). Segments keep coming for the whole gap, the slate is 540x960 (ffprobe decodes a slate
 * segment), hls.js plays across the gap and the return with no fatal error and no stall over 1 s, the
 * destination keeps receiving frames, and no slate FFmpeg is left once the stream ended. Then, cheaper
 * (in-process publishers): a connected publisher silent for SLATE_AFTER_SECONDS gets the slate and returns
 * at a keyframe; gaps under a second (a pause, a fast reconnect) give none; a transcode stream's slate is
 * written at its output size without FFmpeg; SLATE=off behaves as before (no slate, one init per publish).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Segment } from '../../src/hls/packager.ts';
import type { AccessUnit } from '../../src/media/access-unit.ts';
import { readCmafInit, readCmafSamples } from '../../src/media/cmaf-samples.ts';
import { readFlv } from '../../src/media/flv-reader.ts';
import type { MediaTag } from '../../src/media/flv-tag.ts';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { type BrowserHandle, computeStalls, launchBrowser, stallTrace } from '../helpers/browser.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { probe as probeStreams, startTool, type ToolRun } from '../helpers/process.ts';
import { publisherArgv } from '../helpers/publishers.ts';
import { initOf, type StreamRecord, segmentsAtLeast, startTestRelay } from '../helpers/relay-harness.ts';
import { ffmpegChildrenOfThisProcess } from '../helpers/relay-process.ts';

/** Resolves when `check` holds, looked at on every new segment of the stream (events, no polling). */
function whenSegment(rec: StreamRecord, check: () => boolean): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (): void => {
      if (!check()) return;
      rec.stream.packager.off('segment', on);
      resolve();
    };
    rec.stream.packager.on('segment', on);
  });
}

/**
 * The audio has no hole at either transition (hls.js stalls seconds at one wider than 0.1 s, and Chromium
 * splits its buffered range at two frames): the publisher's last audio runs on in silence to its video's end,
 * the slate's to the return. Sample starts are never more than two frames apart.
 */
function assertAudioContinuous(rec: StreamRecord): void {
  const audio = rec.segments.flatMap((seg) => {
    const configs = readCmafInit(initOf(rec, seg).data);
    const frameSeconds = configs.audio!.config.frameSamples / configs.audio!.config.sampleRate;
    return seg.fragments.flatMap((f) =>
      readCmafSamples(configs, seg.data.subarray(f.offset, f.offset + f.size))
        .filter((x) => x.track === 'audio')
        .map((x) => ({ dts: x.dts, frameSeconds, msn: seg.msn })),
    );
  });
  for (let i = 1; i < audio.length; i++) {
    const gap = audio[i]!.dts - audio[i - 1]!.dts;
    assert.ok(
      gap > 0 && gap <= 2 * audio[i]!.frameSeconds + 0.001,
      `audio in segment ${audio[i]!.msn}: ${Math.round(gap * 1000)} ms after the frame before`,
    );
  }
}

function ffmpegPublisher(port: number, user: string, stream: string): ToolRun {
  const { command, args } = publisherArgv('ffmpeg', {
    url: `rtmp://127.0.0.1:${port}/live/${user}/${stream}`,
    seconds: 120,
    fps: 14,
    gop: 14,
  });
  return startTool(command, args, { timeoutMs: 180_000 });
}

describe('slate while the publisher is gone', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  let browser: BrowserHandle;
  const dir = mkdtempSync(path.join(tmpdir(), 'slate-test-'));

  before(async () => {
    ({ relay, records, hls } = await startTestRelay({
      SLATE_AFTER_SECONDS: '1.5',
      RECONNECT_WINDOW_SECONDS: '30',
      HLS_END_GRACE_SECONDS: '5',
    }));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await relay?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a killed FFmpeg publisher: slate segments (540x960) the whole gap, hls.js plays on, the re-stream is fed', async () => {
    const port = relay.rtmpPort;
    const first = ffmpegPublisher(port, 'glasses@user.com', 'killed');
    await whenRecord(records, 'killed');
    const rec = records.get('killed')!;
    await rec.ready;
    // Re-stream to the relay itself: the destination is another stream, whose access units we watch.
    relay.restreaming.setDestinations(rec.stream.key, [
      { url: `rtmp://127.0.0.1:${port}/live/dest/out`, name: 'loop' },
    ]);
    await whenRecord(records, 'out');
    const dest = records.get('out')!.stream;
    const destVideo: { at: number; dts: number }[] = [];
    dest.on('au', (au: AccessUnit) => {
      if (au.track === 'video') destVideo.push({ at: Date.now(), dts: au.dts });
    });
    const arrivals = new Map<Segment, number>();
    rec.stream.packager.on('segment', (s) => arrivals.set(s, Date.now()));

    const playing = browser.playHls(hls('glasses-user.com/killed/index.m3u8'), {
      seconds: 22,
      lowLatency: true,
      startTimeoutMs: 60_000,
    });
    await segmentsAtLeast(rec, rec.segments.length + 3);
    await new Promise<void>((resolve) =>
      destVideo.length > 0 ? resolve() : dest.once('au', () => resolve()),
    );
    // The relay encodes a format's first slate when the first gap of that format starts (0.8 s on a quiet
    // machine, bench/slate.ts; seconds on a loaded one): measured here is the steady state, the slate at hand.
    await rec.stream.prefetchSlate();
    const killedAt = Date.now();
    const beforeKill = rec.segments.length;
    first.kill('SIGKILL');
    await first.done;
    // 6 s without the publisher: the slate fills it.
    await whenSegment(rec, () => Date.now() - killedAt >= 6000);
    assert.ok(rec.stream.slating, 'the slate runs');
    const second = ffmpegPublisher(port, 'glasses@user.com', 'killed');
    const backAt = Date.now();
    await whenSegment(rec, () => rec.stream.slating === false && rec.segments.length >= beforeKill + 1);
    const returned = rec.segments.length;
    await segmentsAtLeast(rec, returned + 3);
    const report = await playing;
    second.kill('SIGKILL');
    await second.done;

    // hls.js: no fatal error, no stall over a second, across the gap and the return.
    assert.deepEqual(report.fatalErrors, []);
    const stalls = computeStalls(report.samples, 1000);
    assert.deepEqual(stalls, [], stallTrace(report, stalls));
    assert.ok(report.playedSeconds >= 18, `played ${report.playedSeconds} s`);

    // Segments kept coming while the publisher was gone: no wait much over a segment between them.
    const gapSegments = rec.segments.slice(beforeKill).filter((s) => arrivals.get(s)! <= backAt + 1000);
    const times = [killedAt, ...gapSegments.map((s) => arrivals.get(s)!)];
    const waits = times.slice(1).map((t, i) => t - times[i]!);
    assert.ok(gapSegments.length >= 2, `segments in the gap: ${gapSegments.length}`);
    assert.ok(Math.max(...waits) < 4500, `waits between segments in the gap: ${waits}`);

    // A discontinuity before the slate and at the return, which starts with a keyframe.
    const slateStart = rec.segments.findIndex((s, i) => i >= beforeKill && s.discontinuity);
    assert.ok(slateStart >= beforeKill, 'a discontinuity before the slate');
    const back = rec.segments.findIndex((s, i) => i > slateStart && s.discontinuity);
    assert.ok(back > slateStart, 'a discontinuity at the return');
    assert.ok(rec.segments[back]!.independent, 'the return starts at a keyframe');
    // One timeline: the slate starts where the publisher's media ended, the return where the slate ended.
    for (let i = 1; i < rec.segments.length; i++) {
      const prev = rec.segments[i - 1]!;
      const start = rec.segments[i]!.fragments[0]!.startSeconds;
      const prevEnd = prev.fragments[0]!.startSeconds + prev.duration;
      assert.ok(
        Math.abs(start - prevEnd) < 0.05,
        `segment ${i} starts at ${start}, the one before ends at ${prevEnd}`,
      );
    }

    assertAudioContinuous(rec);

    // The slate is 540x960 H.264 with AAC: ffprobe decodes a slate segment with its init.
    const slateSegment = rec.segments[slateStart + 1] ?? rec.segments[slateStart]!;
    const file = path.join(dir, 'slate.mp4');
    writeFileSync(file, Buffer.concat([initOf(rec, slateSegment).data, slateSegment.data]));
    const streams = await probeStreams(file);
    const video = streams.find((s) => s.codec_type === 'video')!;
    assert.equal(video.codec_name, 'h264');
    assert.equal(`${video.width}x${video.height}`, '540x960');
    assert.ok(Number(video.nb_read_frames) >= 14, `frames: ${video.nb_read_frames}`);
    assert.ok(streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac'));

    // The destination kept receiving frames through the gap.
    const during = destVideo.filter((v) => v.at > killedAt && v.at <= backAt);
    assert.ok(during.length >= 14 * 3, `destination frames during the gap: ${during.length}`);
    const destTimes = destVideo
      .filter((v) => v.at > killedAt - 1000 && v.at <= backAt + 3000)
      .map((v) => v.at);
    const destWaits = destTimes.slice(1).map((t, i) => t - destTimes[i]!);
    assert.ok(Math.max(...destWaits) < 3500, `longest wait at the destination: ${Math.max(...destWaits)} ms`);

    assert.equal(rec.stream.slateStats.slates, 1);
    // The stream ends: no slate FFmpeg is left, none registered.
    relay.restreaming.setDestinations(rec.stream.key, []);
    await rec.stream.close();
    await dest.close();
    assert.equal(relay.streams.slates!.running, 0);
    assert.deepEqual(ffmpegChildrenOfThisProcess(), [], 'no FFmpeg left');
    assert.equal(relay.reaper.size, 0);
  });

  it('a connected publisher silent for SLATE_AFTER_SECONDS gets the slate, and returns at a keyframe', async () => {
    // The glasses fixture (854x480, a keyframe every 2 s) with its clock jumping 4 s at 5.3 s: the
    // publisher waits 4 s, connected and silent, then goes on mid-GOP.
    const tags = readFlv(readFileSync(await fixturePath('glasses-854x480.flv'))).tags;
    const silent: MediaTag[] = tags
      .filter((t) => t.timestamp < 11_000)
      .map((t) => (t.timestamp >= 5300 ? { ...t, timestamp: t.timestamp + 4000 } : t));
    const pub = publishFlv(silent, { port: relay.rtmpPort, user: 'u', stream: 'silent', maxGapMs: 5000 });
    await pub.started;
    const rec = records.get('silent')!;
    await pub.done;
    await rec.stream.close();
    assert.equal(rec.stream.slateStats.slates, 1, 'one slate');
    assert.ok(rec.stream.slateStats.dropped > 0, 'frames before the keyframe of the return were dropped');
    const discontinuities = rec.segments.filter((s) => s.discontinuity);
    assert.equal(discontinuities.length, 2, 'before the slate and at the return');
    assert.ok(discontinuities.every((s) => s.independent));
    const sizes = new Set(
      rec.segments.map((s) => initOf(rec, s).tracks.find((t) => t.kind === 'video')!.width),
    );
    assert.deepEqual([...sizes], [854], 'the slate is at the stream size');
  });

  it('gaps under a second give no slate: a pause, and a fast reconnect', async () => {
    const tags = readFlv(readFileSync(await fixturePath('glasses-854x480.flv'))).tags;
    const paused: MediaTag[] = tags
      .filter((t) => t.timestamp < 6000)
      .map((t) => (t.timestamp >= 3000 ? { ...t, timestamp: t.timestamp + 700 } : t));
    const pause = publishFlv(paused, {
      port: relay.rtmpPort,
      user: 'u',
      stream: 'pause?profile=copy',
      maxGapMs: 1000,
    });
    const file = await fixturePath('glasses-854x480.flv');
    const first = publishFlv(file, { port: relay.rtmpPort, user: 'u', stream: 'blip', toMs: 4000 });
    await first.started;
    const blip = records.get('blip')!;
    await blip.ready;
    first.drop();
    await first.done.catch(() => {});
    const second = publishFlv(file, {
      port: relay.rtmpPort,
      user: 'u',
      stream: 'blip',
      fromMs: 4000,
      toMs: 7000,
    });
    const pausing = records.get('pause')!;
    // Each ends as its publisher does (a publisher gone for a second at the end would get its slate).
    await Promise.all([
      pause.done.then(() => pausing.stream.close()),
      second.done.then(() => blip.stream.close()),
    ]);
    for (const rec of [pausing, blip]) assert.equal(rec.stream.slateStats.slates, 0, rec.stream.streamId);
    assert.equal(pausing.inits.length, 1);
    assert.equal(blip.inits.length, 2, 'the republish is one new init, no slate between');
  });

  it('a transcode stream gets its slate at the output size, written without FFmpeg', async () => {
    const file = await fixturePath('glasses-854x480.flv');
    const first = publishFlv(file, {
      port: relay.rtmpPort,
      user: 'u',
      stream: 'tx?profile=transcode',
      toMs: 5000,
    });
    await first.started;
    const rec = records.get('tx')!;
    await rec.ready;
    await first.done;
    await whenSegment(rec, () => rec.stream.slating && rec.segments.some((s, i) => i > 0 && s.discontinuity));
    assert.equal(rec.stream.supervisor.running, null, 'no FFmpeg while the slate runs');
    const slateSegments = rec.segments.length;
    await segmentsAtLeast(rec, slateSegments + 1);
    const second = publishFlv(file, {
      port: relay.rtmpPort,
      user: 'u',
      stream: 'tx?profile=transcode',
      fromMs: 5000,
      toMs: 10_000,
      rebase: true,
    });
    await second.started;
    await whenSegment(
      rec,
      () =>
        !rec.stream.slating && rec.inits.length >= 3 && rec.segments.at(-1)!.initUri.endsWith('init2.mp4'),
    );
    await second.done;
    await rec.stream.close();
    const inits = rec.inits.map((i) => i.tracks.find((t) => t.kind === 'video')!);
    assert.deepEqual(
      inits.map((t) => `${t.width}x${t.height}`),
      ['854x480', '854x480', '854x480'],
      'FFmpeg, the slate, FFmpeg again',
    );
    assert.equal(inits[1]!.codec, inits[0]!.codec, 'the slate has the transcode profile and level');
  });

  it('an ABR stream gets a slate per rendition, each at its rung size, aligned', async () => {
    const file = await fixturePath('glasses-854x480.flv');
    const pub = publishFlv(file, {
      port: relay.rtmpPort,
      user: 'u',
      stream: 'ladder?profile=abr',
      toMs: 5000,
    });
    await pub.started;
    const rec = records.get('ladder')!;
    await rec.ready;
    await pub.done;
    await whenSegment(rec, () => rec.stream.slating && rec.segments.some((s, i) => i > 0 && s.discontinuity));
    const renditions = rec.stream.abr!.renditions;
    assert.ok(renditions.length >= 2, `rungs: ${renditions.length}`);
    // Every rendition's latest init is its slate, at the rung's size; their slate segments line up.
    const starts: number[] = [];
    for (const r of renditions) {
      const slate = [...r.packager.segments].reverse().find((s) => s.discontinuity)!;
      assert.ok(slate, `${r.rung.name}: a slate segment`);
      const init = r.packager.resource(slate.initUri)!;
      assert.equal(init.kind, 'init');
      const probe = path.join(dir, `${r.rung.name}.mp4`);
      writeFileSync(probe, Buffer.concat([init.data, slate.data]));
      const video = (await probeStreams(probe)).find((s) => s.codec_type === 'video')!;
      assert.equal(`${video.width}x${video.height}`, `${r.rung.width}x${r.rung.height}`, r.rung.name);
      starts.push(slate.fragments[0]!.startSeconds);
    }
    assert.ok(Math.max(...starts) - Math.min(...starts) < 0.05, `slate starts: ${starts}`);
    await rec.stream.close();
  });

  it('SLATE=off: a publisher gone for 2 s gets no slate, as before', async () => {
    const off = await startTestRelay({ SLATE: 'off', RECONNECT_WINDOW_SECONDS: '30' });
    try {
      assert.equal(off.relay.streams.slates, null);
      const file = await fixturePath('glasses-854x480.flv');
      const first = publishFlv(file, { port: off.relay.rtmpPort, user: 'u', stream: 'off', toMs: 4000 });
      await first.started;
      const rec = off.records.get('off')!;
      await rec.ready;
      const gone = new Promise<void>((resolve) =>
        rec.stream.on('state', (state) => state === 'reconnecting' && resolve()),
      );
      first.drop();
      await first.done.catch(() => {});
      await gone;
      const segments = rec.segments.length;
      await new Promise<void>((resolve) => setTimeout(resolve, 2000)); // the gap itself is what is tested
      assert.equal(rec.segments.length, segments, 'nothing made while the publisher is gone');
      const second = publishFlv(file, {
        port: off.relay.rtmpPort,
        user: 'u',
        stream: 'off',
        fromMs: 4000,
        toMs: 7000,
      });
      await second.done;
      await rec.stream.close();
      assert.equal(rec.stream.slateStats.slates, 0);
      assert.equal(rec.inits.length, 2);
    } finally {
      await off.relay.close();
    }
  });
});

/** Resolves when the relay created the stream `streamId` (records are made at its first publish). */
function whenRecord(records: Map<string, StreamRecord>, streamId: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = (): void => {
      if (records.has(streamId)) return resolve();
      if (Date.now() - started > 60_000) return reject(new Error(`no stream ${streamId}`));
      setTimeout(check, 50); // polled: the record map has no event of its own
    };
    check();
  });
}
