/**
 * Playback tokens (architecture §3, `PLAYBACK_AUTH=token`): the cloud signs one per stream into every
 * playback URL it hands out; the relay checks it on every playback request (playlists, MPDs, media,
 * thumbnails, WHEP offers, recordings) and writes it back into every URI of the playlists it serves, so a
 * player that only follows URIs keeps sending it. Claims `{sub: userId, sid: streamId, scp: "play", exp}`
 * exactly (no `iat`, no `typ` header: the token rides in every URI of every playlist, so every byte counts), HS256 with PLAYBACK_TOKEN_SECRET (PUBLISH_TOKEN_SECRET by default); `scp` keeps a publish or user
 * token from passing as one (and a playback token has no `rly` nor `aud`, so it passes as neither).
 *
 * - `createPlaybackTokenSigner` (cloud): synchronous (statuses are built synchronously), and deterministic
 *   within a bucket of 1/24 of the TTL (at most an hour): every app handed a URL in that bucket gets the same
 *   token, so a CDN that keys its cache on the token still shares it between viewers; a token always has at
 *   least 23/24 of the TTL left when handed out, and never outlives the stream's end plus its grace.
 * - `createPlaybackTokenVerifier` (relay): jose's `jwtVerify`, with the verified claims of recent tokens
 *   kept in a bounded map so a segment request costs a map lookup, not an HMAC (only tokens that verified
 *   are kept, so nobody can fill it with garbage; expiry is checked on every use).
 * - `playbackGuard` (relay): a fastify hook for any playback route: 401 when the token is missing or
 *   malformed, 403 when it is for another stream, expired, tampered or of another kind; the refusal texts are
 *   fixed, and neither the token nor a library message is ever logged or sent.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { jwtVerify } from 'jose';
import { z } from 'zod';
import { hlsUserPath, isValidStreamId, isValidUserId } from '../contracts/names.ts';
import { StreamId, UserId } from '../contracts/relay-api.ts';
import { type ErrorCode, ErrorCodes, RelayError } from './errors.ts';
import {
  COMPACT_JWT,
  HS256,
  hs256Key,
  type JwtFailure,
  jwtFailureOf,
  MAX_TOKEN_LENGTH,
  signHs256,
} from './jwt-hs256.ts';

export const PLAYBACK_SCOPE = 'play';
/** PLAYBACK_TOKEN_TTL_SECONDS' default and the CLI's cap. */
export const DEFAULT_PLAYBACK_TTL_SECONDS = 86_400;
/** The longest bucket tokens are shared within (see the header). */
const MAX_BUCKET_SECONDS = 3600;

export const PlaybackTokenClaims = z.object({
  sub: UserId,
  sid: StreamId,
  scp: z.literal(PLAYBACK_SCOPE),
  exp: z.number().int(),
  iat: z.number().int().optional(),
});
export type PlaybackTokenClaims = z.infer<typeof PlaybackTokenClaims>;

/** Why a playback token was refused: fixed texts, safe to log and to send to the viewer. */
export const PlaybackRefusals = {
  missing: 'missing playback token',
  malformed: 'malformed playback token',
  signature: 'playback token signature invalid',
  algorithm: 'playback token algorithm not allowed',
  expired: 'playback token expired',
  notYetValid: 'playback token not yet valid',
  claims: 'playback token claims invalid',
  otherStream: 'playback token is for another stream',
} as const;
export type PlaybackRefusal = keyof typeof PlaybackRefusals;

function secretKey(secret: string | Uint8Array): Uint8Array {
  return hs256Key(secret, 'PLAYBACK_TOKEN_SECRET', ErrorCodes.PLAYBACK_TOKEN_SECRET_WEAK);
}

export interface PlaybackGrant {
  userId: string;
  streamId: string;
  /** When it is issued (not written into the token) and `exp`, seconds since the epoch (exp > iat). */
  iat: number;
  exp: number;
}

/** Signs exactly this grant (the CLI, tests); the cloud goes through `createPlaybackTokenSigner`. */
export function signPlaybackToken(secret: string | Uint8Array, grant: PlaybackGrant): string {
  const problems = [
    isValidUserId(grant.userId) ? null : 'userId',
    isValidStreamId(grant.streamId) ? null : 'streamId',
    Number.isInteger(grant.iat) && Number.isInteger(grant.exp) && grant.exp > grant.iat ? null : 'iat/exp',
  ].filter((p) => p !== null);
  if (problems.length > 0) {
    throw new RelayError(
      ErrorCodes.PLAYBACK_TOKEN_GRANT_INVALID,
      `cannot sign a playback token: invalid ${problems.join(', ')}`,
    );
  }
  return signHs256(
    { sub: grant.userId, sid: grant.streamId, scp: PLAYBACK_SCOPE, exp: grant.exp },
    secretKey(secret),
  );
}

export interface PlaybackTokenSignerOptions {
  /** PLAYBACK_TOKEN_SECRET (or PUBLISH_TOKEN_SECRET); at least 32 bytes. */
  secret: string | Uint8Array;
  /** PLAYBACK_TOKEN_TTL_SECONDS: the longest a token lives. */
  ttlSeconds: number;
  /** The clock, in ms (tests). */
  now?: () => number;
}

export interface PlaybackTokenSigner {
  /**
   * A token for one stream, valid for the TTL (less what its bucket already used) and never past `endsAt`
   * (ms since the epoch: the stream's end plus the grace its segments stay served), when known.
   */
  sign(userId: string, streamId: string, options?: { endsAt?: number | null }): string;
  readonly ttlSeconds: number;
}

export function createPlaybackTokenSigner(options: PlaybackTokenSignerOptions): PlaybackTokenSigner {
  const key = secretKey(options.secret);
  const ttl = options.ttlSeconds;
  if (!(Number.isInteger(ttl) && ttl > 0)) {
    throw new RelayError(ErrorCodes.CONFIG_INVALID, `PLAYBACK_TOKEN_TTL_SECONDS ${ttl}: whole seconds > 0`);
  }
  const bucket = Math.max(1, Math.min(MAX_BUCKET_SECONDS, Math.floor(ttl / 24)));
  const now = options.now ?? Date.now;
  return {
    ttlSeconds: ttl,
    sign(userId, streamId, signOptions = {}) {
      const iat = Math.floor(now() / 1000 / bucket) * bucket;
      let exp = iat + ttl;
      if (signOptions.endsAt != null)
        exp = Math.min(exp, Math.max(iat + 1, Math.ceil(signOptions.endsAt / 1000)));
      return signPlaybackToken(key, { userId, streamId, iat, exp });
    },
  };
}

/** The stream a playback request is for, as its URL names it (`userPath` is the userId with `@` as `-`). */
export interface PlaybackTarget {
  userPath: string;
  streamId: string;
}

export type PlaybackDecision =
  | { allow: true }
  | { allow: false; status: 401 | 403; code: ErrorCode; reason: PlaybackRefusal };

export type PlaybackTokenVerifier = (
  token: string | undefined,
  target: PlaybackTarget,
) => Promise<PlaybackDecision>;

export interface PlaybackTokenVerifierOptions {
  secret: string | Uint8Array;
  /** During a rotation: tokens signed with the previous secret still verify until they expire. */
  previousSecret?: string | Uint8Array | undefined;
  /** Clock skew allowed on `exp`, seconds (default 2: cloud and relays keep NTP time). */
  clockToleranceSeconds?: number;
  /** How many verified tokens are remembered (default 4096). */
  cacheSize?: number;
  /** The clock, in ms (tests). */
  now?: () => number;
}

const UNAUTHORIZED: ReadonlySet<PlaybackRefusal> = new Set(['missing', 'malformed']);

function refuse(reason: PlaybackRefusal): PlaybackDecision {
  return UNAUTHORIZED.has(reason)
    ? { allow: false, status: 401, code: ErrorCodes.PLAYBACK_UNAUTHORIZED, reason }
    : { allow: false, status: 403, code: ErrorCodes.PLAYBACK_FORBIDDEN, reason };
}

interface Verified {
  userPath: string;
  sid: string;
  exp: number;
}

export function createPlaybackTokenVerifier(options: PlaybackTokenVerifierOptions): PlaybackTokenVerifier {
  const keys = [secretKey(options.secret)];
  if (options.previousSecret !== undefined) keys.push(secretKey(options.previousSecret));
  const tolerance = options.clockToleranceSeconds ?? 2;
  if (!(Number.isFinite(tolerance) && tolerance >= 0)) {
    throw new RelayError(ErrorCodes.CONFIG_INVALID, `clock tolerance ${tolerance} s`);
  }
  const cacheSize = Math.max(1, options.cacheSize ?? 4096);
  const now = options.now ?? Date.now;
  // Insertion-ordered: the oldest entry goes first when it is full.
  const verified = new Map<string, Verified>();

  const check = (v: Verified, target: PlaybackTarget): PlaybackDecision => {
    if (now() / 1000 >= v.exp + tolerance) return refuse('expired');
    if (v.userPath !== target.userPath || v.sid !== target.streamId) return refuse('otherStream');
    return { allow: true };
  };

  return async (token, target) => {
    if (token === undefined || token === '') return refuse('missing');
    if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWT.test(token)) return refuse('malformed');
    const known = verified.get(token);
    if (known) return check(known, target);
    let payload: unknown;
    let failure: JwtFailure | undefined;
    for (const key of keys) {
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: [HS256],
          clockTolerance: tolerance,
          currentDate: new Date(now()),
          requiredClaims: ['sub', 'sid', 'scp', 'exp'],
        }));
        failure = undefined;
        break;
      } catch (err) {
        // A signature that fails with the current key may be the previous key's: try it. Any other failure
        // (expired, malformed) is the same whatever the key.
        failure = jwtFailureOf(err);
        if (failure !== 'signature') break;
      }
    }
    if (failure !== undefined) return refuse(failure);
    const claims = PlaybackTokenClaims.safeParse(payload);
    if (!claims.success) return refuse('claims');
    const entry = { userPath: hlsUserPath(claims.data.sub), sid: claims.data.sid, exp: claims.data.exp };
    if (verified.size >= cacheSize) verified.delete(verified.keys().next().value as string);
    verified.set(token, entry);
    return check(entry, target);
  };
}

export interface PlaybackGuardOptions {
  /** PLAYBACK_AUTH: `off` lets every request through and writes no token into URIs. */
  mode: 'token' | 'off';
  /** Required with `token`. */
  verify?: PlaybackTokenVerifier | null | undefined;
  /** The stream a request is for; default: its `userPath` and `streamId` route params. */
  target?: (request: FastifyRequest) => PlaybackTarget | null;
}

/** What `PlaybackGuard.check` decides: in, with the query to write into URIs (`token=…` or ''), or not. */
export type PlaybackCheck =
  | { ok: true; query: string }
  | { ok: false; status: 401 | 403; code: ErrorCode; error: string };

/**
 * A fastify `onRequest`/`preHandler` hook: `{onRequest: guard}` on a route, or `addHook` in a plugin. Routes
 * with an `authorize` hook of their own (DASH, WHEP, recordings) call `check` instead and answer themselves.
 */
export type PlaybackGuard = ((request: FastifyRequest, reply: FastifyReply) => Promise<unknown>) & {
  readonly mode: 'token' | 'off';
  check(request: FastifyRequest, target?: PlaybackTarget): Promise<PlaybackCheck>;
};

/** The `token=…` query a request was let in with (to write into the URIs it is answered with). */
const acceptedQuery = new WeakMap<FastifyRequest, string>();

function paramsTarget(request: FastifyRequest): PlaybackTarget | null {
  const p = (request.params ?? {}) as { userPath?: unknown; streamId?: unknown };
  return typeof p.userPath === 'string' && typeof p.streamId === 'string'
    ? { userPath: p.userPath, streamId: p.streamId }
    : null;
}

/** The token of a request: `?token=` (players), else `Authorization: Bearer` (WHEP clients may send one). */
function tokenOf(request: FastifyRequest): { token: string | undefined; fromQuery: boolean } | null {
  const q = (request.query ?? {}) as Record<string, unknown>;
  const v = q.token;
  if (Array.isArray(v)) return null; // two tokens: which one? Neither.
  if (typeof v === 'string') return { token: v, fromQuery: true };
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ')) return { token: header.slice(7), fromQuery: false };
  return { token: undefined, fromQuery: false };
}

export function playbackGuard(options: PlaybackGuardOptions): PlaybackGuard {
  if (options.mode === 'off') {
    const open: PlaybackCheck = { ok: true, query: '' };
    return Object.assign(async () => undefined, { mode: 'off' as const, check: async () => open });
  }
  const verify = options.verify;
  if (!verify) throw new RelayError(ErrorCodes.CONFIG_INVALID, 'PLAYBACK_AUTH=token needs a token secret');
  const targetOf = options.target ?? paramsTarget;
  const check = async (request: FastifyRequest, target?: PlaybackTarget): Promise<PlaybackCheck> => {
    const found = tokenOf(request);
    const to = target ?? targetOf(request);
    const decision = !found
      ? refuse('malformed')
      : to === null
        ? refuse('claims') // a route without its stream in the URL: nothing a token could grant
        : await verify(found.token, to);
    if (!decision.allow) {
      return {
        ok: false,
        status: decision.status,
        code: decision.code,
        error: PlaybackRefusals[decision.reason],
      };
    }
    const query = found?.fromQuery && found.token ? `token=${found.token}` : '';
    if (query) acceptedQuery.set(request, query);
    return { ok: true, query };
  };
  const guard = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const checked = await check(request);
    if (checked.ok) return undefined;
    // no-store: a refusal must not stay in a CDN for the viewers whose token is good.
    return reply
      .code(checked.status)
      .header('cache-control', 'no-store')
      .send({ error: checked.error, code: checked.code });
  };
  return Object.assign(guard, { mode: 'token' as const, check });
}

/**
 * `token=…` when this request was let in with a query token (PLAYBACK_AUTH=token), else ''. Only a token
 * that verified is returned, and a verified token is three base64url parts: safe in a URI as it is.
 */
export function playbackQuery(request: FastifyRequest): string {
  return acceptedQuery.get(request) ?? '';
}

/** `uri` with `query` appended (`?` or `&`, so a query it has, `_HLS_*` ones included, is kept). */
export function withQuery(uri: string, query: string): string {
  if (query === '') return uri;
  return `${uri}${uri.includes('?') ? '&' : '?'}${query}`;
}
