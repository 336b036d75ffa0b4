/**
 * The pure view of a live input (view.ts), table-driven: where the publish URL splits into url + streamKey,
 * how keys are masked, what a relay's report means now (connected, reconnecting, disconnected when ended or
 * stale), Cloudflare's status for it, and which URLs a relay's bases and announcements give.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LiveInputRecord, LiveInputReports } from '../../../src/cloud/live-inputs/state.ts';
import {
  connectionOf,
  destinationUrl,
  liveInputView,
  maskKey,
  splitPublishUrl,
  statusOf,
} from '../../../src/cloud/live-inputs/view.ts';

const UID = '0123456789abcdef0123456789abcdef';

describe('live input view', () => {
  it('splits the publish URL where Cloudflare splits it: url + streamKey is the whole URL', () => {
    for (const [base, userId, token, url, key] of [
      ['rtmp://h:1935', 'u@x.com', 'T.k-n', 'rtmp://h:1935/live/u@x.com/', `${UID}?token=T.k-n`],
      ['rtmp://h:1935/', 'acct', undefined, 'rtmp://h:1935/live/acct/', UID],
      ['rtmps://h:1936', 'a.b', 'x', 'rtmps://h:1936/live/a.b/', `${UID}?token=x`],
    ] as const) {
      const split = splitPublishUrl(base, userId, UID, token);
      assert.deepEqual(split, { url, streamKey: key });
    }
  });

  it('masks keys to their last four characters (none of a short one)', () => {
    for (const [key, masked] of [
      ['uzya-f19y-g2g9-a2ee-51j2', '****51j2'],
      ['123456789012', '****9012'],
      ['short', '****'],
      ['', '****'],
    ] as const)
      assert.equal(maskKey(key), masked);
    assert.equal(
      destinationUrl({ uid: 'o', url: 'rtmp://a.rtmp.youtube.com/live2/', streamKey: 'k', enabled: true }),
      'rtmp://a.rtmp.youtube.com/live2/k',
    );
  });

  it('reads a report as connected, reconnecting or disconnected (ended, or its relay silent too long)', () => {
    const stats = { videoCodec: 'avc1', width: 540, height: 960, fps: 15, protocol: 'rtmp' };
    for (const [state, age, expected, status] of [
      ['publishing', 1000, 'connected', 'connected'],
      ['reconnecting', 1000, 'reconnecting', 'reconnecting'],
      ['ended', 1000, 'disconnected', 'client_disconnect'],
      ['publishing', 31_000, 'disconnected', 'client_disconnect'],
    ] as const) {
      const reports: LiveInputReports = {
        connection: { relayId: 'r', state, at: 100_000 - age, stats },
        outputs: [],
      };
      const c = connectionOf(reports, 100_000, 30_000);
      assert.equal(c?.state, expected, `${state} ${age}`);
      assert.equal(statusOf(c), status);
      // Stats only while someone publishes or may come back.
      assert.equal(c?.videoCodec, expected === 'disconnected' ? undefined : 'avc1');
    }
    assert.equal(connectionOf({ connection: null, outputs: [] }, 0, 1), null);
    assert.equal(statusOf(null), null);
  });

  it('answers the URLs the relay offers: SRT with a base, WebRTC with a WHIP base, DASH once announced', () => {
    const r: LiveInputRecord = {
      v: 1,
      uid: UID,
      userId: 'u@x.com',
      created: 0,
      modified: 0,
      meta: {},
      enabled: true,
      deleteRecordingAfterDays: null,
      recording: {
        mode: 'off',
        timeoutSeconds: 0,
        requireSignedURLs: false,
        allowedOrigins: [],
        hideLiveViewerCount: false,
      },
      relayId: 'r',
      placedAt: 0,
      outputs: [],
    };
    const ctx = {
      reports: { connection: null, outputs: [] } as LiveInputReports,
      token: 'tok',
      srtPassphrase: 'p'.repeat(32),
      now: 0,
      staleMs: 30_000,
    };
    const bare = liveInputView(r, {
      ...ctx,
      relay: { relayId: 'r', rtmpUrl: 'rtmp://h:1935', hlsUrl: 'http://h:8888' },
    });
    assert.equal(bare.srt, undefined);
    assert.equal(bare.webRTC, undefined);
    assert.equal(bare.webRTCPlayback, undefined);
    assert.equal(bare.dash, undefined);
    assert.equal(bare.hls?.url, `http://h:8888/hls/u-x.com/${UID}/index.m3u8`);
    assert.equal(bare.deleteRecordingAfterDays, undefined);

    const full = liveInputView(r, {
      ...ctx,
      relay: {
        relayId: 'r',
        rtmpUrl: 'rtmp://h:1935',
        hlsUrl: 'http://h:8888',
        srtUrl: 'srt://h:8890/',
        whipUrl: 'http://h:8888',
      },
      reports: {
        connection: null,
        outputs: [],
        playback: { relayId: 'r', dashUrl: 'http://h:8888/dash/x.mpd' },
      },
      hlsPublicBaseUrl: 'https://cdn.example',
    });
    assert.deepEqual(full.srt, {
      url: 'srt://h:8890',
      streamId: `publish:live/u%40x.com/${UID}?token=tok`,
      passphrase: 'p'.repeat(32),
    });
    assert.equal(full.webRTC?.url, `http://h:8888/whip/live/u@x.com/${UID}?token=tok`);
    assert.equal(full.webRTCPlayback?.url, `http://h:8888/whep/u-x.com/${UID}`);
    assert.equal(full.dash?.url, 'http://h:8888/dash/x.mpd');
    assert.equal(full.hls?.url, `https://cdn.example/hls/u-x.com/${UID}/index.m3u8`);

    // No relay: no ingest or playback URLs at all.
    const none = liveInputView(r, { ...ctx, relay: null });
    assert.equal(none.rtmps, undefined);
    assert.equal(none.hls, undefined);
  });
});
