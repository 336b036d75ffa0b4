/**
 * Publish tokens end to end: a real RtmpServer with the relay's token verifier as its `authorize` hook,
 * published to over TCP by the scripted FLV publisher. A token the cloud signed for this user, stream and
 * relay publishes; any other is refused with NetStream.Publish.Unauthorized before any media, no `publish`
 * event fires, and no token reaches the logs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createPublishTokenVerifier, signPublishToken, TokenRefusals } from '../../src/cloud/tokens.ts';
import type { Publish } from '../../src/rtmp/publish.ts';
import { RtmpServer } from '../../src/rtmp/server.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { FlvPublishError, publishFlv } from '../helpers/flv-publisher.ts';
import { captureLogs } from '../helpers/log-capture.ts';

const SECRET = 'publish-auth-integration-secret-0123456789abcdef';
const OTHER_SECRET = 'some-other-cloud-secret-0123456789abcdefghijkl';
const RELAY_ID = 'relay-it-1';
const USER = 'jean-luc@x.com';
const TTL = 600;

describe('publish authorization with signed tokens', () => {
  const logs = captureLogs('trace');
  const server = new RtmpServer({
    log: logs.log,
    authorize: createPublishTokenVerifier({ secret: SECRET, relayId: RELAY_ID }),
  });
  const published: Publish[] = [];
  /** Every token handed to a publisher, to check the logs against. */
  const tokens: string[] = [];
  let port = 0;
  let fixture = '';

  const sign = async (
    grant: { userId?: string; streamId: string; relayId?: string },
    options = {
      secret: SECRET,
      now: Date.now(),
    },
  ): Promise<string> => {
    const token = await signPublishToken(
      options.secret,
      {
        userId: grant.userId ?? USER,
        streamId: grant.streamId,
        relayId: grant.relayId ?? RELAY_ID,
        ttlSeconds: TTL,
      },
      options.now,
    );
    tokens.push(token);
    return token;
  };

  before(async () => {
    fixture = await fixturePath('glasses-854x480.flv');
    port = await server.listen(0, '127.0.0.1');
    server.on('publish', (p) => published.push(p));
  });

  after(async () => {
    await server.close();
    const text = logs.text();
    assert.ok(tokens.length > 0);
    for (const token of tokens) {
      assert.ok(!text.includes(token), 'a token reached the log');
      const signature = token.split('.')[2];
      if (signature) assert.ok(!text.includes(signature), "a token's signature reached the log");
    }
  });

  it('publishes with a token signed for this user, stream and relay', async () => {
    const token = await sign({ streamId: 'valid1' });
    const pub = publishFlv(fixture, {
      port,
      user: USER,
      stream: 'valid1',
      token,
      toMs: 1000,
      speed: Number.POSITIVE_INFINITY,
    });
    await pub.done;
    assert.ok(pub.sentTags > 0);
    const p = published.find((x) => x.info.streamId === 'valid1');
    assert.ok(p, 'the publish went live');
    assert.equal(p.info.userId, USER);
    assert.ok(p.stats.videoFrames > 0, 'media arrived');
  });

  const refused: {
    name: string;
    stream: string;
    token: () => Promise<string | undefined>;
    reason: string;
  }[] = [
    { name: 'no token', stream: 'none1', token: async () => undefined, reason: TokenRefusals.missing },
    {
      name: 'garbage',
      stream: 'garbage1',
      token: async () => 'definitely-not-a-jwt',
      reason: TokenRefusals.malformed,
    },
    {
      name: 'signed with another secret',
      stream: 'wrong1',
      token: () => sign({ streamId: 'wrong1' }, { secret: OTHER_SECRET, now: Date.now() }),
      reason: TokenRefusals.signature,
    },
    {
      name: 'expired',
      stream: 'expired1',
      token: () => sign({ streamId: 'expired1' }, { secret: SECRET, now: Date.now() - (TTL + 60) * 1000 }),
      reason: TokenRefusals.expired,
    },
    {
      name: "another user's token",
      stream: 'other1',
      token: () => sign({ userId: 'mallory', streamId: 'other1' }),
      reason: TokenRefusals.otherUser,
    },
    {
      name: 'a token for another stream',
      stream: 'stream2',
      token: () => sign({ streamId: 'stream1' }),
      reason: TokenRefusals.otherStream,
    },
    {
      name: 'a token for another relay',
      stream: 'relay2',
      token: () => sign({ streamId: 'relay2', relayId: 'relay-it-2' }),
      reason: TokenRefusals.otherRelay,
    },
  ];

  for (const c of refused) {
    it(`refuses ${c.name} with NetStream.Publish.Unauthorized before any media`, async () => {
      const token = await c.token();
      if (token !== undefined) tokens.push(token);
      const before = server.stats.authRefusals;
      const pub = publishFlv(fixture, {
        port,
        user: USER,
        stream: c.stream,
        ...(token === undefined ? {} : { token }),
        toMs: 1000,
        speed: Number.POSITIVE_INFINITY,
      });
      await assert.rejects(
        pub.done,
        (err: unknown) =>
          err instanceof FlvPublishError &&
          err.status === 'NetStream.Publish.Unauthorized' &&
          // The description names the refused stream and the rule it broke.
          err.message.endsWith(`: live/${USER}/${c.stream}: ${c.reason}`) &&
          (token === undefined || !err.message.includes(token)),
      );
      await assert.rejects(pub.started, FlvPublishError);
      assert.equal(pub.sentTags, 0, 'no media was sent');
      assert.equal(server.stats.authRefusals, before + 1);
      assert.ok(!published.some((p) => p.info.streamId === c.stream), 'no publish event fired');
      assert.ok(
        logs
          .lines()
          .some(
            (l) =>
              l.msg === `connection closed: publish refused: live/${USER}/${c.stream}: ${c.reason}` &&
              l.code === 'RTMP_UNAUTHORIZED',
          ),
        'the refusal is logged with what was refused, its reason and its code',
      );
    });
  }

  it('went live only for the valid token', () => {
    assert.deepEqual(
      published.map((p) => p.info.streamId),
      ['valid1'],
    );
  });
});
