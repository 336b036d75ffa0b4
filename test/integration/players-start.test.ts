/**
 * Ready means playable at once (issue 15), end to end with a real relay and real FFmpeg: glasses whose
 * keyframes stop right after the start (keyframe-stall-854x480.flv: keyframes at 0 and 2 s, then none until
 * 9 s) publish in the default profile (auto: the 7 s GOP switches it to transcode). A plain playlist request
 * made as soon as the first segment exists is answered within a second of it (it waited 7 s when the first
 * playlist held out for PART-HOLD-BACK of complete segments), the stream's `ready` (the cloud's hls-ready)
 * is not sent before a plain request would be answered at once, and TARGETDURATION is the first GOP's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { START_GRACE_MS } from '../../src/hls/packager.ts';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { startTestRelay } from '../helpers/relay-harness.ts';

/** HTTP and event-loop time on a loaded machine, on top of the grace itself. */
const SLACK_MS = 600;

describe('players start fast', () => {
  let relay: RelayHandle;
  let hls: (p: string) => string;

  before(async () => {
    ({ relay, hls } = await startTestRelay({ HLS_LOW_LATENCY: 'on' }));
  });

  after(async () => {
    await relay?.close();
  });

  it('answers a plain playlist within a second of the first segment when keyframes stop after the start', async (t) => {
    let firstSegmentAt = 0;
    let readyAt = 0;
    let answeredAt = 0;
    let readyAnswerMs = Number.NaN;
    let playlist = '';
    const checks: Promise<void>[] = [];
    relay.streams.on('created', (stream) => {
      stream.packager.once('ready', () => {
        firstSegmentAt = performance.now();
        // A player that asks as soon as there is something to play.
        checks.push(
          (async () => {
            const res = await fetch(hls(`glasses-user.com/${stream.streamId}/index.m3u8`));
            playlist = await res.text();
            answeredAt = performance.now();
            assert.equal(res.status, 200);
          })(),
        );
      });
      stream.once('ready', () => {
        readyAt = performance.now();
        // Once ready is said, a plain request is answered without waiting.
        checks.push(
          (async () => {
            const t0 = performance.now();
            const res = await fetch(hls(`glasses-user.com/${stream.streamId}/index.m3u8`));
            await res.text();
            readyAnswerMs = performance.now() - t0;
            assert.equal(res.status, 200);
          })(),
        );
      });
    });
    const pub = publishFlv(await fixturePath('keyframe-stall-854x480.flv'), {
      port: relay.rtmpPort,
      user: 'glasses@user.com',
      stream: 'stall',
      toMs: 8000,
    });
    await pub.started;
    const publishedAt = performance.now();
    await pub.done;
    await Promise.all(checks);
    assert.ok(firstSegmentAt > 0 && readyAt > 0 && answeredAt > 0, 'first segment, ready and the answer');
    const waited = answeredAt - firstSegmentAt;
    t.diagnostic(
      `publish → first segment ${(firstSegmentAt - publishedAt).toFixed(0)} ms; first segment → plain playlist answered ${waited.toFixed(0)} ms, → ready ${(readyAt - firstSegmentAt).toFixed(0)} ms; a request at ready took ${readyAnswerMs.toFixed(0)} ms`,
    );
    assert.ok(waited < START_GRACE_MS + SLACK_MS, `plain playlist answered ${waited.toFixed(0)} ms after`);
    assert.ok(readyAt >= firstSegmentAt, 'ready not before the first segment');
    assert.ok(readyAt <= answeredAt + 50, 'ready said by the time the waiting request is answered');
    assert.ok(readyAnswerMs < SLACK_MS, `a request at ready answered in ${readyAnswerMs.toFixed(0)} ms`);
    assert.match(playlist, /#EXT-X-TARGETDURATION:2\n/, 'the first GOP (2 s) decides TARGETDURATION');
  });
});
