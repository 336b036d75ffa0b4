/**
 * Playback tokens: what the cloud signs (claims, buckets, the end cap) verifies with jose and with the
 * relay's verifier; every refusal as a table (401 for missing or malformed, 403 for the rest, each with its
 * fixed text); the verified-token cache still expires; the fastify guard answers with the origin's envelope
 * and hands the route the query to write into URIs; the config's defaults and the CLI sign the same tokens.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { jwtVerify, SignJWT } from 'jose';
import { tokenCommand } from '../../../src/cli/token.ts';
import { signPublishToken } from '../../../src/cloud/tokens.ts';
import { signUserToken } from '../../../src/cloud/user-tokens.ts';
import { withPlaybackToken } from '../../../src/contracts/urls.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { RelayError } from '../../../src/shared/errors.ts';
import {
  createPlaybackTokenSigner,
  createPlaybackTokenVerifier,
  PlaybackRefusals,
  playbackGuard,
  playbackQuery,
  signPlaybackToken,
  withQuery,
} from '../../../src/shared/playback-token.ts';

const SECRET = 'playback-secret-for-unit-tests-0123456789';
const OTHER = 'another-secret-for-unit-tests-0123456789ab';
const T0 = 1_800_000_000_000; // ms, a fixed clock
const target = { userPath: 'a-b.com', streamId: 's1' };

describe('playback tokens: signing', () => {
  it('signs {sub, sid, scp: play, iat, exp} that jose verifies, shared within a bucket', async () => {
    let now = T0;
    const signer = createPlaybackTokenSigner({ secret: SECRET, ttlSeconds: 86_400, now: () => now });
    const token = signer.sign('a@b.com', 's1');
    const { payload, protectedHeader } = await jwtVerify(token, new TextEncoder().encode(SECRET), {
      currentDate: new Date(now),
    });
    assert.equal(protectedHeader.alg, 'HS256');
    assert.equal(payload.sub, 'a@b.com');
    assert.equal(payload.sid, 's1');
    assert.equal(payload.scp, 'play');
    const left = payload.exp! - now / 1000;
    assert.ok(left > 86_400 - 3600 && left <= 86_400, `a fresh token has most of the TTL left (${left} s)`);
    now += 1000;
    assert.equal(signer.sign('a@b.com', 's1'), token, 'same bucket, same token (a CDN shares it)');
    assert.notEqual(signer.sign('a@b.com', 's2'), token);
    now += 3600_000;
    assert.notEqual(signer.sign('a@b.com', 's1'), token, 'the next bucket: a fresher one');
  });

  it('never outlives the stream end plus grace, and refuses bad grants and weak secrets', async () => {
    const signer = createPlaybackTokenSigner({ secret: SECRET, ttlSeconds: 86_400, now: () => T0 });
    const token = signer.sign('a@b.com', 's1', { endsAt: T0 + 60_000 });
    const { payload } = await jwtVerify(token, new TextEncoder().encode(SECRET), {
      currentDate: new Date(T0),
    });
    assert.ok(payload.exp! <= T0 / 1000 + 60);
    assert.throws(() => signer.sign('../x', 's1'), RelayError);
    assert.throws(() => signer.sign('a@b.com', 's.1'), RelayError);
    assert.throws(
      () => createPlaybackTokenSigner({ secret: 'short', ttlSeconds: 10 }),
      /PLAYBACK_TOKEN_SECRET/,
    );
    assert.throws(() => createPlaybackTokenSigner({ secret: SECRET, ttlSeconds: 0 }), RelayError);
  });
});

describe('playback tokens: verifying', () => {
  const now = () => T0;
  const verify = createPlaybackTokenVerifier({ secret: SECRET, now });
  const iat = T0 / 1000 - 10;
  const good = signPlaybackToken(SECRET, { userId: 'a@b.com', streamId: 's1', iat, exp: iat + 3600 });
  const [h, , s] = good.split('.') as [string, string, string];
  const forged = Buffer.from(JSON.stringify({ sub: 'a@b.com', sid: 's1', scp: 'play', exp: iat + 9e6 }));
  const cases: {
    name: string;
    token: () => Promise<string | undefined>;
    status: 401 | 403;
    reason: string;
  }[] = [
    { name: 'no token', token: async () => undefined, status: 401, reason: PlaybackRefusals.missing },
    { name: 'empty', token: async () => '', status: 401, reason: PlaybackRefusals.missing },
    { name: 'garbage', token: async () => 'not-a-jwt', status: 401, reason: PlaybackRefusals.malformed },
    {
      name: 'too long',
      token: async () => `${h}.${'A'.repeat(3000)}.${s}`,
      status: 401,
      reason: PlaybackRefusals.malformed,
    },
    {
      name: 'tampered payload',
      token: async () => `${h}.${forged.toString('base64url')}.${s}`,
      status: 403,
      reason: PlaybackRefusals.signature,
    },
    {
      name: 'another secret',
      token: async () => signPlaybackToken(OTHER, { userId: 'a@b.com', streamId: 's1', iat, exp: iat + 60 }),
      status: 403,
      reason: PlaybackRefusals.signature,
    },
    {
      name: 'expired',
      token: async () =>
        signPlaybackToken(SECRET, { userId: 'a@b.com', streamId: 's1', iat: iat - 100, exp: iat - 50 }),
      status: 403,
      reason: PlaybackRefusals.expired,
    },
    {
      name: "another stream's",
      token: async () => signPlaybackToken(SECRET, { userId: 'a@b.com', streamId: 's2', iat, exp: iat + 60 }),
      status: 403,
      reason: PlaybackRefusals.otherStream,
    },
    {
      name: "another user's",
      token: async () => signPlaybackToken(SECRET, { userId: 'c@d.com', streamId: 's1', iat, exp: iat + 60 }),
      status: 403,
      reason: PlaybackRefusals.otherStream,
    },
    {
      name: 'a publish token',
      token: () =>
        signPublishToken(SECRET, { userId: 'a@b.com', streamId: 's1', relayId: 'r1', ttlSeconds: 60 }, T0),
      status: 403,
      reason: PlaybackRefusals.claims,
    },
    {
      name: 'a user token',
      token: () => signUserToken(SECRET, 'a@b.com'),
      status: 403,
      reason: PlaybackRefusals.claims,
    },
    {
      name: 'another algorithm',
      token: () =>
        new SignJWT({ sid: 's1', scp: 'play' })
          .setProtectedHeader({ alg: 'HS512' })
          .setSubject('a@b.com')
          .setExpirationTime(iat + 60)
          .sign(new TextEncoder().encode(SECRET.repeat(2))),
      status: 403,
      reason: PlaybackRefusals.algorithm,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name} (${c.status})`, async () => {
      const d = await verify(await c.token(), target);
      assert.equal(d.allow, false);
      if (d.allow) return;
      assert.equal(d.status, c.status);
      assert.equal(PlaybackRefusals[d.reason], c.reason);
      assert.equal(d.code, c.status === 401 ? 'PLAYBACK_UNAUTHORIZED' : 'PLAYBACK_FORBIDDEN');
    });
  }

  it('allows the right token, and a verified one still expires and still names its stream', async () => {
    let clock = T0;
    const v = createPlaybackTokenVerifier({ secret: SECRET, now: () => clock, clockToleranceSeconds: 0 });
    const t = signPlaybackToken(SECRET, { userId: 'a@b.com', streamId: 's1', iat, exp: T0 / 1000 + 5 });
    assert.deepEqual(await v(t, target), { allow: true });
    assert.deepEqual(await v(t, target), { allow: true }, 'again, from the cache');
    assert.equal((await v(t, { ...target, streamId: 's2' })).allow, false);
    clock = T0 + 5000;
    const late = await v(t, target);
    assert.ok(!late.allow && late.reason === 'expired');
  });

  it('accepts the previous secret during a rotation', async () => {
    const v = createPlaybackTokenVerifier({ secret: OTHER, previousSecret: SECRET, now });
    assert.deepEqual(await v(good, target), { allow: true });
  });

  it('keeps at most cacheSize verified tokens', async () => {
    const v = createPlaybackTokenVerifier({ secret: SECRET, now, cacheSize: 2 });
    for (const streamId of ['s1', 's2', 's3', 's1']) {
      const t = signPlaybackToken(SECRET, { userId: 'a@b.com', streamId, iat, exp: iat + 60 });
      assert.deepEqual(await v(t, { userPath: 'a-b.com', streamId }), { allow: true });
    }
  });
});

describe('playback guard', () => {
  const verify = createPlaybackTokenVerifier({ secret: SECRET });
  const token = createPlaybackTokenSigner({ secret: SECRET, ttlSeconds: 600 }).sign('a@b.com', 's1');

  async function app(mode: 'token' | 'off') {
    const a = Fastify();
    const guard = playbackGuard({ mode, verify });
    a.get<{ Params: { userPath: string; streamId: string } }>(
      '/hls/:userPath/:streamId/x',
      { onRequest: guard },
      async (request) => ({ query: playbackQuery(request) }),
    );
    await a.ready();
    return a;
  }

  it('answers 401 / 403 with the envelope and no-store, and lets the right token in', async () => {
    const a = await app('token');
    const none = await a.inject({ url: '/hls/a-b.com/s1/x' });
    assert.equal(none.statusCode, 401);
    assert.deepEqual(none.json(), { error: PlaybackRefusals.missing, code: 'PLAYBACK_UNAUTHORIZED' });
    assert.equal(none.headers['cache-control'], 'no-store');
    const other = await a.inject({ url: `/hls/a-b.com/s2/x?token=${token}` });
    assert.equal(other.statusCode, 403);
    assert.equal(other.json().code, 'PLAYBACK_FORBIDDEN');
    const twice = await a.inject({ url: `/hls/a-b.com/s1/x?token=${token}&token=${token}` });
    assert.equal(twice.statusCode, 401);
    const ok = await a.inject({ url: `/hls/a-b.com/s1/x?token=${token}&_HLS_msn=3` });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json(), { query: `token=${token}` });
    const bearer = await a.inject({
      url: '/hls/a-b.com/s1/x',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(bearer.statusCode, 200);
    assert.deepEqual(bearer.json(), { query: '' }, 'a header token is not written into URIs');
    assert.equal(JSON.stringify([none.body, other.body]).includes(token), false, 'never echoed');
    await a.close();
  });

  it('lets everything through when off, and refuses to build without a verifier when on', async () => {
    const a = await app('off');
    const res = await a.inject({ url: '/hls/a-b.com/s1/x' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { query: '' });
    await a.close();
    assert.throws(() => playbackGuard({ mode: 'token' }), RelayError);
  });

  it('check() decides for routes with their own authorize hook (DASH, WHEP, recordings)', async () => {
    const a = Fastify();
    const guard = playbackGuard({ mode: 'token', verify });
    const open = playbackGuard({ mode: 'off' });
    a.get('/recordings/:userPath/:streamId', async (request) => ({
      mine: await guard.check(request),
      theirs: await guard.check(request, { userPath: 'a-b.com', streamId: 's2' }),
      off: await open.check(request),
    }));
    const res = await a.inject({ url: `/recordings/a-b.com/s1?token=${token}` });
    assert.deepEqual(res.json(), {
      mine: { ok: true, query: `token=${token}` },
      theirs: {
        ok: false,
        status: 403,
        code: 'PLAYBACK_FORBIDDEN',
        error: PlaybackRefusals.otherStream,
      },
      off: { ok: true, query: '' },
    });
    const none = await a.inject({ url: '/recordings/a-b.com/s1' });
    assert.equal(none.json().mine.status, 401);
    await a.close();
  });

  it('appends with ? or &', () => {
    assert.equal(withQuery('seg1.m4s', 'token=t'), 'seg1.m4s?token=t');
    assert.equal(withQuery('a.m3u8?_HLS_msn=3', 'token=t'), 'a.m3u8?_HLS_msn=3&token=t');
    assert.equal(withQuery('a.m3u8', ''), 'a.m3u8');
    assert.equal(
      withPlaybackToken('http://h/hls/u/s/index.m3u8', 't'),
      'http://h/hls/u/s/index.m3u8?token=t',
    );
    assert.equal(withPlaybackToken('http://h/x?a=1', 't'), 'http://h/x?a=1&token=t');
    assert.equal(withPlaybackToken('http://h/x', null), 'http://h/x');
  });
});

describe('playback config and CLI', () => {
  it('PLAYBACK_AUTH is on by default, off where publish auth defaults off (dev), and overridable', () => {
    assert.equal(loadConfig({}).playback.auth, 'token');
    assert.equal(loadConfig({}, { publishAuth: 'off' }).playback.auth, 'off');
    assert.equal(loadConfig({ PUBLISH_AUTH: 'off' }).playback.auth, 'token', 'not tied to PUBLISH_AUTH');
    assert.equal(loadConfig({ PLAYBACK_AUTH: 'token' }, { publishAuth: 'off' }).playback.auth, 'token');
    assert.equal(loadConfig({ PLAYBACK_AUTH: 'off' }).playback.auth, 'off');
    assert.throws(() => loadConfig({ PLAYBACK_AUTH: 'maybe' }), /PLAYBACK_AUTH/);
  });

  it('the secret defaults to PUBLISH_TOKEN_SECRET; the TTL to a day', () => {
    assert.equal(loadConfig({ PUBLISH_TOKEN_SECRET: SECRET }).playback.tokenSecret, SECRET);
    const c = loadConfig({ PUBLISH_TOKEN_SECRET: SECRET, PLAYBACK_TOKEN_SECRET: OTHER });
    assert.equal(c.playback.tokenSecret, OTHER);
    assert.equal(c.playback.ttlSeconds, 86_400);
    assert.equal(loadConfig({ PLAYBACK_TOKEN_TTL_SECONDS: '30' }).playback.ttlSeconds, 30);
    const rotating = { PUBLISH_TOKEN_SECRET: SECRET, PUBLISH_TOKEN_SECRET_PREVIOUS: OTHER };
    assert.equal(loadConfig(rotating).playback.previousSecret, OTHER, 'the publish rotation covers playback');
    assert.equal(
      loadConfig({ ...rotating, PLAYBACK_TOKEN_SECRET: SECRET }).playback.previousSecret,
      undefined,
    );
    assert.throws(() => loadConfig({ PLAYBACK_TOKEN_TTL_SECONDS: '0' }), /PLAYBACK_TOKEN_TTL_SECONDS/);
  });

  it('`rtmp-relay token playback` signs what the relay accepts, with PLAYBACK_TOKEN_SECRET when set', async () => {
    const env = { PUBLISH_TOKEN_SECRET: OTHER, PLAYBACK_TOKEN_SECRET: SECRET };
    const t = await tokenCommand(['playback', 'a@b.com', 's1', '--ttl', '60'], env);
    assert.deepEqual(await createPlaybackTokenVerifier({ secret: SECRET })(t, target), { allow: true });
  });
});
