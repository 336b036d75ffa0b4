import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { tokenCommand } from '../../../src/cli/token.ts';
import { createPublishTokenVerifier } from '../../../src/cloud/tokens.ts';
import { verifyUserToken } from '../../../src/cloud/user-tokens.ts';
import { toStreamDialect } from '../../../src/contracts/mentra.ts';

const env = { PUBLISH_TOKEN_SECRET: 'publish-token-secret-for-tests-0123456789' };

describe('rtmp-relay token', () => {
  it('signs user, publish and playback tokens the cloud and relays accept', async () => {
    const user = await tokenCommand(['user', 'a@b.com', '--ttl', '60'], env);
    assert.equal(await verifyUserToken(env.PUBLISH_TOKEN_SECRET, user), 'a@b.com');
    const publish = await tokenCommand(['publish', 'a@b.com', 's1', 'relay-1'], env);
    const verify = createPublishTokenVerifier({ secret: env.PUBLISH_TOKEN_SECRET, relayId: 'relay-1' });
    assert.deepEqual(await verify({ userId: 'a@b.com', streamId: 's1', token: publish }), { allow: true });
    const playback = decodeJwt(await tokenCommand(['playback', 'a@b.com', 's1', '--ttl', '999999'], env));
    assert.equal(playback.sub, 'a@b.com');
    assert.equal(playback.sid, 's1');
    assert.equal(playback.scp, 'play');
    // No `iat` in playback tokens (kept short): the cap read against the clock.
    assert.ok(playback.exp! - Math.floor(Date.now() / 1000) <= 86_400, 'capped at a day');
  });

  it('refuses bad input and a missing or weak secret', async () => {
    await assert.rejects(tokenCommand(['user', 'a@b.com'], {}), /PUBLISH_TOKEN_SECRET/);
    await assert.rejects(
      tokenCommand(['user', 'a@b.com'], { PUBLISH_TOKEN_SECRET: 'short' }),
      /PUBLISH_TOKEN_SECRET/,
    );
    await assert.rejects(tokenCommand(['user', '../etc'], env), /USER_ID/);
    await assert.rejects(tokenCommand(['user', 'a@b.com', '--ttl', '-1'], env), /ttl/);
    await assert.rejects(tokenCommand(['publish', 'a@b.com'], env), /usage/);
    await assert.rejects(tokenCommand(['nonsense', 'a@b.com'], env), /usage/);
  });
});

describe("today's firmware commands", () => {
  it("speaks start_stream, stop_stream and keep_stream_alive for the seed's commands", () => {
    const start = toStreamDialect({
      type: 'start_rtmp_stream',
      sessionId: 'x',
      rtmpUrl: 'rtmp://r:1935/live/a@b.com/s1?token=t',
      appId: 'MANAGED_STREAM',
      streamId: 's1',
      timestamp: 1,
    });
    assert.deepEqual(start, {
      type: 'start_stream',
      streamUrl: 'rtmp://r:1935/live/a@b.com/s1?token=t',
      streamId: 's1',
    });
    assert.deepEqual(
      toStreamDialect({
        type: 'stop_rtmp_stream',
        sessionId: 'x',
        appId: 'MANAGED_STREAM',
        streamId: 's1',
        timestamp: 1,
      }),
      { type: 'stop_stream', streamId: 's1' },
    );
    assert.deepEqual(toStreamDialect({ type: 'keep_rtmp_stream_alive', streamId: 's1', ackId: 'abcdef' }), {
      type: 'keep_stream_alive',
      streamId: 's1',
      ackId: 'abcdef',
    });
  });
});
