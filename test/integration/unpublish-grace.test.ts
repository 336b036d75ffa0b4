/**
 * A clean unpublish (FCUnpublish + deleteStream) ends a stream after UNPUBLISH_GRACE_SECONDS, not after the
 * whole reconnect window: players get ENDLIST within the grace; a republish within the grace continues the
 * same playlist; a dropped connection (no unpublish) still waits out the reconnect window.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { StreamState } from '../../src/stream/stream.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { type StreamRecord, segmentsAtLeast, startTestRelay } from '../helpers/relay-harness.ts';

const GRACE_S = 2;

describe('clean unpublish', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  let file = '';

  before(async () => {
    ({ relay, records, hls } = await startTestRelay({
      RECONNECT_WINDOW_SECONDS: '60',
      UNPUBLISH_GRACE_SECONDS: String(GRACE_S),
    }));
    file = await fixturePath('glasses-854x480.flv');
  });

  after(async () => {
    await relay?.close();
  });

  /** Publishes until the stream has `segments` segments, then unpublishes cleanly (or drops). */
  async function publishThen(stream: string, end: 'stop' | 'drop', fromMs = 0): Promise<StreamRecord> {
    const pub = publishFlv(file, { port: relay.rtmpPort, user: 'u1', stream, fromMs, rebase: fromMs > 0 });
    await pub.started;
    const rec = records.get(stream)!;
    await segmentsAtLeast(rec, rec.segments.length + 2);
    if (end === 'stop') await pub.stop();
    else {
      pub.drop();
      await pub.done.catch(() => {}); // a dropped publish ends in an error on our side: expected
    }
    return rec;
  }

  it('ends the stream with ENDLIST within the grace, not the 60 s window', { timeout: 120_000 }, async () => {
    const rec = await publishThen('bye', 'stop');
    const at = performance.now();
    await rec.ended;
    const seconds = (performance.now() - at) / 1000;
    assert.ok(seconds < GRACE_S + 10, `ended ${seconds.toFixed(1)} s after the unpublish`);
    const playlist = await (await fetch(hls('u1/bye/index.m3u8'))).text();
    assert.match(playlist, /#EXT-X-ENDLIST/);
  });

  it('continues the same playlist when the publisher republishes within the grace', {
    timeout: 120_000,
  }, async () => {
    const rec = await publishThen('again', 'stop');
    const before = rec.segments.length;
    const second = publishFlv(file, {
      port: relay.rtmpPort,
      user: 'u1',
      stream: 'again',
      fromMs: 6000,
      rebase: true,
    });
    await second.started;
    await segmentsAtLeast(rec, before + 2);
    assert.equal(records.get('again'), rec, 'the same stream: same URL, same playlist');
    assert.equal(rec.stream.state, StreamState.Publishing);
    assert.ok(
      rec.segments.slice(before).some((s) => s.discontinuity),
      'the return is a discontinuity',
    );
    await second.stop();
    await rec.ended;
  });

  it('waits out the reconnect window after a dropped connection', { timeout: 120_000 }, async () => {
    const rec = await publishThen('dropped', 'drop');
    // Not an event that can be awaited: the end must NOT come. Twice the grace is well past it.
    let ended = false;
    void rec.ended.then(() => (ended = true));
    await new Promise((resolve) => setTimeout(resolve, GRACE_S * 2000));
    assert.equal(ended, false);
    assert.equal(rec.stream.state, StreamState.Reconnecting);
  });
});
