/**
 * WHEP through a real relay (issue 17): real FFmpeg publishes a live RTMP stream to the relay (in-process,
 * test/helpers/relay-harness.ts), Debian's Chromium plays it over WHEP from the relay's origin. Frames and
 * Opus audio decode and the first frame comes fast; the publisher dropping and returning within the reconnect
 * window leaves the session playing; a B-frame source is refused with a clear 409; relay close() leaves no
 * session or Opus FFmpeg behind. (The UDP port itself: libjuice keeps a mux socket until the process exits,
 * measured with node-datachannel 0.33.4; a relay closes with its process, tests pick free ports.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { startTool, type ToolRun } from '../helpers/process.ts';
import { startTestRelay } from '../helpers/relay-harness.ts';
import { eventually } from '../helpers/relay-process.ts';
import { launchWhepBrowser, type WhepBrowser } from '../helpers/whep-browser.ts';

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
    ({ relay } = await startTestRelay({ RECONNECT_WINDOW_SECONDS: '15' }));
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
    const s1 = await viewer.waitFrames(30, 60_000);
    console.log(`first frame ${s1.firstFrameMs} ms after the POST (answer ${s1.answeredMs} ms)`);
    assert.ok(s1.firstFrameMs !== null);
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

  it('refuses a B-frame source with a clear 409', async () => {
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
