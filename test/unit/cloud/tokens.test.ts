import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import {
  createPublishTokenVerifier,
  MAX_TOKEN_LENGTH,
  type PublishGrant,
  signCompactPublishToken,
  signPublishToken,
  TokenRefusals,
} from '../../../src/cloud/tokens.ts';
import { RelayId } from '../../../src/contracts/relay-api.ts';
import { hostRelayId, loadConfig } from '../../../src/shared/config.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';

const SECRET = 'publish-token-secret-for-unit-tests-0123456789';
const OTHER_SECRET = 'another-publish-token-secret-for-unit-tests-9876';
const NOW = Date.UTC(2025, 6, 1, 12, 0, 0);
const GRANT: PublishGrant = {
  userId: 'jean-luc@x.com',
  streamId: 'abc123',
  relayId: 'relay-1',
  ttlSeconds: 600,
};
const REQUEST = { userId: GRANT.userId, streamId: GRANT.streamId };

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const key = (secret: string): Uint8Array => new TextEncoder().encode(secret);

/** A token with arbitrary claims and algorithm, signed with SECRET (for the shapes signPublishToken refuses to make). */
async function rawToken(claims: Record<string, unknown>, alg = 'HS256'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg }).sign(key(SECRET));
}

const verify = createPublishTokenVerifier({ secret: SECRET, relayId: 'relay-1', now: () => NOW });

describe('publish token verifier', () => {
  const exp = Math.floor(NOW / 1000) + 600;
  const cases: {
    name: string;
    token: () => Promise<string | undefined>;
    request?: { userId: string; streamId: string };
    reason: string | null;
  }[] = [
    { name: 'valid', token: () => signPublishToken(SECRET, GRANT, NOW), reason: null },
    {
      name: 'expired 2 s ago, within the 5 s tolerance',
      token: () => signPublishToken(SECRET, { ...GRANT, ttlSeconds: 60 }, NOW - 62_000),
      reason: null,
    },
    { name: 'no token', token: async () => undefined, reason: TokenRefusals.missing },
    { name: 'empty token', token: async () => '', reason: TokenRefusals.missing },
    { name: 'garbage', token: async () => 'not-a-jwt', reason: TokenRefusals.malformed },
    { name: 'three garbage parts', token: async () => 'a.b.c', reason: TokenRefusals.malformed },
    {
      name: 'oversized',
      token: async () => 'x'.repeat(MAX_TOKEN_LENGTH + 1),
      reason: TokenRefusals.malformed,
    },
    {
      name: 'signed with another secret',
      token: () => signPublishToken(OTHER_SECRET, GRANT, NOW),
      reason: TokenRefusals.signature,
    },
    {
      name: 'expired',
      token: () => signPublishToken(SECRET, { ...GRANT, ttlSeconds: 60 }, NOW - 3_600_000),
      reason: TokenRefusals.expired,
    },
    {
      name: "another user's token",
      token: () => signPublishToken(SECRET, { ...GRANT, userId: 'someone-else' }, NOW),
      reason: TokenRefusals.otherUser,
    },
    {
      name: 'the same user, another stream',
      token: () => signPublishToken(SECRET, { ...GRANT, streamId: 'other1' }, NOW),
      reason: TokenRefusals.otherStream,
    },
    {
      name: 'a token for another relay',
      token: () => signPublishToken(SECRET, { ...GRANT, relayId: 'relay-2' }, NOW),
      reason: TokenRefusals.otherRelay,
    },
    {
      name: 'the @ user under its HLS spelling',
      token: () => signPublishToken(SECRET, GRANT, NOW),
      request: { userId: 'jean-luc-x.com', streamId: GRANT.streamId },
      reason: TokenRefusals.otherUser,
    },
    {
      name: '`alg: none` forgery',
      token: async () =>
        `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: GRANT.userId, sid: GRANT.streamId, rly: 'relay-1', exp })}.`,
      reason: TokenRefusals.algorithm,
    },
    {
      name: '`alg: none` header on a real signature',
      token: async () => {
        const [, payload, signature] = (await signPublishToken(SECRET, GRANT, NOW)).split('.');
        return `${b64({ alg: 'none' })}.${payload}.${signature}`;
      },
      reason: TokenRefusals.algorithm,
    },
    {
      name: 'HS512 with the right secret (only HS256 is accepted)',
      token: () => rawToken({ sub: GRANT.userId, sid: GRANT.streamId, rly: 'relay-1', exp }, 'HS512'),
      reason: TokenRefusals.algorithm,
    },
    {
      name: 'tampered payload (another user, original signature)',
      token: async () => {
        const [header, , signature] = (await signPublishToken(SECRET, GRANT, NOW)).split('.');
        const forged = b64({ sub: 'someone-else', sid: GRANT.streamId, rly: 'relay-1', exp });
        return `${header}.${forged}.${signature}`;
      },
      request: { userId: 'someone-else', streamId: GRANT.streamId },
      reason: TokenRefusals.signature,
    },
    {
      name: 'tampered payload (later expiry, original signature)',
      token: async () => {
        const [header, payload, signature] = (await signPublishToken(SECRET, GRANT, NOW)).split('.');
        const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as object;
        return `${header}.${b64({ ...claims, exp: exp + 86_400 })}.${signature}`;
      },
      reason: TokenRefusals.signature,
    },
    {
      name: 'signed, but without `rly`',
      token: () => rawToken({ sub: GRANT.userId, sid: GRANT.streamId, exp }),
      reason: TokenRefusals.claims,
    },
    {
      name: 'signed, but without `exp`',
      token: () => rawToken({ sub: GRANT.userId, sid: GRANT.streamId, rly: 'relay-1' }),
      reason: TokenRefusals.claims,
    },
    {
      name: 'signed, `sid` of the wrong type',
      token: () => rawToken({ sub: GRANT.userId, sid: 42, rly: 'relay-1', exp }),
      reason: TokenRefusals.claims,
    },
    {
      name: 'signed, `sub` not a valid userId',
      token: () => rawToken({ sub: '../etc', sid: GRANT.streamId, rly: 'relay-1', exp }),
      request: { userId: '../etc', streamId: GRANT.streamId },
      reason: TokenRefusals.claims,
    },
    {
      name: 'signed, `nbf` in the future',
      token: () => rawToken({ sub: GRANT.userId, sid: GRANT.streamId, rly: 'relay-1', exp, nbf: exp - 60 }),
      reason: TokenRefusals.notYetValid,
    },
  ];

  for (const c of cases) {
    it(`${c.reason === null ? 'accepts' : 'refuses'}: ${c.name}`, async () => {
      const token = await c.token();
      const decision = await verify({ ...(c.request ?? REQUEST), token });
      if (c.reason === null) {
        assert.deepEqual(decision, { allow: true });
        return;
      }
      assert.deepEqual(decision, { allow: false, reason: c.reason });
      if (token) {
        assert.ok(!decision.reason.includes(token), 'the reason carries the token');
        for (const part of token.split('.').filter((p) => p.length > 8)) {
          assert.ok(!decision.reason.includes(part), 'the reason carries a part of the token');
        }
      }
    });
  }

  it('is an AuthorizePublish hook (the extra request fields are ignored)', async () => {
    const token = await signPublishToken(SECRET, GRANT, NOW);
    const decision = await verify({
      ...REQUEST,
      token,
      key: `live/${GRANT.userId}/${GRANT.streamId}`,
      params: { token },
      remoteAddress: '127.0.0.1',
    } as Parameters<typeof verify>[0]);
    assert.deepEqual(decision, { allow: true });
  });

  it('uses the real clock by default', async () => {
    const live = createPublishTokenVerifier({ secret: SECRET, relayId: 'relay-1' });
    assert.deepEqual(await live({ ...REQUEST, token: await signPublishToken(SECRET, GRANT) }), {
      allow: true,
    });
    const stale = await signPublishToken(SECRET, GRANT, Date.now() - 3_600_000);
    assert.deepEqual(await live({ ...REQUEST, token: stale }), {
      allow: false,
      reason: TokenRefusals.expired,
    });
  });

  it('honours clockToleranceSeconds', async () => {
    const strict = createPublishTokenVerifier({
      secret: SECRET,
      relayId: 'relay-1',
      clockToleranceSeconds: 0,
      now: () => NOW,
    });
    const token = await signPublishToken(SECRET, { ...GRANT, ttlSeconds: 60 }, NOW - 62_000);
    assert.deepEqual(await strict({ ...REQUEST, token }), { allow: false, reason: TokenRefusals.expired });
  });

  const constructionCases: {
    name: string;
    options: () => Parameters<typeof createPublishTokenVerifier>[0];
    code: string | null;
  }[] = [
    { name: 'a 32-byte secret', options: () => ({ secret: 'k'.repeat(32), relayId: 'r' }), code: null },
    {
      name: 'a 32-byte Uint8Array',
      options: () => ({ secret: new Uint8Array(32), relayId: 'r' }),
      code: null,
    },
    {
      name: 'a 31-byte secret',
      options: () => ({ secret: 'k'.repeat(31), relayId: 'r' }),
      code: ErrorCodes.PUBLISH_TOKEN_SECRET_WEAK,
    },
    {
      name: 'an empty secret',
      options: () => ({ secret: '', relayId: 'r' }),
      code: ErrorCodes.PUBLISH_TOKEN_SECRET_WEAK,
    },
    {
      name: '16 two-byte characters (32 bytes) are enough',
      options: () => ({ secret: 'é'.repeat(16), relayId: 'r' }),
      code: null,
    },
    {
      name: 'an invalid relay id',
      options: () => ({ secret: SECRET, relayId: 'relay 1' }),
      code: ErrorCodes.CONFIG_INVALID,
    },
    {
      name: 'a negative clock tolerance',
      options: () => ({ secret: SECRET, relayId: 'r', clockToleranceSeconds: -1 }),
      code: ErrorCodes.CONFIG_INVALID,
    },
  ];
  for (const c of constructionCases) {
    it(`construction with ${c.name}: ${c.code ?? 'accepted'}`, () => {
      if (c.code === null) {
        assert.equal(typeof createPublishTokenVerifier(c.options()), 'function');
        return;
      }
      assert.throws(
        () => createPublishTokenVerifier(c.options()),
        (e: unknown) => e instanceof RelayError && e.code === c.code,
      );
    });
  }

  it('says clearly why a short secret is refused', () => {
    assert.throws(
      () => createPublishTokenVerifier({ secret: 'short', relayId: 'r' }),
      /PUBLISH_TOKEN_SECRET must be at least 32 bytes \(got 5\)/,
    );
  });
});

describe('signPublishToken', () => {
  it('writes sub/sid/rly/exp and iat, HS256', async () => {
    const token = await signPublishToken(SECRET, GRANT, NOW + 999);
    const iat = Math.floor(NOW / 1000);
    assert.deepEqual(decodeProtectedHeader(token), { alg: 'HS256', typ: 'JWT' });
    assert.deepEqual(decodeJwt(token), {
      sub: GRANT.userId,
      sid: GRANT.streamId,
      rly: GRANT.relayId,
      iat,
      exp: iat + GRANT.ttlSeconds,
    });
  });

  const bad: { name: string; grant: Partial<PublishGrant>; now?: number; code: string }[] = [
    { name: 'a userId with a space', grant: { userId: 'a b' }, code: ErrorCodes.PUBLISH_TOKEN_GRANT_INVALID },
    { name: 'a userId with ..', grant: { userId: 'a..b' }, code: ErrorCodes.PUBLISH_TOKEN_GRANT_INVALID },
    { name: 'a streamId with /', grant: { streamId: 'a/b' }, code: ErrorCodes.PUBLISH_TOKEN_GRANT_INVALID },
    { name: 'an empty relayId', grant: { relayId: '' }, code: ErrorCodes.PUBLISH_TOKEN_GRANT_INVALID },
    { name: 'ttl 0', grant: { ttlSeconds: 0 }, code: ErrorCodes.PUBLISH_TOKEN_GRANT_INVALID },
    { name: 'ttl 1.5', grant: { ttlSeconds: 1.5 }, code: ErrorCodes.PUBLISH_TOKEN_GRANT_INVALID },
    {
      name: 'ttl of a year',
      grant: { ttlSeconds: 365 * 86_400 },
      code: ErrorCodes.PUBLISH_TOKEN_GRANT_INVALID,
    },
    { name: 'a NaN clock', grant: {}, now: Number.NaN, code: ErrorCodes.PUBLISH_TOKEN_GRANT_INVALID },
  ];
  for (const c of bad) {
    it(`refuses to sign ${c.name}`, async () => {
      await assert.rejects(
        signPublishToken(SECRET, { ...GRANT, ...c.grant }, c.now ?? NOW),
        (e: unknown) => e instanceof RelayError && e.code === c.code,
      );
    });
  }

  it('refuses to sign with a weak secret', async () => {
    await assert.rejects(
      signPublishToken('k'.repeat(31), GRANT, NOW),
      (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.PUBLISH_TOKEN_SECRET_WEAK,
    );
  });
});

describe('config wiring (RELAY_ID, PUBLISH_TOKEN_SECRET)', () => {
  it('feeds the verifier', async () => {
    const config = loadConfig({ RELAY_ID: 'relay-1', PUBLISH_TOKEN_SECRET: SECRET });
    assert.equal(config.relay.id, 'relay-1');
    assert.equal(config.publishTokenSecret, SECRET);
    const hook = createPublishTokenVerifier({
      secret: config.publishTokenSecret ?? '',
      relayId: config.relay.id,
      now: () => NOW,
    });
    assert.deepEqual(await hook({ ...REQUEST, token: await signPublishToken(SECRET, GRANT, NOW) }), {
      allow: true,
    });
  });

  it('defaults RELAY_ID to the host name and leaves the secret unset', () => {
    const config = loadConfig({});
    assert.equal(config.relay.id, hostRelayId(os.hostname()));
    assert.equal(config.publishTokenSecret, undefined);
  });

  const hosts: [string, string][] = [
    ['relay-7.eu-west', 'relay-7.eu-west'],
    ['Johns MacBook (2)', 'Johns-MacBook--2-'],
    ['h'.repeat(80), 'h'.repeat(64)],
    ['', 'relay'],
  ];
  for (const [host, id] of hosts) {
    it(`derives a valid RELAY_ID from the host name ${JSON.stringify(host.slice(0, 20))}`, () => {
      assert.equal(hostRelayId(host), id);
      assert.ok(RelayId.safeParse(id).success);
    });
  }

  it('refuses an invalid RELAY_ID, naming it', () => {
    assert.throws(
      () => loadConfig({ RELAY_ID: 'relay 1/x' }),
      (e: unknown) =>
        e instanceof RelayError && e.code === ErrorCodes.CONFIG_INVALID && /RELAY_ID/.test(e.message),
    );
  });
});

describe('secret rotation', () => {
  it('accepts tokens signed with the previous secret while it is configured, refuses them after', async () => {
    const rotating = createPublishTokenVerifier({
      secret: OTHER_SECRET,
      previousSecret: SECRET,
      relayId: 'relay-1',
      now: () => NOW,
    });
    const rotated = createPublishTokenVerifier({ secret: OTHER_SECRET, relayId: 'relay-1', now: () => NOW });
    const old = await signPublishToken(SECRET, GRANT, NOW);
    const fresh = await signPublishToken(OTHER_SECRET, GRANT, NOW);
    assert.deepEqual(await rotating({ ...REQUEST, token: old }), { allow: true });
    assert.deepEqual(await rotating({ ...REQUEST, token: fresh }), { allow: true });
    assert.deepEqual(await rotated({ ...REQUEST, token: fresh }), { allow: true });
    assert.deepEqual(await rotated({ ...REQUEST, token: old }), {
      allow: false,
      reason: TokenRefusals.signature,
    });
    // An expired old token is refused as expired, not retried into a different answer.
    const expired = await signPublishToken(SECRET, { ...GRANT, ttlSeconds: 60 }, NOW - 3_600_000);
    assert.deepEqual(await rotating({ ...REQUEST, token: expired }), {
      allow: false,
      reason: TokenRefusals.expired,
    });
    // A token for someone else is refused whichever key signed it.
    assert.deepEqual(await rotating({ userId: 'other@x.com', streamId: GRANT.streamId, token: old }), {
      allow: false,
      reason: TokenRefusals.otherUser,
    });
  });

  it('refuses a weak previous secret at start', () => {
    assert.throws(
      () => createPublishTokenVerifier({ secret: SECRET, previousSecret: 'short', relayId: 'relay-1' }),
      (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.PUBLISH_TOKEN_SECRET_WEAK,
    );
  });
});

describe('compact publish tokens (SRT stream ids)', () => {
  const verifyAt = (now: number) =>
    createPublishTokenVerifier({
      secret: SECRET,
      previousSecret: OTHER_SECRET,
      relayId: 'relay-1',
      now: () => now,
    });

  it('binds the same grant as the JWT in about 35 characters', async () => {
    const token = signCompactPublishToken(SECRET, GRANT, NOW);
    assert.match(token, /^c1\.[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
    assert.ok(token.length <= 40, `${token.length} characters`);
    assert.deepEqual(await verifyAt(NOW)({ ...REQUEST, token }), { allow: true });
    // Signed with the previous secret during a rotation: still accepted.
    const previous = signCompactPublishToken(OTHER_SECRET, GRANT, NOW);
    assert.deepEqual(await verifyAt(NOW)({ ...REQUEST, token: previous }), { allow: true });
  });

  it('refuses another user, stream or relay, a tampered tag or expiry, and an expired token', async () => {
    const token = signCompactPublishToken(SECRET, GRANT, NOW);
    const [prefix, exp, tag] = token.split('.') as [string, string, string];
    const flipped = `${tag.slice(0, 5)}${tag[5] === 'A' ? 'B' : 'A'}${tag.slice(6)}`;
    const cases: [string, { userId: string; streamId: string; token: string }, string][] = [
      ['other user', { ...REQUEST, userId: 'someone-else', token }, TokenRefusals.signature],
      ['other stream', { ...REQUEST, streamId: 'zzz999', token }, TokenRefusals.signature],
      ['tampered tag', { ...REQUEST, token: `${prefix}.${exp}.${flipped}` }, TokenRefusals.signature],
      [
        'later expiry',
        { ...REQUEST, token: `${prefix}.${(Number.parseInt(exp, 36) + 3600).toString(36)}.${tag}` },
        TokenRefusals.signature,
      ],
      ['short tag', { ...REQUEST, token: `${prefix}.${exp}.${tag.slice(1)}` }, TokenRefusals.malformed],
      ['no tag', { ...REQUEST, token: 'c1.zz' }, TokenRefusals.malformed],
    ];
    for (const [name, request, reason] of cases) {
      assert.deepEqual(await verifyAt(NOW)(request), { allow: false, reason }, name);
    }
    const otherRelay = createPublishTokenVerifier({ secret: SECRET, relayId: 'relay-2', now: () => NOW });
    assert.deepEqual(await otherRelay({ ...REQUEST, token }), {
      allow: false,
      reason: TokenRefusals.signature,
    });
    // 600 s TTL + 5 s tolerance.
    assert.deepEqual(await verifyAt(NOW + 604_000)({ ...REQUEST, token }), { allow: true });
    assert.deepEqual(await verifyAt(NOW + 606_000)({ ...REQUEST, token }), {
      allow: false,
      reason: TokenRefusals.expired,
    });
  });

  it('refuses to sign an invalid grant, as the JWT signer does', () => {
    assert.throws(
      () => signCompactPublishToken(SECRET, { ...GRANT, streamId: '../x' }, NOW),
      (err: unknown) => err instanceof RelayError && err.code === ErrorCodes.PUBLISH_TOKEN_GRANT_INVALID,
    );
  });
});
