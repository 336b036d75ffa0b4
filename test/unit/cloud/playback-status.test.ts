/**
 * The cloud's side of playback tokens (PLAYBACK_AUTH=token): the playlist check goes out with a token, every
 * playback URL of a status (hlsUrl, thumbnailUrl, previewUrl; behind a CDN base too) carries the same fresh
 * one, which the relay's verifier accepts for that stream only; an ended stream's token ends with its grace;
 * without a signer nothing changes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { liveInputView } from '../../../src/cloud/live-inputs/view.ts';
import { ManagedStreams } from '../../../src/cloud/managed-streams.ts';
import { MemoryCloudStore } from '../../../src/cloud/store-memory.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import {
  createPlaybackTokenSigner,
  createPlaybackTokenVerifier,
} from '../../../src/shared/playback-token.ts';

const SECRET = 'playback-secret-for-unit-tests-0123456789';

async function activeStream(options: { signer: boolean; publicBase?: string }) {
  const store = new MemoryCloudStore();
  const probed: string[] = [];
  const streams = new ManagedStreams({
    store,
    glasses: { send: () => true },
    log: silentLogger(),
    tokenSecret: null,
    keepAliveMs: 60_000,
    ackTimeoutMs: 10_000,
    maxMissedAcks: 3,
    relayCheckMs: 60_000,
    probeHls: async (url) => {
      probed.push(url);
      return true;
    },
    endGraceMs: 60_000,
    hlsPublicBaseUrl: options.publicBase,
    playbackTokens: options.signer ? createPlaybackTokenSigner({ secret: SECRET, ttlSeconds: 86_400 }) : null,
  });
  await store.upsertRelay(
    { relayId: 'r1', rtmpUrl: 'rtmp://relay1:1935', hlsUrl: 'http://relay1:8888', maxStreams: 5 },
    Date.now(),
  );
  const streamId = (await streams.request('a@b.com', 'com.app')).streamId!;
  await streams.hlsReady('a@b.com', streamId, 'r1', `http://relay1:8888/hls/a-b.com/${streamId}/index.m3u8`);
  const stream = streams.get(streamId)!;
  return { streams, stream, streamId, probed };
}

const tokenOf = (url: string | undefined): string => new URL(url!).searchParams.get('token') ?? '';

describe('cloud statuses with playback tokens', () => {
  it('checks the playlist with a token and hands out every playback URL with the same fresh one', async () => {
    const { streams, stream, streamId, probed } = await activeStream({ signer: true });
    assert.equal(probed.length, 1);
    assert.match(probed[0]!, /index\.m3u8\?token=/);
    const status = streams.statusOf(stream);
    assert.equal(status.status, 'active');
    const token = tokenOf(status.hlsUrl);
    assert.ok(token);
    assert.equal(status.hlsUrl, `http://relay1:8888/hls/a-b.com/${streamId}/index.m3u8?token=${token}`);
    assert.equal(
      status.thumbnailUrl,
      `http://relay1:8888/hls/a-b.com/${streamId}/thumbnail.jpg?token=${token}`,
    );
    assert.equal(tokenOf(status.previewUrl), token);
    const verify = createPlaybackTokenVerifier({ secret: SECRET });
    assert.deepEqual(await verify(token, { userPath: 'a-b.com', streamId }), { allow: true });
    assert.equal((await verify(token, { userPath: 'a-b.com', streamId: 'other' })).allow, false);
    assert.deepEqual(Object.keys(decodeJwt(token)).sort(), ['exp', 'scp', 'sid', 'sub']);
    // An ended stream: its token lives no longer than the grace.
    const ended = streams.statusOf({ ...stream, state: { ...stream.state, phase: 'stopped' } });
    const exp = decodeJwt(tokenOf(ended.hlsUrl)).exp!;
    assert.ok(exp <= Date.now() / 1000 + 61, `exp ${exp - Date.now() / 1000} s from now`);
    // A recording's URLs stay playable after the end: the TTL alone bounds their token.
    const replay = streams.playbackToken(
      { ...stream, state: { ...stream.state, phase: 'stopped' } },
      { replay: true },
    );
    assert.ok(decodeJwt(replay!).exp! > Date.now() / 1000 + 86_400 - 3600);
    await streams.close();
  });

  it('keeps the token behind a CDN base, and writes none without a signer', async () => {
    const cdn = await activeStream({ signer: true, publicBase: 'https://cdn.example.com' });
    const url = cdn.streams.statusOf(cdn.stream).hlsUrl!;
    assert.match(
      url,
      /^https:\/\/cdn\.example\.com\/hls\/a-b\.com\/\w+\/index\.m3u8\?token=[\w-]+\.[\w-]+\.[\w-]+$/,
    );
    await cdn.streams.close();
    const off = await activeStream({ signer: false });
    const status = off.streams.statusOf(off.stream);
    assert.equal(status.hlsUrl!.includes('token'), false);
    assert.equal(off.probed[0]!.includes('token'), false);
    await off.streams.close();
  });

  it('gives a live input’s playback URLs (hls, dash, webRTCPlayback) the input’s token, its ingest URLs none', () => {
    const uid = '0123456789abcdef0123456789abcdef';
    const view = liveInputView(
      {
        v: 1,
        uid,
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
      },
      {
        relay: { relayId: 'r', rtmpUrl: 'rtmp://h:1935', hlsUrl: 'http://h:8888', whipUrl: 'http://h:8888' },
        reports: {
          connection: null,
          outputs: [],
          playback: { relayId: 'r', dashUrl: 'http://h:8888/dash/x.mpd' },
        },
        token: 'pub',
        playbackToken: 'play',
        srtPassphrase: null,
        now: 0,
        staleMs: 30_000,
      },
    );
    assert.equal(view.hls?.url, `http://h:8888/hls/u-x.com/${uid}/index.m3u8?token=play`);
    assert.equal(view.dash?.url, 'http://h:8888/dash/x.mpd?token=play');
    assert.equal(view.webRTCPlayback?.url, `http://h:8888/whep/u-x.com/${uid}?token=play`);
    assert.equal(
      view.webRTC?.url,
      `http://h:8888/whip/live/u@x.com/${uid}?token=pub`,
      'ingest: the publish token',
    );
  });
});
