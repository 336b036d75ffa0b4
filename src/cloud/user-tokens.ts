/**
 * Identity of glasses and apps: a bearer token the cloud signs for a userId (JWT HS256, audience `user`,
 * so a publish token can never pass as one). Dev mode may accept a plain `?userId=` instead, loudly.
 */
import { jwtVerify, SignJWT } from 'jose';
import { UserId } from '../contracts/relay-api.ts';

const AUDIENCE = 'user';

function key(secret: string): Uint8Array {
  return new TextEncoder().encode(secret);
}

export async function signUserToken(secret: string, userId: string, ttlSeconds = 86_400): Promise<string> {
  if (!UserId.safeParse(userId).success) throw new Error('invalid userId');
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userId)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(key(secret));
}

/** The userId a token was signed for, or null for anything else (never throws). */
export async function verifyUserToken(secret: string, token: string | undefined): Promise<string | null> {
  if (!token || token.length > 2048) return null;
  try {
    const { payload } = await jwtVerify(token, key(secret), { algorithms: ['HS256'], audience: AUDIENCE });
    return typeof payload.sub === 'string' && UserId.safeParse(payload.sub).success ? payload.sub : null;
  } catch {
    return null; // forged, expired or malformed: the same answer, and nothing about the token is logged
  }
}

/** The bearer token of a request: `Authorization: Bearer …` or `?token=`. */
export function bearerOf(
  headers: { authorization?: string | undefined },
  url: string | undefined,
): string | undefined {
  const header = headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice(7);
  return new URL(url ?? '/', 'http://x').searchParams.get('token') ?? undefined;
}
