/**
 * WHIP into a real relay (issue 18): Debian Chromium's fake camera publishes H.264 + Opus, non-trickle as
 * the glasses do, to `POST /whip/live/{userId}/{streamId}` on the relay's origin, over a loopback UDP proxy
 * announced through WEBRTC_HOSTS. The stream is copied (Opus into fMP4, no FFmpeg) and hls.js in Chromium
 * plays it, audio decoded; the publisher DELETEs and POSTs again as the glasses' retry does → the same
 * URL, one discontinuity, the player keeps playing. With 5 % loss each way NACK and PLI keep every segment
 * decodable (FFmpeg decodes them without an error) and no discontinuity appears. A retry 4 s after the DELETE
 * (the glasses pause 3 s) is past the slate's start: the slate keeps an Opus track (silent Opus frames; an
 * audio track that disappears is fatal to hls.js, measured here), and the player plays through it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { freeUdpPort } from '../../src/webrtc/ice-port.ts';
import type { WhipSession } from '../../src/webrtc/whip-session.ts';
import { type BrowserHandle, launchBrowser } from '../helpers/browser.ts';
import { startTool } from '../helpers/process.ts';
import { initOf, type StreamRecord, segmentsAtLeast, startTestRelay } from '../helpers/relay-harness.ts';
import { eventually } from '../helpers/relay-process.ts';
import { UdpLossProxy } from '../helpers/udp-loss-proxy.ts';
import { launchWhipBrowser, type WhipBrowser } from '../helpers/whip-browser.ts';

/** FFmpeg decodes the first init and its segments completely; returns its error output (none expected). */
async function decodeErrors(record: StreamRecord): Promise<string> {
  const init = initOf(record, record.segments[0]!);
  const segments = record.segments.filter((s) => initOf(record, s) === init);
  const dir = await mkdtemp(join(tmpdir(), 'whip-relay-'));
  try {
    const file = join(dir, 'stream.mp4');
    await writeFile(file, Buffer.concat([init.data, ...segments.map((s) => s.data)]));
    const r = await startTool('ffmpeg', ['-hide_banner', '-v', 'error', '-i', file, '-f', 'null', '-']).done;
    assert.equal(r.code, 0, r.stderr);
    // The null muxer's frame-rate time base rounds a variable frame rate onto equal ticks: its complaint
    // is about the muxer, not about decoding.
    return r.stderr
      .split('\n')
      .filter((l) => l !== '' && !l.includes('non monotonically increasing dts to muxer'))
      .join('\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `promise`, or a rejection saying what did not happen and `state()` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string, state: () => unknown): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: not within ${ms} ms (${JSON.stringify(state())})`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('WHIP into a real relay', { timeout: 300_000 }, () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let hls: (path: string) => string;
  let proxy: UdpLossProxy;
  let whip: WhipBrowser;
  let player: BrowserHandle;
  let base: string;

  before(async () => {
    const udpPort = await freeUdpPort('127.0.0.1');
    proxy = new UdpLossProxy({ port: udpPort }, { upLoss: 0, downLoss: 0, jitterMs: 0, seed: 3 });
    const proxyPort = await proxy.listen();
    ({ relay, records, hls } = await startTestRelay({
      WEBRTC_UDP_PORT: String(udpPort),
      WEBRTC_HOSTS: `127.0.0.1:${proxyPort}`,
      RECONNECT_WINDOW_SECONDS: '20',
      WEBRTC_PEER_TIMEOUT_SECONDS: '3',
    }));
    base = `http://127.0.0.1:${relay.hlsPort}`;
    [whip, player] = await Promise.all([launchWhipBrowser(), launchBrowser()]);
  });

  after(async () => {
    await whip?.close();
    await player?.close();
    await relay?.close();
    await proxy?.close();
  });

  it('becomes HLS that hls.js plays (Opus in fMP4); DELETE + POST again keeps the URL, one discontinuity', async () => {
    const url = `${base}/whip/live/glasses@example.com/cam1?token=unused-in-dev`;
    const publisher = await whip.publish(url, { width: 854, height: 480, fps: 15, hideCandidates: true });
    assert.equal(publisher.post.status, 201, publisher.post.body);
    const record = await eventually('the stream', () => records.get('cam1'), 30_000);
    const state = () => ({
      state: record.stream.state,
      decision: record.stream.decision,
      segments: record.segments.length,
      counters: (record.stream.source as WhipSession | null)?.counters,
    });
    await within(record.ready, 60_000, 'ready', state);
    await within(segmentsAtLeast(record, 2), 60_000, '2 segments', state);
    assert.match(record.stream.decision ?? '', /^copy: H\.264\/Opus/);
    const source = record.stream.source as WhipSession;
    assert.equal(source.info.protocol, 'whip');

    const playing = player.playHls(hls('glasses-example.com/cam1/index.m3u8'), { seconds: 16 });
    // The glasses' retry, a few seconds into playback: DELETE, then a new offer.
    await new Promise((r) => setTimeout(r, 6_000));
    const discontinuities = (): number => record.segments.filter((x) => x.discontinuity).length;
    const discontinuityBefore = discontinuities();
    const again = await publisher.republish(url);
    assert.equal(again.status, 201, again.body);
    assert.equal(source.ended?.kind, 'disconnect');
    await eventually(
      'publishing again',
      () => record.stream.state === 'publishing' && record.stream.source !== source,
      30_000,
    );
    const report = await playing;
    assert.deepEqual(report.fatalErrors, []);
    assert.ok(report.playedSeconds >= 10, `played ${report.playedSeconds} s of 16`);
    const audio = report.samples.at(-1)?.audioDecodedBytes ?? 0;
    assert.ok(audio > 0, 'hls.js decoded no Opus audio');
    assert.equal(discontinuities(), discontinuityBefore + 1);
    assert.equal(records.get('cam1'), record, 'the same stream (same URL)');
    console.log(
      `whip → hls.js: started after ${report.startedAfterMs} ms, played ${report.playedSeconds.toFixed(1)} s, ` +
        `stalls ${JSON.stringify(report.stalls)}, audio ${audio} bytes decoded; segments ${record.segments.map((s) => s.duration.toFixed(2)).join(' ')}`,
    );
    await publisher.close();
  });

  it('a retry 4 s after the DELETE, as the glasses pause: the slate (with Opus) plays, then the stream again', async () => {
    const url = `${base}/whip/live/glasses@example.com/slow?token=x`;
    const first = await whip.publish(url, { width: 854, height: 480, fps: 15, hideCandidates: true });
    assert.equal(first.post.status, 201, first.post.body);
    const record = await eventually('the stream', () => records.get('slow'), 30_000);
    await within(segmentsAtLeast(record, 2), 60_000, '2 segments', () => record.segments.length);
    const playing = player.playHls(hls('glasses-example.com/slow/index.m3u8'), { seconds: 20 });
    await new Promise((r) => setTimeout(r, 5_000));
    assert.equal(await first.close(), 200);
    await new Promise((r) => setTimeout(r, 4_000));
    const second = await whip.publish(url, { width: 854, height: 480, fps: 15, hideCandidates: true });
    assert.equal(second.post.status, 201, second.post.body);
    const report = await playing;
    console.log(
      `whip slow retry: played ${report.playedSeconds.toFixed(1)} s, stalls ${JSON.stringify(report.stalls)}, ` +
        `errors ${JSON.stringify(report.fatalErrors)} ${JSON.stringify(report.nonFatalErrors.slice(0, 3))}, ` +
        `audio ${report.samples.at(-1)?.audioDecodedBytes}; inits ${record.inits.map((x) => x.tracks.map((t) => t.codec).join('+')).join(' ')}`,
    );
    assert.deepEqual(report.fatalErrors, []);
    assert.ok(report.playedSeconds >= 14, `played ${report.playedSeconds} s of 20`);
    assert.ok(
      record.inits.every((i) => i.tracks.some((t) => t.codec === 'opus')),
      'every init keeps Opus',
    );
    assert.equal(record.stream.slateStats.slates, 1, 'the slate ran');
    assert.equal(record.inits.length, 3, 'the publisher’s, the slate’s, the publisher’s again');
    await second.close();
  });

  it('5 % loss each way: every segment decodes, no discontinuity', async () => {
    const url = `${base}/whip/live/glasses@example.com/lossy?token=x`;
    const publisher = await whip.publish(url, { width: 854, height: 480, fps: 15, hideCandidates: true });
    assert.equal(publisher.post.status, 201, publisher.post.body);
    const record = await eventually('the stream', () => records.get('lossy'), 30_000);
    // The loss starts once media flows: what is measured is NACK and PLI, not how ICE and DTLS retry their
    // handshake under loss (on a loaded machine that took longer than the test waits).
    await within(segmentsAtLeast(record, 1), 60_000, 'the first segment', () => record.stream.state);
    proxy.setProfile({ upLoss: 0.05, downLoss: 0.05, jitterMs: 3 });
    await within(segmentsAtLeast(record, 7), 90_000, '6 segments under loss', () => ({
      segments: record.segments.length,
      counters: (record.stream.source as WhipSession | null)?.counters,
    }));
    proxy.setProfile({ upLoss: 0, downLoss: 0, jitterMs: 0 });
    const source = record.stream.source as WhipSession;
    const counters = source.counters;
    const stats = await publisher.stats();
    assert.ok(counters.video.nacked > 0 && counters.video.recovered > 0, JSON.stringify(counters));
    assert.ok(stats.nackCount > 0, JSON.stringify(stats));
    assert.deepEqual(
      record.segments.filter((x) => x.discontinuity).map((x) => x.msn),
      [],
      `no discontinuity (inits: ${record.inits.map((i) => JSON.stringify(i.tracks.map((t) => [t.codec, t.width, t.height]))).join(' ')})`,
    );
    assert.equal(record.inits.length, 1);
    const errors = await decodeErrors(record);
    assert.equal(errors.trim(), '', 'FFmpeg decode errors');
    console.log(
      `whip 5 % loss: proxy ${JSON.stringify(proxy.counters)}, video ${JSON.stringify(counters.video)}, ` +
        `frames dropped ${counters.framesDropped}, keyframe requests ${JSON.stringify(counters.keyframeRequests)}; ` +
        `segments ${record.segments.map((s) => s.duration.toFixed(2)).join(' ')}`,
    );
    await publisher.close();
  });
});
