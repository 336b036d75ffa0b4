/**
 * Publish tokens (architecture §3, §7): the cloud signs a short-lived JWT (HS256, `jose`) for one
 * userId/streamId on one relay; the relay checks it locally, before NetStream.Publish.Start, with
 * `createPublishTokenVerifier`, which is an `AuthorizePublish` hook. Claims are `{sub: userId, sid:
 * streamId, rly: relayId, exp}` plus `iat` (src/contracts/relay-api.ts). A refusal carries a short fixed
 * reason (it reaches the publisher's onStatus and the logs), never the token or a library message.
 *
 * A compact form exists for SRT, whose stream id (token included) must fit libsrt's 512 bytes: with the
 * longest user and stream ids a JWT does not. `c1.{exp base36}.{tag}`, where the tag is HMAC-SHA256 (first
 * 16 bytes, base64url) under the same secret over a domain-separated string of every claim, so it binds the
 * same user, stream, relay and expiry as the JWT does; the claims themselves travel in the stream id.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';
import type { AuthDecision, PublishAuthRequest } from '../contracts/publish.ts';
import { PublishTokenClaims, RelayId, StreamId, UserId } from '../contracts/relay-api.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';

/** HS256 wants a key at least as long as its output (RFC 7518 §3.2). */
export const MIN_SECRET_BYTES = 32;
/** Longer tokens are refused unread (a real one is about 250 characters). */
export const MAX_TOKEN_LENGTH = 2048;
/** The longest lifetime a token may be signed for (30 days). */
export const MAX_TTL_SECONDS = 30 * 86_400;
const ALG = 'HS256';

export interface PublishGrant {
  userId: string;
  streamId: string;
  relayId: string;
  /** Seconds from `now` until `exp`. */
  ttlSeconds: number;
}

/** Why a publish token was refused: fixed texts, safe to log and to send to the publisher. */
export const TokenRefusals = {
  missing: 'missing publish token',
  malformed: 'malformed publish token',
  signature: 'publish token signature invalid',
  algorithm: 'publish token algorithm not allowed',
  expired: 'publish token expired',
  notYetValid: 'publish token not yet valid',
  claims: 'publish token claims invalid',
  otherRelay: 'publish token is for another relay',
  otherUser: 'publish token is for another user',
  otherStream: 'publish token is for another stream',
} as const;

/** The compact form's prefix (and version): a JWT never starts with it (its header is base64url JSON). */
const COMPACT_PREFIX = 'c1.';
/** 128 bits of HMAC-SHA256: a forgery takes 2^128 guesses, each a network round trip. */
const COMPACT_TAG_BYTES = 16;

function compactTag(key: Uint8Array, userId: string, streamId: string, relayId: string, exp: number): Buffer {
  return createHmac('sha256', key)
    .update(`rtmp-relay/publish-token/c1\n${userId}\n${streamId}\n${relayId}\n${exp}`)
    .digest()
    .subarray(0, COMPACT_TAG_BYTES);
}

/**
 * Signs the compact form of a publish token (same grant, same secret, same checks as `signPublishToken`), for
 * SRT stream ids that a JWT would push past libsrt's 512 bytes. About 35 characters.
 */
export function signCompactPublishToken(
  secret: string | Uint8Array,
  grant: PublishGrant,
  now: number = Date.now(),
): string {
  const key = secretKey(secret);
  checkGrant(grant, now);
  const exp = Math.floor(now / 1000) + grant.ttlSeconds;
  const tag = compactTag(key, grant.userId, grant.streamId, grant.relayId, exp).toString('base64url');
  return `${COMPACT_PREFIX}${exp.toString(36)}.${tag}`;
}

function secretKey(secret: string | Uint8Array): Uint8Array {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  if (key.byteLength < MIN_SECRET_BYTES) {
    throw new RelayError(
      ErrorCodes.PUBLISH_TOKEN_SECRET_WEAK,
      `PUBLISH_TOKEN_SECRET must be at least ${MIN_SECRET_BYTES} bytes (got ${key.byteLength})`,
    );
  }
  return key;
}

/** Signs a publish token for one user, stream and relay. `now` is in ms (default: the clock). */
export async function signPublishToken(
  secret: string | Uint8Array,
  grant: PublishGrant,
  now: number = Date.now(),
): Promise<string> {
  const key = secretKey(secret);
  checkGrant(grant, now);
  const iat = Math.floor(now / 1000);
  return new SignJWT({ sid: grant.streamId, rly: grant.relayId })
    .setProtectedHeader({ alg: ALG, typ: 'JWT' })
    .setSubject(grant.userId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + grant.ttlSeconds)
    .sign(key);
}

function checkGrant(grant: PublishGrant, now: number): void {
  const problems = [
    UserId.safeParse(grant.userId).success ? null : 'userId',
    StreamId.safeParse(grant.streamId).success ? null : 'streamId',
    RelayId.safeParse(grant.relayId).success ? null : 'relayId',
    Number.isInteger(grant.ttlSeconds) && grant.ttlSeconds > 0 && grant.ttlSeconds <= MAX_TTL_SECONDS
      ? null
      : 'ttlSeconds',
    Number.isFinite(now) ? null : 'now',
  ].filter((p) => p !== null);
  if (problems.length > 0) {
    throw new RelayError(
      ErrorCodes.PUBLISH_TOKEN_GRANT_INVALID,
      `cannot sign a publish token: invalid ${problems.join(', ')}`,
    );
  }
}

export interface PublishTokenVerifierOptions {
  /** PUBLISH_TOKEN_SECRET; at least 32 bytes. */
  secret: string | Uint8Array;
  /**
   * PUBLISH_TOKEN_SECRET_PREVIOUS, during a rotation: tokens signed with it still verify (until they expire),
   * while the cloud already signs with the new one. At least 32 bytes too.
   */
  previousSecret?: string | Uint8Array | undefined;
  /** This relay's RELAY_ID: tokens must name it in `rly`. */
  relayId: string;
  /** Clock skew allowed on `exp` (and `nbf`), in seconds. Default 5. */
  clockToleranceSeconds?: number;
  /** The clock, in ms (tests). */
  now?: () => number;
}

/** An `AuthorizePublish` hook (it needs only these fields of the request). */
export type PublishTokenVerifier = (
  request: Pick<PublishAuthRequest, 'userId' | 'streamId' | 'token'>,
) => Promise<AuthDecision>;

/** Builds the relay's publish-token check; throws at once on a weak secret or an invalid relay id. */
export function createPublishTokenVerifier(options: PublishTokenVerifierOptions): PublishTokenVerifier {
  const keys = [secretKey(options.secret)];
  if (options.previousSecret !== undefined) keys.push(secretKey(options.previousSecret));
  if (!RelayId.safeParse(options.relayId).success) {
    throw new RelayError(ErrorCodes.CONFIG_INVALID, 'RELAY_ID: invalid relay id');
  }
  const tolerance = options.clockToleranceSeconds ?? 5;
  if (!(Number.isFinite(tolerance) && tolerance >= 0)) {
    throw new RelayError(ErrorCodes.CONFIG_INVALID, `clock tolerance ${tolerance} s`);
  }
  const relayId = options.relayId;
  const now = options.now ?? Date.now;
  const refuse = (reason: string): AuthDecision => ({ allow: false, reason });

  return async ({ userId, streamId, token }) => {
    if (token === undefined || token === '') return refuse(TokenRefusals.missing);
    if (token.length > MAX_TOKEN_LENGTH) return refuse(TokenRefusals.malformed);
    if (token.startsWith(COMPACT_PREFIX)) return verifyCompact(token, userId, streamId);
    let payload: unknown;
    let failure: unknown;
    for (const key of keys) {
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: [ALG],
          clockTolerance: tolerance,
          currentDate: new Date(now()),
          requiredClaims: ['sub', 'sid', 'rly', 'exp'],
        }));
        failure = undefined;
        break;
      } catch (err) {
        // A signature that fails with the current key may be one of the previous key's: try it. Any other
        // failure (expired, malformed) is the same whatever the key.
        failure = err;
        if (!(err instanceof errors.JWSSignatureVerificationFailed)) break;
      }
    }
    if (failure !== undefined) return refuse(classify(failure));
    const claims = PublishTokenClaims.safeParse(payload);
    if (!claims.success) return refuse(TokenRefusals.claims);
    if (claims.data.rly !== relayId) return refuse(TokenRefusals.otherRelay);
    if (claims.data.sub !== userId) return refuse(TokenRefusals.otherUser);
    if (claims.data.sid !== streamId) return refuse(TokenRefusals.otherStream);
    return { allow: true };
  };

  /** The compact form: the claims are the request's own, so a tag that matches binds them all. */
  function verifyCompact(token: string, userId: string, streamId: string): AuthDecision {
    const match = /^c1\.([0-9a-z]{1,11})\.([A-Za-z0-9_-]{22})$/.exec(token);
    if (!match) return refuse(TokenRefusals.malformed);
    const exp = Number.parseInt(match[1] as string, 36);
    const tag = Buffer.from(match[2] as string, 'base64url');
    if (tag.length !== COMPACT_TAG_BYTES) return refuse(TokenRefusals.malformed);
    // A wrong user, stream or relay makes a different tag: all are reported as a bad signature.
    const ok = keys.some((key) => timingSafeEqual(compactTag(key, userId, streamId, relayId, exp), tag));
    if (!ok) return refuse(TokenRefusals.signature);
    if (exp + tolerance < now() / 1000) return refuse(TokenRefusals.expired);
    return { allow: true };
  }
}

/** Maps a jose failure to a fixed reason; anything else is a bug and is rethrown (the server logs it). */
function classify(err: unknown): string {
  if (err instanceof errors.JWTExpired) return TokenRefusals.expired;
  if (err instanceof errors.JWTClaimValidationFailed) {
    return err.claim === 'nbf' && err.reason === 'check_failed'
      ? TokenRefusals.notYetValid
      : TokenRefusals.claims;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return TokenRefusals.signature;
  if (err instanceof errors.JOSEAlgNotAllowed) return TokenRefusals.algorithm;
  if (err instanceof errors.JOSEError) return TokenRefusals.malformed; // JWSInvalid, JWTInvalid, crit …
  throw err;
}
