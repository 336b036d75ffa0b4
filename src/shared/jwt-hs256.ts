/**
 * What the two HS256 token kinds share (publish tokens in cloud/tokens.ts, playback tokens in
 * shared/playback-token.ts): the key-length rule, the length cap a token is refused unread above, a
 * synchronous signer, and the mapping of jose's verification failures to a fixed kind each module turns into
 * its own refusal text. Verification stays with jose (`jwtVerify`).
 *
 * Why a hand-written signer: the cloud builds statuses synchronously (a status is a pure view of a stream)
 * and a playback token rides in every one; jose's `SignJWT` is async (WebCrypto). HS256 compact
 * serialisation is three base64url parts and one HMAC (RFC 7515 §3.1, RFC 7519), checked by jose in the tests.
 */
import { createHmac } from 'node:crypto';
import { errors } from 'jose';
import { type ErrorCode, RelayError } from './errors.ts';

/** HS256 wants a key at least as long as its output (RFC 7518 §3.2). */
export const MIN_SECRET_BYTES = 32;
/** Longer tokens are refused unread (a real one is about 250 characters). */
export const MAX_TOKEN_LENGTH = 2048;
export const HS256 = 'HS256';
/** The compact form's alphabet: three base64url parts. Anything else is malformed before any crypto. */
export const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** The secret as a key; throws `code` (naming `name`, never the value) when it is too short. */
export function hs256Key(secret: string | Uint8Array, name: string, code: ErrorCode): Uint8Array {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  if (key.byteLength < MIN_SECRET_BYTES) {
    throw new RelayError(code, `${name} must be at least ${MIN_SECRET_BYTES} bytes (got ${key.byteLength})`);
  }
  return key;
}

// No `typ` (optional, RFC 7519 §5.1): these tokens ride in URLs, short is better.
const HEADER = Buffer.from(JSON.stringify({ alg: HS256 })).toString('base64url');

/** A compact HS256 JWT of `claims`, signed now (a few microseconds: one HMAC). */
export function signHs256(claims: Record<string, unknown>, key: Uint8Array): string {
  const input = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

/** Why jose refused a token, as a kind each token module names in its own words. */
export type JwtFailure = 'malformed' | 'signature' | 'algorithm' | 'expired' | 'notYetValid' | 'claims';

/** Maps a jose failure to its kind; anything else is a bug and is rethrown (the caller's server logs it). */
export function jwtFailureOf(err: unknown): JwtFailure {
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    return err.claim === 'nbf' && err.reason === 'check_failed' ? 'notYetValid' : 'claims';
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm';
  if (err instanceof errors.JOSEError) return 'malformed'; // JWSInvalid, JWTInvalid, crit …
  throw err;
}
