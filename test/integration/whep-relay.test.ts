/**
 * WHEP through a real relay (issue 17): real FFmpeg publishes a live RTMP stream to the relay (in-process,
 * test/helpers/relay-harness.ts), Debian's Chromium plays it over WHEP from the relay's origin. Frames and
 * Opus audio decode and the first frame comes fast; the publisher dropping and returning within the reconnect
 * window leaves the session playing; a B-frame source is refused with a clear 409 and plays once published
 * with ?profile=transcode (WHEP then reads FFmpeg's output); 200 connect/disconnect
 * cycles leave no session, socket or FFmpeg; relay close() leaves no
 * session or Opus FFmpeg behind. (The UDP port itself: libjuice keeps a mux socket until the process exits,
 * measured with node-datachannel 0.33.4; a relay closes with its process, tests pick free ports.)
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { startTool, type ToolRun } from '../helpers/process.ts';
import { startTestRelay } from '../helpers/relay-harness.ts';
import { eventually } from '../helpers/relay-process.ts';
import { launchWhepBrowser, type WhepBrowser } from '../helpers/whep-browser.ts';

const openFds = (): number => readdirSync('/proc/self/fd').length;

/** FFmpeg publishing an FLV fixture live and in a loop (copy: no encode, cheap on a loaded machine). */
function publish(file: string, rtmpPort: number, path: string): ToolRun {
  return startTool('ffmpeg', [
    ...['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', file],
    ...['-c', 'copy', '-f', 'flv', `rtmp://127.0.0.1:${rtmpPort}/live/${path}`],
  ]);
}

/** Resolves when the stream at `streamId` has video configuration and a keyframe (WHEP can answer). */
function playable(relay: RelayHandle, streamId: string): Promise<void> {
  return eventually(
    `stream ${streamId} playable`,
    () => {
      const s = relay.streams.streams.find((x) => x.streamId === streamId);
      return s?.configuration?.video && s.currentGop.length > 0 ? true : undefined;
    },
    30_000,
  ).then(() => undefined);
}

describe('WHEP through a real relay (RTMP from FFmpeg → Chromium)', { timeout: 240_000 }, () => {
  let relay: RelayHandle;
  let browser: WhepBrowser;
  let origin: string;
  const publishers: ToolRun[] = [];

  before(async () => {
    // No thumbnails: their FFmpeg would blur the count of Opus ones.
    ({ relay } = await startTestRelay({ RECONNECT_WINDOW_SECONDS: '15', THUMBNAIL_SECONDS: '3600' }));
    origin = `http://127.0.0.1:${relay.hlsPort}`;
    browser = await launchWhepBrowser();
  });

  after(async () => {
    for (const p of publishers) p.kill();
    await browser?.close();
    await relay?.close();
  });

  it('plays video and Opus audio, and keeps playing when the publisher drops and returns', async () => {
    const file = await fixturePath('steady-30fps.flv');
    const first = publish(file, relay.rtmpPort, 'viewer@example.com/live1');
    publishers.push(first);
    await playable(relay, 'live1');
    const viewer = await browser.play(`${origin}/whep/viewer-example.com/live1`, { audio: true });
    assert.equal(viewer.answer.status, 201, viewer.answer.body);
    assert.match(viewer.answer.location ?? '', /^\/whep\/viewer-example\.com\/live1\/[A-Za-z0-9_-]{24}$/);
    await viewer.waitFrames(30, 60_000);
    // Presented, not only decoded (requestVideoFrameCallback; it may trail getStats on a loaded machine).
    const s1 = await eventually(
      'a presented frame',
      async () => {
        const s = await viewer.stats();
        return s.firstFrameMs !== null ? s : undefined;
      },
      30_000,
    );
    console.log(`first frame ${s1.firstFrameMs} ms after the POST (answer ${s1.answeredMs} ms)`);
    const audio = await eventually(
      'Opus audio packets',
      async () => {
        const s = await viewer.stats();
        return s.audioPacketsReceived >= 25 ? s : undefined;
      },
      30_000,
    );
    assert.ok(audio.audioSamplesReceived > 0, JSON.stringify(audio));
    assert.equal(relay.webrtc.whep.encoderCount, 1);

    // The publisher drops (killed, as a Wi-Fi loss looks) and returns within the reconnect window.
    first.kill();
    await first.done;
    await eventually('reconnecting', () => relay.streams.streams[0]?.state === 'reconnecting', 30_000);
    const during = await viewer.stats();
    assert.equal(relay.webrtc.whep.sessionCount, 1, 'the session waits with the stream');
    const second = publish(file, relay.rtmpPort, 'viewer@example.com/live1');
    publishers.push(second);
    const after = await viewer.waitFrames(during.framesDecoded + 60, 60_000);
    assert.equal(after.connectionState, 'connected');
    console.log(`after the return: ${JSON.stringify(after)}`);
    assert.equal(await viewer.close({ delete: true }), 200);
    assert.equal(relay.webrtc.whep.sessionCount, 0);
    second.kill();
    await second.done;
  });

  it('refuses a B-frame source with a clear 409, and plays it once it is transcoded', async () => {
    const p = publish(await fixturePath('bframes-15fps.flv'), relay.rtmpPort, 'viewer@example.com/bframes');
    publishers.push(p);
    await playable(relay, 'bframes');
    // The GOP must show a reordered frame before the check can see it: at least a few frames in.
    await eventually(
      'a few frames of the B-frame GOP',
      () => {
        const s = relay.streams.streams.find((x) => x.streamId === 'bframes');
        return s && s.currentGop.filter((a) => a.track === 'video').length >= 4;
      },
      30_000,
    );
    const viewer = await browser.play(`${origin}/whep/viewer-example.com/bframes`);
    assert.equal(viewer.answer.status, 409, viewer.answer.body);
    assert.match(viewer.answer.body, /WEBRTC_B_FRAMES: .*B-frames/);
    await viewer.close({ delete: false });
    p.kill();
    await p.done;

    // The same source published with ?profile=transcode: WHEP reads FFmpeg's output (no B-frames).
    const pub = publishFlv(await fixturePath('bframes-15fps.flv'), {
      port: relay.rtmpPort,
      user: 'viewer@example.com',
      stream: 'transcoded?profile=transcode',
    });
    try {
      await pub.started;
      await eventually(
        'the transcode made a keyframe',
        () => {
          const s = relay.streams.streams.find((x) => x.streamId === 'transcoded');
          return s?.pipelineProfile === 'transcode' && s.packager.playlist().includes('#EXT-X-PART');
        },
        60_000,
      );
      const watch = await eventually(
        'a WHEP answer for the transcoded stream',
        async () => {
          const v = await browser.play(`${origin}/whep/viewer-example.com/transcoded`, { audio: true });
          if (v.answer.status === 201) return v;
          await v.close({ delete: false });
          return undefined;
        },
        30_000,
      );
      await watch.waitFrames(30, 60_000);
      // Its audio too: FFmpeg's AAC read back from the CMAF, then Opus.
      const stats = await eventually(
        'Opus audio of the transcoded stream',
        async () => {
          const s = await watch.stats();
          return s.audioPacketsReceived >= 25 ? s : undefined;
        },
        30_000,
      );
      assert.ok(stats.keyFramesDecoded >= 1, JSON.stringify(stats));
      console.log(`transcoded B-frame source over WHEP: ${JSON.stringify(stats)}`);
      assert.equal(await watch.close(), 200);
    } finally {
      await pub.stop().catch(() => {}); // the relay closes with the suite either way
    }
  });

  it('leaves no session, socket or FFmpeg after 200 connect/disconnect cycles from Chromium', async () => {
    const p = publish(await fixturePath('steady-9fps.flv'), relay.rtmpPort, 'viewer@example.com/cycles');
    publishers.push(p);
    await playable(relay, 'cycles');
    const stream = relay.streams.streams.find((s) => s.streamId === 'cycles')!;
    const auListeners = stream.listenerCount('au');
    const fdsBefore = openFds();
    const started = performance.now();
    // Every third viewer takes audio (the Opus FFmpeg starts and stops); half DELETE, half just go away.
    await browser.cycles(`${origin}/whep/viewer-example.com/cycles`, 200, 4);
    console.log(`200 cycles in ${Math.round(performance.now() - started)} ms`);
    const { whep } = relay.webrtc;
    await eventually('no session left', () => whep.sessionCount === 0, 30_000);
    assert.equal(whep.outputCount, 0, 'stream outputs');
    assert.equal(whep.encoderCount, 0, 'Opus encoders');
    // A copy stream runs no FFmpeg, and the one thumbnail at its start is long done: none may be left.
    await eventually('no FFmpeg left', () => relay.reaper.size === 0, 15_000);
    assert.equal(stream.listenerCount('au'), auListeners, 'WHEP no longer listens to the stream');
    // Closed peer connections give their sockets back once their native objects are collected.
    setFlagsFromString('--expose_gc');
    const gc = runInNewContext('gc') as () => void;
    await eventually(
      'file descriptors back',
      async () => {
        gc();
        await new Promise((r) => setTimeout(r, 500));
        return openFds() <= fdsBefore + 4;
      },
      60_000,
    ).catch((err: Error) => assert.fail(`${err.message}: ${fdsBefore} before, ${openFds()} after`));
    p.kill();
    await p.done;
  });

  it('closes everything with the relay: sessions and the Opus FFmpeg', async () => {
    const file = await fixturePath('steady-30fps.flv');
    const p = publish(file, relay.rtmpPort, 'viewer@example.com/live2');
    publishers.push(p);
    await playable(relay, 'live2');
    const viewer = await browser.play(`${origin}/whep/viewer-example.com/live2`, { audio: true });
    assert.equal(viewer.answer.status, 201, viewer.answer.body);
    await viewer.waitFrames(10, 60_000);
    assert.equal(relay.webrtc.whep.encoderCount, 1);
    await relay.close();
    assert.equal(relay.webrtc.whep.sessionCount, 0);
    assert.equal(relay.webrtc.whep.encoderCount, 0);
    await eventually('no FFmpeg left', () => relay.reaper.size === 0, 15_000);
    await viewer.close({ delete: false });
    p.kill();
  });
});
