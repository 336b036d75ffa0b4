/**
 * The slate's pieces: the argv (pure, no shell, the configured picture only ever a file), one real FFmpeg
 * encode per spec shared by every caller (the cache), the specs read from a publish's configuration and
 * from an init segment agreeing, the clock that stamps it (fps, GOP of a second, silent audio, DTS order,
 * every unit marked), and the runner writing it to a real packager in-process on an injected clock.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Packager } from '../../../src/hls/packager.ts';
import { CmafWriter } from '../../../src/media/cmaf-writer.ts';
import { ChildReaper } from '../../../src/pipeline/child-reaper.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { SlateClock, slateGopFrames } from '../../../src/stream/slate.ts';
import { SlateCache } from '../../../src/stream/slate-cache.ts';
import {
  SLATE_ENCODED_FRAMES,
  type SlateMedia,
  type SlateSpec,
  slateArgs,
  slateKey,
  specOfInit,
  specOfInput,
} from '../../../src/stream/slate-media.ts';
import { SlateRunner } from '../../../src/stream/slate-runner.ts';
import { webrtcOpusConfig } from '../../../src/webrtc/whip-session.ts';

const PORTRAIT: SlateSpec = {
  profile: 'baseline',
  level: 31,
  width: 540,
  height: 960,
  audio: { codec: 'aac', sampleRate: 44_100, channels: 2 },
};

describe('slate config', () => {
  it('is on by default after 3 s; SLATE=off turns it off; under a second is refused', () => {
    assert.deepEqual(loadConfig({}).stream.slate, { afterMs: 3000, image: undefined });
    assert.equal(loadConfig({ SLATE: 'off' }).stream.slate, null);
    assert.deepEqual(loadConfig({ SLATE_AFTER_SECONDS: '1.5', SLATE_IMAGE: '/srv/s.png' }).stream.slate, {
      afterMs: 1500,
      image: '/srv/s.png',
    });
    assert.throws(() => loadConfig({ SLATE_AFTER_SECONDS: '0.5' }), { code: 'CONFIG_INVALID' });
    assert.throws(() => loadConfig({ SLATE: 'maybe' }), { code: 'CONFIG_INVALID' });
  });
});

describe('slate argv', () => {
  it('encodes one GOP of still H.264 with the stream profile, level and silent AAC, FLV on stdout', () => {
    const args = slateArgs(PORTRAIT);
    const at = (flag: string): string | undefined => args[args.indexOf(flag) + 1];
    assert.equal(at('-profile:v'), 'baseline');
    assert.equal(at('-level'), '3.1');
    assert.equal(at('-frames:v'), String(SLATE_ENCODED_FRAMES));
    assert.equal(at('-g'), String(SLATE_ENCODED_FRAMES));
    assert.equal(at('-bf'), '0');
    assert.equal(at('-ar'), '44100');
    assert.equal(at('-f'), 'lavfi');
    assert.match(args.find((a) => a.startsWith('color='))!, /s=540x960/);
    assert.equal(args.at(-1), 'pipe:1');
    assert.ok(!args.includes('-c:a') || args.includes('aac'));
    const silent = slateArgs({ ...PORTRAIT, audio: null });
    assert.ok(!silent.includes('-c:a') && !silent.some((a) => a.startsWith('anullsrc')));
  });

  it('takes SLATE_IMAGE as a file only (absolute, file: prefixed): never a protocol or an option', () => {
    for (const image of ['-y', 'http://evil/x.png', 'pipe:0', '$(touch /tmp/x).png']) {
      const args = slateArgs(PORTRAIT, { image });
      const input = args[args.indexOf('-i') + 1]!;
      assert.equal(input, `file:${path.resolve(image)}`);
    }
    const fit = slateArgs(PORTRAIT, { image: '/srv/slate.png' });
    assert.match(
      fit[fit.indexOf('-vf') + 1]!,
      /scale=540:960:force_original_aspect_ratio=decrease,pad=540:960/,
    );
  });

  it('keys a spec by everything the encode depends on', () => {
    assert.equal(slateKey(PORTRAIT), 'h264-baseline-31/540x960/44100x2');
    assert.equal(slateKey({ ...PORTRAIT, audio: null }), 'h264-baseline-31/540x960/none');
  });
});

describe('slate cache (real FFmpeg)', () => {
  const reaper = new ChildReaper();
  let cache: SlateCache;
  let media: SlateMedia;

  before(async () => {
    cache = new SlateCache({ log: silentLogger(), reaper });
    // Three callers at once: one encode.
    const all = await Promise.all([cache.get(PORTRAIT), cache.get(PORTRAIT), cache.get({ ...PORTRAIT })]);
    media = all[0]!;
    assert.ok(all.every((m) => m === media));
  });

  after(() => {
    cache.close();
    reaper.close();
  });

  it('encodes once per spec and shares the result', async () => {
    assert.equal(cache.stats.encodes, 1);
    assert.equal(await cache.get(PORTRAIT), media);
    assert.equal(cache.stats.encodes, 1);
    assert.equal(cache.running, 0, 'no FFmpeg left running');
    assert.equal(reaper.size, 0);
  });

  it('is one IDR then P frames at the spec size, with a silent AAC frame', () => {
    assert.equal(media.video.width, 540);
    assert.equal(media.video.height, 960);
    assert.equal(media.frames.length, SLATE_ENCODED_FRAMES);
    assert.ok(media.audio && media.audio.sampleRate === 44_100 && media.audio.channels === 2);
    assert.ok(media.silence && media.silence.length < 64, 'silence is a few bytes');
    const pTotal = media.frames.slice(1).reduce((n, f) => n + f.length, 0);
    assert.ok(pTotal < 4000, `P frames are cheap: ${pTotal} bytes for ${media.frames.length - 1}`);
  });

  it('reads the same spec back from its configuration and from its init segment', () => {
    assert.deepEqual(specOfInput(media.video, media.audio), PORTRAIT);
    const init = new CmafWriter({ video: media.video, audio: media.audio }).init;
    assert.deepEqual(specOfInit(init), PORTRAIT);
  });

  it('an Opus stream (WHIP) gets a slate with an Opus track of silent frames, its encode without audio', async () => {
    const opus = webrtcOpusConfig();
    const spec = specOfInput(media.video, opus);
    assert.deepEqual(spec, { ...PORTRAIT, audio: { codec: 'opus', sampleRate: 48_000, channels: 2 } });
    assert.ok(!slateArgs(spec!).some((a) => a.includes('anullsrc')), 'no audio encoded');
    const opusMedia = await cache.get(spec!);
    assert.equal(cache.stats.encodes, 2, 'its own entry');
    assert.deepEqual(opusMedia.audio, opus);
    assert.deepEqual([...opusMedia.silence!], [0xfc, 0xff, 0xfe]);
    // Its init carries Opus, and reads back as the same spec; silence comes every 20 ms.
    const init = new CmafWriter({ video: opusMedia.video, audio: opusMedia.audio }).init;
    assert.equal(init.tracks.find((t) => t.kind === 'audio')?.codec, 'opus');
    assert.deepEqual(specOfInit(init), spec);
    const audio = new SlateClock(opusMedia, 10, 0).until(999).filter((a) => a.track === 'audio');
    assert.equal(audio.length, 50);
    assert.ok(audio.every((a, i) => a.dts === i * 20));
  });

  it('fails a spec FFmpeg cannot make with SLATE_ENCODE_FAILED, and remembers it', async () => {
    const broken = new SlateCache({ log: silentLogger(), reaper, ffmpegPath: '/nonexistent/ffmpeg' });
    try {
      await assert.rejects(broken.get(PORTRAIT), { code: 'SLATE_ENCODE_FAILED' });
      await assert.rejects(broken.get(PORTRAIT), { code: 'SLATE_ENCODE_FAILED' });
      assert.equal(broken.stats.encodes, 2, 'with text, then without; the second caller waits for nothing');
    } finally {
      broken.close();
    }
  });

  it('stamps it at the stream frame rate: a GOP a second, silence every 1024 samples, in DTS order', () => {
    const clock = new SlateClock(media, 10, 1000);
    const aus = clock.until(2999);
    const video = aus.filter((a) => a.track === 'video');
    const audio = aus.filter((a) => a.track === 'audio');
    assert.equal(video.length, 20);
    assert.deepEqual(
      video.filter((v) => v.keyframe).map((v) => v.dts),
      [1000, 2000],
    );
    assert.equal(slateGopFrames(10, SLATE_ENCODED_FRAMES), 10);
    assert.equal(audio.length, Math.floor(2000 / ((1024 * 1000) / 44_100)) + 1);
    assert.ok(aus.every((a) => a.slate === true && a.pts === a.dts));
    for (let i = 1; i < aus.length; i++) assert.ok(aus[i]!.dts >= aus[i - 1]!.dts);
    assert.deepEqual(clock.until(2999), [], 'nothing twice');
    assert.equal(clock.until(3000)[0]!.dts, 3000);
  });

  it('runs into a packager in-process: its init (a discontinuity), segments that keep coming', () => {
    let now = 10_000;
    const packager = new Packager({ segmentSeconds: 2, targetDuration: 4, listSize: 5, now: () => now });
    const inits: string[] = [];
    packager.on('init', (_i, uri) => inits.push(uri));
    const fed: number[] = [];
    let started = 0;
    const runner = new SlateRunner({
      startMs: 5000,
      anchorMs: 4960,
      anchorWallMs: now,
      packagers: [{ packager, media, fps: 15 }],
      feed: { media, fps: 15 },
      onFeedStart: () => started++,
      onFeedAu: (au) => fed.push(au.dts),
      now: () => now,
      tickMs: 60_000, // ticks driven below through stop()
    });
    runner.start();
    assert.equal(inits.length, 1);
    assert.equal(started, 1);
    now += 9000;
    const end = runner.stop();
    assert.ok(end >= 4960 + 9000 && end < 4960 + 9000 + 100, `end ${end}`);
    assert.ok(packager.segments.length >= 3, `segments: ${packager.segments.length}`);
    const durations = packager.segments.map((s) => s.duration);
    assert.ok(
      durations.every((d) => d >= 1.9 && d <= 2.1),
      `2 s segments cut at the slate's keyframes: ${durations}`,
    );
    assert.ok(packager.segments.every((s) => s.independent));
    assert.equal(fed.filter((d, i) => i > 0 && d < fed[i - 1]!).length, 0);
    assert.equal(runner.stop(), end, 'idempotent');
  });
});
