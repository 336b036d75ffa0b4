/**
 * The cloud's listing of a managed stream's recordings, read from the same store as the relays (a directory
 * here): found through the store's stream index after the cloud forgot the stream, URLs on the public base,
 * only for the stream's own user, and an unknown stream is a 404.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { type CloudHandle, startCloud } from '../../../src/cloud/cloud.ts';
import { signUserToken } from '../../../src/cloud/user-tokens.ts';
import { DirStore } from '../../../src/record/dir-store.ts';
import { partManifestKey, recordingIdOf, streamIndexKey } from '../../../src/record/layout.ts';
import type { PartManifest } from '../../../src/record/manifest.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { silentLogger } from '../../../src/shared/logger.ts';

const SECRET = 'cloud-listing-user-and-publish-secret-0123456789';

describe('cloud: GET /api/managed-streams/{id}/recordings', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'rtmp-relay-cloud-rec-'));
  let cloud: CloudHandle;

  before(async () => {
    const config = loadConfig({
      CLOUD_HOST: '127.0.0.1',
      CLOUD_PORT: '0',
      PUBLISH_TOKEN_SECRET: SECRET,
      RELAY_SHARED_SECRET: 'cloud-listing-relay-secret-0123456789',
      RECORDING_URL: root,
      HLS_PUBLIC_BASE_URL: 'https://cdn.example.com',
    });
    cloud = await startCloud(config, silentLogger(), {
      relaySecret: 'cloud-listing-relay-secret-0123456789',
      publishTokenSecret: SECRET,
      userTokenSecret: SECRET,
      announceDashboard: false,
    });
    // What a relay's uploader left: the stream index and one closed part of one recording.
    const store = new DirStore(root);
    const recordingId = recordingIdOf(1_733_000_000_000);
    const ref = { userPath: 'a-b.com', streamId: 'abcd1234', recordingId };
    const manifest: PartManifest = {
      v: 1,
      partId: '0123456789abcdef',
      relayId: 'relay-1',
      userId: 'a@b.com',
      userPath: 'a-b.com',
      streamId: 'abcd1234',
      recordingId,
      startedAt: 1_733_000_000_000,
      updatedAt: 1_733_000_030_000,
      endedAt: 1_733_000_030_000,
      closed: true,
      segments: [{ n: 0, init: 0, duration: 9.5, discontinuity: false, bytes: 10, tracks: [] }],
      thumbnail: false,
      dropped: 0,
    };
    await store.put(partManifestKey(ref, manifest.partId), Buffer.from(JSON.stringify(manifest)));
    await store.put(streamIndexKey('abcd1234'), Buffer.from(JSON.stringify({ userId: 'a@b.com' })));
  });

  after(async () => {
    await cloud?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("lists the user's recordings from the store, with URLs on the public base", async () => {
    const token = await signUserToken(SECRET, 'a@b.com');
    const res = await cloud.app.inject({
      url: '/api/managed-streams/abcd1234/recordings',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.statusCode, 200, res.body);
    const { recordings } = res.json() as {
      recordings: { id: string; state: string; hlsUrl: string; durationSeconds: number }[];
    };
    assert.equal(recordings.length, 1);
    assert.equal(recordings[0]?.state, 'ready');
    assert.equal(recordings[0]?.durationSeconds, 9.5);
    // With playback tokens on (the cloud's default outside dev), the replay URL carries a replay token.
    const url = new URL(recordings[0]?.hlsUrl ?? '');
    assert.equal(
      `${url.origin}${url.pathname}`,
      'https://cdn.example.com/recordings/a-b.com/abcd1234/r1733000000000/index.m3u8',
    );
    const playback = decodeJwt(url.searchParams.get('token') ?? '');
    assert.deepEqual([playback.sub, playback.sid, playback.scp], ['a@b.com', 'abcd1234', 'play']);
  });

  it('refuses another user and answers 404 for an unknown stream', async () => {
    const other = await signUserToken(SECRET, 'c@d.com');
    const refused = await cloud.app.inject({
      url: '/api/managed-streams/abcd1234/recordings',
      headers: { authorization: `Bearer ${other}` },
    });
    assert.equal(refused.statusCode, 404);
    const unknown = await cloud.app.inject({
      url: '/api/managed-streams/zzzz9999/recordings',
      headers: { authorization: `Bearer ${other}` },
    });
    assert.equal(unknown.statusCode, 404);
  });
});
